"""How every widget shows its figure: one PNG rendering of a Figure that pyplot does not know.

Widget callbacks may run on a kernel subshell thread, where the inline backend renders and
closes every *pyplot* figure after each message (tests/browser/README.md, "never pyplot"); so
callbacks draw on a ``matplotlib.figure.Figure()`` and show it with :func:`show_png`.
"""
from __future__ import annotations

import io


def png_bytes(fig) -> bytes:
    """The figure rendered once as PNG at its own dpi (``display(fig)`` would render twice)."""
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=fig.dpi)
    return png.getvalue()


def show_png(fig) -> None:
    """Display ``fig`` in the current output area as one PNG image."""
    from IPython.display import Image, display

    display(Image(data=png_bytes(fig)))

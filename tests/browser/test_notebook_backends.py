"""One matplotlib backend per notebook: mixing inline and ipympl in one kernel makes figures
jump backends. Static (no browser needed), so it runs everywhere."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]*.ipynb")) + sorted(
    (Path(__file__).parent / "fixtures").glob("*.ipynb"))
MAGIC = re.compile(r"^\s*%matplotlib\s+(\S+)", re.M)
USE = re.compile(r"""matplotlib\.use\(\s*["']([^"']+)["']""")
ALIASES = {"ipympl": "widget", "module://ipympl.backend_nbagg": "widget",
           "module://matplotlib_inline.backend_inline": "inline"}


def backends(source: str) -> set[str]:
    """Matplotlib backends a cell's source selects, ipympl spelt as ``widget``."""
    found = MAGIC.findall(source) + USE.findall(source)
    return {ALIASES.get(name, name) for name in found}


def test_backends_are_recognised():
    assert backends("%matplotlib inline\nimport numpy") == {"inline"}
    assert backends("%matplotlib ipympl\n") == {"widget"}
    assert backends("import matplotlib\nmatplotlib.use('module://ipympl.backend_nbagg')") == {"widget"}
    assert backends("plt.plot(x)  # %matplotlib widget in a comment is not at line start") == set()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_matplotlib_backend_per_notebook(path):
    nb = nbformat.read(path, as_version=4)
    chosen = set().union(*(backends(c.source) for c in nb.cells if c.cell_type == "code"))
    assert len(chosen) <= 1, f"{path.name} switches matplotlib backends: {sorted(chosen)}"


def test_explorer_figures_stay_out_of_pyplot(monkeypatch):
    """Notebook 03's explorer draws on figures pyplot does not know.

    In JupyterLab widget messages may be handled on a kernel subshell thread, and every comm
    message ends with the inline backend's post-execute hook, which renders and closes *every*
    open pyplot figure: a pyplot figure being drawn on another thread then reached the browser
    as a blank or half-drawn PNG (issue 8).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib._pylab_helpers import Gcf

    from nnptutor.widgets import symmetry

    drawn = []
    original = symmetry._draw_symmetry_functions

    def spy(fig, *args):
        pyplot_figures = [manager.canvas.figure for manager in Gcf.get_all_fig_managers()]
        drawn.append(fig not in pyplot_figures)
        original(fig, *args)

    monkeypatch.setattr(symmetry, "_draw_symmetry_functions", spy)
    monkeypatch.setattr("IPython.display.display", lambda figure: None)
    before = plt.get_fignums()
    explorer = symmetry.symmetry_function_explorer()  # draws once
    r_s, = [c for c in explorer.children[0].children[0].children if c.description.startswith("R_s")]
    r_s.value = 3.0  # draws again
    assert drawn == [True, True]
    assert plt.get_fignums() == before

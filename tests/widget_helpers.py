"""Helpers the widget tests share: find a widget's controls, and render a figure to pixels."""
from __future__ import annotations

import ipywidgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg


def controls_of(widget) -> dict:
    """Every control (value widget or button) below ``widget``, by its description."""
    found = {}
    for child in getattr(widget, "children", ()):
        if isinstance(child, (ipywidgets.ValueWidget, ipywidgets.Button)) and child.description:
            found[child.description] = child
        found.update(controls_of(child))
    return found


def rendered(figure) -> np.ndarray:
    """RGBA pixels of a matplotlib figure, shape (height, width, 4)."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()

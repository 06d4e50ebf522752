r"""Committee-selection explorer for notebook 07: which frames would a rule send to the oracle?

Given the committee's spread of every candidate frame and its true error (the frames labelled
afterwards, only to judge the rule), a threshold on the spread and a top-k cap select the
frames to label (:func:`select_frames`). A frame *needs* a label when its true error is above
an error level; the selection's **precision** is the share of selected frames that need one,
its **recall** the share of frames needing one that were selected (:func:`selection_quality`).
:func:`show_selection` draws spread against error with the selection marked (the explorer's
*static twin*); :func:`selection_explorer` redraws it from sliders.

Taught in notebooks/07_committee_learning.ipynb, "Which frames to label".
"""
from __future__ import annotations

import numpy as np

from nnptutor.widgets._display import show_png


#: (width, height) of the figure [inches].
FIGSIZE = (7.5, 4.2)


def select_frames(spread, threshold: float, top_k: int) -> np.ndarray:
    """Mask of the frames a rule labels: spread above ``threshold``, at most ``top_k`` largest.

    Parameters
    ----------
    spread : array, shape (n_frames,)
        Calibrated spread per frame (e.g. max_i σ_F,i [eV/Å]).
    threshold : float
        Same unit as ``spread``.
    top_k : int
        At most this many frames, the most disputed first.

    Returns
    -------
    ndarray of bool, shape (n_frames,)
    """
    spread = np.asarray(spread, dtype=float)
    order = np.argsort(-spread, kind="stable")
    order = order[spread[order] > threshold][:max(int(top_k), 0)]
    mask = np.zeros(len(spread), dtype=bool)
    mask[order] = True
    return mask


def selection_quality(selected, error, error_level: float) -> dict:
    """Precision and recall of a selection against the frames whose error is above a level.

    Parameters
    ----------
    selected : array of bool, shape (n_frames,)
    error : array, shape (n_frames,)
        True error per frame (same unit as ``error_level``, e.g. max_i |ΔF_i| [eV/Å]).
    error_level : float
        Frames with a larger error need a label.

    Returns
    -------
    dict
        ``n_selected``, ``n_needed`` (frames above the level), ``n_hits`` (both),
        ``precision`` n_hits/n_selected and ``recall`` n_hits/n_needed (NaN when the
        denominator is 0).
    """
    selected = np.asarray(selected, dtype=bool)
    needed = np.asarray(error, dtype=float) > error_level
    hits = int((selected & needed).sum())
    n_selected, n_needed = int(selected.sum()), int(needed.sum())
    return {"n_selected": n_selected, "n_needed": n_needed, "n_hits": hits,
            "precision": hits / n_selected if n_selected else float("nan"),
            "recall": hits / n_needed if n_needed else float("nan")}


def draw_selection(fig, spread, error, threshold: float, top_k: int, error_level: float,
                   unit: str = "eV/Å"):
    """Draw spread against true error with the selected frames marked into the empty ``fig``.

    Returns
    -------
    matplotlib Axes
    """
    from matplotlib.ticker import FormatStrFormatter

    spread = np.asarray(spread, dtype=float)
    error = np.asarray(error, dtype=float)
    selected = select_frames(spread, threshold, top_k)
    quality = selection_quality(selected, error, error_level)
    ax = fig.subplots()
    ax.scatter(spread[~selected], error[~selected], s=22, color="0.6", label="not labelled")
    ax.scatter(spread[selected], error[selected], s=60, marker="*", color="C3",
               label=f"labelled ({quality['n_selected']})")
    ax.axvline(threshold, color="C0", ls="--", label=f"threshold {threshold:.3g} {unit}")
    ax.axhline(error_level, color="C2", ls=":", label=f"error level {error_level:.3g} {unit}")
    ax.set(xscale="log", yscale="log", xlabel=f"calibrated spread max$_i$ σ$_{{F,i}}$ [{unit}]",
           ylabel=f"true error max$_i$ |ΔF$_i$| [{unit}]")
    precision = "–" if np.isnan(quality["precision"]) else f"{quality['precision']:.0%}"
    recall = "–" if np.isnan(quality["recall"]) else f"{quality['recall']:.0%}"
    ax.set_title(f"top-k = {int(top_k)}: precision {precision}, recall {recall} "
                 f"({quality['n_needed']} frames above the error level)", fontsize=10)
    for axis in (ax.xaxis, ax.yaxis):  # plain numbers (0.2, 0.5, 1, 2) on short log axes
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.legend(loc="upper left", fontsize=8)
    return ax


def show_selection(spread, error, threshold: float, top_k: int, error_level: float,
                   unit: str = "eV/Å"):
    """:func:`draw_selection` on a new pyplot figure (the explorer's static twin).

    Parameters
    ----------
    spread, error : array, shape (n_frames,)
        Calibrated spread and true error per frame [``unit``].
    threshold : float
        Spread above which a frame may be labelled [``unit``].
    top_k : int
        At most this many labels.
    error_level : float
        A frame needs a label when its error is above it [``unit``].
    unit : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=FIGSIZE)
    draw_selection(fig, spread, error, threshold, top_k, error_level, unit)
    return fig


def selection_explorer(spread, error, threshold: float, top_k: int, error_level: float,
                       unit: str = "eV/Å"):
    """Sliders for the threshold [unit], top-k and the error level [unit] over :func:`show_selection`.

    Parameters
    ----------
    spread, error, threshold, top_k, error_level, unit
        As in :func:`show_selection`; the numbers are the sliders' starting values.

    Returns
    -------
    ipywidgets.interactive
        Display it as the last expression of a cell.
    """
    import threading

    import ipywidgets as w
    from matplotlib.figure import Figure

    spread = np.asarray(spread, dtype=float)
    error = np.asarray(error, dtype=float)
    lock = threading.Lock()  # one redraw at a time, whichever kernel thread delivers the move

    def draw(threshold, top_k, error_level):
        with lock:
            fig = Figure(figsize=FIGSIZE, layout="tight")  # unknown to pyplot: thread-safe
            draw_selection(fig, spread, error, threshold, top_k, error_level, unit)
            show_png(fig)

    low = np.log10(max(spread.min(), 1e-6))
    high = np.log10(spread.max())
    errors = np.log10(max(error.min(), 1e-6)), np.log10(error.max())
    common = dict(style={"description_width": "170px"}, continuous_update=False,
                  layout=w.Layout(width="480px"))
    return w.interactive(
        draw,
        threshold=w.FloatLogSlider(value=threshold, base=10, min=low - 0.2, max=high, step=0.05,
                                   description=f"threshold on spread [{unit}]", **common),
        top_k=w.IntSlider(value=top_k, min=1, max=len(spread), step=1,
                          description="top-k [frames]", **common),
        error_level=w.FloatLogSlider(value=error_level, base=10, min=errors[0], max=errors[1],
                                     step=0.05, description=f"error level [{unit}]", **common),
    )

"""Notebook 07's committee-selection explorer: the selection rule, precision and recall, units
on the controls, and every control changes the figure."""
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
from matplotlib.figure import Figure

from nnptutor.widgets import committee as widget
from widget_helpers import controls_of

SPREAD = np.array([0.02, 0.5, 0.1, 0.3, 0.05, 0.8])
ERROR = np.array([0.05, 0.9, 0.4, 0.2, 0.01, 1.5])


def test_threshold_and_top_k_select_the_most_disputed_frames():
    np.testing.assert_array_equal(widget.select_frames(SPREAD, 0.09, 10),
                                  [False, True, True, True, False, True])
    np.testing.assert_array_equal(widget.select_frames(SPREAD, 0.09, 2),
                                  [False, True, False, False, False, True])
    assert not widget.select_frames(SPREAD, 1.0, 3).any()


def test_precision_and_recall_count_frames_above_the_error_level():
    selected = widget.select_frames(SPREAD, 0.09, 2)  # frames 1 and 5
    quality = widget.selection_quality(selected, ERROR, error_level=0.3)  # needed: 1, 2, 5
    assert quality == {"n_selected": 2, "n_needed": 3, "n_hits": 2, "precision": 1.0,
                       "recall": pytest.approx(2 / 3)}
    empty = widget.selection_quality(np.zeros(6, bool), ERROR, 0.3)
    assert np.isnan(empty["precision"]) and empty["recall"] == 0


def test_static_twin_draws_one_axes_with_units():
    fig = Figure()
    ax = widget.draw_selection(fig, SPREAD, ERROR, 0.09, 2, 0.3)
    assert len(fig.get_axes()) == 1
    assert "[eV/Å]" in ax.get_xlabel() and "[eV/Å]" in ax.get_ylabel()
    assert "precision 100%" in ax.get_title() and "recall 67%" in ax.get_title()


def test_every_control_changes_the_figure(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda image: shown.append(image.data))
    controls = controls_of(widget.selection_explorer(SPREAD, ERROR, 0.09, 2, 0.3))
    assert set(controls) == {"threshold on spread [eV/Å]", "top-k [frames]",
                             "error level [eV/Å]"}
    assert all(not c.continuous_update for c in controls.values())
    assert len(shown) == 1
    for description, control in controls.items():
        control.value = control.value * 10 ** control.step if hasattr(control, "base") \
            else control.value + control.step
        assert len(shown) == 2, f"{description}: no redraw"
        assert shown[-1] != shown[-2], f"{description}: the figure did not change"
        shown[:] = shown[-1:]

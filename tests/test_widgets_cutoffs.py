"""Notebook 02's cutoff explorer: second derivatives against finite differences, the MD grid,
controls with units, and a redraw that changes the figure for every control."""
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
from matplotlib.figure import Figure

from nnptutor.cutoffs import CUTOFFS, get_cutoff
from nnptutor.widgets import cutoffs as widget
from widget_helpers import controls_of, rendered

R_CUT = 6.0


@pytest.mark.parametrize("name", CUTOFFS)
def test_derivatives_match_finite_differences(name):
    r = np.linspace(0.3, R_CUT - 0.3, 23)  # Å, away from R_c
    h = 1e-5
    value, slope, curvature = widget.cutoff_with_derivatives(r, R_CUT, name)
    np.testing.assert_allclose(value, get_cutoff(name)(r, R_CUT)[0])
    up, down = (widget.cutoff_with_derivatives(r + s, R_CUT, name) for s in (h, -h))
    np.testing.assert_allclose(slope, (up[0] - down[0]) / (2 * h), atol=1e-8)
    np.testing.assert_allclose(curvature, (up[1] - down[1]) / (2 * h), atol=1e-8)
    assert np.abs(curvature).max() > 1e-2  # not trivially small


def test_only_tanh3_has_zero_curvature_at_the_cutoff():
    inside = R_CUT - 1e-9
    cosine = widget.cutoff_with_derivatives(inside, R_CUT, "cosine")[2]
    tanh3 = widget.cutoff_with_derivatives(inside, R_CUT, "tanh3")[2]
    assert float(cosine) == pytest.approx(np.pi**2 / (2 * R_CUT**2), rel=1e-6)
    assert abs(float(tanh3)) < 1e-8
    beyond = widget.cutoff_with_derivatives(np.array([R_CUT + 0.1]), R_CUT, "cosine")
    assert all(float(part[0]) == 0.0 for part in beyond)


def _small_grid():
    r = np.array(widget.GRID_R_CUTS)
    return {"r_cut": r, "hard": 1.0 + 0 * r, "shifted": 1e-2 + 0 * r,
            "cosine": 1e-3 + 0 * r, "tanh3": 1e-4 + 0 * r}


def test_draw_cutoffs_has_four_labelled_panels():
    fig = widget.draw_cutoffs(Figure(), "tanh3", 6.8, _small_grid())
    axes = fig.get_axes()
    assert len(axes) == 4
    assert all("[" in ax.get_xlabel() and "[" in ax.get_ylabel() for ax in axes)
    with pytest.raises(ValueError, match="unknown cutoff"):
        widget.draw_cutoffs(Figure(), "hard", 6.8, _small_grid())


def test_every_control_changes_the_figure(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda figure: shown.append(rendered(figure)))
    controls = controls_of(widget.cutoff_explorer(_small_grid()))
    assert set(controls) == {"cutoff", "R_c [Å]"}
    assert not controls["R_c [Å]"].continuous_update
    assert len(shown) == 1
    for description, control in controls.items():
        values = [option[1] if isinstance(option, tuple) else option for option in control.options]
        control.value = values[(values.index(control.value) + 1) % len(values)]
        assert len(shown) == 2, f"{description}: no redraw"
        assert np.any(shown[-1] != shown[-2]), f"{description}: the figure did not change"
        shown[:] = shown[-1:]


def test_the_md_grid_shows_the_hard_cutoff_jumps():
    grid = widget.argon_energy_errors(n_steps=150)
    assert grid["r_cut"].tolist() == list(widget.GRID_R_CUTS)
    k = widget.GRID_R_CUTS.index(6.8)
    assert grid["hard"][k] > 10 * max(grid["cosine"][k], grid["tanh3"][k])

"""Notebook 01's Coulomb-matrix explorer: permutations and rotations change exactly the forms
they should, the controls have units, and every control changes the figure."""
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
from matplotlib.figure import Figure

from nnptutor.widgets import coulomb as widget
from widget_helpers import controls_of, rendered


def test_permutations_are_shuffles_and_zero_is_the_identity():
    assert widget.permutation_of(5, 0).tolist() == [0, 1, 2, 3, 4]
    for seed in range(1, 30):
        order = widget.permutation_of(3, seed)
        assert sorted(order.tolist()) == [0, 1, 2] and order.tolist() != [0, 1, 2]


@pytest.mark.parametrize("name", list(widget.MOLECULES))
def test_only_the_raw_form_sees_a_permutation(name):
    atoms = widget.explorer_molecule(name)
    changes = widget.form_changes(atoms, permutation=4)
    assert changes["raw"] > 0.1
    assert changes["sorted"] < 1e-9 and changes["eigenvalues"] < 1e-9


@pytest.mark.parametrize("name", list(widget.MOLECULES))
def test_no_form_sees_a_rotation(name):
    atoms = widget.explorer_molecule(name)
    forms = widget.coulomb_forms(atoms, permutation=0, angle_deg=75.0)
    assert np.abs(forms["atoms"].positions - atoms.positions).max() > 0.1  # it did rotate
    assert max(widget.form_changes(atoms, 0, 75.0).values()) < 1e-9


def test_raw_matrix_is_eq_1():
    atoms = widget.explorer_molecule("H2O")
    raw = widget.coulomb_forms(atoms, permutation=2)["raw"]
    moved = widget.coulomb_forms(atoms, permutation=2)["atoms"]
    z, r = moved.numbers.astype(float), moved.get_all_distances()
    off = ~np.eye(3, dtype=bool)
    np.testing.assert_allclose(raw[off], (np.outer(z, z) / np.where(off, r, 1.0))[off])
    np.testing.assert_allclose(np.diag(raw), 0.5 * z**2.4)
    with pytest.raises(ValueError, match="unknown molecule"):
        widget.explorer_molecule("C60")


def test_draw_has_four_panels():
    assert len(widget.draw_coulomb_forms(Figure(), "CH4", 1, 30.0).get_axes()) == 5  # + colour bar


def test_every_control_changes_the_figure(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda figure: shown.append(rendered(figure)))
    controls = controls_of(widget.coulomb_matrix_explorer())
    assert set(controls) == {"molecule", "permutation", "rotation [deg]"}
    assert not controls["rotation [deg]"].continuous_update
    assert len(shown) == 1
    for description, control in controls.items():
        if hasattr(control, "options"):
            values = list(control.options)
            control.value = values[(values.index(control.value) + 1) % len(values)]
        else:
            control.value = control.value + control.step
        assert len(shown) == 2, f"{description}: no redraw"
        assert np.any(shown[-1] != shown[-2]), f"{description}: the figure did not change"
        shown[:] = shown[-1:]

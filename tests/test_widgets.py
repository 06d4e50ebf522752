"""Notebook 03's symmetry-function explorer: the pure functions against their formulas, the
controls (one per parameter, units in their descriptions), and a redraw on every control."""
import io

import matplotlib

matplotlib.use("Agg")
import numpy as np
import PIL.Image
import pytest
from ase.build import molecule

from nnptutor.cutoffs import cosine
from nnptutor.widgets import angular_term, cosine_term, radial_term, symmetry_function_explorer
from nnptutor.widgets import symmetry
from widget_helpers import controls_of


def test_radial_term_is_gaussian_times_cutoff():
    r = np.array([1.0, 2.5, 4.0, 7.0])
    expected = np.exp(-0.5 * (r - 2.5) ** 2) * cosine(r, 6.0)[0]
    np.testing.assert_allclose(radial_term(r, 0.5, 2.5, 6.0), expected)
    assert radial_term(np.array([7.0]), 0.5, 2.5, 6.0)[0] == 0.0


def test_cosine_term_vanishes_beyond_cutoff():
    r = np.array([1.0, 3.0])
    np.testing.assert_allclose(cosine_term(r, 2.0, 6.0), np.cos(2.0 * r) * cosine(r, 6.0)[0])
    assert cosine_term(np.array([6.5]), 2.0, 6.0)[0] == 0.0


def test_angular_term_peaks_where_lambda_says():
    theta = np.array([0.0, np.pi / 2, np.pi])
    np.testing.assert_allclose(angular_term(theta, 4, +1), [2.0, 2.0**-3, 0.0], atol=1e-15)
    np.testing.assert_allclose(angular_term(theta, 4, -1), [0.0, 2.0**-3, 2.0], atol=1e-15)


def test_rows_are_scaled_by_their_largest_magnitude():
    values = np.array([[1.0, -4.0, 0.0], [0.5, 2.0, 0.0]])  # (n_atoms, n_features)
    scaled, scale = symmetry.normalized_rows(values)
    np.testing.assert_allclose(scale, [1.0, 4.0, 0.0])
    np.testing.assert_allclose(scaled, [[1.0, 0.5], [-1.0, 0.5], [0.0, 0.0]])


def test_center_geometry_of_water_is_two_bonds_and_one_angle():
    water = molecule("H2O")
    distances, angles = symmetry.center_geometry(water, 0, r_cut=6.0)
    np.testing.assert_allclose(distances, water.get_distances(0, [1, 2]))
    np.testing.assert_allclose(np.degrees(angles), [water.get_angle(1, 0, 2)])
    far, none = symmetry.center_geometry(water, 0, r_cut=0.5)
    assert far.size == 0 and none.size == 0


def test_explorer_descriptor_gives_g4_and_g5_their_own_eta():
    descriptor = symmetry.explorer_descriptor(["H", "O"], eta=0.5, eta_angular=0.02, zeta=4, lambda_=-1)
    angular = [label for label in descriptor.feature_labels if label.startswith(("G4", "G5"))]
    assert len(angular) == 2 * 3  # G4 and G5 for the pairs H-H, H-O, O-O
    assert all("eta=0.02" in label and "lambda=-1" in label for label in angular)


def test_explorer_has_a_control_with_units_for_every_parameter():
    controls = controls_of(symmetry_function_explorer(molecule("H2O")))
    for description in ("G2 η [Å⁻²]", "R_s [Å]", "κ [Å⁻¹]", "G4/G5 η [Å⁻²]", "ζ", "λ", "R_c [Å]"):
        assert description in controls, f"no control {description!r} in {sorted(controls)}"
    assert set(controls["cutoff"].options) == {"cosine", "tanh3"}
    assert [value for _, value in controls["centre atom"].options] == [0, 1, 2]
    assert all(not c.continuous_update for c in controls.values() if hasattr(c, "continuous_update"))


def _rendered(image):
    """Pixels of what the explorer displays (a PNG image)."""
    return np.asarray(PIL.Image.open(io.BytesIO(image.data)).convert("RGB"))


def test_every_control_changes_the_figure(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda image: shown.append(_rendered(image)))
    controls = controls_of(symmetry_function_explorer(molecule("CH3OH")))
    assert len(shown) == 1  # the first drawing
    for description, control in controls.items():
        options = getattr(control, "options", None)
        if options is not None:  # the next option (Dropdown, SelectionSlider)
            values = [option[1] if isinstance(option, tuple) else option for option in options]
            control.value = values[(values.index(control.value) + 1) % len(values)]
        else:
            control.value = min(control.value * 1.5 + 0.25, control.max)
        assert len(shown) >= 2, f"{description}: no redraw"
        assert shown[-1].shape != shown[-2].shape or np.any(shown[-1] != shown[-2]), (
            f"{description}: the figure did not change")
        shown[:] = shown[-1:]

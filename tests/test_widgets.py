import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest

from nnptutor.cutoffs import cosine
from nnptutor.widgets import angular_term, cosine_term, radial_term, symmetry_function_explorer


def test_radial_term_is_gaussian_times_cutoff():
    r = np.array([1.0, 2.5, 4.0, 7.0])
    expected = np.exp(-0.5 * (r - 2.5) ** 2) * cosine(r, 6.0)[0]
    np.testing.assert_allclose(radial_term(r, 0.5, 2.5, 6.0), expected)
    assert radial_term(np.array([7.0]), 0.5, 2.5, 6.0)[0] == 0.0


def test_cosine_term_vanishes_beyond_cutoff():
    assert cosine_term(np.array([6.5]), 2.0, 6.0)[0] == 0.0


def test_angular_term_peaks_where_lambda_says():
    theta = np.array([0.0, np.pi / 2, np.pi])
    np.testing.assert_allclose(angular_term(theta, 4, +1), [2.0, 2.0**-3, 0.0], atol=1e-15)
    np.testing.assert_allclose(angular_term(theta, 4, -1), [0.0, 2.0**-3, 2.0], atol=1e-15)


def test_explorer_has_one_slider_per_parameter():
    widget = symmetry_function_explorer()
    labels = [child.description for child in widget.children if hasattr(child, "description")]
    assert labels[:5] == ["η", "R_s", "κ", "ζ", "λ"]
    assert all("Slider" in type(child).__name__ for child in widget.children[:5])

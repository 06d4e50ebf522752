import numpy as np
import pytest

from nnptutor.cutoffs import cosine, get_cutoff, tanh3


@pytest.mark.parametrize("fn", [cosine, tanh3])
def test_derivative_matches_finite_differences(fn):
    r = np.linspace(0.1, 5.9, 50)
    h = 1e-6
    _, d = fn(r, 6.0)
    fd = (fn(r + h, 6.0)[0] - fn(r - h, 6.0)[0]) / (2 * h)
    assert np.abs(d).max() > 0.1
    np.testing.assert_allclose(d, fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("fn", [cosine, tanh3])
def test_value_and_slope_vanish_at_cutoff(fn):
    value, slope = fn(np.array([6.0, 6.5]), 6.0)
    np.testing.assert_allclose(value, 0.0, atol=1e-15)
    np.testing.assert_allclose(slope, 0.0, atol=1e-15)


def test_known_values():
    assert cosine(0.0, 5.0)[0] == pytest.approx(1.0)
    assert cosine(2.5, 5.0)[0] == pytest.approx(0.5)
    assert tanh3(0.0, 5.0)[0] == pytest.approx(np.tanh(1.0) ** 3)


def test_unknown_cutoff_name():
    with pytest.raises(ValueError, match="unknown cutoff 'gauss'"):
        get_cutoff("gauss")

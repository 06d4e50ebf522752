"""The GMP probe explorer of notebook 06: its pure functions against the formulas, its
controls, and that every control changes the figure."""
import io

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
from ase import Atoms
from matplotlib.figure import Figure

from nnptutor.descriptors import GMP
from nnptutor.descriptors._mcsh import legendre_norm
from nnptutor.descriptors.densities import electron_count
from nnptutor.widgets.gmp import (
    FIGSIZE,
    ORDERS,
    default_crystal,
    draw_gmp_probe,
    gmp_explorer,
    probe_slice,
    radial_weight,
    rattle_sweep,
)


def test_radial_weight_gives_the_dimer_feature():
    """One neighbour at r: F_n = sqrt(N_n) R_n(r) r^n, and for a single Gaussian the closed
    form sqrt(N_n) Z (2πv)^(-3/2) (σ²/v)^n r^n e^(-r²/2v) with v = σ² + s²."""
    sigma, r = 0.75, np.array([1.5, 2.6, 4.0])
    (B, beta), = GMP(["Cu"]).density["Cu"]
    Z, v = electron_count([[B, beta]]), sigma**2 + 1 / (2 * beta)
    for n in (1, 2, 3):
        closed = Z * (2 * np.pi * v) ** -1.5 * (sigma**2 / v) ** n * r**n * np.exp(-(r**2) / (2 * v))
        np.testing.assert_allclose(radial_weight(r, n, sigma), closed, rtol=1e-12)
        dimer = GMP(["Cu"], orders=(n,), sigmas=(sigma,)).compute(Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.6]]))
        assert dimer[0, 0] == pytest.approx(np.sqrt(legendre_norm(n)) * radial_weight([2.6], n, sigma)[0], rel=1e-12)


def test_probe_slice_has_the_symmetry_of_its_order():
    """S^(n)_00n(x, 0, z) is even in x and has parity (-1)^n in z; n = 0 is the Gaussian."""
    for n in ORDERS:
        x, z, values = probe_slice(n, 0.5, n_points=41)
        np.testing.assert_allclose(values, values[:, ::-1], atol=1e-14)  # x -> -x
        np.testing.assert_allclose(values, (-1) ** n * values[::-1, :], atol=1e-14)  # z -> -z
    x, z, values = probe_slice(0, 0.5, n_points=41)
    X, Z = np.meshgrid(x, z)
    np.testing.assert_allclose(values, (0.5 * np.sqrt(2 * np.pi)) ** -3 * np.exp(-(X**2 + Z**2) / 0.5))


def test_perfect_fcc_moments_vanish_and_sqrt_has_a_kink():
    """At a cubic site every n >= 1 moment vanishes (n = 1, 3 by inversion, n = 2 by cubic
    symmetry); a rattle switches them on linearly, so F = sqrt(Q) is |s|-shaped: equal on both
    sides of the perfect crystal and linear in s, while n = 0 stays finite."""
    steps, features = rattle_sweep(default_crystal(), atom=3, sigma=0.75, amplitude=0.02,
                                   steps=[-0.01, 0.0, 0.005, 0.01])
    perfect, small, half, full = features[1], features[0], features[2], features[3]
    assert perfect[0] > 0.1
    assert np.all(perfect[1:] < 1e-13)
    assert np.all(full[1:] > 1e3 * perfect[1:])
    np.testing.assert_allclose(full[1:], small[1:], rtol=0.05)  # V: same height either side
    np.testing.assert_allclose(full[1:] / half[1:], 2.0, rtol=0.05)  # linear in |s|


def test_explorer_controls_name_their_quantity_and_unit():
    widget = gmp_explorer()
    descriptions = [child.description for child in widget.children[:4]]
    assert descriptions == ["order n", "σ [Å]", "atom", "rattle [Å]"]
    assert all(not child.continuous_update for child in widget.children[:4])


def _png(**changes):
    values = dict(order=2, sigma=0.5, atom=0, rattle=0.05) | changes
    fig = Figure(figsize=FIGSIZE, layout="tight")
    draw_gmp_probe(fig, **values)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


@pytest.mark.parametrize("change", [{"order": 3}, {"sigma": 0.75}, {"atom": 1}, {"rattle": 0.06}])
def test_every_control_changes_the_figure(change):
    assert _png(**change) != _png()

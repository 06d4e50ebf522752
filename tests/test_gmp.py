"""GMP: closed forms, an independent pair-sum form, grid quadrature, symmetry, derivatives.

References used (gmp.md §11): the two-atom closed forms, the Legendre pair-sum form of §6
evaluated with ASE's neighbour list, brute-force quadrature of one overlap, and central finite
differences.
"""
import json
from math import factorial

import nnptutor as nt

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.neighborlist import neighbor_list
from scipy.special import eval_legendre

from nnptutor.checks import check_derivatives, check_invariance, finite_difference_derivatives, random_rotation
from nnptutor.descriptors import GMP, descriptor_from_dict
from nnptutor.descriptors import _mcsh
from nnptutor.descriptors.densities import (
    electron_count,
    read_density_file,
    teaching_density,
    teaching_width,
    valence_charge,
    write_density_file,
)

FITTED = nt.data.DATA_DIR / "densities" / "fitted_HCNO.gdens"
ALL_ORDERS = tuple(range(-1, _mcsh.MAX_ORDER + 1))


def _dimer(symbols, r, direction=(0.3, -0.5, 0.8)):
    u = np.asarray(direction) / np.linalg.norm(direction)
    return Atoms(symbols, positions=[[0.1, 0.2, -0.3], np.array([0.1, 0.2, -0.3]) + r * u])


def _random_cluster(symbols, seed, box=3.0):
    rng = np.random.default_rng(seed)
    while True:
        positions = rng.uniform(0, box, size=(len(symbols), 3))
        d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
        if d[np.triu_indices(len(symbols), 1)].min() > 0.8:
            return Atoms(symbols, positions=positions)


# --- MCSH polynomials --------------------------------------------------------------------


def test_mcsh_polynomials_match_written_table():
    """A few entries of gmp.md §5, typed by hand, against the generated polynomials."""
    rng = np.random.default_rng(0)
    d = rng.normal(size=(7, 3))
    x, y, z = d.T
    r2 = (d**2).sum(axis=1)
    expected = {
        (2, 0, 0): 3 * x**2 - r2,
        (1, 1, 0): 3 * x * y,
        (3, 0, 0): 15 * x**3 - 9 * x * r2,
        (2, 1, 0): 15 * x**2 * y - 3 * y * r2,
        (1, 1, 1): 15 * x * y * z,
        (4, 0, 0): 105 * x**4 - 90 * x**2 * r2 + 9 * r2**2,
        (3, 0, 1): 105 * x**3 * z - 45 * x * z * r2,
        (0, 2, 2): 105 * y**2 * z**2 - 15 * r2 * (y**2 + z**2) + 3 * r2**2,
        (1, 2, 1): 105 * y**2 * x * z - 15 * x * z * r2,
    }
    for triple, value in expected.items():
        n = sum(triple)
        column = _mcsh.components(n).index(triple)
        np.testing.assert_allclose(_mcsh.solid_harmonics(d, n)[:, column], value, rtol=1e-12)
    assert [len(_mcsh.components(n)) for n in range(7)] == [1, 3, 6, 10, 15, 21, 28]
    assert _mcsh.weights(4).tolist() == [1] * 3 + [4] * 6 + [6] * 3 + [12] * 3


@pytest.mark.parametrize("n", range(_mcsh.MAX_ORDER + 1))
def test_mcsh_harmonic_legendre_and_gradient(n):
    rng = np.random.default_rng(n)
    u, v = rng.normal(size=(2, 6, 3))
    u /= np.linalg.norm(u, axis=1)[:, None]
    v /= np.linalg.norm(v, axis=1)[:, None]
    lhs = (_mcsh.solid_harmonics(u, n) * _mcsh.solid_harmonics(v, n)) @ _mcsh.weights(n)
    rhs = _mcsh.legendre_norm(n) * eval_legendre(n, (u * v).sum(axis=1))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-10 * _mcsh.legendre_norm(n))
    # gradient and Laplacian (harmonic: zero) by central differences
    d, h = 1.3 * u, 1e-4
    S, grad = _mcsh.solid_harmonics(d, n, gradient=True)
    steps = [(_mcsh.solid_harmonics(d + h * e, n), _mcsh.solid_harmonics(d - h * e, n)) for e in np.eye(3)]
    fd = np.stack([(p - m) / (2 * h) for p, m in steps])  # (3, n_pairs, K)
    laplacian = sum((p - 2 * S + m) / h**2 for p, m in steps)
    scale = np.abs(S).max()
    np.testing.assert_allclose(grad, fd, atol=1e-6 * scale)
    np.testing.assert_allclose(laplacian, 0.0, atol=1e-4 * scale)


# --- closed forms (gmp.md §11.1) -----------------------------------------------------------


@pytest.mark.parametrize("square", [False, True])
def test_two_atoms_closed_form_teaching_density(square):
    """F_n = sqrt(N_n) Z (2πv)^{-3/2} (σ²/v)^n r^n e^{−r²/2v}, the convolution of Gaussians."""
    sigmas, r = (0.4, 0.9), 1.7
    gmp = GMP(["Cu"], orders=ALL_ORDERS, sigmas=sigmas, square=square)
    values = gmp.compute(_dimer("Cu2", r))
    Z, s = 11, 0.5 * 1.32
    expected = []
    for n, sigma in gmp.groups:
        if n == -1:
            B, beta = Z * (2 * np.pi * s**2) ** -1.5, 1 / (2 * s**2)
            expected.append(B * (1 + np.exp(-beta * r**2)))
            continue
        v = sigma**2 + s**2
        radial = Z * (2 * np.pi * v) ** -1.5 * np.exp(-(r**2) / (2 * v))
        if n == 0:
            expected.append(Z * (2 * np.pi * v) ** -1.5 + radial)
        else:
            N_n = factorial(2 * n) / 2**n
            expected.append(np.sqrt(N_n) * (sigma**2 / v) ** n * r**n * radial)
    expected = np.array(expected) ** (2 if square else 1)
    for atom in range(2):
        np.testing.assert_allclose(values[atom], expected, rtol=1e-12)


def test_two_atoms_closed_form_fitted_heteronuclear():
    """Multi-Gaussian closed form with each atom's own (B, β), negative amplitudes included."""
    table = read_density_file(FITTED)
    sigmas, r = (0.3, 0.8), 1.16
    gmp = GMP(["C", "O"], orders=ALL_ORDERS, sigmas=sigmas, density=FITTED)
    values = gmp.compute(_dimer("CO", r))
    for centre, other in ((0, "O"), (1, "C")):
        own = np.array(table["CO"[centre]])
        B, beta = np.array(table[other]).T
        for f, (n, sigma) in enumerate(gmp.groups):
            if n == -1:
                expected = own[:, 0].sum() + (B * np.exp(-beta * r**2)).sum()
            else:
                alpha = 1 / (2 * sigma**2)
                A = (sigma * np.sqrt(2 * np.pi)) ** -3

                def c1(b, bt):
                    return A * b * (np.pi / (alpha + bt)) ** 1.5

                gamma, lam = alpha + beta, beta / (alpha + beta)
                neighbour = c1(B, beta) * lam**n * np.exp(-alpha * beta / gamma * r**2)
                if n == 0:
                    expected = abs(c1(own[:, 0], own[:, 1]).sum() + neighbour.sum())
                else:
                    expected = np.sqrt(factorial(2 * n) / 2**n) * r**n * abs(neighbour.sum())
            assert values[centre, f] == pytest.approx(expected, rel=1e-11)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4])
def test_two_atoms_closed_form_derivative(n):
    """∂F/∂R_2 = (dF/dr) r̂ and ∂F/∂R_1 = −(dF/dr) r̂ (gmp.md §11.1)."""
    sigma, r, Z, s = 0.6, 1.4, 4, 0.5 * 0.76
    direction = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    _, derivs = GMP(["C"], orders=(n,), sigmas=(sigma,)).compute_with_derivatives(_dimer("C2", r))
    v = sigma**2 + s**2
    pref = Z * (2 * np.pi * v) ** -1.5 * np.exp(-(r**2) / (2 * v))
    if n == 0:
        dF = -pref * r / v
    else:
        dF = np.sqrt(factorial(2 * n) / 2**n) * pref * (sigma**2 / v) ** n * (n * r ** (n - 1) - r ** (n + 1) / v)
    dense = derivs.to_dense()[0, :, :, 0]  # (n_atoms, 3) for centre 0
    np.testing.assert_allclose(dense[1], dF * direction, rtol=1e-11)
    np.testing.assert_allclose(dense[0], -dF * direction, rtol=1e-11)


def test_isolated_atom_has_only_self_density():
    values = GMP(["O"], orders=(-1, 0, 1, 2), sigmas=(0.5,)).compute(Atoms("O"))
    s, Z = teaching_width("O"), 6
    np.testing.assert_allclose(values[0, :2], [Z * (2 * np.pi * s**2) ** -1.5, Z * (2 * np.pi * (0.25 + s**2)) ** -1.5])
    assert values[0, 2:].tolist() == [0.0, 0.0]


# --- independent references --------------------------------------------------------------


def _pair_sum_form(atoms, sigma, n, r_cut):
    """gmp.md §6: Q_n(i) = N_n Σ_jk R_n(r_ij) R_n(r_ik) r_ij^n r_ik^n P_n(cos θ_jik), n ≥ 1,
    with the teaching density's closed-form radial function and ASE's neighbour list."""
    i, j, D, d = neighbor_list("ijDd", atoms, r_cut)
    Z = np.array([valence_charge(s) for s in atoms.get_chemical_symbols()])[j]
    s2 = np.array([teaching_width(s) ** 2 for s in atoms.get_chemical_symbols()])[j]
    v = sigma**2 + s2
    radial = Z * (2 * np.pi * v) ** -1.5 * (sigma**2 / v) ** n * np.exp(-(d**2) / (2 * v)) * d**n
    Q = np.zeros(len(atoms))
    for centre in range(len(atoms)):
        m = i == centre
        u = D[m] / d[m][:, None]
        Q[centre] = _mcsh.legendre_norm(n) * radial[m] @ eval_legendre(n, u @ u.T) @ radial[m]
    return np.sqrt(Q)


@pytest.mark.parametrize("seed", [0, 1])
def test_component_form_equals_legendre_pair_sum_cluster(seed):
    atoms = _random_cluster(["C", "O", "H", "H", "C", "O", "H"], seed)
    gmp = GMP(["H", "C", "O"], orders=(1, 2, 3, 4), sigmas=(0.5, 1.0), r_cut=6.0)
    values = gmp.compute(atoms)
    for f, (n, sigma) in enumerate(gmp.groups):
        np.testing.assert_allclose(values[:, f], _pair_sum_form(atoms, sigma, n, 6.0), rtol=1e-10)
    assert values.min() > 1e-4  # not a trivially zero comparison


def test_component_form_equals_legendre_pair_sum_periodic():
    """A small triclinic cell: many images of every atom, including the centre's own."""
    atoms = Atoms("CuPtCo", positions=[[0, 0, 0], [1.1, 1.3, 0.4], [0.2, 1.8, 1.7]],
                  cell=[[2.6, 0, 0], [0.4, 2.5, 0], [0.3, 0.2, 2.7]], pbc=True)
    gmp = GMP(["Co", "Cu", "Pt"], orders=(1, 2, 3), sigmas=(0.7,), r_cut=5.0)
    values = gmp.compute(atoms)
    for f, (n, sigma) in enumerate(gmp.groups):
        np.testing.assert_allclose(values[:, f], _pair_sum_form(atoms, sigma, n, 5.0), rtol=1e-10)


def test_overlap_against_grid_quadrature():
    """∫ φ_{n,σ,k}(r) ρ(r) d³r on a 0.09 Å grid against the analytic features (orders 0, 2)."""
    table = read_density_file(FITTED)
    atoms = _dimer("CO", 1.2, direction=(0.2, 0.9, -0.4))
    centre = atoms.positions[0]
    sigma = 0.5
    axis = np.arange(-3.6, 3.6 + 1e-9, 0.09)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)  # (n_points, 3)
    rho = np.zeros(len(grid))
    for symbol, position in zip("CO", atoms.positions):
        for B, beta in table[symbol]:
            rho += B * np.exp(-beta * ((grid + centre - position) ** 2).sum(axis=1))
    probe = (sigma * np.sqrt(2 * np.pi)) ** -3 * np.exp(-(grid**2).sum(axis=1) / (2 * sigma**2))
    dV = 0.09**3
    values = GMP(["C", "O"], orders=(0, 2), sigmas=(sigma,), density=FITTED).compute(atoms)
    for f, n in enumerate((0, 2)):
        mu = (_mcsh.solid_harmonics(grid, n) * (probe * rho)[:, None]).sum(axis=0) * dV  # (K,)
        assert np.sqrt(mu**2 @ _mcsh.weights(n)) == pytest.approx(values[0, f], rel=1e-10)


# --- symmetry ------------------------------------------------------------------------------


def test_invariance_molecule():
    atoms = molecule("CH3CH2OH")
    report = check_invariance(GMP(["H", "C", "O"], orders=(-1, 0, 1, 2, 3, 4), sigmas=(0.4, 1.0)), atoms, seed=3)
    assert set(report) == {"rotation", "translation", "permutation"}
    assert max(report.values()) < 1e-10


def test_invariance_periodic_alloy():
    """Rotation, translation, permutation, wrapped positions and a supercell, three elements."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.symbols[[1, 2]] = ["Pt", "Co"]
    atoms.rattle(0.08, seed=4)
    report = check_invariance(GMP(["Co", "Cu", "Pt"], orders=(0, 1, 2, 3), sigmas=(0.5, 1.0)), atoms, seed=5)
    assert {"wrapped", "supercell"} <= set(report)
    assert max(report.values()) < 1e-10


# --- derivatives --------------------------------------------------------------------------


@pytest.mark.parametrize("square", [False, True])
def test_derivatives_molecule_fitted_density(square):
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=6)
    gmp = GMP(["H", "C", "N", "O"], orders=(-1, 0, 1, 2, 3, 4), sigmas=(0.3, 0.8), square=square, density=FITTED)
    result = check_derivatives(gmp, atoms, atoms_to_check=[0, 2, 5], h=1e-5)
    assert result["max_abs_derivative"] > 0.1
    assert result["max_relative_error"] < 1e-7


def test_derivatives_small_periodic_cell_fold_images():
    """Two atoms in a small cell: dozens of images of each atom inside the cutoff."""
    atoms = Atoms("CuPt", positions=[[0, 0, 0], [1.3, 1.2, 1.1]], cell=[[2.6, 0.1, 0], [0, 2.5, 0.2], [0.3, 0, 2.7]], pbc=True)
    gmp = GMP(["Cu", "Pt"], orders=(0, 1, 2, 3), sigmas=(0.5, 0.9), r_cut=6.0)
    result = check_derivatives(gmp, atoms, atoms_to_check=[0, 1], h=1e-5)
    assert result["max_abs_derivative"] > 0.1
    assert result["max_relative_error"] < 1e-7
    values, derivs = gmp.compute_with_derivatives(atoms)
    pairs = set(zip(derivs.center.tolist(), derivs.neighbor.tolist()))
    assert len(pairs) == derivs.n_pairs == 4  # one entry per (centre, atom): images folded
    # moving every atom together changes nothing: Σ_atoms dG_i/dR_atom = 0
    np.testing.assert_allclose(derivs.to_dense().sum(axis=1), 0.0, atol=1e-12)


def test_vjp_equals_sparse_derivatives():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 1, 1)
    atoms.symbols[[0, 3]] = "Pt"
    atoms.rattle(0.1, seed=7)
    gmp = GMP(["Cu", "Pt"], orders=(-1, 0, 1, 2, 3, 4), sigmas=(0.5, 1.0))
    values, vjp = gmp.compute_with_vjp(atoms)
    reference, derivs = gmp.compute_with_derivatives(atoms)
    np.testing.assert_array_equal(values, reference)
    grad = np.random.default_rng(8).normal(size=values.shape)
    expected = derivs.vjp(grad)
    assert np.abs(expected).max() > 1.0
    np.testing.assert_allclose(vjp(grad), expected, atol=1e-12 * np.abs(expected).max())
    with pytest.raises(ValueError, match="grad_values must have shape"):
        vjp(grad[:, :3])


def test_sqrt_singularity_inversion_center():
    """Odd orders vanish at an inversion centre; the derivative is 0 there, as central
    finite differences say (documented choice), and stays finite for square=True."""
    # rotated and shifted so that μ is round-off noise (~1e-16), not an exact 0
    rotation = random_rotation(np.random.default_rng(11))
    co2 = Atoms("OCO", positions=np.array([[-1.16, 0, 0], [0, 0, 0], [1.16, 0, 0]]) @ rotation.T + [0.3, 0.7, -0.2])
    gmp = GMP(["C", "O"], orders=(1, 2, 3), sigmas=(0.5,))
    values, derivs = gmp.compute_with_derivatives(co2)
    odd = [0, 2]  # n = 1, 3
    assert np.abs(values[1, odd]).max() < 1e-12
    analytic = derivs.to_dense()[1][:, :, odd]  # centre C, every atom, odd orders
    assert np.abs(analytic).max() == 0.0
    # |f(h)| with f(h) = a h + b h²: the central difference is b h, which vanishes with h
    fd = [np.abs(finite_difference_derivatives(gmp, co2, 0, h=h)[1][:, odd]).max() for h in (1e-4, 1e-5)]
    assert fd[1] < 1e-4 and fd[1] < 0.2 * fd[0]
    # away from the singular atom the derivatives are ordinary and nonzero
    assert np.abs(derivs.to_dense()[0][:, :, odd]).max() > 0.01


def test_sqrt_singularity_fcc_bulk():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    rotation = random_rotation(np.random.default_rng(12))
    atoms.set_cell(atoms.cell.array @ rotation.T, scale_atoms=True)
    gmp = GMP(["Cu"], orders=(1, 3, 4), sigmas=(0.6,))
    result = check_derivatives(gmp, atoms, atoms_to_check=[0], h=1e-4)
    values = gmp.compute(atoms)
    assert np.abs(values[:, :2]).max() < 1e-12  # odd orders vanish in perfect fcc
    assert values[:, 2].min() > 1e-3  # order 4 does not (cubic site)
    assert result["max_abs_error"] < 1e-8


# --- layout, serialisation, cutoff ---------------------------------------------------------


def test_feature_layout_independent_of_elements():
    one = GMP(["Cu"], orders=(-1, 0, 2), sigmas=(1.0, 0.5))
    many = GMP(["Pt", "H", "Cu", "O"], orders=(2, 0, -1), sigmas=(0.5, 1.0), r_cut=one.r_cut)
    assert one.feature_labels == many.feature_labels == [
        "GMP(n=-1)", "GMP(n=0,sigma=0.5)", "GMP(n=0,sigma=1)", "GMP(n=2,sigma=0.5)", "GMP(n=2,sigma=1)",
    ]
    atoms = bulk("Cu", "fcc", a=3.6) * (2, 2, 2)
    atoms.rattle(0.05, seed=9)
    np.testing.assert_array_equal(one.compute(atoms), many.compute(atoms))


def test_to_dict_roundtrip_stores_density_by_value(tmp_path):
    path = tmp_path / "mine.gdens"
    path.write_text(FITTED.read_text())
    gmp = GMP(["O", "H"], orders=(0, 1), sigmas=(0.5,), density=path, square=True)
    data = json.loads(json.dumps(gmp.to_dict()))
    path.unlink()  # the saved descriptor must not need the file
    again = descriptor_from_dict(data)
    assert again == gmp and again.square and again.elements == ("H", "O")
    fitted = read_density_file(FITTED)
    assert data["density"] == {"H": fitted["H"], "O": fitted["O"]}
    atoms = molecule("H2O")
    np.testing.assert_array_equal(again.compute(atoms), gmp.compute(atoms))


def test_default_cutoff_converged_and_helper_detects_truncation():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 2, 2)
    atoms.rattle(0.05, seed=10)
    gmp = GMP(["Cu"], orders=(0, 1, 2, 3), sigmas=(0.5, 1.0))
    assert 7.0 < gmp.r_cut < 9.0
    assert gmp.convergence(atoms)["max_relative_difference"] < 1e-6
    short = GMP(["Cu"], orders=(0, 1, 2, 3), sigmas=(0.5, 1.0), r_cut=4.0)
    assert short.convergence(atoms, r_cut_large=8.0)["max_relative_difference"] > 1e-3
    with pytest.raises(ValueError, match="r_cut_large"):
        gmp.convergence(atoms, r_cut_large=gmp.r_cut)


def test_densities_teaching_and_file(tmp_path):
    assert [valence_charge(s) for s in ("H", "C", "N", "O", "Co", "Cu", "Pt")] == [1, 4, 5, 6, 9, 11, 10]
    table = teaching_density(["Cu", "H"])
    assert electron_count(table["Cu"]) == pytest.approx(11)
    fitted = read_density_file(FITTED)
    assert set(fitted) == {"H", "C", "N", "O"}
    for symbol, z in zip("HCNO", (1, 4, 5, 6)):
        assert electron_count(fitted[symbol]) == pytest.approx(z, rel=1e-8)
    assert min(b for rows in fitted.values() for b, _ in rows) < 0  # a negative amplitude
    write_density_file(tmp_path / "t.gdens", fitted, comment="roundtrip")
    again = read_density_file(tmp_path / "t.gdens")
    for symbol in fitted:
        np.testing.assert_allclose(again[symbol], fitted[symbol], rtol=1e-9)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(sigmas=(0.5, 0.0)), "sigma must be a positive"),
        (dict(sigmas=(-1.0,)), "sigma must be a positive"),
        (dict(sigmas=()), "at least one probe width"),
        (dict(sigmas=(0.5, 0.5)), "duplicates"),
        (dict(orders=(0, 7)), "unknown order 7"),
        (dict(orders=(-2,)), "unknown order -2"),
        (dict(orders=(1.5,)), "unknown order 1.5"),
        (dict(orders=()), "at least one MCSH order"),
        (dict(r_cut=0.0), "r_cut must be a positive"),
        (dict(r_cut=-3.0), "r_cut must be a positive"),
        (dict(square="yes"), "square must be True or False"),
        (dict(density="pbe"), "unknown density 'pbe'"),
        (dict(density={"H": [[1.0, 1.0]]}), "no entry for element 'Cu'"),
        (dict(density={"Cu": [[1.0, -1.0]]}), "beta must be > 0"),
        (dict(density={"Cu": [[1.0, np.nan]]}), "NaN"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GMP(["Cu"], **kwargs)


def test_bad_elements_structures_and_files(tmp_path):
    with pytest.raises(ValueError, match="unknown chemical element 'Xx'"):
        GMP(["Cu", "Xx"])
    with pytest.raises(ValueError, match="no teaching density for 'Gd'"):
        GMP(["Gd"])
    with pytest.raises(ValueError, match="no entry for element 'Cu'"):
        GMP(["Cu"], density=FITTED)
    gmp = GMP(["Cu"], orders=(0,), sigmas=(0.5,))
    with pytest.raises(ValueError, match="not among the supported elements"):
        gmp.compute(molecule("H2O"))
    with pytest.raises(ValueError, match="empty"):
        gmp.compute(Atoms())
    with pytest.raises(ValueError, match="overlapping"):
        gmp.compute(Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 0.05]]))
    bad = tmp_path / "bad.gdens"
    bad.write_text("! 1 elements\n****\nC 8 1\n1.0 2.0\n")
    with pytest.raises(ValueError, match="line 3: element 'C' does not have atomic number 8"):
        read_density_file(bad)
    bad.write_text("! 1 elements\n****\nC 6 2\n1.0 2.0\n")
    with pytest.raises(ValueError, match="expected 2 lines 'B beta' for C"):
        read_density_file(bad)

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from nnptutor.checks import check_derivatives, check_invariance, finite_difference_gradient
from nnptutor.descriptors.parameters import radial_grid
from nnptutor.descriptors import descriptor_from_dict
from nnptutor.descriptors.acsf import ACSF
from nnptutor.neighbors import neighbor_pairs

G2 = [(0.5, 0.0), (0.1, 2.0), (1.0, 3.0)]
G3 = [1.0, 2.5]
G4 = [(0.01, 1, 1), (0.05, 4, -1), (0.0, 2, 1), (0.01, 16, -1)]
G5 = [(0.01, 1, -1), (0.1, 2, 1), (0.02, 1.5, 1)]
METHODS = ["reference", "fast"]


def make(elements, method="fast", cutoff="cosine", r_cut=4.5):
    return ACSF(elements, r_cut, g2=G2, g3=G3, g4=G4, g5=G5, cutoff=cutoff, method=method)


def cu_cell():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.1, seed=1)
    return atoms


def nacl_cell():
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    atoms.rattle(0.1, seed=2)
    return atoms


def cu_cluster():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 1))
    atoms.pbc = False
    atoms.cell = None
    atoms.rattle(0.1, seed=3)
    return atoms


def ethanol():
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=4)
    return atoms


CASES = {
    "periodic Cu": (cu_cell, ["Cu"], True),
    "periodic NaCl": (nacl_cell, ["Na", "Cl"], True),
    "Cu cluster": (cu_cluster, ["Cu"], False),
    "ethanol": (ethanol, ["H", "C", "O"], False),
}


def assert_columns_close(ours, ref, rtol, floor=1e-12):
    """Column-wise relative error, with a small absolute floor for all-zero columns."""
    scale = np.maximum(np.abs(ref).max(axis=0), floor)
    err = np.abs(ours - ref).max(axis=0) / scale
    assert err.max() <= rtol, f"worst column {err.argmax()}: relative error {err.max():.2e}"


# ---------------------------------------------------------------- DScribe
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", list(CASES))
def test_equal_to_dscribe_column_for_column(case, method):
    from dscribe.descriptors import ACSF as DACSF

    build, elements, periodic = CASES[case]
    atoms = build()
    ref = DACSF(species=elements, r_cut=4.5, g2_params=[list(p) for p in G2], g3_params=G3,
                g4_params=[list(p) for p in G4], g5_params=[list(p) for p in G5],
                periodic=periodic).create(atoms)
    ours = make(elements, method).compute(atoms)
    assert ours.shape == ref.shape
    assert np.abs(ref).max() > 1.0  # not a comparison of zeros
    assert_columns_close(ours, ref, rtol=1e-10)


def test_feature_layout_and_labels():
    d = make(["O", "H"])
    assert d.elements == ("H", "O")
    n_rad, n_ang = 1 + len(G2) + len(G3), len(G4) + len(G5)
    assert d.n_features == 2 * n_rad + 3 * n_ang == len(d.feature_labels)
    assert d.feature_labels[0] == "G1[H]"
    assert d.feature_labels[1] == "G2[H](eta=0.5,r_s=0)"
    assert d.feature_labels[n_rad] == "G1[O]"
    assert d.feature_labels[2 * n_rad] == "G4[H,H](eta=0.01,zeta=1,lambda=+1)"
    assert d.feature_labels[2 * n_rad + n_ang] == "G4[H,O](eta=0.01,zeta=1,lambda=+1)"
    assert d.feature_labels[-1] == "G5[O,O](eta=0.02,zeta=1.5,lambda=+1)"


def test_default_set():
    d = ACSF.default(["Cu"], r_cut=6.0)
    assert d.n_features == 13 and len(d.g2) == 8 and len(d.g4) == 4
    etas = [eta for eta, r_s in d.g2 if r_s == 0.0]
    assert len(etas) == 8
    # widths from a quarter of 0.75 × 2 r_cov(Cu) = 2.0 Å to r_c, in geometric progression
    widths = 1 / np.sqrt(2 * np.array(etas))
    assert widths[0] == pytest.approx(0.5, rel=1e-5) and widths[-1] == pytest.approx(6.0, rel=1e-5)
    assert np.allclose(np.diff(np.log(widths)), np.log(12) / 7, rtol=1e-4)
    values = d.compute(bulk("Cu", "fcc", a=3.61, cubic=True))
    assert values.shape == (4, 13) and np.isfinite(values).all()
    mol = ACSF.default(["O", "H"])  # with H: not narrower than 0.35 Å
    assert mol.g2[0][0] == pytest.approx(1 / (2 * 0.35**2), rel=1e-5) and len(mol.g4) == 8


def _basis_error(g2, r_cut, target):
    """Relative RMS error of the best linear combination of G2(r) = exp(−η(r−R_s)²) f_c(r)
    for a target radial function, values and slopes fitted together on 2.1–5.5 Å."""
    r, h = np.linspace(2.1, 5.5, 400), 1e-5
    fc = lambda x: 0.5 * (np.cos(np.pi * x / r_cut) + 1)  # noqa: E731
    basis = lambda x: np.stack([np.exp(-e * (x - s) ** 2) * fc(x) for e, s in g2], 1)  # noqa: E731
    a = np.vstack([basis(r), (basis(r + h) - basis(r - h)) / (2 * h)])
    y = np.r_[target(r), (target(r + h) - target(r - h)) / (2 * h)]
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return np.linalg.norm(a @ coef - y) / np.linalg.norm(y)


def test_default_radial_basis_follows_a_smooth_density():
    # EMT-like radial terms, exp(-a r) (a ≈ 3 Å⁻¹ for Cu's density): the default's centred,
    # geometric widths reproduce them and their slopes, which forces depend on; 24 narrow
    # shifted Gaussians (the previous default) and evenly spaced centred widths do not
    def density(r):
        return np.exp(-3.0 * r)

    default = ACSF.default(["Cu"], r_cut=6.0).g2
    assert _basis_error(default, 6.0, density) < 1e-3  # measured 7e-5
    assert _basis_error(radial_grid(6.0, 24, "shifted", r_min=2.0), 6.0, density) > 5e-2  # 0.08
    assert _basis_error(radial_grid(6.0, 8, "centered", r_min=0.5), 6.0, density) > 5e-3  # 0.009


# ---------------------------------------------------------------- two implementations
@pytest.mark.parametrize("cutoff", ["cosine", "tanh3"])
@pytest.mark.parametrize("case", list(CASES))
def test_fast_equals_reference(case, cutoff):
    build, elements, _ = CASES[case]
    atoms = build()
    v_ref, d_ref = make(elements, "reference", cutoff).compute_with_derivatives(atoms)
    v_fast, d_fast = make(elements, "fast", cutoff).compute_with_derivatives(atoms)
    assert_columns_close(v_fast, v_ref, rtol=1e-12)
    np.testing.assert_array_equal(d_fast.center, d_ref.center)
    np.testing.assert_array_equal(d_fast.neighbor, d_ref.neighbor)
    assert_columns_close(d_fast.values.reshape(-1, d_ref.n_features),
                         d_ref.values.reshape(-1, d_ref.n_features), rtol=1e-12, floor=1e-9)


def test_fast_uses_direct_evaluation_for_sharp_gaussians():
    # eta * r_c^2 large: no accurate polynomial, the fast path must fall back
    atoms = nacl_cell()
    kw = dict(g4=[(2.0, 1, 1), (0.5, 2, -1)], g5=[(2.0, 1, 1)])
    ref = ACSF(["Na", "Cl"], 4.5, method="reference", **kw).compute(atoms)
    fast = ACSF(["Na", "Cl"], 4.5, method="fast", **kw).compute(atoms)
    assert_columns_close(fast, ref, rtol=1e-12, floor=1e-30)


# ---------------------------------------------------------------- invariances
@pytest.mark.parametrize("case", list(CASES))
def test_invariances(case):
    build, elements, periodic = CASES[case]
    report = check_invariance(make(elements), build(), seed=0)
    expected = {"rotation", "translation", "permutation"}
    if periodic:
        expected |= {"wrapped", "supercell"}
    assert set(report) == expected
    assert max(report.values()) < 1e-10, report


# ---------------------------------------------------------------- derivatives
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cutoff", ["cosine", "tanh3"])
@pytest.mark.parametrize("case", ["periodic NaCl", "ethanol"])
def test_derivatives_match_finite_differences(case, cutoff, method):
    build, elements, _ = CASES[case]
    result = check_derivatives(make(elements, method, cutoff), build(), h=1e-5)
    assert result["max_abs_derivative"] > 0.05  # not trivially small
    assert result["max_relative_error"] < 1e-6, result


@pytest.mark.parametrize("method", METHODS)
def test_derivatives_fold_periodic_images_of_the_same_atom(method):
    # two atoms in a small cell: almost every neighbour is an image of atom 0, 1 or itself
    atoms = bulk("Cu", "fcc", a=3.61).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=5)
    d = make(["Cu"], method)
    _, derivs = d.compute_with_derivatives(atoms)
    assert derivs.n_pairs == 4  # (0,0), (0,1), (1,0), (1,1): images folded
    # translating everything changes nothing: the derivatives of each centre sum to zero
    sums = np.zeros((2, 3, d.n_features))
    np.add.at(sums, derivs.center, derivs.values)
    assert np.abs(sums).max() < 1e-10
    result = check_derivatives(d, atoms, h=1e-5)
    assert result["max_abs_derivative"] > 0.05
    assert result["max_relative_error"] < 1e-6, result


def test_sparse_derivatives_scale_with_neighbours_not_atoms_squared():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3))  # 108 atoms
    d = ACSF(["Cu"], 3.0, g2=G2, g4=G4)  # 12 neighbours each
    _, derivs = d.compute_with_derivatives(atoms)
    assert derivs.n_pairs == 108 * 13
    assert derivs.values.shape == (108 * 13, 3, d.n_features)


def test_vjp_equals_finite_differences_of_the_contracted_features():
    """Both methods' vjp(w) against an independent reference: central differences of the
    scalar Σ w·G(R), with the reference features (no derivative code involved)."""
    atoms = nacl_cell()
    atoms.rattle(0.05, seed=4)
    reference = make(["Na", "Cl"], "reference")
    w = np.random.default_rng(0).normal(size=(len(atoms), reference.n_features))
    expected = finite_difference_gradient(lambda a: float(np.sum(w * reference.compute(a))),
                                          atoms, h=1e-5)
    assert np.abs(expected).max() > 0.1  # a test that can fail
    for method in METHODS:
        d = make(["Na", "Cl"], method)
        values, vjp = d.compute_with_vjp(atoms)
        np.testing.assert_allclose(values, reference.compute(atoms), rtol=0, atol=1e-13)
        np.testing.assert_allclose(vjp(w), expected, rtol=0, atol=1e-7 * np.abs(expected).max())


# ---------------------------------------------------------------- batches
def test_compute_many_equals_compute_one_by_one():
    images = [ethanol(), nacl_cell(), molecule("H2O"), ethanol(), nacl_cell().repeat((1, 1, 2))]
    images[3].positions += 100.0  # far from the origin: no precision lost in the batch
    d = make(["H", "C", "O", "Na", "Cl"])
    batch = d.compute_many(images, derivatives=True, progress=False)
    assert len(batch) == len(images)
    for atoms, (values, derivs) in zip(images, batch):
        v1, d1 = d.compute_with_derivatives(atoms)
        np.testing.assert_allclose(values, v1, rtol=0, atol=1e-12 * np.abs(v1).max())
        assert derivs.n_atoms == len(atoms)
        np.testing.assert_array_equal(derivs.center, d1.center)
        np.testing.assert_array_equal(derivs.neighbor, d1.neighbor)
        np.testing.assert_allclose(derivs.values, d1.values, rtol=0, atol=1e-11)
    plain = d.compute_many(images[:2], progress=False)
    np.testing.assert_allclose(plain[1], batch[1][0], atol=1e-14)


def test_compute_many_names_the_bad_image():
    bad = ethanol()
    bad.positions[2] = np.nan
    with pytest.raises(ValueError, match="image 1.*NaN"):
        make(["H", "C", "O"]).compute_many([ethanol(), bad], progress=False)


# ---------------------------------------------------------------- serialisation
def test_dict_roundtrip():
    d = make(["Cu", "Au"], method="reference", cutoff="tanh3")
    data = json.loads(json.dumps(d.to_dict()))
    assert data["name"] == "ACSF"
    back = descriptor_from_dict(data)
    assert isinstance(back, ACSF) and back == d
    assert back.method == "fast"  # the implementation is not part of the identity
    assert "G4=4" in repr(d) and "tanh3" in repr(d)


# ---------------------------------------------------------------- bad input
def test_bad_structures():
    d = make(["Cu"])
    with pytest.raises(ValueError, match="not among the supported elements"):
        d.compute(molecule("H2O"))
    with pytest.raises(ValueError, match="empty"):
        d.compute(Atoms())
    atoms = cu_cluster()
    atoms.positions[0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        d.compute(atoms)
    atoms = cu_cluster()
    atoms.positions[1] = atoms.positions[0] + 0.01
    with pytest.raises(ValueError, match="overlapping"):
        d.compute(atoms)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(elements=["Xx"]), "unknown chemical element"),
        (dict(r_cut=0.0), "r_cut must be a positive number"),
        (dict(r_cut=-3.0), "r_cut must be a positive number"),
        (dict(g2=[(-0.1, 0.0)]), r"g2\[0\]: eta must be > 0"),
        (dict(g2=[(0.0, 0.0)]), r"g2\[0\]: eta must be > 0"),
        (dict(g2=[(0.1, -1.0)]), "r_s must be >= 0"),
        (dict(g2=[(0.1,)]), r"must be \(eta, r_s\)"),
        (dict(g3=[np.nan]), "kappa must be finite"),
        (dict(g4=[(-0.1, 1, 1)]), r"g4\[0\]: eta must be >= 0"),
        (dict(g4=[(0.1, 0.5, 1)]), "zeta must be >= 1"),
        (dict(g5=[(0.1, 1, 0.5)]), r"g5\[0\]: lambda must be \+1 or -1"),
        (dict(cutoff="gaussian"), "unknown cutoff"),
        (dict(method="turbo"), "unknown method"),
    ],
)
def test_bad_parameters(kwargs, message):
    args = dict(elements=["Cu"], r_cut=5.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        ACSF(**args)


def test_collinear_triplet_with_non_integer_zeta_is_finite():
    # for this collinear triplet cos θ = U_j·U_k rounds to −1 − 2e-16; (1 − cos θ)^ζ with
    # ζ ∉ ℤ was NaN in the fast path before 1 ± cos θ was clipped at 0
    u = np.array([-0.96773341, -0.20049777, -0.15261944])
    u /= np.linalg.norm(u)
    atoms = Atoms("Cu3", positions=[[0, 0, 0], 2.7214883401940817 * u, -2.5253543224757258 * u])
    params = dict(g2=[(1.0, 0.0)], g4=[(0.01, 1.5, 1), (0.01, 2.5, -1)])
    fast = ACSF(["Cu"], 6.0, method="fast", **params).compute_with_derivatives(atoms)
    ref = ACSF(["Cu"], 6.0, method="reference", **params).compute_with_derivatives(atoms)
    assert np.isfinite(fast[0]).all() and np.isfinite(fast[1].values).all()
    np.testing.assert_allclose(fast[0], ref[0], rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- flat triplet path
def _reference_values(d, images):
    ref = ACSF(d.elements, d.r_cut, g2=d.g2, g3=d.g3, g4=d.g4, g5=d.g5, cutoff=d.cutoff,
               method="reference")
    return [ref.compute(atoms) for atoms in images]


def _count_paths(monkeypatch):
    """Record the centres each path computes: the flat triplets and the cyclic blocks."""
    from nnptutor.descriptors import _acsf_fast as fast

    seen = {"triplets": 0, "blocks": 0}
    chunks, cyclic = fast._triplet_chunks, fast._cyclic_features

    def counted_chunks(*args, **kwargs):
        for cs, p, q in chunks(*args, **kwargs):
            seen["triplets"] += len(cs)
            yield cs, p, q

    def counted_cyclic(plan, ws, cs, *rest):
        seen["blocks"] += len(cs)
        return cyclic(plan, ws, cs, *rest)

    monkeypatch.setattr(fast, "_triplet_chunks", counted_chunks)
    monkeypatch.setattr(fast, "_cyclic_features", counted_cyclic)
    return seen


@pytest.mark.parametrize("cutoff", ["cosine", "tanh3"])
def test_triplet_path_equals_reference_for_molecules(monkeypatch, cutoff):
    """Molecules (K ≤ TRIPLET_MAX_K) take the flat triplet path, features only."""
    from nnptutor.descriptors import _acsf_fast as fast

    images = [ethanol(), molecule("H2O"), molecule("CH3CH2OH")]
    images[2].rattle(0.1, seed=7)
    d = make(["H", "C", "O"], cutoff=cutoff)  # G4 and G5, ζ up to 16, ζ = 1.5, η = 0
    seen = _count_paths(monkeypatch)
    batch = d.compute_many(images, progress=False)
    assert seen == {"triplets": 9 + 3 + 9, "blocks": 0}
    for values, ref in zip(batch, _reference_values(d, images)):
        assert np.abs(ref[:, d.n_radial * 3:]).max() > 0.01  # angular columns not all zero
        assert_columns_close(values, ref, rtol=1e-12)
    # the same numbers with every centre in the padded blocks
    atoms = images[0]
    p = neighbor_pairs(atoms, d.r_cut)
    args = (d, p.i, p.j, p.vectors, p.distances, d.element_indices(atoms.numbers), False)
    flat, _ = fast.fast_features(*args)
    monkeypatch.setattr(fast, "TRIPLET_MAX_K", 0)
    blocks, _ = fast.fast_features(*args)
    assert_columns_close(flat, blocks, rtol=1e-13)


def test_triplet_path_in_a_mixed_batch(monkeypatch):
    """Molecules and a periodic cell in one call: small centres flat, the rest in blocks."""
    images = [ethanol(), nacl_cell(), molecule("H2O"), cu_cluster()]
    d = make(["H", "C", "O", "Na", "Cl", "Cu"])
    counts = [np.bincount(neighbor_pairs(a, d.r_cut).i, minlength=len(a)) for a in images]
    from nnptutor.descriptors._acsf_fast import TRIPLET_MAX_K

    small = sum(int(((c >= 2) & (c <= TRIPLET_MAX_K)).sum()) for c in counts)
    large = sum(int((c > TRIPLET_MAX_K).sum()) for c in counts)
    assert small >= 12 and large >= 8  # both paths are exercised
    seen = _count_paths(monkeypatch)
    batch = d.compute_many(images, progress=False)
    assert seen == {"triplets": small, "blocks": large}
    for values, ref in zip(batch, _reference_values(d, images)):
        assert_columns_close(values, ref, rtol=1e-12)


def test_triplet_path_collinear_non_integer_zeta_is_finite():
    u = np.array([-0.96773341, -0.20049777, -0.15261944])
    u /= np.linalg.norm(u)
    atoms = Atoms("Cu3", positions=[[0, 0, 0], 2.7214883401940817 * u, -2.5253543224757258 * u])
    params = dict(g2=[(1.0, 0.0)], g4=[(0.01, 1.5, 1), (0.01, 2.5, -1)], g5=[(0.0, 1.5, -1)])
    fast = ACSF(["Cu"], 6.0, method="fast", **params).compute(atoms)
    ref = ACSF(["Cu"], 6.0, method="reference", **params).compute(atoms)
    assert np.isfinite(fast).all()
    np.testing.assert_allclose(fast, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cutoff", ["cosine", "tanh3"])
@pytest.mark.parametrize("vacancy", [False, True])
def test_cyclic_blocks_equal_reference_for_odd_and_even_k(cutoff, vacancy):
    """Features-only blocks as (n_c, (K − 1)/2, K) cyclic bands (trick 10): an even K gets
    one padding neighbour; both parities, two elements, G4 and G5, ζ = 1.5, against the
    reference and against the K×K blocks of the derivative path."""
    from nnptutor.descriptors import _acsf_fast as fast

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    atoms.numbers[::3] = 79
    if vacancy:
        del atoms[5]
    atoms.rattle(0.1, seed=1)
    d = make(["Cu", "Au"], cutoff=cutoff)
    pairs = neighbor_pairs(atoms, d.r_cut)
    blocks = fast._padded_blocks(np.bincount(pairs.i), fast.BLOCK_SIZE, 2)
    k_block = max(e.shape[1] for _, e, _ in blocks)
    assert k_block == (37 if vacancy else 40)  # odd with the vacancy, even without
    species = np.array([d.elements.index(s) for s in atoms.get_chemical_symbols()])
    args = (d, pairs.i, pairs.j, pairs.vectors, pairs.distances, species, False)
    cyclic = fast.fast_features(*args)[0]
    packed = fast.fast_features(*args[:-1], True)[0]
    ref = ACSF(["Cu", "Au"], d.r_cut, g2=G2, g3=G3, g4=G4, g5=G5, cutoff=cutoff,
               method="reference").compute(atoms)
    assert_columns_close(cyclic, ref, rtol=1e-12)
    assert_columns_close(cyclic, packed, rtol=1e-13)
    assert np.all(np.abs(cyclic[:, d.n_features - len(G4 + G5):]).max(axis=0) > 0)


@pytest.mark.parametrize("cutoff", ["cosine", "tanh3"])
def test_integer_zeta_derivatives_build_b_times_e_from_the_powers(cutoff):
    """With every ζ an integer, the derivative path never forms the stack
    E = (1 + λ cos θ)^(ζ−1): B ∘ E is made slot by slot from the powers of C
    (:func:`_cutoff_power_stack`). Two η, ζ not ascending within a group, G4 and G5, two
    elements: equal to the reference; the stack itself equal to its definition, in either
    order of its slots."""
    from nnptutor.descriptors import _acsf_fast as fast

    kw = dict(g2=G2, g4=[(0.01, 16, 1), (0.01, 2, 1), (0.01, 1, -1), (0.01, 4, -1),
                         (0.05, 2, -1), (0.05, 1, 1)], g5=[(0.02, 4, 1), (0.02, 1, -1)],
              cutoff=cutoff)
    atoms = nacl_cell()
    v_ref, d_ref = ACSF(["Na", "Cl"], 4.5, method="reference", **kw).compute_with_derivatives(atoms)
    d = ACSF(["Na", "Cl"], 4.5, method="fast", **kw)
    v_fast, d_fast = d.compute_with_derivatives(atoms)
    assert_columns_close(v_fast, v_ref, rtol=1e-12)
    assert_columns_close(d_fast.values.reshape(-1, d.n_features),
                         d_ref.values.reshape(-1, d.n_features), rtol=1e-12, floor=1e-9)

    plan, ws = fast._plan(d), fast.Workspace()
    rng = np.random.default_rng(3)
    cos = rng.uniform(-1, 1, (2, 5, 5))
    B = rng.uniform(0, 1, (2, 5, 5))
    C, chains = fast._angular_stacks(plan, ws, cos)
    assert set(chains) == {-1, 1}
    for zls in (np.arange(len(plan.zl)), np.arange(len(plan.zl))[::-1]):
        out = np.empty((len(zls),) + cos.shape)
        fast._cutoff_power_stack(plan, ws, chains, zls, B, out)
        expected = [B * (1 + lam * cos) ** (zeta - 1) for zeta, lam in
                    (plan.zl[z] for z in zls)]
        np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-15)

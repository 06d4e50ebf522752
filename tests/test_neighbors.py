import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.neighborlist import neighbor_list

from nnptutor.neighbors import neighbor_pairs, pair_order


def _key(i, j, S):
    return sorted(zip(i.tolist(), j.tolist(), map(tuple, S.tolist())))


@pytest.mark.parametrize(
    "atoms",
    [
        bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 2, 2),
        bulk("Cu", "fcc", a=3.6),  # one atom: all neighbours are its own images
        fcc111("Cu", (3, 3, 3), vacuum=5.0),  # mixed periodicity
        molecule("CH3CH2OH"),
    ],
    ids=["bulk", "primitive", "slab", "molecule"],
)
def test_same_pairs_as_ase(atoms):
    atoms.rattle(0.05, seed=1)
    pairs = neighbor_pairs(atoms, 5.0)
    i, j, S, D, d = neighbor_list("ijSDd", atoms, 5.0)
    assert _key(pairs.i, pairs.j, pairs.shifts) == _key(i, j, S)
    np.testing.assert_allclose(np.sort(pairs.distances), np.sort(d), atol=1e-12)
    expected = atoms.positions[pairs.j] + pairs.shifts @ atoms.cell.array - atoms.positions[pairs.i]
    np.testing.assert_allclose(pairs.vectors, expected, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(pairs.vectors, axis=1), pairs.distances, atol=1e-12)


def test_overlapping_atoms_rejected():
    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.05]])
    with pytest.raises(ValueError, match="overlapping"):
        neighbor_pairs(atoms, 3.0)


def test_nonpositive_cutoff_rejected():
    with pytest.raises(ValueError, match="r_cut must be positive"):
        neighbor_pairs(molecule("H2O"), 0.0)


def test_pair_order_is_lexsort_order():
    rng = np.random.default_rng(0)
    i = rng.integers(0, 7, 200)
    j = rng.integers(0, 7, 200)  # repeated (i, j): periodic images keep their order
    assert np.array_equal(pair_order(i, j, 7), np.lexsort((j, i)))
    s = np.lexsort((j, i))
    assert pair_order(i[s], j[s], 7) is None  # sorted already: nothing to gather


def _cell_in_nm():
    """4 Cu atoms (fcc) whose 3.61 Å cubic cell was typed as 0.5: a unit slip."""
    fcc = bulk("Cu", "fcc", a=3.61, cubic=True)
    return Atoms("Cu4", scaled_positions=fcc.get_scaled_positions(), cell=[0.5] * 3, pbc=True)


def _descriptors():
    import nnptutor as nt
    from nnptutor.descriptors import ACSF, GMP, PairACSF

    acsf = ACSF.default(["Cu"], r_cut=5.0)
    potential = nt.Potential(acsf, nt.BPNN(acsf.type_labels, acsf.n_features, hidden=(4,)))
    return {
        "ACSF": acsf.compute,
        "ACSF derivatives": acsf.compute_with_derivatives,
        "ACSF vjp": acsf.compute_with_vjp,
        "GMP": GMP(["Cu"], r_cut=5.0).compute_with_derivatives,
        "PairACSF": PairACSF.default(["Cu"], r_cut=5.0).compute_with_derivatives,
        "Potential.predict": potential.predict,
    }


@pytest.mark.parametrize("name", list(_descriptors()))
def test_implausibly_dense_cell_raises_before_allocating(name):
    """A cell in the wrong unit gives thousands of images per atom: every descriptor (and
    a potential through it) refuses it at once, naming the likely cause, instead of
    building per-centre arrays of millions of triplets."""
    import time

    compute = _descriptors()[name]
    start = time.process_time()
    with pytest.raises(ValueError, match="wrong unit"):
        compute(_cell_in_nm())
    assert time.process_time() - start < 1.0  # the failing call only (4 atoms, no search)


def test_density_guard_counts_neighbours_not_only_images():
    """A large cell of atoms squeezed 10× (positions in nm) passes the image test but has
    far more neighbours per atom than any solid: refused after the search."""
    from nnptutor.neighbors import max_neighbors

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (4, 4, 4)
    atoms.set_cell(atoms.cell / 4, scale_atoms=True)
    atoms.set_cell(atoms.cell * 4, scale_atoms=False)  # same 14 Å cell, atoms in a corner
    with pytest.raises(ValueError, match="wrong unit"):
        neighbor_pairs(atoms, 3.0)  # 255 neighbours where a solid has at most ~110
    # real crystals stay well inside the bound, at small and large cutoffs
    for r_cut in (2.6, 6.0, 9.0):
        pairs = neighbor_pairs(bulk("Cu", "fcc", a=3.61) * (2, 2, 2), r_cut)
        assert pairs.counts().max() < max_neighbors(r_cut) / 4

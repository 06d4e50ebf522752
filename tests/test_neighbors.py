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

"""ACSF.compute_with_vjp (fast method): the forces route used by MD.

The vector–Jacobian product must equal dE/dG contracted with the full sparse derivatives,
whatever is kept from the forward pass (nothing, some blocks, everything).
"""
import numpy as np
import pytest
from ase.build import bulk

import nnptutor.descriptors._acsf_fast as fast
from nnptutor import ACSF
from nnptutor.neighbors import neighbor_pairs
from test_acsf import ethanol, nacl_cell  # the same structures as the feature tests

G2 = [(0.5, 0.0), (0.2, 1.5), (1.0, 2.5)]
G4 = [(0.005, 1.0, 1.0), (0.005, 2.0, -1.0), (0.3, 4.0, 1.0), (0.01, 16.0, -1.0)]
G5 = [(0.01, 1.0, -1.0), (0.05, 3.0, 1.0)]



CASES = {"periodic NaCl": (nacl_cell, ["Na", "Cl"]), "ethanol": (ethanol, ["H", "C", "O"])}


def check_vjp(d, atoms, seed=0):
    """Largest |vjp − SparseDerivatives.vjp| relative to the largest |dE/dR|."""
    values, derivs = d.compute_with_derivatives(atoms)
    values2, vjp = d.compute_with_vjp(atoms)
    np.testing.assert_allclose(values2, values, rtol=0, atol=1e-13 * np.abs(values).max())
    dE_dG = np.random.default_rng(seed).normal(size=values.shape)
    expected = derivs.vjp(dE_dG)
    assert np.abs(expected).max() > 0.1  # a test that can fail
    return np.abs(vjp(dE_dG) - expected).max() / np.abs(expected).max()


@pytest.mark.parametrize("cutoff", ["cosine", "tanh3"])
@pytest.mark.parametrize("case", list(CASES))
def test_vjp_equals_sparse_derivatives_vjp(case, cutoff):
    make_atoms, elements = CASES[case]
    d = ACSF(elements, 4.5, g2=G2, g4=G4, g5=G5, cutoff=cutoff)
    assert check_vjp(d, make_atoms()) < 1e-10


def test_vjp_over_many_blocks(monkeypatch):
    """Small blocks (several per cell, of different K): the same answer."""
    atoms = nacl_cell().repeat((2, 1, 1))
    del atoms[3]  # a vacancy: centres with different neighbour counts
    d = ACSF(["Na", "Cl"], 4.5, g2=G2, g4=G4, g5=G5)
    monkeypatch.setattr(fast, "BLOCK_SIZE", 700)
    counts = np.bincount(neighbor_pairs(atoms, 4.5).i)
    assert len(list(fast._padded_blocks(counts, fast.BLOCK_SIZE, 2))) >= 4
    assert check_vjp(d, atoms) < 1e-10


def test_vjp_non_integer_and_large_zeta():
    """Non-integer ζ (evaluated as powers) and a large integer ζ (long gaps)."""
    big = 40.0
    d = ACSF(["Cu"], 4.5, g2=G2, g4=[(0.01, 2.5, 1.0), (0.01, 2.0, 1.0), (0.02, big, 1.0)],
             g5=[(0.01, 1.7, 1.0)])
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.rattle(0.1, seed=1)
    assert check_vjp(d, atoms) < 1e-10


def test_vjp_called_twice_gives_independent_answers():
    d = ACSF(["Na", "Cl"], 4.5, g2=G2, g4=G4, g5=G5)
    atoms = nacl_cell()
    values, derivs = d.compute_with_derivatives(atoms)
    _, vjp = d.compute_with_vjp(atoms)
    rng = np.random.default_rng(1)
    w1, w2 = rng.normal(size=values.shape), rng.normal(size=values.shape)
    f1, f2, f1_again = vjp(w1), vjp(w2), vjp(w1)
    scale = np.abs(derivs.vjp(w1)).max()
    np.testing.assert_allclose(f1, derivs.vjp(w1), rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(f2, derivs.vjp(w2), rtol=0, atol=1e-10 * scale)
    np.testing.assert_array_equal(f1_again, f1)
    # another structure's compute_with_vjp in between does not disturb the first vjp
    other = nacl_cell()
    other.rattle(0.05, seed=9)
    d.compute_with_vjp(other)[1](w2)
    np.testing.assert_array_equal(vjp(w1), f1)


def test_vjp_rejects_wrong_shape():
    d = ACSF(["Na", "Cl"], 4.5, g2=G2, g4=G4)
    values, vjp = d.compute_with_vjp(nacl_cell())
    with pytest.raises(ValueError, match="dE_dG has shape"):
        vjp(np.zeros((values.shape[0], values.shape[1] + 1)))


# ---------------------------------------------------------------- Verlet neighbour list
def as_set(pairs):
    return set(zip(pairs.i.tolist(), pairs.j.tolist(), map(tuple, pairs.shifts.tolist())))


def canonical(pairs):
    """Order of the pairs by (i, j, shift)."""
    return np.lexsort((*pairs.shifts.T[::-1], pairs.j, pairs.i))


def test_verlet_pairs_equal_a_fresh_list_along_a_trajectory():
    from nnptutor.descriptors._verlet import VerletPairs

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    rng = np.random.default_rng(3)
    verlet = VerletPairs(4.0, skin=0.5)
    rebuilt = 0
    for step in range(12):
        atoms.positions += rng.normal(scale=0.06, size=atoms.positions.shape)
        if step == 8:
            atoms.wrap()  # a jump by a cell vector: the list must be rebuilt
        kept_before = verlet._kept
        got, expected = verlet(atoms), neighbor_pairs(atoms, 4.0)
        rebuilt += verlet._kept is not kept_before
        assert as_set(got) == as_set(expected)
        assert np.all(np.diff(got.i) >= 0)
        np.testing.assert_allclose(got.vectors[canonical(got)],
                                   expected.vectors[canonical(expected)], atol=1e-12)
    assert 2 <= rebuilt < 11  # reused in between, rebuilt when atoms moved too far


def test_verlet_pairs_reject_overlapping_atoms_and_new_systems():
    from nnptutor.descriptors._verlet import VerletPairs

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
    verlet = VerletPairs(4.0)
    verlet(atoms), verlet(atoms)
    assert verlet._kept is not None
    bigger = atoms.repeat((1, 2, 1))
    assert len(verlet(bigger).i) == len(bigger) * len(verlet(atoms).i) // len(atoms)
    moved = atoms.copy()
    moved.positions[1] = moved.positions[0] + 0.05
    verlet(atoms)
    with pytest.raises(ValueError, match="overlapping"):
        verlet(moved)


def test_vjp_along_an_md_trajectory():
    """compute_with_vjp on consecutive geometries (reused neighbour list) stays exact."""
    d = ACSF(["Na", "Cl"], 4.5, g2=G2, g4=G4, g5=G5)
    atoms = nacl_cell()
    rng = np.random.default_rng(5)
    for _ in range(4):
        atoms.positions += rng.normal(scale=0.1, size=atoms.positions.shape)
        assert check_vjp(d, atoms) < 1e-10

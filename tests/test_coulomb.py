import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from nnptutor.checks import random_rotation
from nnptutor.descriptors import CoulombMatrix, descriptor_from_dict


OURS_TO_DSCRIBE = {"none": "none", "sorted": "sorted_l2", "eigenspectrum": "eigenspectrum"}


def _distorted(name, seed=0):
    atoms = molecule(name)
    atoms.rattle(0.05, seed=seed)  # break symmetry so that no two row norms tie
    return atoms


@pytest.mark.parametrize("permutation", list(OURS_TO_DSCRIBE))
@pytest.mark.parametrize("name", ["C6H6", "CH3CH2OH", "H2O"])
def test_equal_to_dscribe(permutation, name):
    dscribe = pytest.importorskip("dscribe.descriptors")  # only this test needs DScribe
    atoms = _distorted(name)
    ours = CoulombMatrix(n_atoms_max=14, permutation=permutation)
    theirs = dscribe.CoulombMatrix(n_atoms_max=14, permutation=OURS_TO_DSCRIBE[permutation])
    expected = theirs.create(atoms)
    assert ours.n_features == theirs.get_number_of_features()
    np.testing.assert_allclose(ours.compute(atoms), expected, rtol=1e-10, atol=1e-10)


def test_matrix_against_formula():
    atoms = Atoms("OH", positions=[[0, 0, 0], [0, 0, 0.8]])
    m = CoulombMatrix(n_atoms_max=3).matrix(atoms)
    np.testing.assert_allclose(m, [[0.5 * 8**2.4, 8 / 0.8], [8 / 0.8, 0.5]])


def test_compute_many_stacks_rows():
    images = [_distorted("C6H6", seed=s) for s in range(3)] + [_distorted("H2O")]
    cm = CoulombMatrix(n_atoms_max=12, permutation="eigenspectrum")
    many = cm.compute_many(images)
    assert many.shape == (4, 12)
    np.testing.assert_allclose(many[3], cm.compute(images[3]))
    assert np.count_nonzero(many[3]) == 3  # water: three eigenvalues, nine padding zeros


def test_permutation_of_like_atoms():
    atoms = _distorted("C6H6")
    hydrogens = np.flatnonzero(atoms.numbers == 1)
    order = np.arange(len(atoms))
    order[hydrogens] = hydrogens[[1, 0, 3, 2, 5, 4]]  # swap H atoms pairwise
    permuted = atoms[order]
    changed = {}
    for permutation in OURS_TO_DSCRIBE:
        cm = CoulombMatrix(n_atoms_max=12, permutation=permutation)
        changed[permutation] = np.abs(cm.compute(permuted) - cm.compute(atoms)).max()
    assert changed["none"] > 1.0  # the raw matrix follows the atom order
    assert changed["sorted"] < 1e-10
    assert changed["eigenspectrum"] < 1e-10


@pytest.mark.parametrize("permutation", list(OURS_TO_DSCRIBE))
def test_rotation_and_translation_invariance(permutation):
    atoms = _distorted("CH3CH2OH")
    rng = np.random.default_rng(3)
    moved = atoms.copy()
    moved.positions = atoms.positions @ random_rotation(rng).T + rng.normal(scale=5.0, size=3)
    cm = CoulombMatrix(n_atoms_max=10, permutation=permutation)
    reference = cm.compute(atoms)
    assert np.abs(reference).max() > 1.0
    np.testing.assert_allclose(cm.compute(moved), reference, atol=1e-9)


def test_too_many_atoms():
    cm = CoulombMatrix(n_atoms_max=10)
    with pytest.raises(ValueError, match="has 12 atoms, more than n_atoms_max=10"):
        cm.compute(molecule("C6H6"))


def test_bad_structures():
    cm = CoulombMatrix(n_atoms_max=5)
    with pytest.raises(ValueError, match="empty"):
        cm.compute(Atoms())
    with pytest.raises(ValueError, match="NaN or infinite"):
        cm.compute(Atoms("H2", positions=[[0, 0, 0], [0, 0, np.nan]]))
    with pytest.raises(ValueError, match="overlapping"):
        cm.compute(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.05]]))
    with pytest.raises(ValueError, match="molecules only"):
        cm.compute(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7]], cell=[5, 5, 5], pbc=True))
    with pytest.raises(ValueError, match="no position derivatives"):
        cm.compute_with_derivatives(molecule("H2O"))


def test_bad_parameters():
    with pytest.raises(ValueError, match="unknown permutation 'sorted_l2'"):
        CoulombMatrix(n_atoms_max=5, permutation="sorted_l2")
    with pytest.raises(ValueError, match="n_atoms_max must be a positive integer"):
        CoulombMatrix(n_atoms_max=0)


def test_round_trip_through_dict():
    cm = CoulombMatrix(n_atoms_max=7, permutation="eigenspectrum")
    again = descriptor_from_dict(cm.to_dict())
    assert again == cm and again is not cm
    assert again != CoulombMatrix(n_atoms_max=7, permutation="sorted")


def test_one_centre_per_molecule():
    """The whole molecule is the Coulomb matrix's one centre, of type "molecule"."""
    cm = CoulombMatrix(n_atoms_max=12)
    atoms = molecule("CH3CH2OH")
    assert cm.type_labels == ("molecule",)
    assert cm.center_types(atoms).tolist() == [0]
    assert cm.center_atoms(atoms).shape == (0,)
    assert cm.compute(atoms).shape == (cm.n_features,)

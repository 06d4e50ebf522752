"""The small pieces everything else stands on: seeding, validation, checks, environment."""
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

import nnptutor as nt
from nnptutor.checks import random_rotation, transformed_copies
from nnptutor.structures import check_atoms, normalize_elements


def test_set_seed_makes_draws_reproducible():
    import torch

    rng_a = nt.set_seed(3)
    a = (rng_a.normal(), np.random.rand(), torch.rand(1).item())
    rng_b = nt.set_seed(3)
    b = (rng_b.normal(), np.random.rand(), torch.rand(1).item())
    assert a == b
    with pytest.raises(ValueError, match="non-negative"):
        nt.set_seed(-1)


def test_import_changes_no_global_random_state():
    import subprocess
    import sys

    code = (
        "import numpy as np, random\n"
        "np.random.seed(11); random.seed(11)\n"
        "import nnptutor as nt\n"
        "for name in nt.__all__:\n"
        "    try: getattr(nt, name)\n"
        "    except ImportError: pass\n"
        "print(np.random.rand(), random.random())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    np.random.seed(11)
    import random

    random.seed(11)
    assert out.stdout.split() == [repr(np.random.rand()), repr(random.random())]


@pytest.mark.parametrize(
    "atoms, message",
    [
        (Atoms(), "empty"),
        (Atoms("H2", positions=[[0, 0, 0], [np.nan, 0, 0]]), "NaN or infinite"),
        (molecule("H2O"), r"element\(s\) \['O'\]"),
    ],
)
def test_check_atoms_rejects_bad_structures(atoms, message):
    with pytest.raises(ValueError, match=message):
        check_atoms(atoms, elements=("H",))


def test_check_atoms_rejects_non_atoms():
    with pytest.raises(ValueError, match="ase.Atoms"):
        check_atoms(np.zeros((3, 3)))


def test_normalize_elements_sorts_by_atomic_number_and_rejects_unknown():
    assert normalize_elements(["O", "H", "Cu"]) == ("H", "O", "Cu")
    with pytest.raises(ValueError, match="unknown chemical element 'Xx'"):
        normalize_elements(["H", "Xx"])
    with pytest.raises(ValueError, match="duplicates"):
        normalize_elements(["H", "H"])


def test_random_rotation_is_proper_orthogonal():
    R = random_rotation(np.random.default_rng(0))
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)


def test_transformed_copies_preserve_interatomic_distances():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.1, seed=0)
    reference = atoms.get_all_distances(mic=True)
    for name, (copy, index) in transformed_copies(atoms, np.random.default_rng(1)).items():
        if name == "supercell":
            continue
        np.testing.assert_allclose(
            copy.get_all_distances(mic=True), reference[np.ix_(index, index)], atol=1e-10
        )


def test_check_environment_passes_here(capsys):
    assert nt.check_environment() is True
    out = capsys.readouterr().out
    assert "OK   EMT labels a 4-atom Cu cell" in out
    assert "FAIL" not in out

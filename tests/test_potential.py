"""Potential: forces = −dE/dR, symmetries, reference energies, extrapolation, model files."""
import pickle
import warnings

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.fd import calculate_numerical_forces
from ase.calculators.singlepoint import SinglePointCalculator

import nnptutor as nt
from nnptutor.calculator import NNPCalculator
from nnptutor.descriptors import ACSF
from nnptutor.potential import Potential


def descriptor(r_cut=4.5):
    return ACSF(["Ni", "Cu"], r_cut=r_cut, g2=[(0.5, 0.0), (1.0, 2.5), (2.0, 3.5)],
                g4=[(0.01, 1, 1), (0.01, 2, -1)], method="reference")


def alloy(seed=0, repeat=(2, 1, 1)):
    """A rattled periodic Cu/Ni cell of 8 atoms."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(repeat)
    atoms.numbers[[1, 4, 6]] = 28
    atoms.rattle(0.15, seed=seed)
    return atoms


def labelled(atoms):
    atoms.calc = EMT()
    e, f = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f)
    return atoms


@pytest.fixture(scope="module")
def fitted():
    """A potential with fitted scaling, reference energies and range (random weights)."""
    d = descriptor()
    pot = Potential(d, nt.BPNN(d.type_labels, d.n_features, hidden=(8, 8), activation="tanh"))
    images = [labelled(alloy(seed)) for seed in range(4)]
    nt.train(pot, images, epochs=1, progress=False)
    return pot


def finite_difference_forces(pot, atoms, atoms_to_check, h=1e-4):
    """−dE/dR of ``atoms_to_check`` by central differences (ASE's helper), shape (k, 3) [eV/Å]."""
    atoms = atoms.copy()
    atoms.calc = NNPCalculator(pot, warn=False)
    return calculate_numerical_forces(atoms, h, iatoms=atoms_to_check)


@pytest.mark.parametrize("cls", [nt.BPNN, nt.SingleNN])
def test_forces_are_minus_energy_gradient_untrained(cls):
    d = descriptor()
    pot = Potential(d, cls(d.type_labels, d.n_features, hidden=(10,), activation="tanh", seed=3))
    atoms = alloy(1)
    forces = pot.predict(atoms)["forces"]
    check = [0, 1, 5]
    fd = finite_difference_forces(pot, atoms, check)
    assert np.abs(fd).max() > 1e-3  # not trivially small
    np.testing.assert_allclose(forces[check], fd, atol=1e-7 * max(1, np.abs(fd).max()))


def test_zero_net_force_and_energy_sum(fitted):
    atoms = alloy(2, repeat=(2, 2, 1))
    result = fitted.predict(atoms, warn=False)
    assert np.abs(result["forces"]).max() > 1e-3
    np.testing.assert_allclose(result["forces"].sum(axis=0), 0.0, atol=1e-10)
    assert result["energies"].shape == (len(atoms),)
    assert result["energies"].sum() == pytest.approx(result["energy"], abs=1e-10)


def test_invariant_to_permutation_rotation_translation(fitted):
    atoms = alloy(3)
    ref = fitted.predict(atoms)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(atoms))
    permuted = fitted.predict(atoms[perm])
    assert permuted["energy"] == pytest.approx(ref["energy"], abs=1e-10)
    np.testing.assert_allclose(permuted["forces"], ref["forces"][perm], atol=1e-10)
    np.testing.assert_allclose(permuted["energies"], ref["energies"][perm], atol=1e-10)

    rotated = atoms.copy()
    R = nt.checks.random_rotation(rng)
    rotated.positions = atoms.positions @ R.T + 1.7
    rotated.set_cell(atoms.cell.array @ R.T, scale_atoms=False)
    out = fitted.predict(rotated)
    assert out["energy"] == pytest.approx(ref["energy"], abs=1e-9)
    np.testing.assert_allclose(out["forces"], ref["forces"] @ R.T, atol=1e-9)


def test_reference_energies_recover_a_linear_composition_model():
    d = descriptor()
    pot = Potential(d, nt.BPNN(d.type_labels, d.n_features, hidden=(4,)))
    compositions = np.array([[1, 7], [4, 4], [8, 0], [3, 5]])  # (Ni, Cu) counts
    energies = compositions @ np.array([-1.25, -3.5])
    pot.fit_reference_energies(compositions, energies)
    assert pot.reference_energies == pytest.approx({"Ni": -1.25, "Cu": -3.5}, abs=1e-12)
    # an untrained network whose last layer is zero predicts the composition model exactly
    with torch.no_grad():
        for net in pot.model.networks.values():
            net[-1].weight.zero_()
            net[-1].bias.zero_()
    atoms = alloy(0)
    assert pot.predict(atoms, forces=False)["energy"] == pytest.approx(
        3 * -1.25 + 5 * -3.5, abs=1e-12)


def test_extrapolation_warning_names_atoms_and_flags_them(fitted):
    atoms = alloy(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not fitted.predict(atoms)["extrapolating"].any()  # a training structure
    squeezed = atoms.copy()
    squeezed.positions[2] = squeezed.positions[3] + [0.9, 0.9, 0.0]  # too close to atom 3
    with pytest.warns(nt.ExtrapolationWarning, match=r"atoms \[.*2.*\]"):
        flags = fitted.predict(squeezed)["extrapolating"]
    assert flags[2] and flags[3] and flags.dtype == bool


def test_save_load_round_trip_is_bit_exact(fitted, tmp_path):
    path = tmp_path / "model.pt"
    fitted.save(path)
    loaded = Potential.load(path, descriptor=descriptor())
    state, state2 = fitted.model.state_dict(), loaded.model.state_dict()
    assert state.keys() == state2.keys() and all(torch.equal(state[k], state2[k]) for k in state)
    assert torch.equal(loaded.feature_shift, fitted.feature_shift)
    assert torch.equal(loaded.feature_scale, fitted.feature_scale)
    assert loaded.reference_energies == fitted.reference_energies
    assert loaded.feature_range == fitted.feature_range
    atoms = alloy(5)
    a, b = fitted.predict(atoms, warn=False), loaded.predict(atoms, warn=False)
    assert a["energy"] == b["energy"] and np.array_equal(a["forces"], b["forces"])
    assert type(loaded.model) is type(fitted.model) and loaded.descriptor == fitted.descriptor


def test_load_rejects_another_descriptor(fitted, tmp_path):
    path = tmp_path / "model.pt"
    fitted.save(path)
    with pytest.raises(ValueError, match="differs from the given descriptor"):
        Potential.load(path, descriptor=descriptor(r_cut=5.0))


class _Payload:
    """Pickling this object would run ``_touch`` on load (the classic pickle exploit)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (_touch, (self.path,))


def _touch(path):
    open(path, "w").close()


def test_load_rejects_foreign_and_tampered_files_without_executing_them(fitted, tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    with pytest.raises(ValueError, match="not a readable nnptutor potential file"):
        Potential.load(text)

    tensor_file = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(ValueError, match="not an nnptutor potential file"):
        Potential.load(tensor_file)

    # a real model file with an object that runs code when unpickled
    marker = tmp_path / "executed"
    data = fitted.to_dict()
    data["model_state"]["evil"] = _Payload(marker)
    evil = tmp_path / "evil.pt"
    torch.save(data, evil, pickle_module=pickle)
    with pytest.raises(ValueError, match="not a readable nnptutor potential file"):
        Potential.load(evil)
    assert not marker.exists()

    # weights edited to the wrong shape, an unknown model class, a future format version
    for edit, match in [
        (lambda d: d["model_state"].update({k: v[:, :1] for k, v in d["model_state"].items()
                                            if v.ndim == 2}), "weights do not fit"),
        (lambda d: d.update(metadata=d["metadata"].replace('"BPNN"', '"os.system"')),
         "unknown model class"),
        (lambda d: d.update(format_version=99), "format version"),
        (lambda d: d.pop("metadata"), "incomplete or corrupt"),
    ]:
        data = fitted.to_dict()
        edit(data)
        path = tmp_path / "edited.pt"
        torch.save(data, path)
        with pytest.raises(ValueError, match=match):
            Potential.load(path)

    with pytest.raises(ValueError, match="no potential file"):
        Potential.load(tmp_path / "missing.pt")


def test_bad_input(fitted):
    d = descriptor()
    with pytest.raises(ValueError, match="model expects 3 features"):
        Potential(d, nt.BPNN(d.type_labels, 3))
    with pytest.raises(ValueError, match="differ from descriptor types"):
        Potential(d, nt.BPNN(["Cu"], d.n_features))
    gold = alloy(0)
    gold.numbers[0] = 79
    with pytest.raises(ValueError, match=r"\['Au'\]"):
        fitted.predict(gold)
    with pytest.raises(ValueError, match="reference energies for unknown elements"):
        fitted.set_reference_energies({"Zn": 1.0})


def test_pair_centred_descriptor_gives_consistent_forces():
    d = nt.PairACSF(["Cu"], 4.0, p1=False, p2=False, p4=[(0.05, 1.0, 1.0), (0.05, 2.0, -1.0)],
                    p6=[(1.0, 2.5), (0.5, 3.5)])
    pot = Potential(d, nt.BPNN(d.type_labels, d.n_features, hidden=(6,), activation="tanh"))
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.1, seed=4)
    out = pot.predict(atoms)
    fd = finite_difference_forces(pot, atoms, [0, 2])
    assert np.abs(fd).max() > 1e-3
    np.testing.assert_allclose(out["forces"][[0, 2]], fd, atol=1e-6)
    assert out["energies"].sum() == pytest.approx(out["energy"], abs=1e-10)

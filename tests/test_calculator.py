"""NNPCalculator: the ASE contract, extrapolation flags, a committee hook, NVE conservation."""
import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.verlet import VelocityVerlet

import nnptutor as nt
from nnptutor.descriptors import ACSF
from nnptutor.potential import Potential


def cell(seed=0):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.1, seed=seed)
    return atoms


@pytest.fixture(scope="module")
def pot():
    d = ACSF(["Cu"], r_cut=4.5, g2=[(0.5, 0.0), (1.0, 2.5), (2.0, 3.5)],
             g4=[(0.01, 1, 1), (0.01, 2, -1)], method="reference")
    images = []
    for seed in range(6):
        atoms = cell(seed)
        atoms.calc = EMT()
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f)
        images.append(atoms)
    p = Potential(d, nt.BPNN(["Cu"], d.n_features, hidden=(8, 8)))
    nt.train(p, images, epochs=5, progress=False)
    return p


def test_results_equal_predict(pot):
    atoms = cell(1)
    atoms.calc = nt.NNPCalculator(pot)
    ref = pot.predict(atoms, warn=False)
    assert atoms.get_potential_energy() == ref["energy"]
    np.testing.assert_array_equal(atoms.get_forces(), ref["forces"])
    np.testing.assert_array_equal(atoms.get_potential_energies(), ref["energies"])
    assert atoms.calc.results["extrapolating"].shape == (len(atoms),)
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_extrapolation_warning_and_flags(pot):
    atoms = cell(0)
    atoms.positions[3] = atoms.positions[0] + [1.2, 0.4, 0.0]  # a far too short bond
    atoms.calc = nt.NNPCalculator(pot)
    with pytest.warns(nt.ExtrapolationWarning, match=r"atoms \[0, .*3"):
        atoms.get_potential_energy()
    flags = atoms.calc.results["extrapolating"]
    assert flags[0] and flags[3]
    quiet = nt.NNPCalculator(pot, warn=False)
    quiet.calculate(atoms, ["energy"])
    assert quiet.results["extrapolating"].any()


class _FakeCommittee:
    """The interface a Committee provides: predict plus energy_std / forces_std."""

    extra_properties = ("energy_std", "forces_std")

    def __init__(self, pots):
        self.pots = pots

    def predict(self, atoms, forces=True, warn=True):
        outs = [p.predict(atoms, forces=forces, warn=warn) for p in self.pots]
        return {
            "energy": float(np.mean([o["energy"] for o in outs])),
            "energy_std": float(np.std([o["energy"] for o in outs])),
            "forces": np.mean([o["forces"] for o in outs], axis=0),
            "forces_std": np.std([o["forces"] for o in outs], axis=0),
            "energies": None,
            "extrapolating": np.any([o["extrapolating"] for o in outs], axis=0),
        }


def test_committee_hook(pot):
    atoms = cell(2)
    atoms.calc = nt.NNPCalculator(_FakeCommittee([pot, pot]))
    atoms.get_forces()
    assert atoms.calc.results["energy_std"] == 0.0
    assert atoms.calc.get_property("forces_std", atoms).shape == (len(atoms), 3)


def test_nve_conserves_energy(pot):
    atoms = cell(3)  # rattled: potential energy turns into motion
    atoms.calc = nt.NNPCalculator(pot, warn=False)
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    energies = []
    dyn.attach(lambda: energies.append(atoms.get_total_energy()), interval=1)
    dyn.run(50)
    assert atoms.get_kinetic_energy() / len(atoms) > 1e-3  # eV/atom: atoms actually move
    assert np.ptp(energies) / len(atoms) < 1e-4  # eV/atom over 50 fs


def test_bad_input():
    with pytest.raises(ValueError, match="needs a Potential or Committee"):
        nt.NNPCalculator("model.pt")

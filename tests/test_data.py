"""Tests of nnptutor.data: registry and files agree, labels are what the stated method gives."""
import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import Calculator
from ase.calculators.emt import EMT

from nnptutor import data

NAMES = data.available()

# sane windows per data set: energy per atom [eV/atom] and the largest |F| [eV/Å]
WINDOWS = {
    "cu_emt": ((-0.05, 0.6), 10.0),
    "cu_pt_co_emt": ((-0.5, 1.5), 15.0),
    "benzene_xtb": ((-37.0, -35.0), 15.0),
    "ethanol_xtb": ((-35.5, -33.5), 15.0),
    "water_clusters_xtb": ((-47.0, -45.0), 15.0),
    "water_dft": ((-700.0, -690.0), 15.0),  # B3LYP total energy of H2O / 3 ≈ -692.9 eV
}


@pytest.mark.parametrize("name", NAMES)
def test_file_matches_registry_and_count(name):
    info = data.describe(name)
    assert data.verify(name) == info["sha256"]
    images = data.load(name)
    assert len(images) == info["count"] > 0
    assert set(info) >= {"method", "code", "units", "licence", "description", "elements"}
    assert all(set(a.get_chemical_symbols()) <= set(info["elements"]) for a in images)


@pytest.mark.parametrize("name", NAMES)
def test_labels_present_finite_and_sane(name):
    (e_low, e_high), f_max = WINDOWS[name]
    for atoms in data.load(name):
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        assert forces.shape == (len(atoms), 3)
        assert np.isfinite(energy) and np.isfinite(forces).all()
        assert e_low < energy / len(atoms) < e_high, (name, atoms.info)
        assert np.linalg.norm(forces, axis=1).max() < f_max, (name, atoms.info)
        assert "kind" in atoms.info


@pytest.mark.parametrize("name", [n for n in NAMES if n.endswith("_emt")])
def test_emt_labels_recomputed_exactly(name):
    images = data.load(name)
    for index in (0, len(images) // 2, len(images) - 1):
        atoms = images[index].copy()
        atoms.calc = EMT()
        assert abs(atoms.get_potential_energy() - images[index].get_potential_energy()) < 1e-10
        np.testing.assert_allclose(atoms.get_forces(), images[index].get_forces(), atol=1e-8)


@pytest.mark.parametrize("name", [n for n in NAMES if n.endswith("_xtb")])
def test_xtb_labels_recomputed(name):
    tblite = pytest.importorskip("tblite.ase")
    images = data.load(name)
    for index in (1, len(images) - 2):
        atoms = images[index].copy()
        atoms.calc = tblite.TBLite(method="GFN2-xTB", verbosity=0)
        assert abs(atoms.get_potential_energy() - images[index].get_potential_energy()) < 1e-6
        # forces to the SCC convergence: the script's calculator restarted each structure
        # from the previous one's charges, a fresh one starts from scratch (~5e-5 eV/Å)
        np.testing.assert_allclose(atoms.get_forces(), images[index].get_forces(), atol=2e-4)


@pytest.mark.skipif("water_dft" not in NAMES, reason="water_dft not registered")
def test_water_dft_monomer_recomputed_with_pyscf():
    pyscf = pytest.importorskip("pyscf")
    from pyscf import dft, gto

    atoms = next(a for a in data.load("water_dft") if a.info["kind"] == "monomer")
    assert atoms.info["xc"] == "b3lyp" and atoms.info["basis"] == "def2-SVP"
    mol = gto.M(atom=[(s, p) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)],
                unit="Angstrom", basis=atoms.info["basis"], verbose=0)
    mf = dft.RKS(mol)
    mf.xc = atoms.info["xc"]
    mf.grids.level = atoms.info["grid_level"]
    mf.conv_tol = 1e-10
    with pyscf.lib.with_omp_threads(1):
        energy = mf.kernel() * units.Hartree  # Hartree -> eV
        forces = -mf.nuc_grad_method().kernel() * units.Hartree / units.Bohr  # Hartree/Bohr -> eV/Å
    assert abs(energy - atoms.get_potential_energy()) < 1e-6
    np.testing.assert_allclose(forces, atoms.get_forces(), atol=1e-5)
    assert np.abs(forces).max() > 0.05  # a distorted geometry: the comparison is not of zeros


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match="available data sets: .*cu_emt"):
        data.load("nope")
    with pytest.raises(ValueError, match="unknown data set 'nope'"):
        data.describe("nope")


def test_changed_file_is_detected(monkeypatch):
    monkeypatch.setitem(data._REGISTRY["cu_emt"], "sha256", "0" * 64)
    with pytest.raises(ValueError, match="was changed"):
        data.load("cu_emt")


def test_load_returns_fresh_copies():
    first = data.load("cu_emt")
    first[0].positions += 1.0
    first[0].info["kind"] = "edited"
    second = data.load("cu_emt")
    assert second[0].info["kind"] != "edited"
    assert not np.allclose(first[0].positions, second[0].positions)


def test_cu_emt_kinds_and_temperatures():
    images = data.load("cu_emt")
    kinds = {a.info["kind"] for a in images}
    assert kinds == {"md", "strained", "vacancy", "surface"}
    md_temperatures = {a.info["temperature_K"] for a in images if a.info["kind"] == "md"}
    assert min(md_temperatures) == 300 and max(md_temperatures) == 1200
    surfaces = [a for a in images if a.info["kind"] == "surface"]
    assert all(list(a.pbc) == [True, True, False] for a in surfaces)
    assert {len(a) for a in images if a.info["kind"] == "md"} == {32, 108}


def test_label_matches_calculator_and_leaves_input_alone():
    images = [bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 1, 1) for _ in range(3)]
    for k, atoms in enumerate(images):
        atoms.rattle(0.05, seed=k)
        atoms.info["tag"] = k
    before = [(a.positions.copy(), dict(a.info), a.calc) for a in images]
    labelled = data.label(images, EMT(), progress=False)
    for atoms, (positions, info, calc), out in zip(images, before, labelled):
        np.testing.assert_array_equal(atoms.positions, positions)
        assert atoms.info == info and atoms.calc is calc is None
        reference = atoms.copy()
        reference.calc = EMT()
        assert out.get_potential_energy() == pytest.approx(reference.get_potential_energy(), abs=1e-12)
        np.testing.assert_allclose(out.get_forces(), reference.get_forces(), atol=1e-12)
        assert np.abs(out.get_forces()).max() > 1e-3  # rattled: forces are not trivially zero
        assert out.info["tag"] == info["tag"]


class _Failing(Calculator):
    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        raise RuntimeError("SCF did not converge")


def test_label_propagates_calculator_errors():
    images = [Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])]
    with pytest.raises(RuntimeError, match="SCF did not converge") as info:
        data.label(images, _Failing(), progress=False)
    assert any("images[0]" in note for note in getattr(info.value, "__notes__", []))


def test_label_rejects_bad_input():
    with pytest.raises(ValueError, match="list of ase.Atoms"):
        data.label(bulk("Cu"), EMT(), progress=False)
    with pytest.raises(ValueError, match=r"images\[1\] is a str"):
        data.label([bulk("Cu"), "Cu"], EMT(), progress=False)


def test_summary_counts_add_up():
    rows = data.summary("cu_emt")
    assert sum(r["count"] for r in rows) == data.describe("cu_emt")["count"]
    assert [r["group"] for r in rows] == sorted(r["group"] for r in rows)
    assert "surface" in data.format_summary(rows)

"""Export to n2p2 / LAMMPS (nnptutor.export), checked against n2p2's own ``nnp-predict``.

``nnp-predict`` is the binary named by the environment variable ``NNPTUTOR_NNP_PREDICT``, or
is built once per session from ``../shared/third_party/n2p2`` (next to the repository; about
25 s with g++, make and Debian's libeigen3-dev) and kept in pytest's cache, keyed by the
sources. Tests that need it skip, saying why, only where neither is possible.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.cluster import Icosahedron
from ase.io.runner.reader import read_runnerdata
from ase.io.runner.runneratoms import Units

import nnptutor as nt
from nnptutor.export import lammps_input, write_input_data, write_n2p2
from nnptutor.export.n2p2 import n2p2_files

N2P2_SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "third_party" / "n2p2"
EIGEN = Path("/usr/include/eigen3/Eigen/Dense")  # where n2p2's makefile.gnu looks
BUILD_FLAGS = ("COMP=gnu", "PROJECT_CFLAGS=-O1 -std=c++11", "PROJECT_DEBUG=")

ENERGY_TOL = 1e-6  # eV/atom
FORCE_TOL = 1e-5   # eV/Å


# ---------------------------------------------------------------------------------------
# nnp-predict: given, cached or built
# ---------------------------------------------------------------------------------------
def _source_digest() -> str:
    digest = hashlib.sha256(" ".join(BUILD_FLAGS).encode())
    for path in sorted(N2P2_SOURCE.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(N2P2_SOURCE)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _build_nnp_predict(target: Path) -> Path:
    """Build nnp-predict as n2p2's README says, in a scratch copy of the sources."""
    build = target / "build"
    shutil.copytree(N2P2_SOURCE, build)
    for sub in ("lib", "bin", "include"):
        (build / sub).mkdir(exist_ok=True)
    jobs = str(min(4, os.cpu_count() or 1))
    result = subprocess.run(["make", "-j", jobs, "libnnp", "nnp-predict", *BUILD_FLAGS],
                            cwd=build / "src", capture_output=True, text=True, timeout=900)
    binary = build / "bin" / "nnp-predict"
    if result.returncode != 0 or not binary.exists():
        pytest.fail(f"building nnp-predict failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    shutil.copy2(binary, target / "nnp-predict")
    shutil.rmtree(build)
    return target / "nnp-predict"


@pytest.fixture(scope="session")
def nnp_predict(request, tmp_path_factory) -> Path:
    given = os.environ.get("NNPTUTOR_NNP_PREDICT")
    if given:
        if not os.access(given, os.X_OK):
            pytest.fail(f"NNPTUTOR_NNP_PREDICT={given} is not an executable file")
        return Path(given)
    if not N2P2_SOURCE.is_dir():
        pytest.skip(f"no nnp-predict: NNPTUTOR_NNP_PREDICT is unset and the n2p2 sources "
                    f"({N2P2_SOURCE}) are absent")
    missing = [tool for tool in ("g++", "make") if shutil.which(tool) is None]
    missing += [] if EIGEN.exists() else ["Eigen headers (Debian: libeigen3-dev)"]
    if missing:
        pytest.skip(f"cannot build nnp-predict from {N2P2_SOURCE}: missing {', '.join(missing)}")
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    if cache is not None:
        target = Path(cache.mkdir("nnp-predict")) / _source_digest()
        if (target / "nnp-predict").exists():
            return target / "nnp-predict"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
    else:
        target = tmp_path_factory.mktemp("nnp-predict")
    return _build_nnp_predict(target)


def _run_nnp_predict(binary: Path, folder: Path, atoms, r_cut):
    """Energy [eV], forces [eV/Å] and the atoms n2p2 warns about (features outside the
    min/max of scaling.data) of ``atoms`` by nnp-predict on the potential in ``folder``."""
    write_input_data(atoms, folder / "input.data", r_cut=r_cut)
    result = subprocess.run([str(binary), "0"], cwd=folder, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:],
                                    (folder / "nnp-predict.log").read_text()[-3000:])
    energy = np.loadtxt(folder / "energy.out", comments="#", ndmin=2)  # conf natoms Eref Ennp ...
    forces = np.loadtxt(folder / "nnforces.out", comments="#", ndmin=2)  # conf i fref(3) f(3)
    assert energy.shape[0] == 1 and int(energy[0, 1]) == len(atoms)
    warned = {int(atom) for atom in re.findall(r"EXTRAPOLATION WARNING.*? ATOM: +(\d+)", result.stderr)}
    return energy[0, 3], forces[:, 5:8], warned


# ---------------------------------------------------------------------------------------
# trained potentials (a few epochs: agreement with n2p2 does not need accuracy)
# ---------------------------------------------------------------------------------------
def _train(potential, images, epochs):
    nt.train(potential, images, epochs=epochs, progress=False, seed=0)
    assert potential.model.dtype == torch.float64  # predictions compared in float64
    return potential


@pytest.fixture(scope="module")
def copper():
    """Cu on cu_emt: default ACSF (G2 + G4, cosine cutoff), tanh."""
    images = nt.data.load("cu_emt")
    descriptor = nt.ACSF.default(["Cu"], r_cut=5.0)
    model = nt.BPNN(["Cu"], descriptor.n_features, hidden=(16, 16), activation="tanh", seed=1)
    return _train(nt.Potential(descriptor, model), images[:24], epochs=4), images


@pytest.fixture(scope="module")
def ethanol():
    """C, H, O on ethanol_xtb: G2 + G4 + G5 with the tanh³ cutoff, softplus."""
    images = nt.data.load("ethanol_xtb")
    descriptor = nt.ACSF(["H", "C", "O"], r_cut=4.5, cutoff="tanh3",
                         g2=[(0.5, 0.0), (2.0, 1.1), (0.3, 2.5)],
                         g4=[(0.01, 1, 1), (0.01, 1, -1), (0.0, 4, 1)],
                         g5=[(0.02, 1, -1), (0.005, 2, 1)])
    model = nt.BPNN(descriptor.elements, descriptor.n_features, hidden=(12, 12),
                    activation="softplus", seed=2)
    return _train(nt.Potential(descriptor, model), images[:40], epochs=4), images


def _copper_structures(images):
    small = bulk("Cu", "fcc", a=3.61).repeat(2)  # triclinic, 8 atoms: heights 4.2 Å < r_c,
    small.rattle(0.08, seed=3)                   # shortest lattice vector 5.1 Å > r_c
    cluster = Icosahedron("Cu", 2)  # 13 atoms, not periodic
    cluster.rattle(0.05, seed=4)
    slab = next(atoms for atoms in images if list(atoms.pbc) == [True, True, False])
    return {"training frame": images[3], "cu_emt frame": images[500],
            "small triclinic cell": small, "cluster": cluster, "slab (periodic in x, y)": slab}


def _ethanol_structures(images):
    boxed = images[700].copy()
    boxed.cell, boxed.pbc = [6.0, 6.5, 7.0], True  # periodic images within the cutoff
    return {"molecule": images[600], "molecule 2": images[900], "periodic box": boxed}


def _assert_agrees(potential, binary, folder, structures, forces=True):
    write_n2p2(potential, folder, overwrite=True)
    for name, atoms in structures.items():
        ours = potential.predict(atoms, warn=False)
        energy, theirs, warned = _run_nnp_predict(binary, folder, atoms, potential.descriptor.r_cut)
        assert abs(energy - ours["energy"]) / len(atoms) < ENERGY_TOL, name
        # n2p2 warns about features outside scaling.data's min/max: the raw training range
        # (nnptutor's own warning allows 1e-3 of each feature's width beyond it)
        outside = potential.feature_range.outside(potential.descriptor.compute(atoms),
                                                  potential.descriptor.center_types(atoms),
                                                  tolerance=0.0)
        assert warned == set(np.flatnonzero(outside).tolist()), name
        if forces:
            assert np.abs(ours["forces"]).max() > 100 * FORCE_TOL, f"{name}: forces trivially small"
            np.testing.assert_allclose(theirs, ours["forces"], rtol=0, atol=FORCE_TOL, err_msg=name)


def test_copper_potential_equals_nnp_predict(copper, nnp_predict, tmp_path):
    potential, images = copper
    _assert_agrees(potential, nnp_predict, tmp_path / "cu", _copper_structures(images))


def test_energy_in_a_cell_shorter_than_the_cutoff_equals_nnp_predict(copper, nnp_predict, tmp_path):
    """Energies only: here every atom sees its own periodic images within r_c, and
    nnp-predict's forces omit those images' angular terms (Mode::calculateForces loops over
    ``neighborsUnique.begin() + 1``, skipping the centre atom; with ``begin()`` they agree
    with ours to 1e-14 eV/Å). LAMMPS evaluates images as ghost atoms instead."""
    potential, _ = copper
    two = bulk("Cu", "fcc", a=3.61).repeat((2, 1, 1))  # lattice vectors of 2.55 Å
    two.rattle(0.08, seed=3)
    cubic = bulk("Cu", "fcc", a=3.61, cubic=True)
    cubic.rattle(0.08, seed=5)
    _assert_agrees(potential, nnp_predict, tmp_path / "cu", {"2 atoms": two, "4 atoms": cubic},
                   forces=False)


def test_molecular_potential_equals_nnp_predict(ethanol, nnp_predict, tmp_path):
    potential, images = ethanol
    _assert_agrees(potential, nnp_predict, tmp_path / "ethanol", _ethanol_structures(images))


@pytest.mark.parametrize("activation", ["sigmoid", "softplus"])
def test_other_activations_and_cosine_cutoff_equal_nnp_predict(copper, nnp_predict, tmp_path,
                                                               activation):
    """The trained copper weights under another activation n2p2 has (logistic, softplus)."""
    trained, images = copper
    model = nt.BPNN(["Cu"], trained.model.n_features, hidden=trained.model.hidden,
                    activation=activation)
    model.load_state_dict(trained.model.state_dict())
    potential = nt.Potential(trained.descriptor, model, trained.reference_energies)
    potential.feature_shift, potential.feature_scale = trained.feature_shift, trained.feature_scale
    potential.feature_range = trained.feature_range
    structures = _copper_structures(images)
    _assert_agrees(potential, nnp_predict, tmp_path / activation,
                   {k: structures[k] for k in ("cu_emt frame", "cluster")})


# ---------------------------------------------------------------------------------------
# what n2p2 cannot express is refused before anything is written
# ---------------------------------------------------------------------------------------
def _untrained(descriptor, model_class=nt.BPNN, activation="tanh"):
    model = model_class(descriptor.type_labels, descriptor.n_features, hidden=(4,),
                        activation=activation)
    return nt.Potential(descriptor, model)


@pytest.mark.parametrize("make, message", [
    (lambda: _untrained(nt.ACSF(["Cu"], 4.0, g2=[(1.0, 0.0)], g3=[1.0])), "no G3"),
    (lambda: _untrained(nt.ACSF(["H", "O"], 4.0, g2=[(1.0, 0.0)]), nt.SingleNN), "SingleNN"),
    (lambda: _untrained(nt.GMP(["Cu"], orders=(0, 1), sigmas=(0.5, 1.0), r_cut=4.0)), "GMP"),
    (lambda: _untrained(nt.PairACSF(["Cu"], 4.0)), "PairACSF"),
    (lambda: _untrained(nt.ACSF(["Cu"], 4.0, g2=[(1.0, 0.0)]), activation="silu"), "'silu'"),
    (lambda: _untrained(nt.ACSF(["Cu"], 4.0, g2=[(1.0, 0.0)])), "train it first"),
])
def test_unsupported_potentials_are_refused_and_nothing_is_written(tmp_path, make, message):
    folder = tmp_path / "out"
    with pytest.raises(ValueError, match=message):
        write_n2p2(make(), folder)
    assert not folder.exists()


def test_existing_files_are_kept_unless_overwrite(copper, tmp_path):
    potential, _ = copper
    written = write_n2p2(potential, tmp_path)
    assert sorted(p.name for p in written) == ["input.nn", "scaling.data", "weights.029.data"]
    (tmp_path / "scaling.data").write_text("keep me")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_n2p2(potential, tmp_path)
    assert (tmp_path / "scaling.data").read_text() == "keep me"
    write_n2p2(potential, tmp_path, overwrite=True)
    assert (tmp_path / "scaling.data").read_text() == n2p2_files(potential)["scaling.data"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)


def test_a_saved_and_loaded_potential_exports_the_same_files(copper, tmp_path):
    potential, _ = copper
    potential.save(tmp_path / "cu.pt")
    assert n2p2_files(nt.Potential.load(tmp_path / "cu.pt")) == n2p2_files(potential)


def test_an_element_absent_from_training_gets_a_finite_empty_range(copper):
    """Cu–Au potential trained on copper only: Au's rows of scaling.data hold min = max =
    mean (any Au atom extrapolates, as in nnptutor), never inf or nan."""
    _, images = copper
    descriptor = nt.ACSF(["Cu", "Au"], r_cut=4.0, g2=[(1.0, 0.0)], g4=[(0.01, 1, 1)])
    model = nt.BPNN(descriptor.elements, descriptor.n_features, hidden=(4,), activation="tanh")
    potential = _train(nt.Potential(descriptor, model), images[:4], epochs=1)
    files = n2p2_files(potential)
    assert not any(bad in text for text in files.values() for bad in ("inf", "nan"))
    rows = np.array([line.split() for line in files["scaling.data"].splitlines()
                     if not line.startswith("#")], dtype=float)
    gold = rows[rows[:, 0] == 2]  # element 2 = Au (elements sorted by atomic number)
    assert len(gold) == descriptor.n_features
    np.testing.assert_array_equal(gold[:, 2], gold[:, 4])
    np.testing.assert_array_equal(gold[:, 3], gold[:, 4])


def test_files_describe_the_potential(ethanol):
    """One symmetry-function line and one scaling row per feature and element, the
    weights count of each network, and the reference energies, as n2p2 reads them."""
    potential, _ = ethanol
    files = n2p2_files(potential)
    settings = files["input.nn"].splitlines()
    n_features = potential.descriptor.n_features
    for element in ("H", "C", "O"):
        assert sum(line.startswith(f"symfunction_short {element} ") for line in settings) == n_features
        assert f"atom_energy {element} {potential.reference_energies[element]!r}" in settings
    assert "cutoff_type 2" in settings and "global_activation_short p p l" in settings
    rows = [line for line in files["scaling.data"].splitlines() if not line.startswith("#")]
    assert len(rows) == 3 * n_features
    weights = [line for line in files["weights.008.data"].splitlines() if not line.startswith("#")]
    assert len(weights) == sum(p.numel() for p in potential.model.networks["O"].parameters())


# ---------------------------------------------------------------------------------------
# input.data and LAMMPS
# ---------------------------------------------------------------------------------------
def test_input_data_reads_back_with_ase(tmp_path):
    """ASE's reader of the (RuNNer = n2p2) input.data format is an independent check."""
    copper = nt.data.load("cu_emt")
    slab = next(a for a in copper if list(a.pbc) == [True, True, False])
    images = copper[:2] + [slab] + nt.data.load("ethanol_xtb")[:1]
    path = write_input_data(images, tmp_path / "input.data", require_labels=True, r_cut=6.0)
    back = list(read_runnerdata(path.open(), index=slice(None), input_units=Units.ASE))
    assert len(back) == len(images)
    for atoms, read in zip(images, back):
        assert read.get_chemical_symbols() == atoms.get_chemical_symbols()
        assert all(read.pbc) == any(atoms.pbc)  # the slab is written fully periodic
        np.testing.assert_array_equal(read.positions, atoms.positions)
        if any(atoms.pbc):
            np.testing.assert_array_equal(read.cell[:], atoms.cell[:])
        assert read.get_potential_energy() == atoms.get_potential_energy()
        np.testing.assert_array_equal(read.get_forces(), atoms.get_forces())


def test_input_data_refuses_what_n2p2_cannot_read(tmp_path):
    slab = bulk("Cu", cubic=True)
    slab.pbc = [True, True, False]
    with pytest.raises(ValueError, match="periodic along some axes only"):
        write_input_data(slab, tmp_path / "slab.data")
    surface = next(a for a in nt.data.load("cu_emt") if list(a.pbc) == [True, True, False])
    with pytest.raises(ValueError, match="periodic along some axes only"):  # 13.5 Å of vacuum
        write_input_data(surface, tmp_path / "slab.data", r_cut=14.0)
    with pytest.raises(ValueError, match="no stored energy and forces"):
        write_input_data(bulk("Cu"), tmp_path / "unlabelled.data", require_labels=True)
    assert not any(tmp_path.iterdir())


def test_lammps_input_uses_pair_style_hdnnp():
    text = lammps_input("cu_n2p2", ["Cu", "O"], 5.0)
    lines = text.splitlines()
    assert "units           metal" in lines
    assert ("pair_style      hdnnp 5.0 dir cu_n2p2 showew no showewsum 0 resetew no maxew 100 "
            "cflength 1.0 cfenergy 1.0") in lines
    assert "pair_coeff      * * Cu O" in lines
    assert any(line.startswith("mass            2 15.99") for line in lines)
    with pytest.raises(ValueError, match="chemical symbols"):
        lammps_input("cu_n2p2", ["Cu", "X1"], 5.0)

"""Committee mean, spread, calibration and selection helpers (nnptutor/committee.py).

Small on purpose: 8-atom fcc Cu cells labelled by ASE's EMT, a radial-only ACSF (5
features) and networks of 8×8 neurons, so that the whole file runs in well under a minute.
"""
import copy
import warnings

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from scipy.stats import spearmanr

import nnptutor as nt
from nnptutor.committee import (
    Committee,
    select_by_disagreement,
    select_randomly,
    sort_by_trust,
)
from nnptutor.exploration import md_errors
from nnptutor.data import label
from nnptutor.descriptors import ACSF

torch.set_num_threads(1)

G2 = [(0.5, 0.0), (0.5, 2.5), (1.0, 3.2), (2.0, 2.5)]


def make_descriptor():
    return ACSF(["Cu"], r_cut=4.5, g2=G2, method="reference")


def cu_cells(n, rattle, strain, seed):
    """n labelled 8-atom fcc Cu cells, rattled by ``rattle`` Å and strained by up to ``strain``."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
        atoms.set_cell(atoms.cell * (1 + rng.uniform(-strain, strain, 3)), scale_atoms=True)
        atoms.rattle(rattle, seed=int(rng.integers(2**31)))
        images.append(atoms)
    return label(images, EMT(), progress=False)


@pytest.fixture(scope="module")
def seed_images():
    return cu_cells(12, 0.08, 0.02, seed=1)


@pytest.fixture(scope="module")
def trained(seed_images):
    committee = Committee.from_descriptor(make_descriptor(), n_members=4, hidden=(8, 8), seed=0)
    # full-batch L-BFGS converges members on 12 structures (Adam at this size leaves
    # optimisation noise that swamps the spread we want to measure)
    for m, pot in enumerate(committee):
        nt.train(pot, seed_images, epochs=10, optimizer="lbfgs", seed=m, progress=False)
    return committee


def small_committee(n_members=2, seed=0):
    return Committee.from_descriptor(make_descriptor(), n_members=n_members, hidden=(8, 8),
                                     seed=seed)


# --- the committee --------------------------------------------------------------------
def test_identical_members_have_zero_spread(trained, seed_images):
    twin = Committee([trained[0], copy.deepcopy(trained[0])])
    out = twin.predict(seed_images[0])
    alone = trained[0].predict(seed_images[0])
    assert out["energy_std"] == 0 and out["disagreement"] == 0
    assert np.all(out["forces_std"] == 0)
    assert out["energy"] == pytest.approx(alone["energy"], abs=1e-10)
    np.testing.assert_allclose(out["forces"], alone["forces"], atol=1e-10)


def test_mean_and_spread_equal_members_evaluated_one_by_one(trained, seed_images):
    atoms = cu_cells(1, 0.2, 0.03, seed=5)[0]
    out = trained.predict(atoms, warn=False)
    singles = [pot.predict(atoms, warn=False) for pot in trained]
    energies = np.array([s["energy"] for s in singles])
    forces = np.array([s["forces"] for s in singles])  # (M, n_atoms, 3)
    assert out["energy"] == pytest.approx(energies.mean(), abs=1e-9)
    assert out["energy_std"] == pytest.approx(np.std(energies, ddof=1), abs=1e-9)
    assert out["disagreement"] == pytest.approx(np.std(energies, ddof=1) / np.sqrt(8), abs=1e-9)
    np.testing.assert_allclose(out["energies"].sum(), out["energy"], atol=1e-9)
    np.testing.assert_allclose(out["forces"], forces.mean(axis=0), atol=1e-9)
    # eq. 2 written out as a loop over atoms
    expected = [np.sqrt(sum(np.sum((forces[m, i] - forces[:, i].mean(0)) ** 2)
                            for m in range(4)) / 3) for i in range(8)]
    np.testing.assert_allclose(out["forces_std"], expected, atol=1e-9)
    assert out["energy_std"] > 1e-4  # trained from different seeds: members do disagree


def test_mean_forces_are_minus_gradient_of_mean_energy(trained):
    atoms = cu_cells(1, 0.15, 0.02, seed=6)[0]
    forces = trained.predict(atoms, warn=False)["forces"]
    h = 1e-4
    for i, a in [(0, 0), (3, 1), (7, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, a] += h
        minus.positions[i, a] -= h
        fd = -(trained.predict(plus, forces=False, warn=False)["energy"]
               - trained.predict(minus, forces=False, warn=False)["energy"]) / (2 * h)
        assert abs(fd) > 1e-3  # not trivially small
        assert forces[i, a] == pytest.approx(fd, abs=1e-6)


def test_spread_ranks_true_error_on_held_out_cu(trained):
    held_out = []
    for k, amplitude in enumerate([0.02, 0.05, 0.08, 0.11, 0.14, 0.17, 0.2]):
        held_out += cu_cells(3, amplitude, 0.02, seed=100 + k)  # from familiar to far
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nt.ExtrapolationWarning)
        result = trained.evaluate(held_out)
    rho = spearmanr(result["disagreement"], result["energy_error_per_atom"]).statistic
    assert rho > 0.5, rho
    rho_f = spearmanr(result["max_forces_std"], result["max_force_error"]).statistic
    assert rho_f > 0.5, rho_f


def test_calculator_exposes_mean_and_spread(trained, seed_images):
    atoms = seed_images[3].copy()
    atoms.calc = nt.NNPCalculator(trained, warn=False)
    forces = atoms.get_forces()
    assert forces.shape == (8, 3)
    assert atoms.get_potential_energy() == pytest.approx(trained.predict(atoms)["energy"])
    assert atoms.calc.get_property("energy_std", atoms) > 0
    assert atoms.calc.get_property("forces_std", atoms).shape == (8,)
    np.testing.assert_allclose(forces.sum(axis=0), 0, atol=1e-10)  # zero net force


def test_repr_names_members_and_descriptor(trained):
    text = repr(trained)
    assert "4 × BPNN(8, 8)" in text and "shared descriptor ACSF" in text
    assert "4/4 trained" in text


def test_committee_rejects_bad_members(trained):
    with pytest.raises(ValueError, match="at least 2 members"):
        Committee([trained[0]])
    with pytest.raises(ValueError, match=r"potentials\[1\] is a str"):
        Committee([trained[0], "model.pt"])
    other = Committee.from_descriptor(ACSF(["Cu", "Ag"], r_cut=4.5, g2=G2), n_members=2)
    with pytest.raises(ValueError, match="covers elements"):
        Committee([trained[0], other[0]])


# --- selection --------------------------------------------------------------------------
def test_selection_threshold_top_k_and_budget():
    d = np.array([0.1, 0.5, 0.3, 0.05, 0.4])
    np.testing.assert_array_equal(select_by_disagreement(d, threshold=0.2), [1, 4, 2])
    np.testing.assert_array_equal(select_by_disagreement(d, top_k=2), [1, 4])
    np.testing.assert_array_equal(select_by_disagreement(d, threshold=0.2, budget=1), [1])
    assert len(select_by_disagreement(d, threshold=0.6)) == 0
    picked = select_randomly(5, 3, np.random.default_rng(0))
    assert len(set(picked)) == 3 and picked.max() < 5
    with pytest.raises(ValueError, match="threshold and/or top_k"):
        select_by_disagreement(d)
    with pytest.raises(ValueError, match="NaN"):
        select_by_disagreement([0.1, np.nan], top_k=1)


def test_md_errors_compares_frames_with_the_oracle(trained, seed_images):
    out = md_errors(trained, seed_images[0], EMT(), temperature_K=300.0, steps=10,
                    timestep_fs=2.0, sample_interval=5, seed=0)
    assert out["completed"] and out["steps_run"] == 10
    np.testing.assert_array_equal(out["time_fs"], [10.0, 20.0])
    assert np.all(out["max_force_error"] > 0) and np.all(np.isfinite(out["disagreement"]))
    assert np.all(out["max_force_error"] < 5.0)  # a trained model near its data


# --- calibration (Musil et al. 2019) ------------------------------------------------------
def test_calibration_factor_is_the_maximum_likelihood_scale(trained, seed_images):
    committee = copy.deepcopy(trained)
    validation = cu_cells(6, 0.12, 0.02, seed=21)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nt.ExtrapolationWarning)
        raw = committee.evaluate(validation)
        scales = committee.calibrate(validation)
        calibrated = committee.evaluate(validation)
    # eq. (3) written out: alpha^2 = mean(error^2 / sigma^2)
    sigma_e = raw["energy_std_raw"] / raw["n_atoms"]
    alpha_e = np.sqrt(np.mean((raw["energy_error_per_atom"] / sigma_e) ** 2))
    alpha_f = np.sqrt(np.mean((raw["force_error"] / raw["forces_std_raw"]) ** 2))
    assert scales["energy_scale"] == pytest.approx(alpha_e, rel=1e-12)
    assert scales["force_scale"] == pytest.approx(alpha_f, rel=1e-12)
    # a committee of 4 trained on the same data underestimates its force error
    assert scales["force_scale"] > 1
    # calibrated: the mean squared error equals the mean calibrated variance on this set
    f_std = scales["force_scale"] * calibrated["forces_std_raw"]
    assert np.mean(calibrated["force_error"] ** 2 / f_std ** 2) == pytest.approx(1.0, rel=1e-9)
    # the raw spread stays available and predict reports the calibrated one
    atoms = validation[0]
    out = committee.predict(atoms, warn=False)
    np.testing.assert_allclose(out["forces_std"], scales["force_scale"] * out["forces_std_raw"])
    assert out["energy_std"] == pytest.approx(scales["energy_scale"] * out["energy_std_raw"])


def test_save_and_load_keep_members_and_calibration(trained, seed_images, tmp_path):
    committee = copy.deepcopy(trained)
    committee.calibrate(seed_images[:4])
    committee.save(tmp_path / "committee")
    loaded = Committee.load(tmp_path / "committee")
    a = committee.predict(seed_images[5], warn=False)
    b = loaded.predict(seed_images[5], warn=False)
    for key in ("energy", "energy_std", "forces", "forces_std"):
        np.testing.assert_array_equal(a[key], b[key])
    assert loaded.force_scale == committee.force_scale
    with pytest.raises(ValueError, match="no committee.json"):
        Committee.load(tmp_path)


def test_trust_window_sorts_accurate_candidate_failed():
    values = [0.01, 0.05, 0.06, 0.2, 0.31, np.nan]
    np.testing.assert_array_equal(
        sort_by_trust(values, lower=0.05, upper=0.3),
        ["accurate", "accurate", "candidate", "candidate", "failed", "failed"])
    with pytest.raises(ValueError, match="lower <= upper"):
        sort_by_trust(values, lower=0.3, upper=0.05)

"""Committee spread and the query-by-committee loop (nnptutor/committee.py).

Small on purpose: 8-atom fcc Cu cells labelled by ASE's EMT, a radial-only ACSF (5
features) and networks of 8×8 neurons, so that the whole file runs in well under a minute.
"""
import copy
import warnings

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.calculator import all_changes
from ase.calculators.emt import EMT
from scipy.stats import spearmanr

import nnptutor as nt
from nnptutor.committee import (
    ActiveLearningHistory,
    Committee,
    active_learning,
    md_errors,
    select_by_disagreement,
    select_randomly,
)
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


LOOP = dict(n_iterations=1, md_steps=12, sample_interval=3, md_temperature_K=600.0,
            epochs=5, progress=False)


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


# --- the loop ---------------------------------------------------------------------------
def test_only_structures_above_threshold_are_labelled(seed_images):
    kwargs = dict(LOOP, md_starts=seed_images[:2])
    # a first run shows the candidates (iteration 1 depends only on the seed training)
    probe = active_learning(small_committee(), EMT(), seed_images[:6], top_k=1, **kwargs)
    scores = probe.candidate_disagreements[1]
    threshold = float(np.median(scores))
    history = active_learning(small_committee(), EMT(), seed_images[:6], threshold=threshold,
                              **kwargs)
    np.testing.assert_array_equal(history.candidate_disagreements[1], scores)
    labelled = sorted(a.info["al_disagreement"] for a in history.labelled)
    assert labelled == sorted(scores[scores > threshold])
    assert 0 < len(labelled) < len(scores)
    assert history.n_above_threshold[1] == len(labelled)
    assert history.n_train[-1] == 6 + len(labelled)
    # the labels are the oracle's
    atoms = history.labelled[0].copy()
    atoms.calc = EMT()
    assert history.labelled[0].get_potential_energy() == pytest.approx(atoms.get_potential_energy())


def test_loop_is_deterministic_for_a_seed(seed_images):
    kwargs = dict(LOOP, n_iterations=2, top_k=2, md_starts=seed_images[:1])
    first = active_learning(small_committee(), EMT(), seed_images[:4], seed_images[4:8],
                            seed=3, **kwargs)
    second = active_learning(small_committee(), EMT(), seed_images[:4], seed_images[4:8],
                             seed=3, **kwargs)
    assert first.rows() == second.rows()
    for a, b in zip(first.labelled, second.labelled):
        np.testing.assert_array_equal(a.positions, b.positions)
    other = active_learning(small_committee(), EMT(), seed_images[:4], seed_images[4:8],
                            seed=4, **kwargs)
    assert not np.array_equal(other.labelled[0].positions, first.labelled[0].positions)


class FailingEMT(EMT):
    """EMT that raises on its third labelling, like a DFT run that does not converge."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("SCF did not converge")
        super().calculate(atoms, properties, system_changes)


def test_failing_oracle_stops_loop_and_keeps_labels(seed_images):
    with pytest.warns(RuntimeWarning, match="SCF did not converge"):
        history = active_learning(small_committee(), FailingEMT(), seed_images[:4], top_k=4,
                                  md_starts=seed_images[:1], **LOOP)
    assert history.stop_reason.startswith("oracle failed: RuntimeError: SCF did not converge")
    assert len(history.labelled) == 2
    assert len(history.training_images) == 6
    assert all(np.isfinite(a.get_potential_energy()) for a in history.labelled)


def test_converges_when_no_frame_is_disputed(seed_images):
    history = active_learning(small_committee(), EMT(), seed_images[:4], threshold=10.0,
                              md_starts=seed_images[:1], **dict(LOOP, n_iterations=3))
    assert history.converged and history.stop_reason == "converged"
    assert len(history) == 2 and history.n_labelled[-1] == 0


def test_random_selection_and_budget(seed_images):
    history = active_learning(small_committee(), EMT(), seed_images[:4], top_k=3, budget=4,
                              selection="random", md_starts=seed_images[:1],
                              **dict(LOOP, n_iterations=3))
    assert history.n_labelled == [0, 3, 4] and history.stop_reason == "budget"
    assert isinstance(history, ActiveLearningHistory) and "4 labelled" in repr(history)


def test_active_learning_rejects_bad_input(seed_images):
    committee = small_committee()
    with pytest.raises(ValueError, match="threshold and/or top_k"):
        active_learning(committee, EMT(), seed_images[:2])
    with pytest.raises(ValueError, match="oracle must be an ASE calculator"):
        active_learning(committee, "EMT", seed_images[:2], top_k=1)
    with pytest.raises(ValueError, match="seed_images is empty"):
        active_learning(committee, EMT(), [], top_k=1)
    with pytest.raises(ValueError, match="thermostat"):
        active_learning(committee, EMT(), seed_images[:2], top_k=1, thermostat="nose")
    with pytest.raises(ValueError, match="md_temperature_K must be one value or 2"):
        active_learning(committee, EMT(), seed_images[:2], top_k=1,
                        md_temperature_K=[300, 600, 900])
    with pytest.raises(ValueError, match="has no reference energy"):
        unlabelled = [a.copy() for a in seed_images[:2]]
        active_learning(committee, EMT(), unlabelled, top_k=1)


def test_md_errors_compares_frames_with_the_oracle(trained, seed_images):
    out = md_errors(trained, seed_images[0], EMT(), temperature_K=300.0, steps=10,
                    timestep_fs=2.0, sample_interval=5, seed=0)
    assert out["completed"] and out["steps_run"] == 10
    np.testing.assert_array_equal(out["time_fs"], [10.0, 20.0])
    assert np.all(out["max_force_error"] > 0) and np.all(np.isfinite(out["disagreement"]))
    assert np.all(out["max_force_error"] < 5.0)  # a trained model near its data

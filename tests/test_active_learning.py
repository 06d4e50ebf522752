"""The active-learning loop (nnptutor/active_learning.py, nnptutor/exploration.py).

Small on purpose: 8-atom fcc Cu cells labelled by ASE's EMT, a radial-only ACSF (4
features), committees of two 8×8 networks and a few MD steps per iteration.
"""
import concurrent.futures
import json
import math

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import all_changes
from ase.calculators.emt import EMT

import nnptutor as nt
from nnptutor.active_learning import (
    ActiveLearningHistory,
    ActiveLearningSettings,
    active_learning,
    sort_frames,
)
from nnptutor.committee import Committee
from nnptutor.data import label
from nnptutor.descriptors import ACSF

torch.set_num_threads(1)

G2 = [(0.5, 0.0), (0.5, 2.5), (1.0, 3.2), (2.0, 2.5)]
LOOP = dict(n_iterations=2, md_steps=12, sample_interval=3, md_temperature_K=600.0,
            epochs=5, top_k=2, progress=False)


def cu_cells(n, rattle, seed):
    """n labelled 8-atom fcc Cu cells rattled by ``rattle`` Å."""
    images = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))
        atoms.rattle(rattle, seed=seed + k)
        images.append(atoms)
    return label(images, EMT(), progress=False)


@pytest.fixture(scope="module")
def seed_images():
    return cu_cells(8, 0.08, seed=1)


@pytest.fixture(scope="module")
def starts():
    return [bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 1, 1))]


def committee():
    descriptor = ACSF(["Cu"], r_cut=4.5, g2=G2, method="reference")
    return Committee.from_descriptor(descriptor, n_members=2, hidden=(8, 8), seed=0)


class CountingEMT(EMT):
    """EMT that fails on chosen calls: raises ``error`` or returns NaN energies."""

    def __init__(self, fail_on=(), error=RuntimeError("SCF did not converge")):
        super().__init__()
        self.calls, self.fail_on, self.error = 0, set(fail_on), error

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        self.calls += 1
        if self.calls in self.fail_on:
            if self.error is None:
                super().calculate(atoms, properties, system_changes)
                self.results["energy"] = math.nan
                return
            raise self.error
        super().calculate(atoms, properties, system_changes)


def same_run(a: ActiveLearningHistory, b: ActiveLearningHistory):
    assert json.dumps(a.rows) == json.dumps(b.rows)  # NaN-safe, bit-exact floats
    assert len(a.labelled) == len(b.labelled)
    for x, y in zip(a.labelled, b.labelled):
        np.testing.assert_array_equal(x.positions, y.positions)
        assert x.get_potential_energy() == y.get_potential_energy()
        np.testing.assert_array_equal(x.get_forces(), y.get_forces())


# --- settings ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad, message", [
    (dict(thermostat="nose"), "thermostat must be one of"),
    (dict(criterion="rho"), "criterion must be one of"),
    (dict(top_k=0), "top_k must be a positive integer"),
    (dict(md_steps=2.5), "md_steps must be a positive integer"),
    (dict(md_temperature_K=-5), "md_temperature_K must be positive"),
    (dict(lower_forces=0.1), "give both lower_forces and upper_forces"),
    (dict(lower_energy=0.2, upper_energy=0.1), "lower_energy <= upper_energy"),
    (dict(upper_factor=0.5), "upper_factor must be >= 1"),
    (dict(min_distance_fraction=1.2), "min_distance_fraction"),
    (dict(train_kwargs={"epochs": 3}), "train_kwargs may not set 'epochs'"),
])
def test_settings_are_checked_in_one_place(bad, message):
    with pytest.raises(ValueError, match=message):
        ActiveLearningSettings(**bad)


def test_active_learning_rejects_bad_input(seed_images, starts):
    with pytest.raises(ValueError, match="oracle must be an ASE calculator"):
        active_learning(committee(), "EMT", seed_images, starts)
    with pytest.raises(ValueError, match="has no reference energy"):
        active_learning(committee(), EMT(), [a.copy() for a in seed_images], starts)
    with pytest.raises(ValueError, match="starts is empty"):
        active_learning(committee(), EMT(), seed_images, [])
    with pytest.raises(ValueError, match="md_temperature_K must be one value or 1"):
        active_learning(committee(), EMT(), seed_images, starts, md_temperature_K=(300, 600))
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        active_learning(committee(), EMT(), seed_images, starts, top_k=-1)


# --- the trust window -------------------------------------------------------------------
def test_failed_frames_stop_the_trajectory_and_are_never_labelled(seed_images, starts):
    # any spread is above an upper level of 1e-9 eV/Å: every trajectory fails at its first step
    history = active_learning(committee(), EMT(), seed_images, starts, lower_forces=0.0,
                              upper_forces=1e-9, **LOOP)
    for row, frames in zip(history.rows[1:], history.frames[1:]):
        assert row["n_failed"] == len(frames) == 1 and row["md_steps"] == 1
        assert frames[0].info["al_stop"] == "failed"
    assert history.labelled == [] and history.rows[-1]["n_train"] == history.rows[0]["n_train"]


def test_candidates_are_labelled_most_disputed_first(seed_images, starts):
    history = active_learning(committee(), EMT(), seed_images, starts, lower_forces=0.0,
                              upper_forces=1e9, **LOOP)
    for iteration, frames in enumerate(history.frames[1:], start=1):
        spreads = sorted((f.info["al_max_forces_std"] for f in frames), reverse=True)
        chosen = [a.info["al_max_forces_std"] for a in history.labelled
                  if a.info["al_iteration"] == iteration]
        assert chosen == spreads[:2]
        assert history.rows[iteration]["n_candidate"] == len(frames) == 4
    # labels are the oracle's
    atoms = history.labelled[0].copy()
    atoms.calc = EMT()
    assert history.labelled[0].get_potential_energy() == pytest.approx(atoms.get_potential_energy())
    assert "4 labelled" in repr(history) and "candidate" in history.table()


def test_default_levels_follow_the_calibrated_validation_spread(seed_images, starts):
    history = active_learning(committee(), EMT(), seed_images, starts, **dict(LOOP, n_iterations=1))
    committee_now = history.committee
    validation = history.validation_images
    assert len(validation) == 2 and len(history.training_images) == 6 + len(history.labelled)
    result = committee_now.evaluate(validation)
    row = history.rows[-1]  # levels of the training after iteration 1 sort iteration 2
    lower, upper = nt.active_learning.trust_levels(committee_now, validation, history.settings)
    assert lower["forces"] == pytest.approx(result["max_forces_std"].max())
    assert upper["forces"] == pytest.approx(10 * lower["forces"])
    assert row["lower"]["forces"] > 0 and row["upper"]["forces"] == pytest.approx(
        10 * row["lower"]["forces"])


def test_unphysical_frames_are_flagged_whatever_their_spread():
    frames = [Atoms("Cu2", positions=[[0, 0, 0], [0, 0, d]], cell=[8, 8, 8], pbc=True)
              for d in (2.5, 1.2)]
    for frame in frames:
        frame.info.update(al_max_forces_std=0.1, al_energy_std_per_atom=0.001)
    levels = {"energy": 0.01, "forces": 0.05}
    status = sort_frames(frames, levels, {"energy": 1.0, "forces": 1.0}, min_distance=1.8,
                         criterion="both")
    np.testing.assert_array_equal(status, ["candidate", "unphysical"])
    assert frames[1].info["al_status"] == "unphysical"


# --- the oracle -------------------------------------------------------------------------
@pytest.mark.parametrize("error", [RuntimeError("SCF did not converge"), None])
def test_oracle_failures_are_counted_not_labelled(seed_images, starts, error):
    oracle = CountingEMT(fail_on={2}, error=error)
    history = active_learning(committee(), oracle, seed_images, starts, lower_forces=0.0,
                              upper_forces=1e9, **LOOP)
    assert history.column("n_oracle_failed").tolist() == [0, 1, 0]
    assert len(history.labelled) == 3
    assert all(np.isfinite(a.get_potential_energy()) for a in history.labelled)
    assert sum(f.info["al_status"] == "oracle failed" for f in history.frames[1]) == 1


def test_labelling_through_a_process_pool_gives_the_same_run(seed_images, starts):
    kwargs = dict(LOOP, lower_forces=0.0, upper_forces=1e9, n_iterations=1)
    serial = active_learning(committee(), EMT(), seed_images, starts, **kwargs)
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as pool:
        pooled = active_learning(committee(), EMT(), seed_images, starts, executor=pool, **kwargs)
    same_run(serial, pooled)


def test_labelling_on_a_dask_cluster_gives_the_same_run(seed_images, starts):
    distributed = pytest.importorskip("dask.distributed")
    kwargs = dict(LOOP, lower_forces=0.0, upper_forces=1e9, n_iterations=1)
    serial = active_learning(committee(), EMT(), seed_images, starts, **kwargs)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        on_dask = active_learning(committee(), EMT(), seed_images, starts,
                                  executor=client.get_executor(), **kwargs)
    same_run(serial, on_dask)


# --- restart ----------------------------------------------------------------------------
def test_interrupted_run_resumes_to_the_same_result(seed_images, starts, tmp_path):
    kwargs = dict(LOOP, n_iterations=3, lower_forces=0.0, upper_forces=1e9)
    whole = active_learning(committee(), EMT(), seed_images, starts, **kwargs)
    # the 4th oracle call is the 2nd label of iteration 2: interrupted mid-iteration
    with pytest.raises(KeyboardInterrupt):
        active_learning(committee(), CountingEMT(fail_on={4}, error=KeyboardInterrupt()),
                        seed_images, starts, folder=tmp_path / "run", **kwargs)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["iteration_000",
                                                                   "iteration_001"]
    with pytest.raises(ValueError, match="already holds a run"):
        active_learning(committee(), EMT(), seed_images, starts, folder=tmp_path / "run", **kwargs)
    resumed = active_learning(committee(), EMT(), seed_images, starts,
                              resume=tmp_path / "run", **kwargs)
    same_run(whole, resumed)
    probe = seed_images[0]
    a = whole.committee.predict(probe, warn=False)
    b = resumed.committee.predict(probe, warn=False)
    np.testing.assert_array_equal(a["forces"], b["forces"])
    assert a["max_forces_std"] == b["max_forces_std"]


def test_loop_is_deterministic_for_a_seed(seed_images, starts):
    first = active_learning(committee(), EMT(), seed_images, starts, seed=3, **LOOP)
    second = active_learning(committee(), EMT(), seed_images, starts, seed=3, **LOOP)
    same_run(first, second)


def test_budget_and_random_selection(seed_images, starts):
    history = active_learning(committee(), EMT(), seed_images, starts, lower_forces=0.0,
                              upper_forces=1e9, budget=3, selection="random",
                              **dict(LOOP, n_iterations=3))
    assert history.column("n_labelled").tolist() == [0, 2, 3]
    assert history.stop_reason == "budget"

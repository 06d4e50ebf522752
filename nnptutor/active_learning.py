r"""Query-by-committee active learning that survives its own exploration.

The multi-NNP loop of Artrith & Behler (2012) with DP-GEN's trust window (Zhang et al.,
Comput. Phys. Commun. 253, 107206 (2020)), in five steps per iteration:

1. **train** every member on all labelled structures and calibrate the committee on a
   held-out validation set (:meth:`Committee.calibrate`, Musil et al. 2019);
2. **explore**: MD with member 0 from the user's starting structures
   (:func:`nnptutor.exploration.explore`);
3. **sort** every MD frame by its calibrated spread into *accurate* (below the lower trust
   level), *candidate* (between) and *failed* (above the upper level: the trajectory
   stopped there), and flag *unphysical* frames (atoms closer than
   ``min_distance_fraction`` × the shortest distance in the training data);
4. **select and label** the most disputed candidates with the oracle, through any
   :class:`concurrent.futures.Executor`; a structure the oracle fails on is counted, not
   labelled; failed and unphysical frames are never labelled;
5. **record**: a row of :class:`ActiveLearningHistory` and, with ``folder``, the new labels
   (extxyz) and the committee's files, so that ``resume=folder`` continues an interrupted run.

**Default trust levels** (when not given) are re-derived after every training from the
committee's own calibrated spread on the validation set: the lower level is
``lower_factor`` × the largest calibrated spread of a validation structure (a frame the
committee is no less sure of than of data it was validated on is accurate), the upper level
``upper_factor`` × the lower one (DP-GEN's typical ratio of 0.05 to 0.15–0.3 eV/Å is 3–6).

Taught in notebooks/07_committee_learning.ipynb.
"""
from __future__ import annotations

import concurrent.futures
import io
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from nnptutor.committee import ACCURATE, CANDIDATE, FAILED, Committee, sort_by_trust
from nnptutor.data import stored_positions
from nnptutor.exploration import ENERGY_KEY, FORCE_KEY, THERMOSTATS, explore, shortest_distance

UNPHYSICAL = "unphysical"
#: Criterion -> atoms.info keys of the spreads it uses (calibrated, eV/atom and eV/Å).
CRITERIA = {"forces": (FORCE_KEY,), "energy": (ENERGY_KEY,), "both": (ENERGY_KEY, FORCE_KEY)}


# ---------------------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ActiveLearningSettings:
    """Everything :func:`active_learning` can be told, checked in one place.

    Parameters
    ----------
    n_iterations : int
        Label–retrain iterations after the first training.
    md_temperature_K : float or tuple of float
        Thermostat temperature [K], one value or one per start.
    md_steps : int
        Steps per trajectory.
    timestep_fs : float
        MD time step [fs].
    sample_interval : int
        Every this many steps a frame is kept and sorted.
    thermostat : {"langevin", "berendsen", "nve"}
    friction_per_fs : float
        Langevin friction [1/fs].
    md_driver : {"first", "mean"}
        Member 0's forces (Artrith & Behler) or the committee mean's drive the MD.
    n_trajectories : int, optional
        Trajectories per iteration (default: one per start, at most 4); starts are taken in turn.
    criterion : {"forces", "energy", "both"}
        Spread that sorts frames: calibrated max_i σ_F,i [eV/Å] (DP-GEN's), σ_E/N
        [eV/atom], or both (a frame takes the worse of the two verdicts).
    lower_energy, upper_energy : float, optional
        Trust levels on σ_E/N [eV/atom]; default: the rule in the module docstring.
    lower_forces, upper_forces : float, optional
        Trust levels on max_i σ_F,i [eV/Å]; default: the same rule.
    lower_factor, upper_factor : float
        The default rule's factors (upper_factor ≥ 1).
    min_distance_fraction : float
        Frames with two atoms closer than this × the shortest distance in the training
        data are unphysical (0 switches the check off).
    validation_fraction : float
        Share of ``seed_images`` held out for calibration (at least one structure).
    top_k : int
        At most this many labels per iteration (the most disputed candidates).
    budget : int, optional
        At most this many labels in all.
    selection : {"committee", "random"}
        "random" labels as many candidates as the committee rule would, drawn uniformly.
    epochs : int
        Training epochs per member and iteration.
    retrain : {"scratch", "continue"}
        New weights each iteration or continue from the current ones.
    train_kwargs : dict
        Further arguments of :func:`nnptutor.train`.
    seed : int
        Seeds the split, MD, training and random selection: the same seed, the same run.
    progress : bool
        A tqdm progress bar over iterations.
    """

    n_iterations: int = 5
    md_temperature_K: float | tuple = 300.0
    md_steps: int = 200
    timestep_fs: float = 2.0
    sample_interval: int = 10
    thermostat: str = "langevin"
    friction_per_fs: float = 0.02
    md_driver: str = "first"
    n_trajectories: int | None = None
    criterion: str = "forces"
    lower_energy: float | None = None
    upper_energy: float | None = None
    lower_forces: float | None = None
    upper_forces: float | None = None
    lower_factor: float = 1.0
    upper_factor: float = 10.0
    min_distance_fraction: float = 0.75
    validation_fraction: float = 0.2
    top_k: int = 4
    budget: int | None = None
    selection: str = "committee"
    epochs: int = 100
    retrain: str = "scratch"
    train_kwargs: dict = field(default_factory=dict)
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        choices = {"thermostat": THERMOSTATS, "md_driver": ("first", "mean"),
                   "criterion": tuple(CRITERIA), "selection": ("committee", "random"),
                   "retrain": ("scratch", "continue")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("n_iterations", "md_steps", "sample_interval", "epochs", "top_k",
                     "budget", "n_trajectories"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        temperatures = np.atleast_1d(np.asarray(self.md_temperature_K, dtype=float))
        if temperatures.ndim != 1 or not (temperatures > 0).all():
            raise ValueError(f"md_temperature_K must be positive, got {self.md_temperature_K!r}")
        for name in ("timestep_fs", "friction_per_fs", "lower_factor"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not self.upper_factor >= 1:
            raise ValueError(f"upper_factor must be >= 1, got {self.upper_factor!r}")
        for kind in ("energy", "forces"):
            lower, upper = getattr(self, f"lower_{kind}"), getattr(self, f"upper_{kind}")
            if (lower is None) != (upper is None):
                raise ValueError(f"give both lower_{kind} and upper_{kind}, or neither")
            if lower is not None and not 0 <= lower <= upper:
                raise ValueError(f"need 0 <= lower_{kind} <= upper_{kind}, got {lower}, {upper}")
        if not 0 <= self.min_distance_fraction < 1:
            raise ValueError("min_distance_fraction must lie in [0, 1)")
        if not 0 < self.validation_fraction < 1:
            raise ValueError("validation_fraction must lie in (0, 1)")
        for reserved in ("epochs", "seed", "progress", "val_images"):
            if reserved in self.train_kwargs:
                raise ValueError(f"train_kwargs may not set {reserved!r} (active_learning sets it)")

    def temperatures(self, n_starts: int) -> np.ndarray:
        """Temperature of each start [K], shape (n_starts,)."""
        t = np.atleast_1d(np.asarray(self.md_temperature_K, dtype=float))
        if len(t) not in (1, n_starts):
            raise ValueError(f"md_temperature_K must be one value or {n_starts} (one per "
                             f"start), got {len(t)}")
        return np.broadcast_to(t, (n_starts,)).copy()


# ---------------------------------------------------------------------------------------
# history
# ---------------------------------------------------------------------------------------
COLUMNS = ("iteration", "n_train", "n_labelled", "n_accurate", "n_candidate", "n_failed",
           "n_unphysical", "n_oracle_failed", "md_steps", "lower", "upper",
           "energy_rmse_meV_per_atom", "force_rmse")


@dataclass
class ActiveLearningHistory:
    """What :func:`active_learning` did: one row per iteration (row 0: the first training).

    Attributes
    ----------
    rows : list of dict
        Per iteration: ``n_train`` training structures after it, ``n_labelled`` labels so
        far, MD frames sorted as ``n_accurate``/``n_candidate``/``n_failed``/
        ``n_unphysical``, ``n_oracle_failed`` structures the oracle could not label,
        ``md_steps`` run, the trust levels ``lower``/``upper`` used to sort the frames
        ({"energy": eV/atom, "forces": eV/Å}), and the committee mean's test errors
        ``energy_rmse_meV_per_atom`` and ``force_rmse`` [eV/Å] after the training (NaN
        without test images).
    frames : list of list of ase.Atoms
        Every sorted MD frame per iteration (row 0: none); ``info["al_status"]`` says how
        it was sorted, ``info["al_energy_std_per_atom"]`` [eV/atom] and
        ``info["al_max_forces_std"]`` [eV/Å] why.
    labelled : list of ase.Atoms
        Structures labelled by the oracle, with energy and forces; ``info["al_iteration"]``.
    training_images : list of ase.Atoms
        Training part of the seed images followed by ``labelled``.
    validation_images : list of ase.Atoms
        The seed images held out for calibration.
    committee : Committee
    settings : ActiveLearningSettings
    stop_reason : str
        "iterations" or "budget".
    """

    rows: list = field(default_factory=list)
    frames: list = field(default_factory=list)
    labelled: list = field(default_factory=list)
    training_images: list = field(default_factory=list)
    validation_images: list = field(default_factory=list)
    committee: object = None
    settings: object = None
    stop_reason: str = ""

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> np.ndarray:
        """One column over the iterations, shape (n_rows,)."""
        if name not in COLUMNS:
            raise ValueError(f"unknown column {name!r}; choose from {COLUMNS}")
        return np.array([row[name] for row in self.rows])

    def table(self) -> str:
        """A plain-text table: labels, frame counts by trust, test errors."""
        lines = [f"{'iter':>4} {'train':>5} {'new':>4} {'accurate':>8} {'candidate':>9} "
                 f"{'failed':>6} {'unphys':>6} {'E [meV/at]':>10} {'F [eV/Å]':>8}"]
        previous = 0
        for r in self.rows:
            lines.append(
                f"{r['iteration']:>4} {r['n_train']:>5} {r['n_labelled'] - previous:>4} "
                f"{r['n_accurate']:>8} {r['n_candidate']:>9} {r['n_failed']:>6} "
                f"{r['n_unphysical']:>6} {r['energy_rmse_meV_per_atom']:>10.1f} "
                f"{r['force_rmse']:>8.3f}")
            previous = r["n_labelled"]
        return "\n".join(lines)

    def plot(self, axes=None):
        """Frames by trust per iteration (stacked bars) and the test errors.

        Parameters
        ----------
        axes : two matplotlib Axes, optional

        Returns
        -------
        the two Axes
        """
        import matplotlib.pyplot as plt

        if axes is None:
            _, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        it = self.column("iteration")[1:]
        bottom = np.zeros(len(it))
        for name in ("accurate", "candidate", "failed", "unphysical"):
            counts = self.column(f"n_{name}")[1:]
            axes[0].bar(it, counts, bottom=bottom, label=name)
            bottom += counts
        axes[0].set(xlabel="iteration", ylabel="MD frames", xticks=it)
        axes[0].legend()
        axes[1].plot(self.column("iteration"), self.column("energy_rmse_meV_per_atom"),
                     marker="o", label="energy [meV/atom]")
        axes[1].plot(self.column("iteration"), 1000 * self.column("force_rmse"),
                     marker="s", label="forces [meV/Å]")
        axes[1].set(xlabel="iteration", ylabel="test RMSE", yscale="log",
                    xticks=self.column("iteration"))
        axes[1].legend()
        return axes

    def __repr__(self) -> str:
        if not self.rows:
            return "ActiveLearningHistory(empty)"
        first, last = self.rows[0], self.rows[-1]
        counts = {k: sum(r[f"n_{k}"] for r in self.rows)
                  for k in ("accurate", "candidate", "failed", "unphysical", "oracle_failed")}
        return (f"ActiveLearningHistory({len(self) - 1} iterations, {last['n_labelled']} "
                f"labelled; frames: {counts['accurate']} accurate, {counts['candidate']} "
                f"candidate, {counts['failed']} failed, {counts['unphysical']} unphysical; "
                f"{counts['oracle_failed']} oracle failures; test "
                f"{first['energy_rmse_meV_per_atom']:.3g} -> "
                f"{last['energy_rmse_meV_per_atom']:.3g} meV/atom; stop: {self.stop_reason})")


# ---------------------------------------------------------------------------------------
# labelling through an executor
# ---------------------------------------------------------------------------------------
class InProcessExecutor(concurrent.futures.Executor):
    """A :class:`concurrent.futures.Executor` that runs each call at once, in order.

    Exceptions of the call are stored in its future; a ``KeyboardInterrupt`` (or any other
    ``BaseException``) propagates, so an interrupted run stops where it is.
    """

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


def label_one(atoms: Atoms, oracle) -> tuple[float, np.ndarray]:
    """Energy [eV] and forces (n_atoms, 3) [eV/Å] of ``atoms`` by ``oracle`` (any ASE calculator).

    Module level, so that process pools and Dask can ship it to their workers. The oracle
    is reset first, so that its result does not depend on what it computed before (ASE's
    EMT, for one, reuses its neighbour list), and it labels the positions exactly as the
    extxyz file stores them (:func:`nnptutor.data.stored_positions`).
    """
    work = stored_positions(Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc))
    if callable(getattr(oracle, "reset", None)):
        oracle.reset()
    work.calc = oracle
    energy, forces = float(work.get_potential_energy()), np.array(work.get_forces(), dtype=float)
    if not (np.isfinite(energy) and np.isfinite(forces).all()):
        raise ValueError("the oracle returned a non-finite energy or force")
    return energy, forces


def _as_extxyz(images: Sequence[Atoms]) -> str:
    import ase.io

    text = io.StringIO()
    ase.io.write(text, list(images), format="extxyz")
    return text.getvalue()


def _from_extxyz(text: str) -> list[Atoms]:
    import ase.io

    return ase.io.read(io.StringIO(text), index=":", format="extxyz") if text else []


# ---------------------------------------------------------------------------------------
# the five steps
# ---------------------------------------------------------------------------------------
def _derived_seed(*keys) -> int:
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0] >> 1)


def trust_levels(committee: Committee, validation: Sequence[Atoms],
                 settings: ActiveLearningSettings) -> tuple[dict, dict]:
    """Lower and upper trust levels: given in ``settings``, or the default rule.

    Returns
    -------
    lower, upper : dict
        {"energy": σ_E/N [eV/atom], "forces": max_i σ_F,i [eV/Å]}, calibrated spreads.
    """
    result = committee.evaluate(validation)
    spread = {"energy": result["energy_std"] / result["n_atoms"],
              "forces": result["max_forces_std"]}
    lower, upper = {}, {}
    for kind in ("energy", "forces"):
        given = getattr(settings, f"lower_{kind}")
        lower[kind] = given if given is not None else settings.lower_factor * float(spread[kind].max())
        given = getattr(settings, f"upper_{kind}")
        upper[kind] = given if given is not None else settings.upper_factor * lower[kind]
    return lower, upper


def train_and_calibrate(committee: Committee, history: ActiveLearningHistory, iteration: int,
                        settings: ActiveLearningSettings) -> tuple[dict, dict]:
    """Steps 1 and 5: train every member on all labels, calibrate, derive the trust levels."""
    committee.train(history.training_images, epochs=settings.epochs,
                    seed=_derived_seed(settings.seed, iteration),
                    fresh=settings.retrain == "scratch", progress=False, **settings.train_kwargs)
    committee.calibrate(history.validation_images)
    return trust_levels(committee, history.validation_images, settings)


def explore_starts(committee: Committee, starts: Sequence[Atoms], upper: dict,
                   min_distance: float, iteration: int,
                   settings: ActiveLearningSettings) -> tuple[list, int]:
    """Step 2: the iteration's trajectories (starts taken in turn); returns (frames, MD steps)."""
    rng = np.random.default_rng(np.random.SeedSequence([settings.seed, iteration, 7]))
    temperatures = settings.temperatures(len(starts))
    n_trajectories = settings.n_trajectories or min(len(starts), 4)
    used = CRITERIA[settings.criterion]
    frames, steps = [], 0
    for t in range(n_trajectories):
        k = ((iteration - 1) * n_trajectories + t) % len(starts)
        new, n, _ = explore(
            committee, starts[k], temperatures[k], settings.md_steps, settings.timestep_fs,
            settings.sample_interval, rng, thermostat=settings.thermostat,
            friction_per_fs=settings.friction_per_fs, md_driver=settings.md_driver,
            upper_energy=upper["energy"] if ENERGY_KEY in used else np.inf,
            upper_forces=upper["forces"] if FORCE_KEY in used else np.inf,
            min_distance=min_distance)
        frames += new
        steps += n
    return frames, steps


def sort_frames(frames: Sequence[Atoms], lower: dict, upper: dict, min_distance: float,
                criterion: str) -> np.ndarray:
    """Step 3: "accurate", "candidate", "failed" or "unphysical" per frame (also in ``info``).

    A frame takes the worst verdict of the spreads ``criterion`` uses; a frame with two atoms
    closer than ``min_distance`` [Å] is unphysical whatever its spread.
    """
    worst = {ACCURATE: 0, CANDIDATE: 1, FAILED: 2}
    status = np.full(len(frames), ACCURATE, dtype=object)
    for key in CRITERIA[criterion]:
        kind = "energy" if key == ENERGY_KEY else "forces"
        values = [frame.info[key] for frame in frames]
        for k, verdict in enumerate(sort_by_trust(values, lower[kind], upper[kind])):
            if worst[verdict] > worst[status[k]]:
                status[k] = verdict
    for k, frame in enumerate(frames):
        if frame.info.get("al_stop") == UNPHYSICAL or shortest_distance(frame) < min_distance:
            status[k] = UNPHYSICAL
        frame.info["al_status"] = str(status[k])
    return status.astype(str)


def select_and_label(frames: Sequence[Atoms], status: np.ndarray, lower: dict, oracle,
                     executor, iteration: int, settings: ActiveLearningSettings,
                     labels_left: int | None) -> tuple[list, int]:
    """Step 4: label the most disputed candidates; returns (labelled structures, oracle failures).

    Candidates are ranked by their spread over the lower level (the larger ratio of the two
    spreads for ``criterion="both"``). The oracle runs through ``executor``; a structure it
    fails on (an exception or a non-finite result) is counted and not labelled.
    """
    candidates = np.flatnonzero(status == CANDIDATE)
    n = min(x for x in (settings.top_k, labels_left, len(candidates)) if x is not None)
    if settings.selection == "random":
        rng = np.random.default_rng(np.random.SeedSequence([settings.seed, iteration, 13]))
        chosen = np.sort(rng.choice(candidates, size=n, replace=False)) if n else candidates[:0]
    else:
        keys = [(key, "energy" if key == ENERGY_KEY else "forces")
                for key in CRITERIA[settings.criterion]]
        score = np.array([max(frames[c].info[key] / max(lower[kind], 1e-12) for key, kind in keys)
                          for c in candidates])
        chosen = candidates[np.argsort(-score, kind="stable")[:n]]
    futures = [executor.submit(label_one, frames[c], oracle) for c in chosen]
    labelled, n_failed = [], 0
    for c, future in zip(chosen, futures):
        try:
            energy, forces = future.result()
        except Exception:  # any failure of the reference method: count it, label nothing
            frames[c].info["al_status"] = "oracle failed"
            n_failed += 1
            continue
        atoms = stored_positions(frames[c])
        atoms.info["al_iteration"] = iteration
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        labelled.append(atoms)
    # train on exactly what the extxyz file holds, so a resumed run is bit-identical
    return _from_extxyz(_as_extxyz(labelled)) if labelled else [], n_failed


def record(history: ActiveLearningHistory, folder: Path | None, iteration: int, row: dict,
           frames: list, new: list) -> None:
    """Step 5: append the row; with a folder, save frames, labels, committee, then the row.

    The row file is written last: an iteration whose ``row.json`` exists is complete.
    """
    history.rows.append(row)
    history.frames.append(frames)
    if folder is None:
        return
    where = folder / f"iteration_{iteration:03d}"
    where.mkdir(parents=True, exist_ok=True)
    (where / "frames.extxyz").write_text(_as_extxyz(frames))
    (where / "labelled.extxyz").write_text(_as_extxyz(new))
    history.committee.save(where / "committee")
    (where / "row.json").write_text(json.dumps(row, indent=1))


def _row(history, committee, iteration, status, steps, n_oracle_failed, lower, upper,
         test_images) -> dict:
    errors = {"energy_rmse_meV_per_atom": math.nan, "force_rmse": math.nan}
    if test_images:
        errors = committee.evaluate(test_images)
    counts = {name: int(np.sum(status == name)) for name in (ACCURATE, CANDIDATE, FAILED, UNPHYSICAL)}
    return dict(iteration=iteration, n_train=len(history.training_images),
                n_labelled=len(history.labelled), n_accurate=counts[ACCURATE],
                n_candidate=counts[CANDIDATE], n_failed=counts[FAILED],
                n_unphysical=counts[UNPHYSICAL], n_oracle_failed=n_oracle_failed,
                md_steps=steps, lower=lower, upper=upper,
                energy_rmse_meV_per_atom=float(errors["energy_rmse_meV_per_atom"]),
                force_rmse=float(errors["force_rmse"]))


def _begin(committee, seed_images, settings, test_images, folder, resume):
    """A fresh history trained on the seed images (row 0), or one read back from ``resume``.

    Returns the history and the first iteration still to run.
    """
    order = np.random.default_rng(np.random.SeedSequence([settings.seed, 3])).permutation(
        len(seed_images))
    n_val = max(1, math.ceil(settings.validation_fraction * len(seed_images)))
    history = ActiveLearningHistory(committee=committee, settings=settings)
    history.validation_images = [seed_images[k] for k in sorted(order[:n_val])]
    history.training_images = [seed_images[k] for k in sorted(order[n_val:])]
    done = sorted(folder.glob("iteration_*/row.json")) if resume is not None else []
    if done:
        for path in done:
            history.rows.append(json.loads(path.read_text()))
            history.frames.append(_from_extxyz((path.parent / "frames.extxyz").read_text()))
            new = _from_extxyz((path.parent / "labelled.extxyz").read_text())
            history.labelled += new
            history.training_images += new
        saved = Committee.load(done[-1].parent / "committee")
        committee.members = saved.members
        committee.energy_scale, committee.force_scale = saved.energy_scale, saved.force_scale
        return history, history.rows[-1]["iteration"] + 1
    lower, upper = train_and_calibrate(committee, history, 0, settings)
    no_frames = np.array([], dtype=str)
    record(history, folder, 0, _row(history, committee, 0, no_frames, 0, 0, lower, upper,
                                     test_images), [], [])
    return history, 1


def _check_inputs(committee, oracle, seed_images, starts, settings, folder, resume):
    if not isinstance(committee, Committee):
        raise ValueError(f"committee must be a Committee, got {type(committee).__name__}")
    if not callable(getattr(oracle, "get_potential_energy", None)):
        raise ValueError(f"oracle must be an ASE calculator, got {type(oracle).__name__}")
    seed_images = [seed_images] if isinstance(seed_images, Atoms) else list(seed_images)
    starts = [starts] if isinstance(starts, Atoms) else list(starts)
    if len(seed_images) < 2:
        raise ValueError("seed_images needs at least 2 labelled structures (training and "
                         "validation)")
    for k, atoms in enumerate(seed_images):
        if atoms.calc is None or "energy" not in getattr(atoms.calc, "results", {}):
            raise ValueError(f"seed_images[{k}] has no reference energy (label it first, "
                             "e.g. with nnptutor.data.label)")
    if not starts:
        raise ValueError("starts is empty: MD needs at least one starting structure")
    settings.temperatures(len(starts))
    if folder is not None and resume is not None and Path(folder) != Path(resume):
        raise ValueError("give folder or resume (the folder to continue), not two folders")
    folder = Path(resume if resume is not None else folder) if (folder or resume) else None
    if resume is not None and not Path(resume).is_dir():
        raise ValueError(f"nothing to resume: {str(resume)!r} is not a folder")
    if resume is None and folder is not None and any(folder.glob("iteration_*")):
        raise ValueError(f"{str(folder)!r} already holds a run: pass resume={str(folder)!r} "
                         "to continue it, or name another folder")
    return seed_images, starts, folder


# ---------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------
def active_learning(committee: Committee, oracle, seed_images: Sequence[Atoms],
                    starts: Sequence[Atoms], settings: ActiveLearningSettings | None = None,
                    *, test_images: Sequence[Atoms] | None = None, folder=None, resume=None,
                    executor: concurrent.futures.Executor | None = None,
                    **options) -> ActiveLearningHistory:
    """Query by committee in MD with a trust window: train, explore, sort, label, record.

    Parameters
    ----------
    committee : Committee
        Trained in place (with ``retrain="scratch"`` its members are replaced each time).
    oracle : ase Calculator
        The reference method (EMT, TBLite, DFT, ...); must be picklable for process pools.
    seed_images : list of ase.Atoms
        Labelled structures (energy and forces); ``validation_fraction`` of them is held
        out for calibration.
    starts : list of ase.Atoms
        Starting structures of the MD (need no labels).
    settings : ActiveLearningSettings, optional
        Defaults otherwise; ``**options`` override single fields (``top_k=3``, ...).
    test_images : list of ase.Atoms, optional
        Labelled structures never trained on: the committee mean's errors on them are
        recorded after every training.
    folder : str or path, optional
        After every iteration the frames, new labels (extxyz) and committee files go to
        ``folder/iteration_<k>/``.
    resume : str or path, optional
        A folder of an interrupted run: continue after its last complete iteration, with
        the same arguments; the result equals an uninterrupted run bit for bit.
    executor : concurrent.futures.Executor, optional
        Runs the oracle calls (a process pool, ``dask.distributed.Client.get_executor()``,
        ...); default: in this process, in order.

    Returns
    -------
    ActiveLearningHistory
    """
    from tqdm.auto import tqdm

    settings = replace(settings or ActiveLearningSettings(), **options)
    seed_images, starts, folder = _check_inputs(committee, oracle, seed_images, starts,
                                                settings, folder, resume)
    executor = executor or InProcessExecutor()
    history, first = _begin(committee, seed_images, settings, test_images, folder, resume)
    lower, upper = trust_levels(committee, history.validation_images, settings)
    history.stop_reason = "iterations"
    for iteration in tqdm(range(first, settings.n_iterations + 1), desc="active learning",
                          unit="iter", disable=not settings.progress):
        min_distance = settings.min_distance_fraction * min(
            shortest_distance(a) for a in history.training_images + history.validation_images)
        frames, steps = explore_starts(committee, starts, upper, min_distance, iteration,
                                       settings)                                  # step 2
        status = sort_frames(frames, lower, upper, min_distance, settings.criterion)  # step 3
        left = None if settings.budget is None else settings.budget - len(history.labelled)
        new, n_oracle_failed = select_and_label(frames, status, lower, oracle, executor,
                                                iteration, settings, left)        # step 4
        history.labelled += new
        history.training_images += new
        next_levels = train_and_calibrate(committee, history, iteration, settings)  # 1, 5
        record(history, folder, iteration,
               _row(history, committee, iteration, status, steps, n_oracle_failed, lower,
                    upper, test_images), frames, new)
        lower, upper = next_levels
        if settings.budget is not None and len(history.labelled) >= settings.budget:
            history.stop_reason = "budget"
            break
    return history

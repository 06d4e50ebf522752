r"""Committees of potentials and query-by-committee active learning.

A committee is M potentials trained on the same data from different random seeds. Where
the data pinned the function down, the members agree; where a structure lies away from the
data, each member extrapolates its own way and they disagree. The spread is therefore a
cheap, label-free estimate of the error (Seung, Opper & Sompolinsky 1992; Artrith & Behler
2012; Smith et al. 2018):

.. math::

    \bar E = \frac1M \sum_m E_m, \qquad
    \sigma_E = \sqrt{\frac{1}{M-1}\sum_m (E_m - \bar E)^2}, \qquad
    \rho = \sigma_E / \sqrt{N}                                              \tag{1}

.. math::

    \sigma_{F,i} = \sqrt{\frac{1}{M-1}\sum_m \lVert \mathbf F_{m,i} - \bar{\mathbf F}_i \rVert^2}
                                                                            \tag{2}

ρ ("disagreement", eq. 1) divides by √N as TorchANI does: if the atomic errors were
independent, σ_E would grow like √N, so ρ compares structures of different sizes.

:func:`active_learning` is the multi-NNP loop of Artrith & Behler (2012), in five steps:

1. train M members on a small seed set (different seeds);
2. run MD with one member (or the committee mean) to propose new structures;
3. let the committee judge every MD frame by its disagreement ρ;
4. label the frames where the members disagree most with the reference method (the oracle);
5. add them to the training set, retrain every member, and repeat until no MD frame is
   above the threshold (converged), the labelling budget is spent, or the iterations end.

Taught in notebooks/07_committee_learning.ipynb.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from ase import Atoms, units

from nnptutor.exceptions import ExtrapolationWarning
from nnptutor.potential import Potential, warn_extrapolation

#: Criterion name -> (result key, unit) of the disagreement used for selection.
CRITERIA = {"energy": ("disagreement", "eV"), "forces": ("max_forces_std", "eV/Å")}
THERMOSTATS = ("langevin", "berendsen", "nve")


# ---------------------------------------------------------------------------------------
# the committee
# ---------------------------------------------------------------------------------------
class Committee:
    """Several potentials evaluated together: mean prediction and spread (eqs. 1–2).

    Members that share one descriptor (equal ``to_dict()``) are featurised once per
    structure; only the small networks run M times.

    Parameters
    ----------
    potentials : sequence of Potential
        At least two members with the same elements.

    Attributes
    ----------
    members : list of Potential
    extra_properties : tuple of str
        Results beyond a single potential's, offered to :class:`nnptutor.NNPCalculator`.

    Examples
    --------
    >>> committee = Committee.from_descriptor(ACSF.default(["Cu"]), n_members=4)  # doctest: +SKIP
    >>> atoms.calc = NNPCalculator(committee)                                      # doctest: +SKIP
    >>> atoms.calc.get_property("energy_std", atoms)                               # doctest: +SKIP
    """

    extra_properties = ("energy_std", "disagreement", "forces_std", "max_forces_std",
                        "member_energies", "member_forces")

    def __init__(self, potentials: Sequence[Potential]):
        if isinstance(potentials, Potential) or not isinstance(potentials, Sequence):
            raise ValueError("potentials must be a list of Potential objects")
        potentials = list(potentials)
        if len(potentials) < 2:
            raise ValueError(f"a committee needs at least 2 members, got {len(potentials)}")
        for k, pot in enumerate(potentials):
            if not isinstance(pot, Potential):
                raise ValueError(f"potentials[{k}] is a {type(pot).__name__}, not a Potential")
        elements = set(potentials[0].descriptor.elements)
        for k, pot in enumerate(potentials[1:], start=1):
            if set(pot.descriptor.elements) != elements:
                raise ValueError(
                    f"potentials[{k}] covers elements {sorted(pot.descriptor.elements)}, "
                    f"potentials[0] covers {sorted(elements)}"
                )
        self.members = potentials

    @classmethod
    def from_descriptor(cls, descriptor, n_members: int = 4, model: str = "BPNN",
                        hidden=(32, 32), activation: str = "tanh", seed: int = 0) -> "Committee":
        """Untrained members sharing ``descriptor``, initialised from seeds ``seed .. seed+M-1``.

        Parameters
        ----------
        descriptor : Descriptor
        n_members : int
            M ≥ 2.
        model : {"BPNN", "SingleNN"}
        hidden, activation
            As in :class:`nnptutor.BPNN`.
        seed : int
            Seed of member 0's initial weights.
        """
        from nnptutor.models import MODELS

        if model not in MODELS:
            raise ValueError(f"unknown model {model!r}; choose from {sorted(MODELS)}")
        return cls([
            Potential(descriptor, MODELS[model](descriptor.type_labels, descriptor.n_features,
                                                hidden=hidden, activation=activation,
                                                seed=seed + m))
            for m in range(int(n_members))
        ])

    # --- container protocol -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.members)

    def __getitem__(self, index) -> Potential:
        return self.members[index]

    def __iter__(self):
        return iter(self.members)

    @property
    def n_members(self) -> int:
        return len(self.members)

    @property
    def descriptor(self):
        """The descriptor all members share, or None if they use different ones."""
        first = self.members[0].descriptor
        return first if all(p.descriptor == first for p in self.members) else None

    def _groups(self) -> list[list[int]]:
        """Member indices grouped by equal descriptors (each group is featurised once)."""
        groups: list[list[int]] = []
        for m, pot in enumerate(self.members):
            for group in groups:
                if self.members[group[0]].descriptor == pot.descriptor:
                    group.append(m)
                    break
            else:
                groups.append([m])
        return groups

    # --- training (steps 1 and 5) ------------------------------------------------------
    def train(self, images, epochs: int = 100, seed: int = 0, fresh: bool = False,
              progress: bool = True, **train_kwargs) -> list:
        """Train every member on the same structures, each from its own seed.

        Parameters
        ----------
        images : list of ase.Atoms, FeaturizedSet, or list of FeaturizedSet
            Labelled structures; featurised once per descriptor, not once per member
            (members with different descriptors need one FeaturizedSet each).
        epochs : int
            Passed to :func:`nnptutor.train` (a fixed count keeps runs reproducible).
        seed : int
            Member m uses a seed drawn from ``(seed, m)``: for its batch order and, with
            ``fresh``, for its new initial weights.
        fresh : bool
            Replace every member by an untrained copy (same architecture, new weights)
            before training; otherwise training continues from the current weights.
        progress : bool
            Progress bar over the members.
        **train_kwargs
            Further arguments of :func:`nnptutor.train` (``optimizer``, ``force_weight``, ...).

        Returns
        -------
        list of TrainingHistory
            One per member.
        """
        from tqdm.auto import tqdm

        from nnptutor.training import FeaturizedSet, featurize, train

        for reserved in ("epochs", "seed", "progress"):
            if reserved in train_kwargs:
                raise ValueError(f"give {reserved!r} directly, not in train_kwargs")
        sets = [images] if isinstance(images, FeaturizedSet) else [
            x for x in images if isinstance(x, FeaturizedSet)]
        data = {}
        for group in self._groups():
            descriptor = self.members[group[0]].descriptor
            matching = [x for x in sets if x.descriptor == descriptor]
            if sets and not matching:
                raise ValueError(f"no featurised set for members {group} ({descriptor!r})")
            data[group[0]] = (matching[0] if matching
                              else featurize(descriptor, images, progress=False))
        first_of = {m: group[0] for group in self._groups() for m in group}
        histories = []
        for m in tqdm(range(self.n_members), desc="training members", disable=not progress):
            member_seed = int(np.random.SeedSequence([seed, m]).generate_state(1)[0] >> 1)
            pot = self.members[m]
            if fresh:
                model = type(pot.model)(**dict(pot.model.config(), seed=member_seed),
                                        dtype=str(pot.model.dtype).replace("torch.", ""))
                pot = self.members[m] = Potential(pot.descriptor, model)
            histories.append(train(pot, data[first_of[m]], epochs=epochs, seed=member_seed,
                                   progress=False, **train_kwargs))
        return histories

    # --- prediction ---------------------------------------------------------------------
    def predict(self, atoms: Atoms, forces: bool = True, warn: bool = True) -> dict:
        """Committee mean and spread for one structure.

        Parameters
        ----------
        atoms : ase.Atoms
            Positions in Å.
        forces : bool
            Also compute forces and their spread.
        warn : bool
            Issue :class:`nnptutor.ExtrapolationWarning` if any member extrapolates.

        Returns
        -------
        dict
            ``energy`` float, mean [eV]; ``energies`` (n_atoms,) mean per-atom energies
            [eV]; ``energy_std`` float, σ_E [eV]; ``disagreement`` float, ρ = σ_E/√N [eV]
            (eq. 1); ``member_energies`` (M,) [eV]; ``extrapolating`` (n_atoms,) bool, True
            where any member extrapolates. With ``forces``: ``forces`` (n_atoms, 3) mean
            [eV/Å]; ``forces_std`` (n_atoms,) σ_F,i [eV/Å] (eq. 2); ``max_forces_std``
            float [eV/Å]; ``member_forces`` (M, n_atoms, 3) [eV/Å].
        """
        from nnptutor.structures import check_atoms

        check_atoms(atoms, self.members[0].descriptor.elements)
        n_atoms = len(atoms)
        member_energy = np.zeros(self.n_members)
        member_energies = np.zeros((self.n_members, n_atoms))
        member_forces = np.zeros((self.n_members, n_atoms, 3))
        extrapolating = np.zeros(n_atoms, dtype=bool)
        for group in self._groups():
            descriptor = self.members[group[0]].descriptor
            if forces and len(group) > 1:
                # sparse dG/dR once, then a cheap contraction per member (a descriptor's own
                # vjp may redo work on every call, which M members would pay M times)
                values, derivatives = descriptor.compute_with_derivatives(atoms)
                vjp = derivatives.vjp
            elif forces:
                values, vjp = descriptor.compute_with_vjp(atoms)
            else:
                values = descriptor.compute(atoms)
            types_np = np.asarray(descriptor.center_types(atoms), dtype=np.int64)
            for m in group:
                out = _member_prediction(self.members[m], atoms, values, types_np,
                                         vjp if forces else None)
                member_energy[m] = out["energy"]
                member_energies[m] = out["energies"]
                if forces:
                    member_forces[m] = out["forces"]
                extrapolating |= out["extrapolating"]

        energy_std = float(member_energy.std(ddof=1))
        result = {
            "energy": float(member_energy.mean()),
            "energies": member_energies.mean(axis=0),
            "energy_std": energy_std,
            "disagreement": energy_std / np.sqrt(n_atoms),
            "member_energies": member_energy,
            "extrapolating": extrapolating,
        }
        if forces:
            mean_forces = member_forces.mean(axis=0)  # (n_atoms, 3)
            deviation = ((member_forces - mean_forces) ** 2).sum(axis=(0, 2))  # (n_atoms,)
            forces_std = np.sqrt(deviation / (self.n_members - 1))
            result.update(forces=mean_forces, forces_std=forces_std,
                          max_forces_std=float(forces_std.max()), member_forces=member_forces)
        if warn and extrapolating.any():
            warn_extrapolation(extrapolating)
        return result

    def evaluate(self, images, progress: bool = False) -> dict:
        """Committee errors and spread on labelled structures (featurised once per descriptor).

        Parameters
        ----------
        images : list of ase.Atoms or FeaturizedSet
            With reference energies and forces.
        progress : bool
            Progress bar while featurising.

        Returns
        -------
        dict
            Scalars: ``energy_rmse_meV_per_atom`` and ``force_rmse`` [eV/Å] of the committee
            mean. Per structure, shape (n_structures,): ``energy_per_atom_ref``,
            ``energy_per_atom_pred`` (mean) [eV/atom], ``energy_error_per_atom``
            |mean − ref|/N [eV/atom], ``energy_std`` σ_E [eV], ``disagreement`` ρ [eV],
            ``max_forces_std`` [eV/Å], ``max_force_error`` (largest |ΔF| of an atom) [eV/Å].
        """
        from nnptutor.training import FeaturizedSet, evaluate, featurize

        per_member = [None] * self.n_members
        data = None
        for group in self._groups():
            descriptor = self.members[group[0]].descriptor
            if isinstance(images, FeaturizedSet) and images.descriptor == descriptor:
                data = images
            elif isinstance(images, FeaturizedSet):
                raise ValueError("images were featurised with a descriptor no member uses")
            else:
                data = featurize(descriptor, images, progress=progress)
            for m in group:
                per_member[m] = evaluate(self.members[m], data)
        n_atoms = data.n_atoms.astype(float)  # (n_structures,)
        e_pred = np.stack([r["energy_per_atom_pred"] for r in per_member])  # (M, n_structures)
        e_ref = per_member[0]["energy_per_atom_ref"]
        energy_std = e_pred.std(axis=0, ddof=1) * n_atoms  # σ of total energies
        e_mean = e_pred.mean(axis=0)
        f_pred = np.stack([r["forces_pred"] for r in per_member])  # (M, n_atoms_total, 3)
        f_ref = per_member[0]["forces_ref"]
        f_mean = f_pred.mean(axis=0)
        f_std = np.sqrt(((f_pred - f_mean) ** 2).sum(axis=(0, 2)) / (self.n_members - 1))
        f_err = np.linalg.norm(f_mean - f_ref, axis=1)  # (n_atoms_total,)
        split = np.cumsum(data.n_atoms)[:-1]
        return {
            "energy_rmse_meV_per_atom": 1000 * float(np.sqrt(np.mean((e_mean - e_ref) ** 2))),
            "force_rmse": float(np.sqrt(np.mean((f_mean - f_ref) ** 2))),
            "energy_per_atom_ref": e_ref,
            "energy_per_atom_pred": e_mean,
            "energy_error_per_atom": np.abs(e_mean - e_ref),
            "energy_std": energy_std,
            "disagreement": energy_std / np.sqrt(n_atoms),
            "max_forces_std": np.array([s.max() for s in np.split(f_std, split)]),
            "max_force_error": np.array([e.max() for e in np.split(f_err, split)]),
        }

    def __repr__(self) -> str:
        shared = self.descriptor
        first = self.members[0]
        trained = sum(p.feature_range is not None for p in self.members)
        where = (f"shared descriptor {shared!r} (featurised once)" if shared is not None
                 else f"{len(self._groups())} different descriptors")
        return (
            f"Committee({self.n_members} × {type(first.model).__name__}"
            f"{tuple(first.model.hidden)}, {where}, {trained}/{self.n_members} trained)"
        )


def _member_prediction(pot: Potential, atoms, values, types_np, vjp) -> dict:
    """One member on precomputed features: what :meth:`Potential.predict` does after featurising.

    Returns energy [eV], energies (n_atoms,) [eV], extrapolating (n_atoms,) bool and, if
    ``vjp`` is given, forces (n_atoms, 3) [eV/Å].
    """
    return pot.predict_from_features(atoms, values, types_np, vjp, warn=False)


# ---------------------------------------------------------------------------------------
# selection (step 4), pure functions
# ---------------------------------------------------------------------------------------
def select_by_disagreement(disagreement, threshold: float | None = None,
                           top_k: int | None = None, budget: int | None = None) -> np.ndarray:
    """Indices of the candidates to label: above ``threshold``, largest first, at most
    ``top_k`` and at most ``budget``.

    Parameters
    ----------
    disagreement : array, shape (n_candidates,)
        ρ [eV] or max σ_F [eV/Å] of every candidate.
    threshold : float, optional
        Only candidates with disagreement strictly above it are labelled (same unit).
    top_k : int, optional
        At most this many (the most disputed).
    budget : int, optional
        Labels left; caps the count like ``top_k``.

    Returns
    -------
    ndarray of int, shape (n_selected,)
        Candidate indices, largest disagreement first (ties: lower index first).
    """
    disagreement = np.asarray(disagreement, dtype=float)
    if disagreement.ndim != 1:
        raise ValueError(f"disagreement must be 1-D, got shape {disagreement.shape}")
    if threshold is None and top_k is None:
        raise ValueError("give a threshold and/or top_k to select candidates")
    if np.isnan(disagreement).any():
        raise ValueError("disagreement contains NaN")
    order = np.argsort(-disagreement, kind="stable")
    if threshold is not None:
        order = order[disagreement[order] > threshold]
    limit = min(x for x in (top_k, budget, len(order)) if x is not None)
    return order[:max(int(limit), 0)]


def select_randomly(n_candidates: int, n_select: int, rng: np.random.Generator) -> np.ndarray:
    """``n_select`` distinct candidate indices drawn uniformly (the baseline), sorted."""
    n_select = min(int(n_select), int(n_candidates))
    return np.sort(rng.choice(n_candidates, size=n_select, replace=False)).astype(int)


# ---------------------------------------------------------------------------------------
# history
# ---------------------------------------------------------------------------------------
@dataclass
class ActiveLearningHistory:
    """What :func:`active_learning` did, one row per iteration (row 0: seed training).

    Attributes
    ----------
    iteration : list of int
    n_train : list of int
        Training structures after the iteration (seed + labelled).
    n_labelled : list of int
        Structures labelled by the oracle so far (cumulative).
    n_candidates : list of int
        MD frames judged in the iteration (0 in row 0).
    n_above_threshold : list of int
        Candidates with disagreement above the threshold (all of them without one).
    max_disagreement, mean_disagreement : list of float
        Over the iteration's candidates, in the criterion's unit (NaN in row 0).
    md_steps : list of int
        MD steps run in the iteration; ``md_stopped`` trajectories ended early (disagreement
        above ``md_stop`` or an invalid structure).
    energy_rmse_meV_per_atom, force_rmse : list of float
        Committee-mean errors on the test set after the iteration's training [meV/atom],
        [eV/Å] (NaN without a test set).
    test_disagreement : list of float
        Mean ρ over the test set [eV].
    candidate_disagreements : list of ndarray
        Every candidate's disagreement, per iteration.
    labelled : list of ase.Atoms
        Structures labelled by the oracle, in order; ``info["al_iteration"]`` and
        ``info["al_disagreement"]`` say when and why.
    training_images : list of ase.Atoms
        Seed images followed by ``labelled``: everything a restart needs.
    converged : bool
        True if an iteration found no candidate above the threshold.
    stop_reason : str
        "converged", "budget", "iterations" or "oracle failed: ...".
    criterion, unit : str
    settings : dict
    committee : Committee
        The committee, trained on ``training_images``.
    """

    iteration: list = field(default_factory=list)
    n_train: list = field(default_factory=list)
    n_labelled: list = field(default_factory=list)
    n_candidates: list = field(default_factory=list)
    n_above_threshold: list = field(default_factory=list)
    max_disagreement: list = field(default_factory=list)
    mean_disagreement: list = field(default_factory=list)
    md_steps: list = field(default_factory=list)
    md_stopped: list = field(default_factory=list)
    energy_rmse_meV_per_atom: list = field(default_factory=list)
    force_rmse: list = field(default_factory=list)
    test_disagreement: list = field(default_factory=list)
    candidate_disagreements: list = field(default_factory=list)
    labelled: list = field(default_factory=list)
    training_images: list = field(default_factory=list)
    converged: bool = False
    stop_reason: str = ""
    criterion: str = "energy"
    unit: str = "eV"
    settings: dict = field(default_factory=dict)
    committee: object = None
    time_s: float = 0.0

    _COLUMNS = ("iteration", "n_train", "n_labelled", "n_candidates", "n_above_threshold",
                "max_disagreement", "mean_disagreement", "md_steps", "md_stopped",
                "energy_rmse_meV_per_atom", "force_rmse", "test_disagreement")

    def _append(self, **row):
        for name in self._COLUMNS:
            getattr(self, name).append(row[name])

    def __len__(self) -> int:
        return len(self.iteration)

    def rows(self) -> list[dict]:
        """The table as a list of dicts, one per iteration."""
        return [{name: getattr(self, name)[k] for name in self._COLUMNS} for k in range(len(self))]

    def table(self, digits: int = 1) -> str:
        """A plain-text table: labels, candidates, disagreement [meV or meV/Å], test errors."""
        scale, unit = (1000, "meV") if self.unit == "eV" else (1000, "meV/Å")
        head = (f"{'iter':>4} {'train':>5} {'new':>4} {'cand':>5} {'>thr':>5} "
                f"{'max ρ [' + unit + ']':>14} {'E [meV/at]':>11} {'F [eV/Å]':>9}")
        lines = [head]
        previous = 0
        for r in self.rows():
            new = r["n_labelled"] - previous
            previous = r["n_labelled"]
            lines.append(
                f"{r['iteration']:>4} {r['n_train']:>5} {new:>4} {r['n_candidates']:>5} "
                f"{r['n_above_threshold']:>5} {scale * r['max_disagreement']:>14.{digits}f} "
                f"{r['energy_rmse_meV_per_atom']:>11.{digits}f} {r['force_rmse']:>9.3f}"
            )
        return "\n".join(lines)

    def plot(self, ax=None, quantity: str = "energy", label: str | None = None, **kwargs):
        """Test error of the committee mean against the number of labelled structures.

        Parameters
        ----------
        ax : matplotlib Axes, optional
        quantity : {"energy", "forces"}
        label : str, optional
            Legend entry (e.g. "committee" or "random").

        Returns
        -------
        matplotlib Axes
        """
        import matplotlib.pyplot as plt

        if quantity not in ("energy", "forces"):
            raise ValueError(f"quantity must be 'energy' or 'forces', got {quantity!r}")
        if ax is None:
            _, ax = plt.subplots()
        y = self.energy_rmse_meV_per_atom if quantity == "energy" else self.force_rmse
        ax.plot(self.n_labelled, y, marker="o", label=label, **kwargs)
        ax.set_xlabel("structures labelled by the oracle")
        ax.set_ylabel("test energy RMSE [meV/atom]" if quantity == "energy"
                      else "test force RMSE [eV/Å]")
        if label is not None:
            ax.legend()
        return ax

    def __repr__(self) -> str:
        if not len(self):
            return "ActiveLearningHistory(empty)"
        return (
            f"ActiveLearningHistory({len(self) - 1} iterations, {self.n_labelled[-1]} labelled, "
            f"{self.n_train[-1]} training structures, stop: {self.stop_reason}; test "
            f"{self.energy_rmse_meV_per_atom[0]:.3g} -> {self.energy_rmse_meV_per_atom[-1]:.3g} "
            f"meV/atom)"
        )


# ---------------------------------------------------------------------------------------
# MD exploration (step 2) and judging (step 3)
# ---------------------------------------------------------------------------------------
class _StopTrajectory(Exception):
    """Raised by the MD observer when the committee's disagreement passes ``md_stop``."""


class _Driver:
    """A ``predict`` for :class:`NNPCalculator` that moves atoms with one member (or the
    mean) while the whole committee watches: one featurisation gives both."""

    extra_properties = Committee.extra_properties

    def __init__(self, committee: Committee, member: int | None):
        self.committee, self.member = committee, member

    def predict(self, atoms, forces=True, warn=False):
        out = self.committee.predict(atoms, forces=True, warn=False)
        if self.member is not None:
            m = self.member
            out = dict(out, energy=float(out["member_energies"][m]),
                       forces=out["member_forces"][m])
        return out


def _explore(committee, start: Atoms, temperature_K: float, steps: int, timestep_fs: float,
             sample_interval: int, thermostat: str, friction_per_fs: float,
             md_driver: str, md_stop, criterion: str, rng) -> tuple[list, list, int, bool]:
    """One MD trajectory; returns (frames, disagreements, steps run, stopped early)."""
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.nvtberendsen import NVTBerendsen
    from ase.md.velocitydistribution import Stationary

    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # ASE < 3.29
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    from nnptutor.calculator import NNPCalculator

    key = CRITERIA[criterion][0]
    atoms = Atoms(start.numbers, start.positions, cell=start.cell, pbc=start.pbc)
    atoms.calc = NNPCalculator(_Driver(committee, 0 if md_driver == "first" else None),
                               warn=False)
    thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    Stationary(atoms)
    dt = timestep_fs * units.fs
    if thermostat == "langevin":
        # fixcm=False plus a FixCom constraint: ASE's recommended way to stop drift
        atoms.set_constraint(FixCom())
        dyn = Langevin(atoms, dt, temperature_K=temperature_K,
                       friction=friction_per_fs / units.fs, fixcm=False, rng=rng)
    elif thermostat == "berendsen":
        dyn = NVTBerendsen(atoms, dt, temperature_K=temperature_K,
                           taut=1.0 / friction_per_fs * units.fs)
    else:
        dyn = VelocityVerlet(atoms, dt)

    frames, scores = [], []

    def observe():
        if dyn.nsteps == 0:
            return
        value = float(atoms.calc.results[key])
        stop = md_stop is not None and value > md_stop
        if dyn.nsteps % sample_interval == 0 or stop:
            frame = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
            frame.info.update(md_step=int(dyn.nsteps), temperature_K=float(temperature_K))
            frames.append(frame)
            scores.append(value)
        if stop:
            raise _StopTrajectory

    dyn.attach(observe, interval=1)
    stopped = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        try:
            dyn.run(steps)
        except _StopTrajectory:
            stopped = True
        except ValueError:  # atoms collapsed or flew to NaN: an unusable model, not a bug
            stopped = True
    return frames, scores, int(dyn.nsteps), stopped


def md_errors(committee: Committee, start: Atoms, oracle, temperature_K: float = 900.0,
              steps: int = 100, timestep_fs: float = 5.0, sample_interval: int = 10,
              md_driver: str = "mean", seed: int = 0) -> dict:
    """Run Langevin MD with the committee and compare sampled frames with the oracle.

    A test of what matters in practice: does MD with the potential stay physical, and how
    wrong are its forces along the way? A committee trained outside its data typically
    shows growing errors and disagreement, and may end with collapsed atoms.

    Parameters
    ----------
    committee : Committee
    start : ase.Atoms
        Starting structure (no labels needed).
    oracle : ase Calculator
        Reference for the sampled frames.
    temperature_K : float
        Thermostat temperature [K].
    steps : int
        MD steps.
    timestep_fs : float
        [fs].
    sample_interval : int
        Compare every this many steps.
    md_driver : {"mean", "first"}
        Forces of the committee mean or of member 0.
    seed : int
        Initial velocities and Langevin noise.

    Returns
    -------
    dict
        ``time_fs``, ``disagreement`` ρ [eV], ``max_forces_std`` [eV/Å],
        ``max_force_error`` (largest |F − F_ref| of an atom) [eV/Å] and
        ``energy_error_per_atom`` (mean − ref)/N [eV], each shape (n_frames,);
        ``steps_run`` int; ``completed`` bool (False if the atoms collapsed on the way).
    """
    from nnptutor.data import label

    if md_driver not in ("first", "mean"):
        raise ValueError(f"md_driver must be 'first' or 'mean', got {md_driver!r}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    frames, _, steps_run, stopped = _explore(
        committee, start, temperature_K, steps, timestep_fs, sample_interval, "langevin",
        0.02, md_driver, None, "energy", rng)
    reference = label(frames, oracle, progress=False)
    out = {k: [] for k in ("time_fs", "disagreement", "max_forces_std", "max_force_error",
                           "energy_error_per_atom")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        for frame, ref in zip(frames, reference):
            pred = committee.predict(frame, warn=False)
            out["time_fs"].append(frame.info["md_step"] * timestep_fs)
            out["disagreement"].append(pred["disagreement"])
            out["max_forces_std"].append(pred["max_forces_std"])
            out["max_force_error"].append(
                float(np.linalg.norm(pred["forces"] - ref.get_forces(), axis=1).max()))
            out["energy_error_per_atom"].append(
                (pred["energy"] - ref.get_potential_energy()) / len(frame))
    out = {k: np.asarray(v, dtype=float) for k, v in out.items()}
    out.update(steps_run=steps_run, completed=not stopped and steps_run == steps)
    return out


# ---------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------
def _retrain(committee: Committee, data_by_group, iteration: int, seed: int, epochs: int,
             retrain: str, train_kwargs: dict):
    """Steps 1 and 5: every member trained on all data, from seeds drawn from (seed, iteration)."""
    iteration_seed = int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0] >> 1)
    committee.train([data for _, data in data_by_group], epochs=epochs, seed=iteration_seed,
                    fresh=retrain == "scratch", progress=False, **train_kwargs)


def _concat(a, b):
    """Two FeaturizedSets with the same descriptor as one."""
    from nnptutor.training import FeaturizedSet

    if a is None:
        return b
    return FeaturizedSet(
        a.descriptor, a.values + b.values, a.types + b.types, a.center + b.center,
        a.neighbor + b.neighbor, a.derivatives + b.derivatives,
        np.concatenate([a.n_atoms, b.n_atoms]), np.concatenate([a.energies, b.energies]),
        a.forces + b.forces, np.concatenate([a.compositions, b.compositions]),
    )


def active_learning(
    committee: Committee,
    oracle,
    seed_images: Sequence[Atoms],
    test_images: Sequence[Atoms] | None = None,
    *,
    n_iterations: int = 5,
    md_starts: Sequence[Atoms] | None = None,
    md_temperature_K: float | Sequence[float] = 300.0,
    md_steps: int = 200,
    timestep_fs: float = 2.0,
    sample_interval: int = 10,
    thermostat: str = "langevin",
    friction_per_fs: float = 0.02,
    md_driver: str = "first",
    md_stop: float | None = None,
    n_trajectories: int | None = None,
    criterion: str = "energy",
    threshold: float | None = None,
    top_k: int | None = None,
    budget: int | None = None,
    selection: str = "committee",
    epochs: int = 100,
    retrain: str = "scratch",
    train_seed_images: bool = True,
    train_kwargs: dict | None = None,
    seed: int = 0,
    progress: bool = True,
) -> ActiveLearningHistory:
    """Query by committee in MD: the label–retrain loop of Artrith & Behler (2012).

    Step 1 trains the members on ``seed_images``; each iteration then runs MD (step 2),
    scores every sampled frame by the committee's disagreement (step 3), labels the
    selected frames with ``oracle`` (step 4) and retrains every member on all labels
    (step 5). The loop stops when no frame is above ``threshold`` (converged), when
    ``budget`` labels are spent, after ``n_iterations``, or when the oracle fails.

    Parameters
    ----------
    committee : Committee
        Trained in place: with ``retrain="scratch"`` its members are replaced by new ones.
    oracle : ase Calculator
        The reference method (EMT, TBLite, DFT, ...); it labels energy and forces.
    seed_images : list of ase.Atoms
        Labelled seed structures (energy and forces attached, as from
        :func:`nnptutor.data.load` or :func:`nnptutor.data.label`).
    test_images : list of ase.Atoms, optional
        Labelled structures never trained on; the committee mean's errors on them are
        recorded after every iteration.
    n_iterations : int
        Maximum number of label–retrain iterations after the seed training.
    md_starts : list of ase.Atoms, optional
        Starting structures of the MD runs (need no labels); default ``seed_images``.
        Trajectories take them in turn across iterations.
    md_temperature_K : float or list of float
        Thermostat temperature [K], one value or one per entry of ``md_starts``.
    md_steps : int
        Steps per trajectory.
    timestep_fs : float
        MD time step [fs].
    sample_interval : int
        Every this many steps a frame becomes a candidate.
    thermostat : {"langevin", "berendsen", "nve"}
    friction_per_fs : float
        Langevin friction [1/fs]; Berendsen uses τ = 1/friction [fs].
    md_driver : {"first", "mean"}
        Move atoms with member 0's forces (Artrith & Behler) or the committee mean's.
    md_stop : float, optional
        End a trajectory at the first step whose disagreement exceeds this (the frame is
        kept as a candidate): a model far outside its data produces unphysical structures.
    n_trajectories : int, optional
        Trajectories per iteration; default ``min(len(md_starts), 4)``.
    criterion : {"energy", "forces"}
        Disagreement used: ρ = σ_E/√N [eV] (eq. 1) or max_i σ_F,i [eV/Å] (eq. 2).
    threshold : float, optional
        Label only frames above it, in the criterion's unit; convergence means no frame
        above it.
    top_k : int, optional
        At most this many labels per iteration (the most disputed first).
    budget : int, optional
        At most this many labels in total.
    selection : {"committee", "random"}
        "random" labels as many frames as the committee rule would, drawn uniformly from the
        same candidates: the baseline with the same labelling budget.
    epochs : int
        Training epochs per member and iteration (a fixed count, so runs are reproducible).
    retrain : {"scratch", "continue"}
        New weights each iteration (from new seeds), or continue from the current ones.
    train_seed_images : bool
        Step 1; set False if the committee is already trained on ``seed_images``.
    train_kwargs : dict, optional
        Further arguments of :func:`nnptutor.train` (``force_weight``, ``lr``, ...).
    seed : int
        Seeds the MD velocities and thermostat, member training and random selection:
        the same seed gives the same history.
    progress : bool
        Progress bar over the iterations.

    Returns
    -------
    ActiveLearningHistory
    """
    from tqdm.auto import tqdm

    from nnptutor.data import label
    from nnptutor.training import featurize

    # --- validate at the boundary --------------------------------------------------------
    if not isinstance(committee, Committee):
        raise ValueError(f"committee must be a Committee, got {type(committee).__name__}")
    if not callable(getattr(oracle, "get_potential_energy", None)):
        raise ValueError(f"oracle must be an ASE calculator, got {type(oracle).__name__}")
    seed_images = [seed_images] if isinstance(seed_images, Atoms) else list(seed_images)
    if not seed_images:
        raise ValueError("seed_images is empty: step 1 needs labelled structures")
    md_starts = seed_images if md_starts is None else list(md_starts)
    if not md_starts:
        raise ValueError("md_starts is empty")
    temperatures = np.broadcast_to(np.asarray(md_temperature_K, dtype=float), (len(md_starts),)) \
        if np.ndim(md_temperature_K) == 0 or len(md_temperature_K) == len(md_starts) else None
    if temperatures is None:
        raise ValueError(f"md_temperature_K must be one value or {len(md_starts)} (one per "
                         f"md_start), got {len(md_temperature_K)}")
    if (temperatures <= 0).any():
        raise ValueError("md_temperature_K must be positive")
    if thermostat not in THERMOSTATS:
        raise ValueError(f"thermostat must be one of {THERMOSTATS}, got {thermostat!r}")
    if md_driver not in ("first", "mean"):
        raise ValueError(f"md_driver must be 'first' or 'mean', got {md_driver!r}")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {sorted(CRITERIA)}, got {criterion!r}")
    if selection not in ("committee", "random"):
        raise ValueError(f"selection must be 'committee' or 'random', got {selection!r}")
    if retrain not in ("scratch", "continue"):
        raise ValueError(f"retrain must be 'scratch' or 'continue', got {retrain!r}")
    if threshold is None and top_k is None:
        raise ValueError("give a threshold and/or top_k to select structures for labelling")
    for name, value in (("n_iterations", n_iterations), ("md_steps", md_steps),
                        ("sample_interval", sample_interval), ("epochs", epochs)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name, value in (("top_k", top_k), ("budget", budget), ("n_trajectories", n_trajectories)):
        if value is not None and (int(value) != value or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if timestep_fs <= 0 or friction_per_fs <= 0:
        raise ValueError("timestep_fs and friction_per_fs must be positive")
    n_trajectories = min(len(md_starts), 4) if n_trajectories is None else int(n_trajectories)
    train_kwargs = dict(train_kwargs or {})
    for reserved in ("epochs", "seed", "progress", "val_images"):
        if reserved in train_kwargs:
            raise ValueError(f"train_kwargs may not set {reserved!r} (active_learning sets it)")

    settings = dict(n_iterations=n_iterations, md_temperature_K=temperatures.tolist(),
                    md_steps=md_steps, timestep_fs=timestep_fs, sample_interval=sample_interval,
                    thermostat=thermostat, friction_per_fs=friction_per_fs,
                    md_driver=md_driver, md_stop=md_stop, n_trajectories=n_trajectories,
                    criterion=criterion, threshold=threshold, top_k=top_k, budget=budget,
                    selection=selection, epochs=epochs, retrain=retrain,
                    train_kwargs=train_kwargs, seed=seed)
    key, unit = CRITERIA[criterion]
    history = ActiveLearningHistory(criterion=criterion, unit=unit, settings=settings,
                                    committee=committee)
    history.training_images = list(seed_images)
    start_time = time.perf_counter()

    # featurise once per descriptor group; new labels are appended as they come
    groups = committee._groups()
    data = [(g, featurize(committee.members[g[0]].descriptor, seed_images, progress=False))
            for g in groups]
    test_data = None
    if test_images is not None:
        test_data = featurize(committee.members[0].descriptor, test_images, progress=False)

    def record(iteration, frames_scores=(), md_steps_run=0, md_stopped=0):
        scores = np.asarray(frames_scores, dtype=float)
        above = int((scores > threshold).sum()) if threshold is not None else len(scores)
        errors = {"energy_rmse_meV_per_atom": np.nan, "force_rmse": np.nan,
                  "disagreement": np.array([np.nan])}
        if test_images is not None:
            errors = committee.evaluate(test_data if committee.descriptor is not None
                                        else test_images)
        history._append(
            iteration=iteration, n_train=len(history.training_images),
            n_labelled=len(history.labelled), n_candidates=len(scores),
            n_above_threshold=above,
            max_disagreement=float(scores.max()) if len(scores) else np.nan,
            mean_disagreement=float(scores.mean()) if len(scores) else np.nan,
            md_steps=md_steps_run, md_stopped=md_stopped,
            energy_rmse_meV_per_atom=errors["energy_rmse_meV_per_atom"],
            force_rmse=errors["force_rmse"],
            test_disagreement=float(np.mean(errors["disagreement"])),
        )
        history.candidate_disagreements.append(scores)

    # --- step 1: train the members on the seed set ---------------------------------------
    bar = tqdm(total=n_iterations + 1, desc="active learning", unit="iter", disable=not progress)
    try:
        if train_seed_images:
            _retrain(committee, data, 0, seed, epochs, retrain, train_kwargs)
        record(0)
        bar.update(1)
        history.stop_reason = "iterations"
        trajectory = 0
        for iteration in range(1, n_iterations + 1):
            rng = np.random.default_rng(np.random.SeedSequence([seed, iteration, 7]))
            # --- step 2: MD with one member; step 3: the committee judges every frame
            frames, scores, steps_run, n_stopped = [], [], 0, 0
            for _ in range(n_trajectories):
                k = trajectory % len(md_starts)
                trajectory += 1
                f, s, n, stopped = _explore(committee, md_starts[k], temperatures[k], md_steps,
                                            timestep_fs, sample_interval, thermostat,
                                            friction_per_fs, md_driver, md_stop, criterion, rng)
                frames += f
                scores += s
                steps_run += n
                n_stopped += int(stopped)
            scores_arr = np.asarray(scores, dtype=float)
            if threshold is not None and not (scores_arr > threshold).any():
                history.converged, history.stop_reason = True, "converged"
                record(iteration, scores, steps_run, n_stopped)
                bar.update(1)
                break
            # --- step 4: label the disputed frames
            left = None if budget is None else budget - len(history.labelled)
            chosen = select_by_disagreement(scores_arr, threshold, top_k, left)
            if selection == "random":
                chosen = select_randomly(len(frames), len(chosen), rng)
            new = []
            for c in chosen:
                try:
                    (labelled,) = label([frames[c]], oracle, progress=False)
                except Exception as exc:  # any failure of the reference method
                    history.stop_reason = (f"oracle failed: {type(exc).__name__}: {exc} "
                                           f"(iteration {iteration}, candidate {int(c)})")
                    warnings.warn(f"active_learning stopped, {history.stop_reason}; "
                                  f"{len(history.labelled)} labelled structures kept",
                                  RuntimeWarning, stacklevel=2)
                    return history
                labelled.info.update(al_iteration=iteration, al_disagreement=float(scores_arr[c]))
                new.append(labelled)
                history.labelled.append(labelled)
                history.training_images.append(labelled)
            # --- step 5: retrain every member on everything labelled so far
            if new:
                data = [(g, _concat(d, featurize(d.descriptor, new, progress=False)))
                        for g, d in data]
                _retrain(committee, data, iteration, seed, epochs, retrain, train_kwargs)
            record(iteration, scores, steps_run, n_stopped)
            bar.update(1)
            bar.set_postfix_str(f"labelled {len(history.labelled)}, test E "
                                f"{history.energy_rmse_meV_per_atom[-1]:.3g} meV/atom")
            if budget is not None and len(history.labelled) >= budget:
                history.stop_reason = "budget"
                break
    finally:
        bar.close()
        history.time_s = time.perf_counter() - start_time
    return history

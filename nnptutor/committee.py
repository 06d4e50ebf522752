r"""Committees of potentials: mean prediction, spread, calibration and selection.

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

A few members trained on the same data share blind spots, so the raw spread usually
underestimates the error. :meth:`Committee.calibrate` fits one scale factor α per quantity
on validation data (Musil et al., JCTC 15, 906 (2019)) by maximum likelihood of a Gaussian
error model, error ~ N(0, α²σ²):

.. math::

    \alpha^2 = \frac{1}{n} \sum_{k=1}^{n} \frac{\Delta_k^2}{\sigma_k^2}        \tag{3}

over validation structures (energy per atom, Δ = Ē/N − E_ref/N, σ = σ_E/N) or atoms
(forces, Δ = |F̄_i − F_ref,i|, σ = σ_F,i). :meth:`Committee.predict` then reports the
calibrated spreads α σ; the raw ones stay available as ``*_raw``.

The active-learning loop that uses a committee is in :mod:`nnptutor.active_learning`.
Taught in notebooks/07_committee_learning.ipynb.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms

from nnptutor.potential import Potential, warn_extrapolation

#: How :func:`sort_by_trust` labels frames.
ACCURATE, CANDIDATE, FAILED = "accurate", "candidate", "failed"
#: File that :meth:`Committee.save` writes next to the members' files.
COMMITTEE_FILE = "committee.json"


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
    energy_scale, force_scale : float
        Calibration factors α of eq. (3) for the energy and force spreads (1.0 until
        :meth:`calibrate` is called).
    extra_properties : tuple of str
        Results beyond a single potential's, offered to :class:`nnptutor.NNPCalculator`.

    Examples
    --------
    >>> committee = Committee.from_descriptor(ACSF.default(["Cu"]), n_members=4)  # doctest: +SKIP
    >>> atoms.calc = NNPCalculator(committee)                                      # doctest: +SKIP
    >>> atoms.calc.get_property("energy_std", atoms)                               # doctest: +SKIP
    """

    extra_properties = ("energy_std", "disagreement", "forces_std", "max_forces_std",
                        "energy_std_raw", "forces_std_raw", "member_energies", "member_forces")

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
        self.energy_scale = 1.0
        self.force_scale = 1.0

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
            [eV]; ``energy_std`` float, calibrated α_E σ_E [eV] (``energy_std_raw``: σ_E);
            ``disagreement`` float, calibrated ρ = α_E σ_E/√N [eV] (eq. 1);
            ``member_energies`` (M,) [eV]; ``extrapolating`` (n_atoms,) bool, True where any
            member extrapolates. With ``forces``: ``forces`` (n_atoms, 3) mean [eV/Å];
            ``forces_std`` (n_atoms,) calibrated α_F σ_F,i [eV/Å] (eq. 2; ``forces_std_raw``
            uncalibrated); ``max_forces_std`` float, their maximum [eV/Å];
            ``member_forces`` (M, n_atoms, 3) [eV/Å].
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

        energy_std_raw = float(member_energy.std(ddof=1))
        energy_std = self.energy_scale * energy_std_raw
        result = {
            "energy": float(member_energy.mean()),
            "energies": member_energies.mean(axis=0),
            "energy_std": energy_std,
            "energy_std_raw": energy_std_raw,
            "disagreement": energy_std / np.sqrt(n_atoms),
            "member_energies": member_energy,
            "extrapolating": extrapolating,
        }
        if forces:
            mean_forces = member_forces.mean(axis=0)  # (n_atoms, 3)
            deviation = ((member_forces - mean_forces) ** 2).sum(axis=(0, 2))  # (n_atoms,)
            forces_std_raw = np.sqrt(deviation / (self.n_members - 1))
            forces_std = self.force_scale * forces_std_raw
            result.update(forces=mean_forces, forces_std=forces_std, forces_std_raw=forces_std_raw,
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
            mean. Per structure, shape (n_structures,): ``n_atoms``, ``energy_per_atom_ref``,
            ``energy_per_atom_pred`` (mean) [eV/atom], ``energy_error_per_atom``
            |mean − ref|/N [eV/atom], ``energy_std`` calibrated α_E σ_E [eV]
            (``energy_std_raw``: σ_E), ``disagreement`` ρ [eV], ``max_forces_std``
            calibrated [eV/Å], ``max_force_error`` (largest |ΔF| of an atom) [eV/Å]. Per
            atom, shape (n_atoms_total,): ``force_error`` |ΔF_i| and ``forces_std_raw``
            σ_F,i [eV/Å].
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
        energy_std_raw = e_pred.std(axis=0, ddof=1) * n_atoms  # σ_E of total energies
        energy_std = self.energy_scale * energy_std_raw
        e_mean = e_pred.mean(axis=0)
        f_pred = np.stack([r["forces_pred"] for r in per_member])  # (M, n_atoms_total, 3)
        f_ref = per_member[0]["forces_ref"]
        f_mean = f_pred.mean(axis=0)
        f_std_raw = np.sqrt(((f_pred - f_mean) ** 2).sum(axis=(0, 2)) / (self.n_members - 1))
        f_std = self.force_scale * f_std_raw
        f_err = np.linalg.norm(f_mean - f_ref, axis=1)  # (n_atoms_total,)
        split = np.cumsum(data.n_atoms)[:-1]
        return {
            "energy_rmse_meV_per_atom": 1000 * float(np.sqrt(np.mean((e_mean - e_ref) ** 2))),
            "force_rmse": float(np.sqrt(np.mean((f_mean - f_ref) ** 2))),
            "n_atoms": n_atoms,
            "energy_per_atom_ref": e_ref,
            "energy_per_atom_pred": e_mean,
            "energy_error_per_atom": np.abs(e_mean - e_ref),
            "energy_std": energy_std,
            "energy_std_raw": energy_std_raw,
            "disagreement": energy_std / np.sqrt(n_atoms),
            "max_forces_std": np.array([s.max() for s in np.split(f_std, split)]),
            "max_force_error": np.array([e.max() for e in np.split(f_err, split)]),
            "forces_std_raw": f_std_raw,
            "force_error": f_err,
        }

    # --- calibration (Musil et al. 2019) ---------------------------------------------------
    def calibrate(self, images) -> dict:
        """Fit the scale factors α_E and α_F of eq. (3) on validation structures.

        Call it with labelled structures the members were *not* trained on; afterwards
        :meth:`predict` and :meth:`evaluate` report calibrated spreads α σ.

        Parameters
        ----------
        images : list of ase.Atoms or FeaturizedSet
            Validation structures with reference energies and forces.

        Returns
        -------
        dict
            ``energy_scale`` α_E and ``force_scale`` α_F (dimensionless).
        """
        self.energy_scale = self.force_scale = 1.0
        raw = self.evaluate(images)
        per_atom_std = raw["energy_std_raw"] / raw["n_atoms"]
        self.energy_scale = _calibration_factor(raw["energy_error_per_atom"], per_atom_std)
        self.force_scale = _calibration_factor(raw["force_error"], raw["forces_std_raw"])
        return {"energy_scale": self.energy_scale, "force_scale": self.force_scale}

    # --- files ---------------------------------------------------------------------------
    def save(self, folder) -> Path:
        """Write every member (``member_<m>.pt``) and ``committee.json`` into ``folder``.

        Returns
        -------
        pathlib.Path
            The folder (created if needed).
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for m, pot in enumerate(self.members):
            pot.save(folder / f"member_{m}.pt")
        meta = {"n_members": self.n_members, "energy_scale": self.energy_scale,
                "force_scale": self.force_scale}
        (folder / COMMITTEE_FILE).write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, folder) -> "Committee":
        """Read a committee written by :meth:`save` (members and calibration)."""
        folder = Path(folder)
        if not (folder / COMMITTEE_FILE).is_file():
            raise ValueError(f"no {COMMITTEE_FILE} in {os.fspath(folder)!r}")
        meta = json.loads((folder / COMMITTEE_FILE).read_text())
        committee = cls([Potential.load(folder / f"member_{m}.pt")
                         for m in range(int(meta["n_members"]))])
        committee.energy_scale = float(meta["energy_scale"])
        committee.force_scale = float(meta["force_scale"])
        return committee

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
    """One member on precomputed features: what :meth:`Potential.predict` does after featurising."""
    return pot.predict_from_features(atoms, values, types_np, vjp, warn=False)


def _calibration_factor(errors, spreads) -> float:
    """α of eq. (3): sqrt(mean(Δ²/σ²)) over samples with σ > 0 (1.0 if there are none)."""
    errors = np.asarray(errors, dtype=float)
    spreads = np.asarray(spreads, dtype=float)
    usable = spreads > 1e-12
    if not usable.any():
        return 1.0
    return float(np.sqrt(np.mean((errors[usable] / spreads[usable]) ** 2)))


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


def sort_by_trust(values, lower: float, upper: float) -> np.ndarray:
    """Sort frames into accurate / candidate / failed by a trust window (DP-GEN's rule).

    Parameters
    ----------
    values : array, shape (n_frames,)
        A spread per frame (e.g. calibrated max_i σ_F,i [eV/Å]).
    lower, upper : float
        Trust levels in the same unit, 0 ≤ lower ≤ upper.

    Returns
    -------
    ndarray of str, shape (n_frames,)
        "accurate" (value ≤ lower: the committee trusts itself), "candidate" (lower < value
        ≤ upper: worth a label) or "failed" (value > upper, or not finite: too far from the
        data to be physical; never labelled).
    """
    values = np.asarray(values, dtype=float)
    if not 0 <= lower <= upper:
        raise ValueError(f"trust levels need 0 <= lower <= upper, got {lower}, {upper}")
    out = np.full(values.shape, CANDIDATE, dtype=object)
    out[values <= lower] = ACCURATE
    out[~(values <= upper)] = FAILED  # NaN counts as failed
    return out.astype(str)

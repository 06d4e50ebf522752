"""MD exploration with a committee: propose structures and judge each one as it is made.

Step 2 of the active-learning loop (:mod:`nnptutor.active_learning`): run MD with one member
(or the committee mean) while the whole committee watches. Every sampled frame carries the
committee's calibrated spreads in ``atoms.info``; a trajectory stops at the first step whose
spread passes the upper trust level (the model is too far from its data for the frame to be
physical) or whose atoms come closer than a minimum distance.

Taught in notebooks/07_committee_learning.ipynb.
"""
from __future__ import annotations

import warnings

import numpy as np
from ase import Atoms, units

from nnptutor.committee import Committee
from nnptutor.exceptions import ExtrapolationWarning

THERMOSTATS = ("langevin", "berendsen", "nve")
#: atoms.info keys of a frame: spreads, MD step and why a trajectory stopped there.
ENERGY_KEY, FORCE_KEY = "al_energy_std_per_atom", "al_max_forces_std"


class _StopTrajectory(Exception):
    """Raised by the MD observer to end a trajectory at a failed or unphysical frame."""


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


def shortest_distance(atoms: Atoms) -> float:
    """Shortest interatomic distance of a structure, periodic images included [Å] (inf for one atom)."""
    if len(atoms) < 2:
        return float("inf")
    d = atoms.get_all_distances(mic=bool(atoms.pbc.any()))  # (n_atoms, n_atoms)
    return float(d[np.triu_indices(len(atoms), 1)].min())


def _dynamics(atoms, temperature_K, timestep_fs, thermostat, friction_per_fs, rng):
    """An ASE integrator for ``atoms`` with thermalised, drift-free momenta."""
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.nvtberendsen import NVTBerendsen
    from ase.md.velocitydistribution import Stationary
    from ase.md.verlet import VelocityVerlet

    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:  # ASE < 3.29
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
    thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    Stationary(atoms)
    dt = timestep_fs * units.fs
    if thermostat == "langevin":
        # fixcm=False plus a FixCom constraint: ASE's recommended way to stop drift
        atoms.set_constraint(FixCom())
        return Langevin(atoms, dt, temperature_K=temperature_K,
                        friction=friction_per_fs / units.fs, fixcm=False, rng=rng)
    if thermostat == "berendsen":
        return NVTBerendsen(atoms, dt, temperature_K=temperature_K,
                            taut=1.0 / friction_per_fs * units.fs)
    return VelocityVerlet(atoms, dt)


def explore(committee: Committee, start: Atoms, temperature_K: float, steps: int,
            timestep_fs: float, sample_interval: int, rng: np.random.Generator, *,
            thermostat: str = "langevin", friction_per_fs: float = 0.02,
            md_driver: str = "first", upper_energy: float = np.inf,
            upper_forces: float = np.inf, min_distance: float = 0.0) -> tuple[list, int, str]:
    """One MD trajectory judged by the committee at every step.

    Parameters
    ----------
    committee : Committee
    start : ase.Atoms
        Starting structure (no labels needed; not changed).
    temperature_K : float
        Thermostat temperature [K].
    steps : int
        MD steps.
    timestep_fs : float
        [fs].
    sample_interval : int
        Every this many steps a frame is kept.
    rng : numpy.random.Generator
        Initial velocities and Langevin noise.
    thermostat : {"langevin", "berendsen", "nve"}
    friction_per_fs : float
        Langevin friction [1/fs]; Berendsen uses τ = 1/friction [fs].
    md_driver : {"first", "mean"}
        Move atoms with member 0's forces (Artrith & Behler 2012) or the committee mean's.
    upper_energy, upper_forces : float
        Upper trust levels: calibrated σ_E/N [eV/atom] and max_i σ_F,i [eV/Å]. The first
        step above either ends the trajectory; that frame is kept, marked failed.
    min_distance : float
        The first step with two atoms closer than this [Å] ends the trajectory; that frame
        is kept, marked unphysical.

    Returns
    -------
    frames : list of ase.Atoms
        Kept frames, unlabelled; ``info`` holds ``md_step``, ``temperature_K``,
        ``al_energy_std_per_atom`` [eV/atom], ``al_max_forces_std`` [eV/Å] and, for the
        frame that ended the trajectory, ``al_stop`` ("failed" or "unphysical").
    steps_run : int
    stop : str
        "" (ran to the end), "failed", "unphysical" or "crashed" (the integrator raised).
    """
    from nnptutor.calculator import NNPCalculator

    atoms = Atoms(start.numbers, start.positions, cell=start.cell, pbc=start.pbc)
    atoms.calc = NNPCalculator(_Driver(committee, 0 if md_driver == "first" else None),
                               warn=False)
    dyn = _dynamics(atoms, temperature_K, timestep_fs, thermostat, friction_per_fs, rng)
    frames, stop = [], [""]

    def observe():
        if dyn.nsteps == 0:
            return
        results = atoms.calc.results
        energy_std = float(results["energy_std"]) / len(atoms)
        force_std = float(results["max_forces_std"])
        failed = not (energy_std <= upper_energy and force_std <= upper_forces)
        too_close = min_distance > 0 and shortest_distance(atoms) < min_distance
        reason = "unphysical" if too_close else "failed" if failed else ""
        if dyn.nsteps % sample_interval == 0 or reason:
            frame = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
            frame.info.update(md_step=int(dyn.nsteps), temperature_K=float(temperature_K),
                              **{ENERGY_KEY: energy_std, FORCE_KEY: force_std})
            if reason:
                frame.info["al_stop"] = reason
            frames.append(frame)
        if reason:
            stop[0] = reason
            raise _StopTrajectory

    dyn.attach(observe, interval=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        try:
            dyn.run(steps)
        except _StopTrajectory:
            pass
        except ValueError:  # atoms collapsed or flew to NaN: an unusable model, not a bug
            stop[0] = "crashed"
    return frames, int(dyn.nsteps), stop[0]


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
        The spreads are calibrated (see :meth:`Committee.calibrate`).
    """
    from nnptutor.data import label

    if md_driver not in ("first", "mean"):
        raise ValueError(f"md_driver must be 'first' or 'mean', got {md_driver!r}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    frames, steps_run, stop = explore(committee, start, temperature_K, steps, timestep_fs,
                                      sample_interval, rng, md_driver=md_driver)
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
    out.update(steps_run=steps_run, completed=not stop and steps_run == steps)
    return out

r"""Small physics toys for the notebooks: a cut-off pair potential, an NVE energy trace,
and substituted benzenes.

:class:`CutoffPairPotential` is Lennard-Jones multiplied by (or truncated at) a cutoff, so
that notebook 02 can show what the smoothness of a cutoff does to energy conservation in
molecular dynamics. The same cutoff functions weight every neighbour in the atom-centred
descriptors of later notebooks.

Taught in notebooks/02_atomic_decomposition.ipynb (pair potential, MD) and
notebooks/01_coulomb_matrix.ipynb (substituted benzenes).
"""
from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from nnptutor.cutoffs import get_cutoff
from nnptutor.neighbors import neighbor_pairs

PAIR_CUTOFFS = ("hard", "shifted", "cosine", "tanh3")


def lennard_jones(distances, epsilon: float, sigma: float):
    r"""Lennard-Jones pair energy and its derivative.

    .. math:: \phi(r) = 4\varepsilon\left[(\sigma/r)^{12} - (\sigma/r)^6\right]

    Parameters
    ----------
    distances : ndarray, any shape
        r [Å].
    epsilon : float
        Well depth ε [eV].
    sigma : float
        Zero crossing σ [Å].

    Returns
    -------
    (ndarray, ndarray), same shape as ``distances``
        φ(r) [eV] and dφ/dr [eV/Å].
    """
    s6 = (sigma / np.asarray(distances, dtype=float)) ** 6
    value = 4.0 * epsilon * (s6 * s6 - s6)
    derivative = -24.0 * epsilon * (2.0 * s6 * s6 - s6) / distances
    return value, derivative


def pair_energy(distances, epsilon: float, sigma: float, r_cut: float, cutoff: str):
    r"""Cut-off Lennard-Jones pair energy V(r) and dV/dr for each cutoff scheme.

    ========  =========================================  ===============================
    cutoff    V(r) for r ≤ r_c (0 beyond)                 at r_c
    ========  =========================================  ===============================
    hard      φ(r)                                        energy jumps by φ(r_c)
    shifted   φ(r) − φ(r_c)                               energy continuous, force jumps
    cosine    φ(r) f_c(r), Behler's cosine cutoff          energy and force continuous
    tanh3     φ(r) f_c(r), tanh³ cutoff                    also the force's slope
    ========  =========================================  ===============================

    Parameters
    ----------
    distances : ndarray, shape (n_pairs,)
        r [Å].
    epsilon, sigma : float
        Lennard-Jones ε [eV] and σ [Å].
    r_cut : float
        Cutoff radius r_c [Å].
    cutoff : {"hard", "shifted", "cosine", "tanh3"}

    Returns
    -------
    (ndarray, ndarray), shape (n_pairs,)
        V(r) [eV] and dV/dr [eV/Å].
    """
    r = np.asarray(distances, dtype=float)
    inside = r <= r_cut
    phi, dphi = lennard_jones(r, epsilon, sigma)
    if cutoff == "hard":
        value, derivative = phi, dphi
    elif cutoff == "shifted":
        value, derivative = phi - lennard_jones(r_cut, epsilon, sigma)[0], dphi
    else:
        fc, dfc = get_cutoff(cutoff)(r, r_cut)
        value, derivative = phi * fc, dphi * fc + phi * dfc  # product rule
    return np.where(inside, value, 0.0), np.where(inside, derivative, 0.0)


class CutoffPairPotential(Calculator):
    r"""Lennard-Jones with a choice of cutoff, as an ASE calculator.

    .. math:: E = \sum_i E_i, \qquad E_i = \tfrac12 \sum_{j \ne i,\ r_{ij} \le r_c} V(r_{ij})

    Parameters
    ----------
    epsilon : float
        Well depth ε [eV]; argon: 0.0104 eV.
    sigma : float
        Zero crossing σ [Å]; argon: 3.40 Å.
    r_cut : float
        Cutoff radius r_c [Å].
    cutoff : {"hard", "shifted", "cosine", "tanh3"}
        How V(r) goes to zero at r_c (:func:`pair_energy`).

    Notes
    -----
    Results: ``energy`` and ``free_energy`` [eV], ``energies`` (E_i, shape (n_atoms,))
    [eV], ``forces`` (shape (n_atoms, 3)) [eV/Å]. Periodic images are included through
    :func:`nnptutor.neighbors.neighbor_pairs`; no stress.

    Examples
    --------
    >>> from ase.build import bulk
    >>> atoms = bulk("Ar", "fcc", a=5.26, cubic=True)
    >>> atoms.calc = CutoffPairPotential(0.0104, 3.40, r_cut=6.8, cutoff="cosine")
    >>> round(atoms.get_potential_energy(), 3)  # doctest: +SKIP
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces"]

    def __init__(self, epsilon: float, sigma: float, r_cut: float, cutoff: str = "cosine", **kwargs):
        if cutoff not in PAIR_CUTOFFS:
            raise ValueError(f"unknown cutoff {cutoff!r}; choose one of {PAIR_CUTOFFS}")
        for name, value in (("epsilon", epsilon), ("sigma", sigma), ("r_cut", r_cut)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        super().__init__(**kwargs)
        self.epsilon, self.sigma, self.r_cut, self.cutoff = epsilon, sigma, r_cut, cutoff

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        pairs = neighbor_pairs(self.atoms, self.r_cut)  # full list: each pair twice
        value, derivative = pair_energy(
            pairs.distances, self.epsilon, self.sigma, self.r_cut, self.cutoff
        )
        n_atoms = len(self.atoms)
        energies = 0.5 * np.bincount(pairs.i, weights=value, minlength=n_atoms)  # (n_atoms,)
        # dV/dr * unit vector i->j pulls i towards j when V rises with r; each pair appears
        # in both directions, so the sum over j of the pair (i, j) gives the whole force on i.
        per_pair = (derivative / pairs.distances)[:, None] * pairs.vectors  # (n_pairs, 3)
        forces = np.zeros((n_atoms, 3))
        np.add.at(forces, pairs.i, per_pair)
        energy = float(energies.sum())
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "energies": energies,
            "forces": forces,
        }


def nve_energy_trace(
    atoms: Atoms,
    calc: Calculator,
    n_steps: int,
    timestep_fs: float,
    temperature_K: float,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Run velocity-Verlet NVE MD and record the energies at every step.

    Velocities are drawn from a Maxwell–Boltzmann distribution at ``temperature_K``
    (then the centre-of-mass motion is removed). ``atoms`` is copied, not changed.

    Parameters
    ----------
    atoms : ase.Atoms
        Starting structure; positions in Å.
    calc : ase.calculators.calculator.Calculator
        Attached to the copy.
    n_steps : int
        Number of MD steps.
    timestep_fs : float
        Time step [fs].
    temperature_K : float
        Initial temperature [K].
    seed : int
        Seed for the velocities.

    Returns
    -------
    dict of ndarray, each shape (n_steps + 1,)
        ``time_fs`` [fs]; ``potential``, ``kinetic``, ``total`` energies [eV].
    """
    from ase import units
    from ase.md.verlet import VelocityVerlet

    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    if not timestep_fs > 0:
        raise ValueError(f"timestep_fs must be positive, got {timestep_fs}")
    if not temperature_K >= 0:
        raise ValueError(f"temperature_K must be non-negative, got {temperature_K}")
    atoms = _thermalised_copy(atoms, temperature_K, seed)
    atoms.calc = calc
    potential, kinetic = [], []

    def record():
        potential.append(atoms.get_potential_energy())
        kinetic.append(atoms.get_kinetic_energy())

    dynamics = VelocityVerlet(atoms, timestep=timestep_fs * units.fs)
    dynamics.attach(record, interval=1)
    dynamics.run(int(n_steps))  # attached observers also run once before the first step
    return _trace(potential, kinetic, timestep_fs)



def _thermalised_copy(atoms: Atoms, temperature_K: float, seed: int) -> Atoms:
    """A copy of ``atoms`` with Maxwell–Boltzmann momenta at ``temperature_K``, no net momentum."""
    from ase import units
    from ase.md.velocitydistribution import Stationary

    atoms = atoms.copy()
    # Maxwell-Boltzmann: each momentum component is normal with variance m k_B T
    rng = np.random.default_rng(seed)
    std = np.sqrt(atoms.get_masses() * units.kB * temperature_K)  # (n_atoms,)
    atoms.set_momenta(rng.normal(size=(len(atoms), 3)) * std[:, None])
    Stationary(atoms)
    return atoms


def _trace(potential, kinetic, timestep_fs: float) -> dict[str, np.ndarray]:
    """The energies of an MD run as arrays: time [fs], potential, kinetic and total [eV]."""
    potential, kinetic = np.array(potential), np.array(kinetic)
    return {
        "time_fs": np.arange(len(potential)) * timestep_fs,
        "potential": potential,
        "kinetic": kinetic,
        "total": potential + kinetic,
    }


def energy_drift(time_fs, total, n_atoms: int) -> float:
    """Slope of a straight-line fit to the total energy, per atom [meV/atom/ps].

    Parameters
    ----------
    time_fs : ndarray, shape (n_steps,)
        Times [fs].
    total : ndarray, shape (n_steps,)
        Total energies [eV].
    n_atoms : int

    Returns
    -------
    float
        d(E/n_atoms)/dt [meV/atom/ps].
    """
    slope_eV_per_fs = np.polyfit(np.asarray(time_fs), np.asarray(total), 1)[0]
    return float(slope_eV_per_fs * 1e3 * 1e3 / n_atoms)


# Idealised geometry of substituents [Å, degrees]: bond C(ring)-X, then X-H and angle C-X-H.
_SUBSTITUENTS = {
    "H": ("H", 1.09, None),
    "F": ("F", 1.35, None),
    "OH": ("O", 1.36, (0.96, 109.0)),
    "CH3": ("C", 1.51, (1.09, 109.5)),
}


def benzene_derivative(substituent: str) -> Atoms:
    """Benzene with hydrogen 6 replaced by a substituent, in an idealised (unrelaxed) geometry.

    A stand-in for molecules that a model trained on benzene has never seen (notebook 01):
    fluorobenzene (12 atoms, like benzene), phenol (13) and toluene (15).

    Parameters
    ----------
    substituent : {"H", "F", "OH", "CH3"}
        "H" returns benzene itself (ASE's ``molecule("C6H6")``).

    Returns
    -------
    ase.Atoms
        A molecule in the xy plane (the methyl hydrogens leave it); positions in Å. The
        ring atoms come first, then the five remaining ring hydrogens, then the substituent.
    """
    from ase.build import molecule

    if substituent not in _SUBSTITUENTS:
        raise ValueError(f"unknown substituent {substituent!r}; choose one of {tuple(_SUBSTITUENTS)}")
    benzene = molecule("C6H6")
    if substituent == "H":
        return benzene
    symbol, bond, hydrogens = _SUBSTITUENTS[substituent]
    carbon = benzene.positions[0]
    u = benzene.positions[6] - carbon
    u /= np.linalg.norm(u)  # along the replaced C-H bond, in the ring plane
    normal = np.array([0.0, 0.0, 1.0])  # ASE's benzene lies in the xy plane
    v = np.cross(normal, u)  # in-plane, perpendicular to u
    heavy = carbon + bond * u
    positions = [heavy]
    if hydrogens is not None:
        length, angle = hydrogens
        tilt = np.radians(180.0 - angle)  # angle between u and the X-H bond
        azimuths = [90.0] if symbol == "O" else [90.0, 210.0, 330.0]
        for phi in np.radians(azimuths):
            direction = np.cos(tilt) * u + np.sin(tilt) * (np.cos(phi) * v + np.sin(phi) * normal)
            positions.append(heavy + length * direction)
    del benzene[6]
    n_h = len(positions) - 1
    return benzene + Atoms(symbol + "H" * n_h, positions=positions)


def fast_nve_energy_trace(
    atoms: Atoms,
    epsilon: float,
    sigma: float,
    r_cut: float,
    cutoff: str,
    n_steps: int,
    timestep_fs: float,
    temperature_K: float,
    seed: int = 0,
    skin: float = 1.0,
) -> dict[str, np.ndarray]:
    """:func:`nve_energy_trace` for :class:`CutoffPairPotential`, vectorised for speed.

    The same velocity-Verlet steps and starting velocities as :func:`nve_energy_trace`
    (equal to it to rounding), but the pair list is built once with ``r_cut + skin`` and
    reused while no atom has moved more than ``skin / 2``, and each step is a few numpy
    operations instead of an ASE calculator call: about 20 times faster for 32 atoms, fast
    enough to precompute a grid of runs for a widget (:func:`energy_error_grid`).

    Parameters
    ----------
    atoms : ase.Atoms
        Starting structure; positions in Å. Not changed.
    epsilon, sigma : float
        Lennard-Jones ε [eV] and σ [Å].
    r_cut : float
        Cutoff radius R_c [Å].
    cutoff : {"hard", "shifted", "cosine", "tanh3"}
        Scheme of :func:`pair_energy`.
    n_steps : int
        Number of MD steps.
    timestep_fs : float
        Time step Δt [fs].
    temperature_K : float
        Initial temperature [K].
    seed : int
        Seed for the velocities.
    skin : float
        Extra radius of the reused pair list [Å].

    Returns
    -------
    dict of ndarray, each shape (n_steps + 1,)
        ``time_fs`` [fs]; ``potential``, ``kinetic``, ``total`` energies [eV].
    """
    from ase import units

    if cutoff not in PAIR_CUTOFFS:
        raise ValueError(f"unknown cutoff {cutoff!r}; choose one of {PAIR_CUTOFFS}")
    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    atoms = _thermalised_copy(atoms, temperature_K, seed)  # the same start as nve_energy_trace
    masses = atoms.get_masses()[:, None]  # (n_atoms, 1), ASE mass unit
    positions, velocities = atoms.positions.copy(), atoms.get_velocities()  # Å, ASE units
    dt = timestep_fs * units.fs
    n_atoms = len(atoms)

    def pair_list():
        # i, j and the periodic image shift of each pair within r_cut + skin
        pairs = neighbor_pairs(atoms, r_cut + skin)
        shift = pairs.vectors - (atoms.positions[pairs.j] - atoms.positions[pairs.i])  # (n_pairs, 3)
        return pairs.i, pairs.j, shift, atoms.positions.copy()

    def energy_and_forces(i, j, shift):
        vectors = positions[j] - positions[i] + shift  # (n_pairs, 3)
        distances = np.linalg.norm(vectors, axis=1)  # (n_pairs,)
        value, derivative = pair_energy(distances, epsilon, sigma, r_cut, cutoff)
        per_pair = (derivative / distances)[:, None] * vectors  # (n_pairs, 3)
        forces = np.stack([np.bincount(i, weights=per_pair[:, a], minlength=n_atoms)
                           for a in range(3)], axis=1)  # (n_atoms, 3)
        return 0.5 * value.sum(), forces

    i, j, shift, built_at = pair_list()
    energy, forces = energy_and_forces(i, j, shift)
    potential, kinetic = [energy], [0.5 * np.sum(masses * velocities**2)]
    for _ in range(int(n_steps)):
        velocities += 0.5 * dt * forces / masses
        positions += dt * velocities
        if np.linalg.norm(positions - built_at, axis=1).max() > 0.5 * skin:
            atoms.positions = positions
            i, j, shift, built_at = pair_list()
        energy, forces = energy_and_forces(i, j, shift)
        velocities += 0.5 * dt * forces / masses
        potential.append(energy)
        kinetic.append(0.5 * np.sum(masses * velocities**2))
    return _trace(potential, kinetic, timestep_fs)


def energy_error_grid(
    atoms: Atoms,
    epsilon: float,
    sigma: float,
    r_cuts,
    cutoffs=PAIR_CUTOFFS,
    n_steps: int = 300,
    timestep_fs: float = 5.0,
    temperature_K: float = 60.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Largest total-energy error of short NVE runs for every cutoff scheme and radius.

    Parameters
    ----------
    atoms : ase.Atoms
        Starting structure (e.g. 32 argon atoms); positions in Å.
    epsilon, sigma : float
        Lennard-Jones ε [eV] and σ [Å].
    r_cuts : sequence of float, shape (n_radii,)
        Cutoff radii R_c [Å].
    cutoffs : sequence of str
        Schemes of :func:`pair_energy`.
    n_steps, timestep_fs, temperature_K, seed
        As :func:`fast_nve_energy_trace`.

    Returns
    -------
    dict
        ``r_cut`` (n_radii,) [Å] and, for each scheme, an array (n_radii,) of
        max_t |E_tot(t) − E_tot(0)| / N [meV/atom].
    """
    grid = {"r_cut": np.asarray(r_cuts, dtype=float)}
    for name in cutoffs:
        errors = []
        for r_cut in grid["r_cut"]:
            trace = fast_nve_energy_trace(atoms, epsilon, sigma, r_cut, name, n_steps,
                                          timestep_fs, temperature_K, seed)
            errors.append(1e3 * np.abs(trace["total"] - trace["total"][0]).max() / len(atoms))
        grid[name] = np.array(errors)
    return grid

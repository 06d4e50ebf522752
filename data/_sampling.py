"""Helpers shared by the ``make_*_xtb.py`` and ``make_water_dft.py`` scripts (not part of the library).

* :func:`xtb` - a GFN2-xTB calculator (tblite), quiet;
* :func:`relax` - BFGS to a local minimum;
* :func:`langevin_snapshots` - thermally distorted copies from Langevin MD;
* :func:`water_cluster` - a hydrogen-bonded (H2O)n guess from random placement.
"""
from __future__ import annotations

import numpy as np
from ase import Atoms, units
from ase.build import molecule
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
from ase.optimize import BFGS


def xtb():
    """GFN2-xTB from tblite, with no output."""
    from tblite.ase import TBLite

    return TBLite(method="GFN2-xTB", verbosity=0)


def relax(atoms: Atoms, fmax: float = 0.005, steps: int = 500) -> Atoms:
    """A copy of ``atoms`` relaxed with BFGS under GFN2-xTB (max |F| < ``fmax`` eV/Å)."""
    atoms = atoms.copy()
    atoms.calc = xtb()
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps)
    atoms.calc = None
    return atoms


def langevin_snapshots(atoms: Atoms, calculator, temperature_K: float, n_samples: int,
                       rng: np.random.Generator, timestep_fs: float = 0.5,
                       sample_every_fs: float = 20.0, equilibration_fs: float = 250.0,
                       friction_per_fs: float = 0.02) -> list[Atoms]:
    """``n_samples`` snapshots of Langevin MD at ``temperature_K``, one every ``sample_every_fs``.

    Momenta start from a Maxwell-Boltzmann distribution (no net translation; no net rotation
    for non-periodic structures);
    ``equilibration_fs`` of MD are discarded first. Each copy has
    ``info["temperature_K"]`` and no calculator.
    """
    atoms = atoms.copy()
    atoms.calc = calculator
    thermalize_momenta(atoms, temperature_K, rng=rng)
    Stationary(atoms)
    if not atoms.pbc.any():
        ZeroRotation(atoms)  # only free molecules and clusters may rotate as a whole
    dyn = Langevin(atoms, timestep_fs * units.fs, temperature_K=temperature_K,
                   friction=friction_per_fs / units.fs, fixcm=False, rng=rng)
    dyn.run(int(round(equilibration_fs / timestep_fs)))
    every = int(round(sample_every_fs / timestep_fs))
    out = []
    for _ in range(n_samples):
        dyn.run(every)
        snap = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        snap.wrap()  # back into the cell along periodic directions only
        snap.info["temperature_K"] = float(temperature_K)
        out.append(snap)
    return out


def water_cluster(n_molecules: int, rng: np.random.Generator, d_min: float = 2.7,
                  d_max: float = 3.0) -> Atoms:
    """Random (H2O)n guess: each new O lies d_min..d_max Å from one earlier O, >= d_min from all.

    Molecules get random orientations; relax the result (e.g. with :func:`relax`) to get a
    hydrogen-bonded cluster.
    """
    water = molecule("H2O")
    water.positions -= water.positions[0]  # O at the origin
    oxygens = [np.zeros(3)]
    while len(oxygens) < n_molecules:
        anchor = oxygens[rng.integers(len(oxygens))]
        direction = rng.normal(size=3)
        trial = anchor + rng.uniform(d_min, d_max) * direction / np.linalg.norm(direction)
        if min(np.linalg.norm(trial - o) for o in oxygens) >= d_min - 1e-9:
            oxygens.append(trial)
    cluster = Atoms()
    for o in oxygens:
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        rotation = q * np.sign(np.diag(r))  # random orthogonal matrix
        part = water.copy()
        part.positions = part.positions @ rotation.T + o
        cluster += part
    cluster.center()
    return cluster


def is_connected(atoms: Atoms, r_oo: float = 3.6) -> bool:
    """True if the O-O graph with edges shorter than ``r_oo`` Å is connected (one cluster)."""
    oxygens = atoms.positions[atoms.numbers == 8]
    n = len(oxygens)
    adjacent = np.linalg.norm(oxygens[:, None] - oxygens[None], axis=-1) < r_oo  # (n, n)
    seen, stack = {0}, [0]
    while stack:
        k = stack.pop()
        for m in np.flatnonzero(adjacent[k]):
            if m not in seen:
                seen.add(int(m))
                stack.append(int(m))
    return len(seen) == n


def intact_waters(atoms: Atoms, r_oh: float = 1.3) -> bool:
    """True if every H is within ``r_oh`` Å of exactly one O and every O has two such H."""
    o = atoms.positions[atoms.numbers == 8]
    h = atoms.positions[atoms.numbers == 1]
    close = np.linalg.norm(h[:, None] - o[None], axis=-1) < r_oh  # (n_H, n_O)
    return bool((close.sum(axis=1) == 1).all() and (close.sum(axis=0) == 2).all())


def write(images, out) -> str:
    """Save labelled ``images`` to ``out`` (nnptutor.data.save) and print the sha256 to register."""
    from nnptutor.data import save

    sha = save(images, out)
    print(f"{len(images)} structures -> {out.name}")
    print(f"sha256 {sha}")
    return sha


def label_and_write(images, calculator, out) -> str:
    """Label ``images`` at the positions the file will store (8 decimals), then :func:`write`."""
    from nnptutor.data import label, stored_positions

    return write(label([stored_positions(a) for a in images], calculator, progress=False), out)

"""Make ``nnptutor/datasets/cu_emt.extxyz.gz``: periodic fcc Cu labelled with ASE's EMT.

Run from the repository root: ``python data/make_cu_emt.py`` (about a minute). It prints the
sha256 to copy into the registry in ``nnptutor/data.py``. Fixed seeds; the same ASE and NumPy
versions give the same file (MD is chaotic, so other versions give statistically equal data).

Contents (``atoms.info["kind"]``):

* ``md``: 32-atom (2x2x2 cubic) and 108-atom (3x3x3 cubic) cells, Langevin MD at 300, 600,
  900 and 1200 K, one snapshot every 40 fs after 1 ps of equilibration;
* ``strained``: isotropic strain from -4 % to +4 % of perfect cells (an E(V) curve), and
  thermal snapshots (300 and 600 K) under random strain: isotropic within ±4 %, shear
  components within ±3 %;
* ``vacancy``: 31- and 107-atom cells (one atom removed), Langevin MD at 300, 600 and 900 K;
* ``surface``: fcc(111) and fcc(100) slabs, 3x3x4 = 36 atoms, periodic in-plane only,
  14 Å of vacuum, Langevin MD at 300, 600 and 900 K.
"""
from pathlib import Path

import numpy as np
from ase import units
from ase.build import bulk, fcc100, fcc111
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, thermalize_momenta

from _sampling import label_and_write

SEED = 2024
TIMESTEP_FS = 5.0
SAMPLE_EVERY_FS = 40.0
EQUILIBRATION_FS = 1000.0
FRICTION_PER_FS = 0.02
OUT = Path(__file__).resolve().parents[1] / "nnptutor" / "datasets" / "cu_emt.extxyz.gz"


def lattice_constant() -> float:
    """EMT lattice constant of fcc Cu [Å] from a parabola through E(a) near the minimum."""
    grid = np.linspace(3.50, 3.70, 41)
    energies = []
    for a in grid:
        atoms = bulk("Cu", "fcc", a=a, cubic=True)
        atoms.calc = EMT()
        energies.append(atoms.get_potential_energy())
    k = int(np.argmin(energies))
    c2, c1, _ = np.polyfit(grid[k - 3:k + 4], energies[k - 3:k + 4], 2)
    return float(-c1 / (2 * c2))


def md_snapshots(atoms, temperature_K, n_samples, seed):
    """Langevin MD at ``temperature_K``; ``n_samples`` copies, one every SAMPLE_EVERY_FS."""
    rng = np.random.default_rng([SEED, seed])
    atoms = atoms.copy()
    atoms.calc = EMT()
    thermalize_momenta(atoms, temperature_K, rng=rng)  # Maxwell-Boltzmann
    Stationary(atoms)
    dyn = Langevin(atoms, TIMESTEP_FS * units.fs, temperature_K=temperature_K,
                   friction=FRICTION_PER_FS / units.fs, fixcm=False, rng=rng)
    dyn.run(int(EQUILIBRATION_FS / TIMESTEP_FS))
    every = int(SAMPLE_EVERY_FS / TIMESTEP_FS)
    out = []
    for _ in range(n_samples):
        dyn.run(every)
        snap = atoms.copy()
        snap.wrap()
        snap.info = {"temperature_K": float(temperature_K)}
        out.append(snap)
    return out


def main():
    a0 = lattice_constant()
    print(f"EMT lattice constant of Cu: {a0:.4f} Å")
    cubic = bulk("Cu", "fcc", a=a0, cubic=True)
    small, large = cubic * (2, 2, 2), cubic * (3, 3, 3)
    run = iter(range(1000))  # one seed per MD run
    images = []

    for cell in (small, large):
        for T in (300, 600, 900, 1200):
            for snap in md_snapshots(cell, T, 60, next(run)):
                snap.info["kind"] = "md"
                images.append(snap)

    rng = np.random.default_rng([SEED, 999])
    for s in np.linspace(-0.04, 0.04, 20):
        atoms = small.copy()
        atoms.set_cell(small.cell * (1 + s), scale_atoms=True)
        atoms.info = {"kind": "strained", "temperature_K": 0.0,
                      "strain": [s, s, s, 0.0, 0.0, 0.0]}
        images.append(atoms)
    thermal = (md_snapshots(small, 300, 45, next(run)) + md_snapshots(small, 600, 45, next(run))
               + md_snapshots(large, 300, 20, next(run)) + md_snapshots(large, 600, 20, next(run)))
    for atoms in thermal:
        iso = rng.uniform(-0.04, 0.04)
        shear = rng.uniform(-0.03, 0.03, size=3)  # e_yz, e_xz, e_xy
        strain = np.array([[iso, shear[2], shear[1]], [shear[2], iso, shear[0]], [shear[1], shear[0], iso]])
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)  # rows are cell vectors
        atoms.info.update(kind="strained", strain=[iso, iso, iso, *shear])
        images.append(atoms)

    for cell in (small, large):
        vacancy = cell.copy()
        del vacancy[0]
        for T in (300, 600, 900):
            for snap in md_snapshots(vacancy, T, 25, next(run)):
                snap.info["kind"] = "vacancy"
                images.append(snap)

    for facet, build in (("fcc111", fcc111), ("fcc100", fcc100)):
        slab = build("Cu", size=(3, 3, 4), a=a0, vacuum=7.0)  # pbc (True, True, False)
        for T in (300, 600, 900):
            for snap in md_snapshots(slab, T, 35, next(run)):
                snap.info.update(kind="surface", facet=facet)
                images.append(snap)

    label_and_write(images, EMT(), OUT)


if __name__ == "__main__":
    main()

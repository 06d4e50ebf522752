"""Make ``nnptutor/datasets/water_dft.extxyz.gz``: water monomers, dimers and trimers labelled with B3LYP/def2-SVP.

Run from the repository root: ``OMP_NUM_THREADS=1 python data/make_water_dft.py``
(about 8 minutes on one idle core; the DFT dominates). Prints the sha256 for the registry
in ``nnptutor/data.py``.

Geometries: thermally distorted, from GFN2-xTB (tblite) Langevin MD (1 fs steps, friction
0.02/fs, 200 fs equilibration, one snapshot every 20 fs) around xTB minima:

* monomer: 100 snapshots, 4 runs at 300, 500, 800 and 1000 K (25 each);
* dimer: 40 snapshots, 2 relaxed random starting structures x (200 K, 350 K), 10 each;
* trimer: 24 snapshots, 2 relaxed random starting structures x (200 K, 350 K), 6 each.

A B3LYP/def2-SVP gradient of a trimer takes about 10 s on one core, so the set is kept
small (164 structures, about 6 CPU minutes of DFT).

Labels: restricted Kohn-Sham DFT in PySCF, ``xc="b3lyp"`` (PySCF >= 2.3 meaning: libxc's
B3LYP with VWN1-RPA correlation, as in Gaussian), basis def2-SVP, integration grid
``grids.level = 2`` (to keep the cost modest), ``conv_tol = 1e-10`` Hartree; analytic
gradients from ``mf.nuc_grad_method()`` (without grid response). Energies converted
Hartree -> eV and gradients Hartree/Bohr -> eV/Å with ``ase.units``.
``info``: kind ("monomer", "dimer", "trimer"), n_molecules, temperature_K, xc, basis,
grid_level.
"""
from pathlib import Path

import numpy as np
from ase import units
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator

from _sampling import (intact_waters, is_connected, langevin_snapshots, relax, water_cluster,
                       write, xtb)
from nnptutor.data import stored_positions

SEED = 9
XC, BASIS, GRID_LEVEL = "b3lyp", "def2-SVP", 2
MD = dict(timestep_fs=1.0, sample_every_fs=20.0, equilibration_fs=200.0)
OUT = Path(__file__).resolve().parents[1] / "nnptutor" / "datasets" / "water_dft.extxyz.gz"


def b3lyp(atoms):
    """B3LYP/def2-SVP energy [eV] and forces [eV/Å], shape (n_atoms, 3), from PySCF."""
    from pyscf import dft, gto

    mol = gto.M(atom=[(s, p) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)],
                unit="Angstrom", basis=BASIS, charge=0, spin=0, verbose=0)
    mf = dft.RKS(mol)
    mf.xc = XC
    mf.grids.level = GRID_LEVEL
    mf.conv_tol = 1e-10
    energy = mf.kernel()
    if not mf.converged:
        raise RuntimeError("SCF did not converge")
    gradient = mf.nuc_grad_method().kernel()  # (n_atoms, 3) Hartree/Bohr
    return energy * units.Hartree, -gradient * units.Hartree / units.Bohr


def snapshots(n_molecules, temperatures, starts, per_run, rng):
    out = []
    for start in range(starts):
        guess = molecule("H2O") if n_molecules == 1 else water_cluster(n_molecules, rng)
        minimum = relax(guess, fmax=0.01, steps=1000)
        for T in temperatures:
            kept = []
            while len(kept) < per_run:
                snaps = langevin_snapshots(minimum, xtb(), T, per_run, rng, **MD)
                kept += [s for s in snaps if intact_waters(s) and is_connected(s)][:per_run - len(kept)]
            out += kept
    return out


def main():
    from pyscf import lib

    lib.num_threads(1)
    rng = np.random.default_rng(SEED)
    plan = [("monomer", 1, (300, 500, 800, 1000), 1, 25),
            ("dimer", 2, (200, 350), 2, 10),
            ("trimer", 3, (200, 350), 2, 6)]
    images = []
    for kind, n, temperatures, starts, per_run in plan:
        geometries = snapshots(n, temperatures, starts, per_run, rng)
        for k, atoms in enumerate(geometries):
            atoms = stored_positions(atoms)
            energy, forces = b3lyp(atoms)
            atoms.info.update(kind=kind, n_molecules=n, xc=XC, basis=BASIS, grid_level=GRID_LEVEL)
            atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
            images.append(atoms)
            if k % 10 == 0:
                print(f"{kind} {k + 1}/{len(geometries)}", flush=True)
    write(images, OUT)


if __name__ == "__main__":
    main()

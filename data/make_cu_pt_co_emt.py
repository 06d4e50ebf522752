"""Make ``nnptutor/datasets/cu_pt_co_emt.extxyz.gz``: CO on Cu(111) and Pt(111), and CuPt alloys, with ASE's EMT.

Run from the repository root: ``python data/make_cu_pt_co_emt.py`` (a few minutes). Prints the
sha256 for the registry in ``nnptutor/data.py``. Four elements (C, O, Cu, Pt) for comparing
SingleNN with BPNN and GMP with ACSF.

Contents (``atoms.info["kind"]``):

* ``adsorbate``: one CO on a 3x3x3 fcc(111) slab of Cu or Pt (27 metal atoms, 14 Å vacuum,
  periodic in-plane only) at the ontop, bridge, fcc and hcp sites; each relaxed with BFGS
  (max |F| < 0.05 eV/Å), then Langevin MD (1 fs steps, friction 0.02/fs) at 300 and 500 K,
  200 fs of equilibration, one snapshot every 25 fs (12 per run): 192 structures.
  ``info``: metal, site, temperature_K.
* ``alloy``: 32-atom (2x2x2 cubic) fcc Cu(1-x)Pt(x) cells with random occupations,
  x = 0.25, 0.5, 0.75, two random arrangements each, lattice constant from Vegard's law
  between the EMT lattice constants of Cu (3.590 Å) and Pt (3.922 Å); Langevin MD (5 fs
  steps) at 300, 600 and 900 K, 1 ps of equilibration, one snapshot every 40 fs (10 per run):
  180 structures. ``info``: x_Pt, temperature_K.

EMT's C and O parameters are rough (EMT was fitted to metals): in most runs the CO
dissociates into C and O adatoms within the first picosecond. The data teach multi-element
models, not surface chemistry.
"""
from pathlib import Path

import numpy as np
from ase.build import add_adsorbate, bulk, fcc111, molecule
from ase.calculators.emt import EMT
from ase.optimize import BFGS

from _sampling import label_and_write, langevin_snapshots

SEED = 29
A_CU, A_PT = 3.590, 3.922  # EMT lattice constants [Å] (parabola fits as in make_cu_emt.py)
OUT = Path(__file__).resolve().parents[1] / "nnptutor" / "datasets" / "cu_pt_co_emt.extxyz.gz"


def co_on_slab(metal: str, site: str):
    slab = fcc111(metal, size=(3, 3, 3), a=A_CU if metal == "Cu" else A_PT, vacuum=7.0)
    co = molecule("CO")
    co.positions -= co.positions[co.numbers == 6][0]  # C at the origin
    co.positions[:, 2] = np.abs(co.positions[:, 2])  # O above C
    add_adsorbate(slab, co, 1.8, site, mol_index=0)
    slab.calc = EMT()
    BFGS(slab, logfile=None).run(fmax=0.05, steps=300)
    slab.calc = None
    return slab


def main():
    rng = np.random.default_rng(SEED)
    images = []
    for metal in ("Cu", "Pt"):
        for site in ("ontop", "bridge", "fcc", "hcp"):
            slab = co_on_slab(metal, site)
            for T in (300, 500):
                for snap in langevin_snapshots(slab, EMT(), T, 12, rng, timestep_fs=1.0,
                                               sample_every_fs=25.0, equilibration_fs=200.0):
                    snap.info.update(kind="adsorbate", metal=metal, site=site)
                    images.append(snap)
    for x in (0.25, 0.5, 0.75):
        for _ in range(2):
            cell = bulk("Cu", "fcc", a=(1 - x) * A_CU + x * A_PT, cubic=True) * (2, 2, 2)
            symbols = np.array(["Cu"] * len(cell))
            symbols[rng.permutation(len(cell))[:round(x * len(cell))]] = "Pt"
            cell.set_chemical_symbols(symbols)
            for T in (300, 600, 900):
                for snap in langevin_snapshots(cell, EMT(), T, 10, rng, timestep_fs=5.0,
                                               sample_every_fs=40.0, equilibration_fs=1000.0):
                    snap.info.update(kind="alloy", x_Pt=x)
                    images.append(snap)
    label_and_write(images, EMT(), OUT)


if __name__ == "__main__":
    main()

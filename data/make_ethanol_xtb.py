"""Make ``nnptutor/datasets/ethanol_xtb.extxyz.gz``: thermally distorted ethanol labelled with GFN2-xTB.

Run from the repository root: ``OMP_NUM_THREADS=1 python data/make_ethanol_xtb.py``
(about 2-5 minutes on one idle core). Prints the sha256 for the registry in ``nnptutor/data.py``.

Method: exactly as ``make_benzene_xtb.py`` (same temperatures, runs and sampling), starting
from ``ase.build.molecule("CH3CH2OH")`` relaxed under GFN2-xTB, with seed 7: 1000 structures.
At the higher temperatures the methyl and hydroxyl groups rotate, so several conformers appear.
``info``: kind ("md"), temperature_K, run.
"""
from make_benzene_xtb import make

if __name__ == "__main__":
    make("ethanol_xtb", "CH3CH2OH", 7)

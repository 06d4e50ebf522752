"""Make ``nnptutor/datasets/benzene_xtb.extxyz.gz``: thermally distorted benzene labelled with GFN2-xTB.

Run from the repository root: ``OMP_NUM_THREADS=1 python data/make_benzene_xtb.py``
(about 2-5 minutes on one idle core). Prints the sha256 for the registry in ``nnptutor/data.py``.

Method: benzene (``ase.build.molecule("C6H6")``) relaxed with BFGS under GFN2-xTB
(tblite), then Langevin MD (1 fs steps, friction 0.02/fs) at 300, 450, 600, 800 and
1000 K, 4 independent runs per temperature, 200 fs of equilibration, then one snapshot every
10 fs (50 per run, 500 fs): 1000 structures. Snapshots 10 fs apart are partly correlated;
split training and test sets by ``info["run"]`` for an honest test error. Each snapshot's positions are rounded to the 8 decimals
that extended XYZ stores and labelled with a fresh GFN2-xTB single point.
``info``: kind ("md"), temperature_K, run.
"""
from pathlib import Path

import numpy as np
from ase.build import molecule

from _sampling import label_and_write, langevin_snapshots, relax, xtb

SEED = 6
TEMPERATURES_K = (300, 450, 600, 800, 1000)
RUNS_PER_TEMPERATURE = 4
SAMPLES_PER_RUN = 50
MD = dict(timestep_fs=1.0, sample_every_fs=10.0, equilibration_fs=200.0)


def make(name: str, formula: str, seed: int) -> None:
    out = Path(__file__).resolve().parents[1] / "nnptutor" / "datasets" / f"{name}.extxyz.gz"
    minimum = relax(molecule(formula))
    images = []
    run = 0
    for T in TEMPERATURES_K:
        for _ in range(RUNS_PER_TEMPERATURE):
            rng = np.random.default_rng([seed, run])
            for snap in langevin_snapshots(minimum, xtb(), T, SAMPLES_PER_RUN, rng, **MD):
                snap.info.update(kind="md", run=run)
                images.append(snap)
            run += 1
            print(f"run {run}: {T} K done", flush=True)
    label_and_write(images, xtb(), out)


if __name__ == "__main__":
    make("benzene_xtb", "C6H6", SEED)

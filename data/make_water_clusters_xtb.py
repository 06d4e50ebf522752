"""Make ``nnptutor/datasets/water_clusters_xtb.extxyz.gz``: (H2O)n clusters, n = 2..8, labelled with GFN2-xTB.

Run from the repository root: ``OMP_NUM_THREADS=1 python data/make_water_clusters_xtb.py``
(about 5 minutes on one idle core). Prints the sha256 for the registry in ``nnptutor/data.py``.

Method: for each size n, 3 random starting clusters (each new O 2.7-3.0 Å from an earlier O
and at least 2.7 Å from all others, random orientations) relaxed with BFGS under GFN2-xTB
(tblite) to hydrogen-bonded local minima ("isomer" 0-2); from each, Langevin MD (1 fs
steps, friction 0.02/fs) at 150 K and 300 K, 150 fs of equilibration, then one snapshot every
20 fs (8 per run): 7 x 3 x 2 x 8 = 336 structures. Snapshots where a molecule broke up (an H not bonded to exactly one O
within 1.3 Å) or the cluster split (O-O graph at 3.6 Å not connected) are skipped and
another run from the same minimum fills the gap. Positions rounded to 8 decimals, then labelled with a GFN2-xTB single point.
``info``: kind ("cluster"), n_molecules, isomer, temperature_K.
Story: train on small clusters, test on large ones.
"""
from pathlib import Path

import numpy as np

from _sampling import (intact_waters, is_connected, label_and_write, langevin_snapshots, relax,
                       water_cluster, xtb)

SEED = 8
SIZES = range(2, 9)
ISOMERS = 3
TEMPERATURES_K = (150, 300)
SAMPLES_PER_RUN = 8
MD = dict(timestep_fs=1.0, sample_every_fs=20.0, equilibration_fs=150.0)
OUT = Path(__file__).resolve().parents[1] / "nnptutor" / "datasets" / "water_clusters_xtb.extxyz.gz"


def good(atoms) -> bool:
    return intact_waters(atoms) and is_connected(atoms)


def main():
    images = []
    for n in SIZES:
        for isomer in range(ISOMERS):
            rng = np.random.default_rng([SEED, n, isomer])
            minimum = relax(water_cluster(n, rng), fmax=0.01, steps=1000)
            assert good(minimum), f"relaxed (H2O){n} isomer {isomer} is not one intact cluster"
            for T in TEMPERATURES_K:
                kept = []
                while len(kept) < SAMPLES_PER_RUN:  # another run if snapshots were skipped
                    snaps = langevin_snapshots(minimum, xtb(), T, SAMPLES_PER_RUN, rng, **MD)
                    kept += [s for s in snaps if good(s)][:SAMPLES_PER_RUN - len(kept)]
                for snap in kept:
                    snap.info.update(kind="cluster", n_molecules=n, isomer=isomer)
                    images.append(snap)
        print(f"(H2O){n} done", flush=True)
    label_and_write(images, xtb(), OUT)


if __name__ == "__main__":
    main()

"""PairACSF benchmark: pair-centred against atom-centred symmetry functions, same run.

    python benchmarks/bench_pcsf.py            # full (a few minutes)
    python benchmarks/bench_pcsf.py --quick    # smaller sizes, fewer repeats

Periodic fcc Cu (a = 3.61 Å, rattled) from 32 to 2048 atoms, one thread, both descriptors
with the same cutoff (5 Å) and their ``default`` parameter sets. For each size it prints
n_atoms, n_pairs (the number of pair networks to evaluate, ≈ n_atoms × neighbours / 2),
the medians of interleaved repeats for ACSF and PairACSF and their ratio (> 1: the pair
descriptor is slower); then the same with analytic derivatives, with the memory of the
sparse derivative arrays, which grows with n_pairs × (neighbours of A and B) instead of
n_atoms × neighbours.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402

from nnptutor.descriptors import ACSF, PairACSF  # noqa: E402

R_CUT = 5.0


def paired(first, second, repeats):
    """Medians of interleaved repeats [s], so that load changes hit both alike."""
    times = [], []
    for _ in range(repeats):
        for fn, out in zip((first, second), times):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return float(np.median(times[0])), float(np.median(times[1]))


def cu(n_rep, seed=0):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(n_rep)
    atoms.rattle(0.05, seed=seed)
    return atoms


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = parser.parse_args()
    repeats = 3 if args.quick else 5
    acsf = ACSF.default(["Cu"], r_cut=R_CUT)
    pcsf = PairACSF.default(["Cu"], r_cut=R_CUT)
    print(f"atom-centred: {acsf}\npair-centred: {pcsf}")

    header = (f"{'case':<22} {'n_atoms':>7} {'n_pairs':>8} {'pairs/atom':>10} "
              f"{'ACSF [ms]':>10} {'PairACSF [ms]':>13} {'ratio':>6}")
    print(header)
    sizes = (2, 3, 4, 6) if args.quick else (2, 3, 4, 5, 6, 8)
    for n in sizes:
        atoms = cu(n)
        n_pairs = len(pcsf.pairs(atoms))
        acsf.compute(atoms), pcsf.compute(atoms)  # warm up
        t_a, t_p = paired(lambda: acsf.compute(atoms), lambda: pcsf.compute(atoms),
                          repeats if len(atoms) <= 1000 else 3)
        print(f"{'features':<22} {len(atoms):>7} {n_pairs:>8} {n_pairs / len(atoms):>10.1f} "
              f"{t_a * 1e3:>10.1f} {t_p * 1e3:>13.1f} {t_p / t_a:>6.2f}")

    print()
    print(header + f" {'memory ACSF / Pair [MB]':>24}")
    for n in (2, 3, 4) if args.quick else (2, 3, 4, 5, 6):
        atoms = cu(n)
        n_pairs = len(pcsf.pairs(atoms))
        _, d_a = acsf.compute(atoms, derivatives=True)
        _, d_p = pcsf.compute(atoms, derivatives=True)
        t_a, t_p = paired(lambda: acsf.compute(atoms, derivatives=True),
                          lambda: pcsf.compute(atoms, derivatives=True),
                          repeats if len(atoms) <= 300 else 3)
        print(f"{'features+derivatives':<22} {len(atoms):>7} {n_pairs:>8} "
              f"{n_pairs / len(atoms):>10.1f} {t_a * 1e3:>10.1f} {t_p * 1e3:>13.1f} "
              f"{t_p / t_a:>6.2f} {d_a.nbytes / 1e6:>11.1f} / {d_p.nbytes / 1e6:.1f}")
        del d_a, d_p


if __name__ == "__main__":
    main()

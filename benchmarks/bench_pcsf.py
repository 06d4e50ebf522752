"""PairACSF benchmark: pair-centred against atom-centred symmetry functions, same run.

    python benchmarks/bench_pcsf.py            # full (a few minutes)
    python benchmarks/bench_pcsf.py --quick    # smaller sizes, fewer repeats
    python benchmarks/bench_pcsf.py --accuracy 60   # also train both for 60 s each

Periodic fcc Cu (a = 3.61 Å, rattled) from 32 to 2048 atoms, one thread, both descriptors
with the same cutoff (5 Å) and their ``default`` parameter sets. For each size it prints
n_atoms, n_pairs (the number of pair networks to evaluate, ≈ n_atoms × neighbours / 2),
the medians of interleaved repeats for ACSF and PairACSF and their ratio (> 1: the pair
descriptor is slower); then the same with analytic derivatives, with the memory of the
sparse derivative arrays, which grows with n_pairs × (neighbours of A and B) instead of
n_atoms × neighbours.

``--accuracy SECONDS`` then trains an atom-centred BPNN and the pair network on the same
structures (``cu_emt`` if it has been generated, else EMT-labelled rattled and strained
32-atom cells made here) for the same wall-clock budget and prints validation errors.
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
    parser.add_argument("--accuracy", type=float, default=0.0, metavar="SECONDS",
                        help="also train both models for this many seconds each")
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
        _, d_a = acsf.compute_with_derivatives(atoms)
        _, d_p = pcsf.compute_with_derivatives(atoms)
        t_a, t_p = paired(lambda: acsf.compute_with_derivatives(atoms),
                          lambda: pcsf.compute_with_derivatives(atoms),
                          repeats if len(atoms) <= 300 else 3)
        print(f"{'features+derivatives':<22} {len(atoms):>7} {n_pairs:>8} "
              f"{n_pairs / len(atoms):>10.1f} {t_a * 1e3:>10.1f} {t_p * 1e3:>13.1f} "
              f"{t_p / t_a:>6.2f} {d_a.nbytes / 1e6:>11.1f} / {d_p.nbytes / 1e6:.1f}")
        del d_a, d_p

    if args.accuracy:
        accuracy(args.accuracy)


def emt_images(n, seed=0):
    """Rattled, isotropically strained 32-atom fcc Cu cells with EMT energies and forces."""
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    images = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.61 * (1 + 0.02 * rng.uniform(-1, 1)), cubic=True)
        atoms = atoms.repeat(2)
        atoms.rattle(rng.uniform(0.02, 0.15), seed=seed * 1000 + k)
        atoms.calc = EMT()
        atoms.get_potential_energy(), atoms.get_forces()
        images.append(atoms)
    return images


def accuracy(budget_s, n_train=40, n_val=10, hidden=(32, 32)):
    """Same data, same network widths, same wall-clock budget: validation errors."""
    import torch

    import nnptutor as nt

    torch.set_num_threads(1)
    try:
        data = [a for a in nt.data.load("cu_emt") if len(a) <= 32 and a.pbc.all()]
        source = "cu_emt (periodic cells of at most 32 atoms)"
    except FileNotFoundError:
        data, source = emt_images(n_train + n_val), "EMT-labelled 32-atom cells made here"
    rng = np.random.default_rng(0)
    pick = rng.permutation(len(data))[: n_train + n_val]
    train, val = [data[k] for k in pick[:n_train]], [data[k] for k in pick[n_train:]]
    print(f"\naccuracy: {len(train)} train / {len(val)} val from {source}; "
          f"hidden {hidden}, {budget_s:g} s each, force weight 0.3")
    print(f"{'model':<26} {'centres/structure':>17} {'parameters':>10} {'epochs':>6} "
          f"{'val E [meV/atom]':>16} {'val F [eV/Å]':>12}")
    models = {
        "ACSF + BPNN": nt.Potential(acsf := ACSF.default(["Cu"], r_cut=R_CUT),
                                    nt.BPNN(acsf.type_labels, acsf.n_features, hidden=hidden)),
        "PairACSF + pair network": nt.PairPotential(PairACSF.default(["Cu"], r_cut=R_CUT),
                                                    hidden=hidden),
    }
    for name, pot in models.items():
        history = nt.train(pot, train, val, max_time_s=budget_s, progress=False, seed=0)
        best = history.best
        centres = np.mean([len(pot.descriptor.center_types(a)) for a in val])
        print(f"{name:<26} {centres:>17.0f} {pot.model.n_parameters:>10} {len(history):>6} "
              f"{best['val_energy_rmse_meV_per_atom']:>16.2f} {best['val_force_rmse']:>12.3f}")


if __name__ == "__main__":
    main()

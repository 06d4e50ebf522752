"""Training benchmark: accuracy against training time, settings compared, memory, molecules.

Run from the repository root (about 15 minutes on 2 cores)::

    python benchmarks/bench_training.py               # everything
    python benchmarks/bench_training.py --only curve  # one part: curve, settings, memory, molecules

Parts
-----
curve     cu_emt, 80/20 held-out split, library defaults, budgets of 15, 30, 60 and 90 s
          (featurisation timed separately): held-out RMSE in meV/atom and eV/Å.
settings  one setting changed at a time from the defaults, same budget: which ones matter.
memory    peak resident memory of featurising all of cu_emt with derivatives and training
          one epoch, in a fresh process, against the naive float64 size of the derivatives.
molecules the molecular sets (whatever of ethanol_xtb / water sets the registry holds),
          held-out RMSE after the same budget.

Timings are wall-clock on a shared machine: repeat runs and compare ratios within one run.
The trained Cu model is saved for ``bench_md.py`` (``--model``).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

import nnptutor as nt
from nnptutor.descriptors import ACSF
from nnptutor.training import evaluate, featurize

MODEL_PATH = os.path.join(tempfile.gettempdir(), "nnptutor_bench_cu_emt.pt")


def load(name: str):
    """A registered data set, or ``$NNPTUTOR_BENCH_DATA/<name>.extxyz.gz`` if set."""
    folder = os.environ.get("NNPTUTOR_BENCH_DATA")
    if folder and os.path.exists(os.path.join(folder, f"{name}.extxyz.gz")):
        import ase.io

        return ase.io.read(os.path.join(folder, f"{name}.extxyz.gz"), index=":")
    # NNPTUTOR_BENCH_NO_VERIFY=1: use a freshly generated file before its sha256 is registered
    return nt.data.load(name, verify_sha256=not os.environ.get("NNPTUTOR_BENCH_NO_VERIFY"))


def cu_split(seed=0):
    """ACSF.default features of cu_emt, split 80/20; cached in the temp folder (pickle of
    our own arrays) so that the parts and bench_md.py featurise once."""
    import pickle

    images = load("cu_emt")
    descriptor = ACSF.default(["Cu"], r_cut=6.0)
    cache = os.path.join(tempfile.gettempdir(), "nnptutor_bench_cu_emt_features.pkl")
    t0 = time.perf_counter()
    data = None
    if os.path.exists(cache):
        with open(cache, "rb") as f:
            data = pickle.load(f)
        if data.descriptor != descriptor:  # made with another default: featurise again
            data = None
    if data is None:
        data = featurize(descriptor, images, progress=False)
        with open(cache, "wb") as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
    t_feat = time.perf_counter() - t0
    train, test = data.split(0.8, seed=seed)
    print(f"cu_emt: {len(images)} structures, {int(data.n_atoms.sum())} atoms, "
          f"{descriptor.n_features} features; featurised with derivatives in {t_feat:.1f} s "
          f"({data.nbytes / 1e9:.2f} GB stored); train {len(train)}, held out {len(test)}")
    return descriptor, train, test


def run(descriptor, train, test, budget, hidden=(64, 64), activation="silu", **kwargs):
    pot = nt.Potential(descriptor, nt.BPNN(descriptor.type_labels, descriptor.n_features,
                                           hidden=hidden, activation=activation))
    history = nt.train(pot, train, max_time_s=budget, progress=False, **kwargs)
    err = evaluate(pot, test)
    return pot, history, err


def part_curve(descriptor, train, test, budgets=(15, 30, 60, 90)):
    print("\n## accuracy against training time (defaults; held-out 20 %)")
    print("| budget [s] | epochs | energy RMSE [meV/atom] | force RMSE [eV/Å] |")
    print("|---|---|---|---|")
    pot = None
    for budget in budgets:
        pot, history, err = run(descriptor, train, test, budget)
        print(f"| {budget} | {len(history)} | {err['energy_rmse_meV_per_atom']:.3f} | "
              f"{err['force_rmse']:.4f} |", flush=True)
    pot.save(MODEL_PATH)
    print(f"(model of the last budget saved to {MODEL_PATH})")


SETTINGS = {
    "defaults": {},
    "float64 training": dict(dtype="float64"),
    "64 structures per batch": dict(batch_size=64),
    "force weight 0.01": dict(force_weight=0.01),
    "force weight 1.0": dict(force_weight=1.0),
    "constant lr 5e-3": dict(lr_final=5e-3),
    "L-BFGS full batch": dict(optimizer="lbfgs"),
    "2 torch threads": dict(n_threads=2),
    "tanh 20-20 network": dict(hidden=(20, 20), activation="tanh"),
}


def part_settings(descriptor, train, test, budget):
    print(f"\n## one setting changed at a time ({budget} s each, held-out errors)")
    print("| setting | epochs | energy RMSE [meV/atom] | force RMSE [eV/Å] |")
    print("|---|---|---|---|")
    for name, kwargs in SETTINGS.items():
        _, history, err = run(descriptor, train, test, budget, **kwargs)
        print(f"| {name} | {len(history)} | {err['energy_rmse_meV_per_atom']:.3f} | "
              f"{err['force_rmse']:.4f} |", flush=True)


def part_memory():
    print("\n## memory: all of cu_emt with forces (fresh process)")
    code = (
        "import resource, sys; sys.path.insert(0, 'benchmarks'); import bench_training as b\n"
        "import nnptutor as nt\n"
        "from nnptutor.training import featurize\n"
        "images = b.load('cu_emt')\n"
        "d = b.ACSF.default(['Cu'], r_cut=6.0)\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "data = featurize(d, images, progress=False)\n"
        "feat = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "pot = nt.Potential(d, nt.BPNN(['Cu'], d.n_features))\n"
        "nt.train(pot, data, epochs=1, progress=False)\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "pairs = sum(len(c) for c in data.center)\n"
        "print(f'pairs {pairs}; naive float64 derivatives {pairs * 3 * d.n_features * 8 / 1e9:.2f} GB; '\n"
        "      f'stored {data.nbytes / 1e9:.2f} GB; peak RSS before {base / 1e6:.2f} GB, '\n"
        "      f'after featurising {feat / 1e6:.2f} GB, after one epoch {peak / 1e6:.2f} GB')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    print(out.stdout.strip() or out.stderr[-2000:])


def part_molecules(budget):
    print(f"\n## molecular sets ({budget} s, defaults, r_cut 6 Å ACSF.default, held-out 20 %)")
    print("| data set | structures | energy RMSE [meV/atom] | force RMSE [eV/Å] |")
    print("|---|---|---|---|")
    for name in ("ethanol_xtb", "water_clusters_xtb", "water_dft"):
        try:
            images = load(name)
        except Exception as exc:  # not generated (yet)
            print(f"| {name} | not available ({type(exc).__name__}) | | |")
            continue
        elements = sorted({s for a in images for s in a.get_chemical_symbols()})
        d = ACSF.default(elements, r_cut=6.0)
        t0 = time.perf_counter()
        data = featurize(d, images, progress=False)
        t_feat = time.perf_counter() - t0
        train, test = data.split(0.8, seed=0)
        _, history, err = run(d, train, test, budget)
        print(f"| {name} | {len(images)} | {err['energy_rmse_meV_per_atom']:.3f} | "
              f"{err['force_rmse']:.4f} | (featurised in {t_feat:.0f} s, {len(history)} epochs)",
              flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["curve", "settings", "memory", "molecules"])
    parser.add_argument("--budget", type=float, default=90.0)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    if args.only in (None, "memory"):
        part_memory()
    if args.only in (None, "curve", "settings"):
        descriptor, train, test = cu_split()
        if args.only in (None, "curve"):
            part_curve(descriptor, train, test)
        if args.only in (None, "settings"):
            part_settings(descriptor, train, test, args.budget)
    if args.only in (None, "molecules"):
        part_molecules(args.budget)


if __name__ == "__main__":
    main()

"""GMP against ACSF: features, sparse derivatives and the force path (VJP), one run.

Systems:

* ``Cu500``: fcc Cu, 5×5×5 cubic cells (500 atoms, a = 3.61 Å), rattled by 0.05 Å.
* ``cu_pt_co_emt``: the largest structure of ``nnptutor.data.load("cu_pt_co_emt")`` if that
  data set is registered; otherwise (stated in the output) a random Cu/Pt/Co fcc alloy of
  4×4×4 cubic cells (256 atoms), rattled by 0.05 Å.

Descriptors (feature counts printed):

* GMP default: orders 0–3, σ = 0.25, 0.5, 0.75, 1.0 Å, default cutoff (16 features, any
  number of elements); and the same GMP cut at 6 Å, the ACSF cutoff (same neighbour list).
* ACSF.default at 6 Å (13 features for Cu, 75 for three elements since the 8 centred G2
  default; 17 and 75 when the table in benchmarks/README.md was measured), and for the
  alloy a small ACSF matched to GMP's count (2 G2 + 1 G4 → 15 features).

Each timing is the median of ``--repeats`` calls in this process; ratios are GMP / ACSF in
the same run. Run from the repository root: ``python benchmarks/bench_gmp.py`` (a few
minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402

from nnptutor.descriptors import ACSF, GMP  # noqa: E402


def cu500():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (5, 5, 5)
    atoms.rattle(0.05, seed=0)
    return atoms


def cu_pt_co():
    import nnptutor.data

    if "cu_pt_co_emt" in nnptutor.data.available():
        images = nnptutor.data.load("cu_pt_co_emt")
        return max(images, key=len), "nnptutor.data cu_pt_co_emt (largest structure)"
    atoms = bulk("Cu", "fcc", a=3.70, cubic=True) * (4, 4, 4)
    rng = np.random.default_rng(1)
    atoms.symbols[:] = rng.choice(["Cu", "Pt", "Co"], size=len(atoms))
    atoms.rattle(0.05, seed=1)
    return atoms, "stand-in: random Cu/Pt/Co fcc alloy (cu_pt_co_emt not registered yet)"


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def force_path(descriptor, atoms, rng):
    values, vjp = descriptor.compute_with_vjp(atoms)
    return vjp(rng.normal(size=values.shape))


def measure(descriptor, atoms, repeats):
    rng = np.random.default_rng(0)
    descriptor.compute(atoms)  # warm-up (imports, caches)
    _, derivs = descriptor.compute_with_derivatives(atoms)
    return {
        "n_features": descriptor.n_features,
        "features_s": median_time(lambda: descriptor.compute(atoms), repeats),
        "derivatives_s": median_time(lambda: descriptor.compute_with_derivatives(atoms), repeats),
        "vjp_s": median_time(lambda: force_path(descriptor, atoms, rng), repeats),
        "derivatives_MB": derivs.nbytes / 1e6,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass

    alloy, alloy_source = cu_pt_co()
    systems = {"Cu500": cu500(), "cu_pt_co_emt": alloy}
    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
          f"median of {args.repeats}")
    print(f"cu_pt_co_emt: {alloy_source}, {len(alloy)} atoms")
    header = f"{'system':13s} {'descriptor':22s} {'r_cut':>5s} {'n_feat':>6s} {'features':>9s} {'+derivs':>9s} {'VJP':>9s} {'dG/dR MB':>9s}"
    rows = []
    for name, atoms in systems.items():
        elements = sorted(set(atoms.get_chemical_symbols()))
        gmp = GMP(elements)
        candidates = {
            "GMP (default)": gmp,
            "GMP (r_cut 6)": GMP(elements, r_cut=6.0),
            "ACSF.default": ACSF.default(elements, r_cut=6.0),
        }
        if len(elements) > 1:
            from nnptutor.descriptors.parameters import angular_set, radial_grid

            candidates["ACSF (matched count)"] = ACSF(
                elements, 6.0, g2=radial_grid(6.0, 2, mode="centered"),
                g4=angular_set(etas=[0.005], zetas=(1,), lambdas=(-1,)),
            )
        results = {label: measure(d, atoms, args.repeats) for label, d in candidates.items()}
        rows.append((name, candidates, results))

    print(header)
    for name, candidates, results in rows:
        for label, r in results.items():
            print(f"{name:13s} {label:22s} {candidates[label].r_cut:5.1f} {r['n_features']:6d} "
                  f"{r['features_s']:8.3f}s {r['derivatives_s']:8.3f}s {r['vjp_s']:8.3f}s {r['derivatives_MB']:9.1f}")
    print("\nratios GMP / ACSF (same run; > 1 means GMP is slower)")
    for name, candidates, results in rows:
        for gmp_label in ("GMP (default)", "GMP (r_cut 6)"):
            for acsf_label in [k for k in results if k.startswith("ACSF")]:
                g, a = results[gmp_label], results[acsf_label]
                print(f"{name:13s} {gmp_label:14s} / {acsf_label:20s} features {g['features_s'] / a['features_s']:5.2f}  "
                      f"+derivs {g['derivatives_s'] / a['derivatives_s']:5.2f}  VJP {g['vjp_s'] / a['vjp_s']:5.2f}")


if __name__ == "__main__":
    main()

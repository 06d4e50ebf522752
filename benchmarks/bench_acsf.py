"""ACSF benchmark: nnptutor against DScribe, in the same run, on one thread.

    python benchmarks/bench_acsf.py            # full (several minutes)
    python benchmarks/bench_acsf.py --quick    # a smaller subset

Prints, for each case, our time, DScribe's time (medians of interleaved repeats, CPU
time of this single-threaded process) and their ratio (< 1: we are faster). Cases:
periodic fcc Cu 32–4000 atoms (r_cut 6 Å, 8 G2 + 8 G4: :func:`bench_set`), a two-element cell, 1000 ethanol geometries in one call, features
+ analytic derivatives at 108 atoms against DScribe's numerical derivatives, time per atom
from 256 to 4000 atoms, peak memory at 4000 atoms with derivatives, the MD-style
features + vector–Jacobian product at 108 atoms against ASE's EMT forces, and the whole
``cu_emt`` data set if it is present. See benchmarks/README.md for results.

    python benchmarks/bench_acsf.py --only cu_emt   # featurize(n_jobs=2) on cu_emt only,
                                                    # in a fresh process (peak memory)
    python benchmarks/bench_acsf.py --only targets  # Cu500, 1000 ethanol, 108-atom ratio
    python benchmarks/bench_acsf.py --ab /tmp/old   # A/B: this tree against the package
                                                    # in another checkout, same process

The ``cu_emt`` part times :func:`nnptutor.training.featurize` with two worker processes
and with two threads (wall clock: it is the one figure here that uses both cores), the
workers' start-up cost, and peak memory (this process and the largest worker).
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread each: DScribe's ACSF is single-threaded

import argparse  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402
from ase.build import bulk, molecule  # noqa: E402

from nnptutor.descriptors.acsf import ACSF  # noqa: E402
from nnptutor.descriptors.parameters import angular_set, radial_grid  # noqa: E402


#: CPU time of this process: both codes run on one thread here, and on a shared machine
#: wall-clock time mostly measures how long we waited for a core.
clock = time.process_time


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return float(np.median(times))


def paired(ours, theirs, repeats):
    """Medians of interleaved repeats, so that load changes hit both alike."""
    t_ours, t_theirs = [], []
    for _ in range(repeats):
        t_ours.append(median_time(ours, 1))
        t_theirs.append(median_time(theirs, 1))
    return float(np.median(t_ours)), float(np.median(t_theirs))


def dscribe_like(acsf, periodic):
    from dscribe.descriptors import ACSF as DACSF

    return DACSF(species=list(acsf.elements), r_cut=acsf.r_cut,
                 g2_params=[list(p) for p in acsf.g2] or None, g3_params=acsf.g3 or None,
                 g4_params=[list(p) for p in acsf.g4] or None,
                 g5_params=[list(p) for p in acsf.g5] or None, periodic=periodic)


def bench_set(elements):
    """The issue's benchmark set, 8 G2 + 8 G4 at r_c = 6 Å (4 centred and 4 shifted G2; the
    course default before ACSF.default was retuned for accuracy)."""
    g2 = radial_grid(6.0, 4, mode="centered") + radial_grid(6.0, 4, mode="shifted")
    return ACSF(elements, 6.0, g2=g2, g4=angular_set([0.005], (1, 2, 4, 16), (-1, 1)))


def cu(n_rep, seed=0):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(n_rep)
    atoms.rattle(0.05, seed=seed)
    return atoms


def ethanols(count, seed=2):
    """``count`` ethanol molecules, positions rattled by 0.05 Å (a batch of molecules)."""
    base = molecule("CH3CH2OH")
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        m = base.copy()
        m.positions += rng.normal(scale=0.05, size=m.positions.shape)
        images.append(m)
    return images


def row(case, n_atoms, ours, theirs):
    ratio = ours / theirs
    print(f"{case:<34} {n_atoms:>7} {ours * 1e3:>11.1f} {theirs * 1e3:>11.1f} {ratio:>7.3f}")
    return ratio


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    parser.add_argument("--only", choices=("cu_emt", "targets"), help="run one part only")
    parser.add_argument("--ab", metavar="CHECKOUT",
                        help="compare with the nnptutor package of another checkout")
    args = parser.parse_args()
    if args.ab:
        return bench_ab(args.ab)
    if args.only == "cu_emt":
        return bench_cu_emt_featurize()
    if args.only == "targets":
        return bench_targets()
    repeats = 3 if args.quick else 5
    acsf = bench_set(["Cu"])
    d_cu = dscribe_like(acsf, periodic=True)
    print(f"ACSF: {acsf}")
    print(f"{'case':<34} {'n_atoms':>7} {'ours [ms]':>11} {'DScribe':>11} {'ratio':>7}")

    # ---- features, bulk Cu
    sizes = (2, 3, 5) if args.quick else (2, 3, 4, 5, 6, 8, 10)
    per_atom = {}
    for n in sizes:
        atoms = cu(n)
        acsf.compute(atoms)  # warm up (polynomial fit, imports)
        ours, theirs = paired(lambda: acsf.compute(atoms), lambda: d_cu.create(atoms),
                              repeats if len(atoms) <= 2048 else 3)
        row("features, fcc Cu", len(atoms), ours, theirs)
        per_atom[len(atoms)] = ours / len(atoms)

    # ---- features, two elements (Cu3Au-like random alloy)
    alloy = cu(4, seed=1)
    rng = np.random.default_rng(1)
    alloy.numbers[rng.choice(len(alloy), len(alloy) // 4, replace=False)] = 79
    acsf2 = bench_set(["Cu", "Au"])
    d2 = dscribe_like(acsf2, periodic=True)
    ours, theirs = paired(lambda: acsf2.compute(alloy), lambda: d2.create(alloy), repeats)
    row("features, CuAu alloy (2 elements)", len(alloy), ours, theirs)

    # ---- features, 1000 ethanol geometries in one call
    images = ethanols(200 if args.quick else 1000)
    acsf3 = bench_set(["H", "C", "O"])
    d3 = dscribe_like(acsf3, periodic=False)
    ours, theirs = paired(lambda: acsf3.compute_many(images, progress=False),
                          lambda: d3.create(images, n_jobs=1), repeats)
    row(f"features, {len(images)} ethanol (batch)", len(images) * 9, ours, theirs)

    # ---- features + derivatives at 108 atoms
    atoms = cu(3)
    t_der, t_feat = paired(lambda: acsf.compute_with_derivatives(atoms),
                           lambda: acsf.compute(atoms), 4 * repeats)
    t_num = median_time(lambda: d_cu.derivatives(atoms, method="numerical", attach=True), 1)
    row("features+derivatives vs numerical", len(atoms), t_der, t_num)
    print(f"  derivatives / our features time: {t_der / t_feat:.2f} "
          f"(medians of {4 * repeats} interleaved)")

    # ---- MD-style: features + vjp, against ASE's EMT forces
    from ase.calculators.emt import EMT

    dE_dG = np.random.default_rng(3).normal(size=(len(atoms), acsf.n_features))

    def md_step():
        _, vjp = acsf.compute_with_vjp(atoms)
        return vjp(dE_dG)

    def emt_step():
        atoms.calc = EMT()
        return atoms.get_forces()

    ours, theirs = paired(md_step, emt_step, repeats)
    print(f"{'features + vjp vs ASE EMT forces':<34} {len(atoms):>7} {ours * 1e3:>11.1f} "
          f"{theirs * 1e3:>11.1f} {ours / theirs:>7.3f}   (EMT in the DScribe column)")

    # ---- scaling: time per atom
    big = [n for n in per_atom if n >= 256]
    if len(big) > 1:
        values = [per_atom[n] for n in big]
        print("time per atom [µs]: " + ", ".join(f"{n}: {per_atom[n] * 1e6:.0f}" for n in big)
              + f"  (max/min {max(values) / min(values):.2f})")

    # ---- peak memory with derivatives at the largest size
    atoms = cu(sizes[-1])
    elapsed = median_time(lambda: acsf.compute_with_derivatives(atoms), 1)
    tracemalloc.start()
    _, derivs = acsf.compute_with_derivatives(atoms)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"derivatives at {len(atoms)} atoms: {elapsed:.2f} s, peak {peak / 1e9:.2f} GB "
          f"(result {derivs.nbytes / 1e9:.2f} GB)")

    # ---- the whole cu_emt data set (or a stand-in of the same size)
    try:
        import nnptutor as nt

        data, name = nt.data.load("cu_emt"), "cu_emt"
    except Exception as err:  # data set not generated yet
        print(f"cu_emt: not available ({type(err).__name__}); timing a stand-in instead")
        rng = np.random.default_rng(4)
        shapes = [(2, 2, 2), (2, 2, 3), (2, 3, 3), (3, 3, 3)]  # 32, 48, 72, 108 atoms
        count = 100 if args.quick else 1000
        data = [cu(shapes[k], seed=n) for n, k in enumerate(rng.integers(0, 3, count))]
        name = f"stand-in ({count} rattled fcc Cu cells)"
    n_atoms = sum(len(a) for a in data)
    t0, c0 = time.perf_counter(), clock()
    acsf.compute_many(data, derivatives=True, progress=False)
    print(f"{name}: {len(data)} structures, {n_atoms} atoms, features + derivatives "
          f"in {clock() - c0:.1f} s CPU ({time.perf_counter() - t0:.1f} s wall), one thread")
    if name == "cu_emt":  # what training does: featurize, chunks in workers, compact storage
        import subprocess
        import sys

        subprocess.run([sys.executable, __file__, "--only", "cu_emt"], check=True)


def bench_targets(repeats=11):
    """The issue's single-thread targets with more repeats: Cu500 (and Cu108, to see that
    the bulk path did not slow down) and 1000 ethanol features against DScribe,
    derivatives / features at 108 atoms (twice the repeats)."""
    acsf = bench_set(["Cu"])
    for n in (5, 3):
        atoms = cu(n)
        acsf.compute(atoms)
        ours, theirs = paired(lambda: acsf.compute(atoms),
                              lambda: dscribe_like(acsf, True).create(atoms), repeats)
        row("features, fcc Cu", len(atoms), ours, theirs)
    images = ethanols(1000)
    acsf3 = bench_set(["H", "C", "O"])
    d3 = dscribe_like(acsf3, periodic=False)
    acsf3.compute_many(images, progress=False)
    ours, theirs = paired(lambda: acsf3.compute_many(images, progress=False),
                          lambda: d3.create(images, n_jobs=1), repeats)
    row("features, 1000 ethanol (batch)", len(images) * 9, ours, theirs)
    atoms = cu(3)
    t_der, t_feat = paired(lambda: acsf.compute_with_derivatives(atoms),
                           lambda: acsf.compute(atoms), 2 * repeats - 1)
    print(f"108 atoms: derivatives {t_der * 1e3:.1f} ms, features {t_feat * 1e3:.1f} ms, "
          f"ratio {t_der / t_feat:.2f} (medians of {2 * repeats - 1} interleaved)")


def _import_renamed(checkout, name="nnptutor_old"):
    """The ``nnptutor`` package of another checkout, imported as ``name`` (a copy with its
    absolute imports renamed), so that both versions run in one process."""
    import importlib
    import re
    import shutil
    import sys
    import tempfile

    root = tempfile.mkdtemp()
    shutil.copytree(os.path.join(checkout, "nnptutor"), os.path.join(root, name))
    for folder, _, files in os.walk(os.path.join(root, name)):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                with open(path) as fh:
                    text = re.sub(r"\bnnptutor(?=[. ])", name, fh.read())
                with open(path, "w") as fh:
                    fh.write(text)
    sys.path.insert(0, root)
    return importlib.import_module(f"{name}.descriptors.acsf")


def _with_derivatives(acsf, atoms):
    """Features and derivatives; checkouts before commit 39a3f8b spell it compute(…, True)."""
    if hasattr(acsf, "compute_with_derivatives"):
        return acsf.compute_with_derivatives(atoms)
    return acsf.compute(atoms, derivatives=True)


def bench_ab(checkout, repeats=15):
    """This tree's ACSF against another checkout's, interleaved (alternating order),
    medians of CPU time: features and features + derivatives on Cu500, Cu108 and 1000
    ethanol, features + vjp on Cu108, and the derivatives against DScribe's numerical ones."""
    old_acsf = _import_renamed(checkout)
    images = ethanols(1000)
    cases = []
    for label, elements, what in (("Cu500", ["Cu"], cu(5)), ("Cu108", ["Cu"], cu(3)),
                                  ("1000 ethanol", ["H", "C", "O"], images)):
        new = bench_set(elements)
        old = old_acsf.ACSF(new.elements, new.r_cut, g2=new.g2, g4=new.g4)
        for kind in ("features", "features+derivatives"):
            derivatives = kind != "features"
            if isinstance(what, list):
                calls = [lambda d=d, w=what, g=derivatives: d.compute_many(w, g, progress=False)
                         for d in (new, old)]
            elif derivatives:
                calls = [lambda d=d, w=what: _with_derivatives(d, w) for d in (new, old)]
            else:
                calls = [lambda d=d, w=what: d.compute(w) for d in (new, old)]
            cases.append((f"{kind}, {label}", calls))
    atoms = cu(3)
    dE_dG = np.random.default_rng(3).normal(size=(len(atoms), bench_set(["Cu"]).n_features))
    vjp_calls = [lambda d=d: d.compute_with_vjp(atoms)[1](dE_dG)
                 for d in (bench_set(["Cu"]), old_acsf.ACSF(["Cu"], 6.0, g2=bench_set(["Cu"]).g2,
                                                           g4=bench_set(["Cu"]).g4))]
    cases.append(("features+vjp, Cu108", vjp_calls))
    print(f"load average {os.getloadavg()[0]:.1f}; {repeats} interleaved repeats, medians")
    print(f"{'case':<36} {'new [ms]':>10} {'old [ms]':>10} {'new/old':>8}")
    for label, (new_call, old_call) in cases:
        new_call(), old_call()  # warm up
        times = ([], [])
        for r in range(repeats):
            for k in ((0, 1) if r % 2 == 0 else (1, 0)):
                t0 = clock()
                (new_call, old_call)[k]()
                times[k].append(clock() - t0)
        t_new, t_old = np.median(times[0]), np.median(times[1])
        print(f"{label:<36} {t_new * 1e3:>10.1f} {t_old * 1e3:>10.1f} {t_new / t_old:>8.3f}")
    acsf = bench_set(["Cu"])
    t_der = median_time(lambda: acsf.compute_with_derivatives(atoms), 5)
    t_num = median_time(lambda: dscribe_like(acsf, True).derivatives(
        atoms, method="numerical", attach=True), 1)
    print(f"Cu108 derivatives: DScribe numerical / ours = {t_num / t_der:.0f}x")
    print(f"load average {os.getloadavg()[0]:.1f}")


def bench_cu_emt_featurize():
    """``featurize(cu_emt, n_jobs=2)`` with processes and threads, start-up, memory."""
    import resource

    import nnptutor as nt
    from nnptutor.training import featurize

    def rss_gb(who):  # peak resident memory [GB] (Linux reports kB)
        return resource.getrusage(who).ru_maxrss / 1e6

    # the workers' peak: VmHWM of this process's children, polled (a child's ru_maxrss
    # would include this process's memory, which it shares between fork and exec)
    import threading

    worker_peak = [0.0]
    done = threading.Event()

    def poll_workers():
        while not done.wait(0.2):
            for pid in os.listdir("/proc"):
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) != os.getpid():
                            continue
                    with open(f"/proc/{pid}/status") as f:
                        hwm = [line for line in f if line.startswith("VmHWM")]
                    worker_peak[0] = max(worker_peak[0], int(hwm[0].split()[1]) / 1e6)
                except (OSError, ValueError, IndexError):
                    continue

    threading.Thread(target=poll_workers, daemon=True).start()

    data = nt.data.load("cu_emt")
    small = data[:8]
    for call in ("first", "second"):  # start-up: the same small job both ways
        t_p = time.perf_counter()
        featurize(bench_set(["Cu"]), small, progress=False, n_jobs=2, chunk_size=4,
                  backend="processes")
        t_p = time.perf_counter() - t_p
        t_t = time.perf_counter()
        featurize(bench_set(["Cu"]), small, progress=False, n_jobs=2, chunk_size=4,
                  backend="threads")
        t_t = time.perf_counter() - t_t
        print(f"8 structures, {call} call: processes {t_p:.2f} s, threads {t_t:.2f} s wall "
              f"(start-up ≈ {t_p - t_t:.2f} s)")
    n_atoms = sum(len(a) for a in data)
    before = rss_gb(resource.RUSAGE_SELF)
    descriptors = ((bench_set(["Cu"]), "8 G2 + 8 G4"), (ACSF.default(["Cu"]), "ACSF.default"))
    for backend in ("processes", "threads"):  # processes first: their peak RSS, then threads'
        if backend == "threads":
            peak_processes = rss_gb(resource.RUSAGE_SELF)
        for descriptor, label in descriptors:
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0, c0 = time.perf_counter(), clock()
            result = featurize(descriptor, data, progress=False, n_jobs=2, backend=backend)
            wall, cpu = time.perf_counter() - t0, clock() - c0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu_children = (after.ru_utime + after.ru_stime
                            - children.ru_utime - children.ru_stime)
            print(f"cu_emt ({len(data)} structures, {n_atoms} atoms), featurize(n_jobs=2, "
                  f"{backend}), {label} ({descriptor.n_features} features): {wall:.1f} s wall, "
                  f"CPU {cpu:.1f} s here + {cpu_children:.1f} s in workers; stored "
                  f"{result.nbytes / 1e9:.2f} GB")
            del result
    print(f"peak RSS: this process {peak_processes:.2f} GB with workers, "
          f"{rss_gb(resource.RUSAGE_SELF):.2f} GB with threads (after loading the data "
          f"{before:.2f} GB); largest worker {worker_peak[0]:.2f} GB (VmHWM, polled)")
    done.set()


if __name__ == "__main__":
    main()

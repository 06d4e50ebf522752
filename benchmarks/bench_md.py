"""MD benchmark: cost per step against EMT, NNP against DFT, NVE energy drift.

Run from the repository root after ``bench_training.py`` (which saves the Cu model; without
it a model is trained here for 90 s)::

    python benchmarks/bench_md.py                 # everything (about 6 minutes on 2 cores)
    python benchmarks/bench_md.py --only cost     # cost, dft or nve

Parts
-----
cost  VelocityVerlet steps on 108 Cu atoms with NNPCalculator and with ASE's EMT, measured
      in the same run, interleaved: median ms per step and the ratio.
dft   ethanol: NNP energy + forces (descriptor and network, ACSF.default) against one PySCF
      B3LYP/6-31G* energy + gradient.
nve   NVE with the trained Cu model, 1 fs, 2 ps from 600 K (Maxwell–Boltzmann at 2 × 600 K,
      half goes into potential energy), 108 atoms; drift = slope of a straight line through
      the total energy [meV/atom/ps], against EMT on the same start.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
from ase import units
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet

import nnptutor as nt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_training import MODEL_PATH, cu_split, run  # noqa: E402


def cu_model():
    if os.path.exists(MODEL_PATH):
        pot = nt.Potential.load(MODEL_PATH)
        if pot.descriptor == nt.ACSF.default(["Cu"], r_cut=6.0):
            return pot
    descriptor, train, test = cu_split()
    pot, _, err = run(descriptor, train, test, 90.0)
    pot.save(MODEL_PATH)
    return pot


def cu108(temperature_K=300, seed=0):
    atoms = bulk("Cu", "fcc", a=3.59, cubic=True).repeat((3, 3, 3))
    thermalize_momenta(atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed))
    Stationary(atoms)
    return atoms


def ms_per_step(calc, n_steps=20, repeats=5):
    """Median over repeats of the mean wall time of one VelocityVerlet step [ms]."""
    times = []
    for r in range(repeats):
        atoms = cu108(seed=r)
        atoms.calc = calc
        dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
        dyn.run(2)  # warm-up
        t0 = time.perf_counter()
        dyn.run(n_steps)
        times.append(1000 * (time.perf_counter() - t0) / n_steps)
    return float(np.median(times)), times


def part_cost(pot):
    print("\n## MD cost, 108 Cu atoms, VelocityVerlet (median of 5 × 20 steps, interleaved)")
    calcs = {"EMT": EMT(), "NNPCalculator": nt.NNPCalculator(pot, warn=False)}
    results = {name: [] for name in calcs}
    for _ in range(3):  # interleave so both see the same machine load
        for name, calc in calcs.items():
            results[name].append(ms_per_step(calc)[0])
    med = {name: float(np.median(v)) for name, v in results.items()}
    for name in calcs:
        print(f"{name}: {med[name]:.1f} ms/step (runs {np.round(results[name], 1).tolist()})")
    print(f"ratio NNP / EMT: {med['NNPCalculator'] / med['EMT']:.2f}")
    # where the NNP time goes
    atoms = cu108()
    d = pot.descriptor
    t = []
    for _ in range(10):
        t0 = time.perf_counter()
        d.compute_with_vjp(atoms)
        t.append(time.perf_counter() - t0)
    print(f"  of which descriptor features + VJP set-up: {1000 * np.median(t):.1f} ms "
          f"(ACSF method={getattr(d, 'method', '?')})")


def part_dft():
    print("\n## ethanol: NNP (untrained weights, same cost) against PySCF B3LYP/6-31G*")
    from pyscf import dft, gto, lib

    atoms = molecule("CH3CH2OH")
    d = nt.ACSF.default(["H", "C", "O"], r_cut=6.0)
    pot = nt.Potential(d, nt.BPNN(d.type_labels, d.n_features))
    pot.predict(atoms, warn=False)
    t = []
    for _ in range(20):
        t0 = time.perf_counter()
        pot.predict(atoms, warn=False)
        t.append(time.perf_counter() - t0)
    t_nnp = float(np.median(t))
    mol = gto.M(atom=[(s, p) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)],
                basis="6-31g*", verbose=0)
    t0 = time.perf_counter()
    mf = dft.RKS(mol, xc="b3lyp")
    mf.kernel()
    mf.nuc_grad_method().kernel()
    t_dft = time.perf_counter() - t0
    print(f"NNP energy+forces: {1000 * t_nnp:.2f} ms (median of 20); "
          f"B3LYP/6-31G* SCF+gradient: {t_dft:.1f} s ({lib.num_threads()} PySCF threads); "
          f"ratio {t_dft / t_nnp:.2e} ({np.log10(t_dft / t_nnp):.1f} orders of magnitude)")


def nve_drift(atoms, calc, n_steps=2000):
    atoms = atoms.copy()
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    energies, temps = [], []

    def record():
        energies.append(atoms.get_total_energy())
        temps.append(atoms.get_temperature())

    dyn.attach(record, interval=10)
    t0 = time.perf_counter()
    dyn.run(n_steps)
    elapsed = time.perf_counter() - t0
    energies = np.array(energies) / len(atoms)
    t_ps = np.arange(len(energies)) * 10 / 1000
    slope = np.polyfit(t_ps, energies, 1)[0]
    return 1000 * slope, 1000 * np.ptp(energies), float(np.mean(temps)), elapsed


def part_nve(pot, n_steps=2000):
    print(f"\n## NVE, 108 Cu atoms, 1 fs, {n_steps / 1000:g} ps, started at 1200 K kinetic "
          "(about 600 K)")
    start = cu108(temperature_K=1200, seed=7)
    for name, calc in (("NNP", nt.NNPCalculator(pot, warn=False)), ("EMT", EMT())):
        slope, spread, temp, elapsed = nve_drift(start, calc, n_steps)
        print(f"{name}: drift {slope:+.4f} meV/atom/ps, max-min {spread:.3f} meV/atom, "
              f"mean T {temp:.0f} K ({elapsed:.0f} s)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["cost", "dft", "nve"])
    parser.add_argument("--nve-steps", type=int, default=2000, help="1 fs steps (default 2 ps)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    torch.set_num_threads(1)
    if args.only in (None, "cost", "nve"):
        pot = cu_model()
    if args.only in (None, "cost"):
        part_cost(pot)
    if args.only in (None, "dft"):
        part_dft()
    if args.only in (None, "nve"):
        part_nve(pot, args.nve_steps)


if __name__ == "__main__":
    main()

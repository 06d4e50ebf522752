"""Issue 15's acceptance run: active learning on the library defaults must improve a model.

A committee of 4 from ``Committee.from_descriptor(ACSF.default(["Cu"], r_cut=5.0))``, six
rattled 32-atom bulk cells as seeds, MD starts that include a (111) slab and a vacancy cell
at 700 K, EMT as the oracle, 4 iterations, top_k=3, the library's defaults otherwise.
Held-out test structures: EMT MD snapshots of the slab and the vacancy cell at 700 K.

Passes when the committee mean's energy RMSE on the test structures falls at least two-fold,
its force RMSE falls, and no failed or unphysical frame was labelled.

    python benchmarks/bench_active_learning.py [--seed 0] [--folder runs/al]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from ase import units
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta

import nnptutor as nt
from nnptutor.descriptors import ACSF
from nnptutor.exploration import shortest_distance

A0 = 3.59  # EMT lattice constant of Cu [Å]


def structures():
    """The perfect 32-atom cell, the same with a vacancy, and a 36-atom (111) slab."""
    perfect = bulk("Cu", "fcc", a=A0, cubic=True) * (2, 2, 2)
    vacancy = perfect.copy()
    del vacancy[0]
    slab = fcc111("Cu", size=(3, 3, 4), a=A0, vacuum=7.0, periodic=True)
    slab.pbc = (True, True, False)
    return perfect, vacancy, slab


def seeds(perfect, count=6, rattle=0.05, seed=0):
    """``count`` rattled copies of ``perfect`` (σ = ``rattle`` Å), labelled by EMT."""
    images = []
    for k in range(count):
        atoms = perfect.copy()
        atoms.rattle(rattle, seed=seed + k)
        images.append(atoms)
    return nt.data.label(images, EMT(), progress=False)


def emt_snapshots(atoms, temperature_K, count, seed):
    """EMT Langevin MD (5 fs steps): 0.5 ps to equilibrate, then a snapshot every 100 fs."""
    rng = np.random.default_rng(seed)
    atoms = atoms.copy()
    atoms.calc = EMT()
    thermalize_momenta(atoms, temperature_K, rng=rng)
    dyn = Langevin(atoms, 5 * units.fs, temperature_K=temperature_K,
                   friction=0.02 / units.fs, fixcm=False, rng=rng)
    dyn.run(100)
    snapshots = []
    for _ in range(count):
        dyn.run(20)
        snapshots.append(atoms.copy())
    return nt.data.label(snapshots, EMT(), progress=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="loop seed")
    parser.add_argument("--folder", default=None, help="save the run here")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="override a setting (a Python literal), e.g. upper_factor=5")
    args = parser.parse_args()
    torch.set_num_threads(1)
    perfect, vacancy, slab = structures()
    seed_images = seeds(perfect)
    test_images = emt_snapshots(slab, 700, 5, seed=11) + emt_snapshots(vacancy, 700, 5, seed=12)
    committee = nt.Committee.from_descriptor(ACSF.default(["Cu"], r_cut=5.0), n_members=4)
    overrides = {k: eval(v) for k, v in (item.split("=", 1) for item in args.set)}
    start = time.perf_counter()
    history = nt.active_learning(committee, EMT(), seed_images, [perfect, slab, vacancy],
                                 test_images=test_images, md_temperature_K=700.0,
                                 n_iterations=4, top_k=3, seed=args.seed, folder=args.folder,
                                 progress=False, **overrides)
    elapsed = time.perf_counter() - start
    print(history.table())
    print(history)
    d_min = min(shortest_distance(a) for a in seed_images)
    labelled_ok = all(a.info["al_status"] == "candidate"
                      and shortest_distance(a) >= history.settings.min_distance_fraction * d_min
                      for a in history.labelled)
    e = history.column("energy_rmse_meV_per_atom")
    f = history.column("force_rmse")
    verdict = {"energy_two_fold": bool(e[-1] <= e[0] / 2), "force_lower": bool(f[-1] < f[0]),
               "only_candidates_labelled": labelled_ok}
    print(json.dumps({"seed": args.seed, "overrides": args.set, "time_s": round(elapsed, 1),
                      "energy_rmse_meV_per_atom": e.round(2).tolist(),
                      "force_rmse": f.round(4).tolist(),
                      "levels": [(r["lower"], r["upper"]) for r in history.rows], **verdict}))
    print("PASS" if all(verdict.values()) else "FAIL")


if __name__ == "__main__":
    main()

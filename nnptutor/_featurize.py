"""Chunks of structures featurised into compact arrays, in this process or in workers.

Used by :func:`nnptutor.training.featurize`. Two threads in one process give only about
1.3x on two cores (numpy holds the interpreter lock between its large operations), so
large jobs go to worker processes.

A worker is a fresh interpreter running ``python -m nnptutor._featurize``, not a fork and
not :mod:`multiprocessing`: forking a process that has started torch's or Jupyter's
threads is unsafe, and multiprocessing's spawn and forkserver methods re-run the user's
main script in every worker (an unguarded script would featurise recursively). The worker
imports numpy, ASE, vesin and the descriptors, not torch (about half a second). It reads pickled
tasks from its stdin and writes pickled results to its stdout: a descriptor as its
``to_dict()`` (rebuilt by name with :func:`descriptor_from_dict`, so no code travels),
structures as plain arrays (no calculators), and back compact arrays (float32
derivatives, int32 indices). Pickles travel only between this package's own processes.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
from ase import Atoms


def plain_structure(atoms: Atoms) -> tuple:
    """(numbers, positions, cell, pbc) of a structure: what a worker needs to rebuild it.

    Shapes (n_atoms,), (n_atoms, 3) [Å], (3, 3) [Å], (3,).
    """
    return (np.asarray(atoms.numbers), np.asarray(atoms.positions),
            np.asarray(atoms.cell.array), np.asarray(atoms.pbc))


def compact_chunk(descriptor, images, derivatives: bool, derivative_dtype: str) -> list:
    """Features of a chunk of structures in compact storage.

    Parameters
    ----------
    descriptor : Descriptor
    images : list of ase.Atoms
    derivatives : bool
    derivative_dtype : {"float32", "float64"}

    Returns
    -------
    list of tuple
        Per structure: values (n_centers, n_features) float64, types (n_centers,) int64,
        and if ``derivatives`` center, neighbor (n_pairs,) int32 and derivatives
        (n_pairs, 3, n_features) in ``derivative_dtype`` [feature unit/Å], else three None.
    """
    rows = []
    # batched descriptors (ACSF.compute_many) save per-call overhead on small molecules;
    # each structure is shrunk to compact storage at once
    for atoms, out in zip(images, descriptor.compute_many(images, derivatives, progress=False)):
        v, d = out if derivatives else (out, None)
        rows.append((np.asarray(v, dtype=np.float64),
                     np.asarray(descriptor.center_types(atoms), dtype=np.int64),
                     None if d is None else d.center.astype(np.int32),
                     None if d is None else d.neighbor.astype(np.int32),
                     None if d is None else d.values.astype(derivative_dtype)))
    return rows


class WorkerError(RuntimeError):
    """A worker process could not start or ended without an answer."""


class WorkerProcess:
    """One worker interpreter; :meth:`run` featurises a chunk in it.

    Not thread-safe: use one per thread. Close it (or use it as a context manager) to end
    the process.
    """

    def __init__(self):
        import nnptutor

        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = "1"  # one BLAS thread per worker: the workers share the cores
        # the package this process uses, wherever it was imported from
        root = os.path.dirname(os.path.dirname(os.path.abspath(nnptutor.__file__)))
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join([root] + paths)
        try:
            self.process = subprocess.Popen([sys.executable, "-m", "nnptutor._featurize"],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            env=env)
        except OSError as err:
            raise WorkerError(f"could not start a featurising worker process ({err})") from None

    def run(self, descriptor_dict: dict, images, derivatives: bool,
            derivative_dtype: str) -> list:
        """:func:`compact_chunk` of ``images`` in the worker (same numbers, bit for bit)."""
        task = (descriptor_dict, [plain_structure(a) for a in images], derivatives,
                derivative_dtype)
        try:
            pickle.dump(task, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.process.stdin.flush()
            status, result = pickle.load(self.process.stdout)
        except (EOFError, BrokenPipeError, OSError, pickle.UnpicklingError):
            try:
                code = self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # alive but talking nonsense
                self.process.kill()
                code = self.process.wait()
            raise WorkerError(f"featurising worker process ended unexpectedly (exit code "
                              f"{code}); featurize(..., backend='threads') avoids them") from None
        if status == "ok":
            return result
        kind, message = result
        raise (ValueError if kind == "ValueError" else RuntimeError)(message)

    def close(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.close()  # the worker's loop ends at end of input
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _rebuild(descriptor_dict: dict):
    """:func:`descriptor_from_dict`, importing only the module of the named descriptor
    (not all of them: GMP's imports scipy, half a second of a worker's start-up)."""
    from nnptutor import descriptors
    from nnptutor.descriptors.base import _REGISTRY, descriptor_from_dict

    name = descriptor_dict.get("name") if isinstance(descriptor_dict, dict) else None
    if name in descriptors._LAZY:
        getattr(descriptors, name)  # imports its module, which registers the class
    if name in _REGISTRY:
        return _REGISTRY[name].from_dict(descriptor_dict)
    return descriptor_from_dict(descriptor_dict)  # loads them all, or names what is wrong


def _serve(stdin, stdout) -> None:
    """The worker's loop: read tasks until end of input, answer each one."""
    import traceback

    descriptors = {}  # rebuilt once per worker: each keeps its cached plan
    while True:
        try:
            descriptor_dict, structures, derivatives, dtype = pickle.load(stdin)
        except EOFError:
            return
        try:
            key = repr(descriptor_dict)
            if key not in descriptors:
                descriptors[key] = _rebuild(descriptor_dict)
            images = [Atoms(numbers=n, positions=p, cell=c, pbc=b)
                      for n, p, c, b in structures]
            answer = ("ok", compact_chunk(descriptors[key], images, derivatives, dtype))
        except Exception as exc:  # sent back and raised in the parent
            kind = "ValueError" if isinstance(exc, ValueError) else "other"
            answer = ("error", (kind, f"in a featurising worker: {exc}\n"
                                      + traceback.format_exc()))
        pickle.dump(answer, stdout, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.flush()


if __name__ == "__main__":
    # vesin imports torch if it can (3 s of start-up); the worker never needs it
    sys.modules["torch"] = None
    # the protocol owns the real stdout; stray prints go to stderr
    _out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(sys.stdin.buffer, _out)

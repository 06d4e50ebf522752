"""Featurisation of a data set: features, sparse derivatives and labels in compact arrays.

:func:`featurize` computes a descriptor for every structure of a data set once, so that
several models can train on it (:func:`nnptutor.training.train`). Structures go in chunks
of ``chunk_size`` to ``descriptor.compute_many``; each chunk is shrunk to compact storage
(float32 derivatives, int32 indices) as soon as it is done, so peak memory stays near the
size of the result.

Chunks run in this process, in threads, in worker processes (joblib's loky executor) or in
any :class:`concurrent.futures.Executor` the caller passes (a process pool, or a Dask
cluster's ``client.get_executor()``). A worker receives the descriptor as its ``to_dict()``
(rebuilt once per worker) and structures as plain arrays, and returns compact arrays; the
numbers are the same, bit for bit, wherever a chunk runs.

Taught in notebooks/04_behler_parrinello.ipynb.
"""
from __future__ import annotations

import os
import sys
import warnings
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

_DERIVATIVE_DTYPES = ("float32", "float64")

@dataclass
class FeaturizedSet:
    """Features, sparse derivatives and reference labels of a list of structures.

    Made by :func:`featurize`; pass it to :func:`train` instead of images to featurise once
    and train several models. Index it with a list of ints or a slice to get a subset.

    Attributes
    ----------
    descriptor : Descriptor
    values : list of ndarray, shape (n_centers, n_features), float64
    types : list of ndarray of int, shape (n_centers,)
    center, neighbor : list of ndarray of int32, shape (n_pairs,)
        Sparse derivative indices (None if featurised without derivatives).
    derivatives : list of ndarray, shape (n_pairs, 3, n_features)
        dG[center]/dR[neighbor] in ``derivative_dtype`` [feature unit/Å].
    n_atoms : ndarray of int, shape (n_structures,)
    energies : ndarray, shape (n_structures,)
        Reference total energies [eV].
    forces : list of ndarray, shape (n_atoms, 3), or None
        Reference forces [eV/Å].
    compositions : ndarray of int, shape (n_structures, n_elements)
    """

    descriptor: object
    values: list
    types: list
    center: list | None
    neighbor: list | None
    derivatives: list | None
    n_atoms: np.ndarray
    energies: np.ndarray
    forces: list | None
    compositions: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index) -> "FeaturizedSet":
        index = np.arange(len(self))[index]
        index = np.atleast_1d(index)

        def pick(seq):
            return None if seq is None else [seq[k] for k in index]

        return FeaturizedSet(
            self.descriptor, pick(self.values), pick(self.types), pick(self.center),
            pick(self.neighbor), pick(self.derivatives), self.n_atoms[index],
            self.energies[index], pick(self.forces), self.compositions[index],
        )

    def split(self, fraction: float, seed: int = 0) -> tuple["FeaturizedSet", "FeaturizedSet"]:
        """Random split into (first, second) with ``fraction`` of the structures in the first."""
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
        order = np.random.default_rng(seed).permutation(len(self))
        n_first = int(round(fraction * len(self)))
        return self[np.sort(order[:n_first])], self[np.sort(order[n_first:])]

    @property
    def has_forces(self) -> bool:
        return self.forces is not None and self.derivatives is not None

    @property
    def nbytes(self) -> int:
        """Memory held by the feature and derivative arrays [bytes]."""
        arrays = self.values + self.types + (self.forces or [])
        if self.derivatives is not None:
            arrays = arrays + self.center + self.neighbor + self.derivatives
        return int(sum(a.nbytes for a in arrays))

    def __repr__(self) -> str:
        return (
            f"FeaturizedSet({len(self)} structures, {int(self.n_atoms.sum())} atoms, "
            f"n_features={self.descriptor.n_features}, forces={self.has_forces}, "
            f"{self.nbytes / 1e6:.1f} MB)"
        )



#: Smallest job (atoms, derivatives counted :data:`_DERIVATIVE_WEIGHT` times) that
#: :func:`featurize` sends to worker processes by default. Starting two workers costs a
#: fraction of a second; they beat two threads (numpy holds the interpreter lock between
#: its large operations, so two threads give only about 1.3x on two cores) from about
#: 2000 Cu atoms with derivatives (0.85 ms each at 6 Å), 8000 without.
PROCESS_MIN_ATOMS = 8000
_DERIVATIVE_WEIGHT = 4


def featurize(descriptor, images: Sequence[Atoms], derivatives: bool = True,
              progress: bool = True, derivative_dtype: str = "float32",
              chunk_size: int = 16, n_jobs: int | None = None, backend: str = "auto",
              executor: Executor | None = None) -> FeaturizedSet:
    """Features, sparse derivatives and reference labels of every structure.

    Parameters
    ----------
    descriptor : Descriptor
    images : sequence of ase.Atoms
        With a calculator holding the reference energy (and forces if ``derivatives``),
        as returned by :func:`nnptutor.data.load`.
    derivatives : bool
        Store derivatives and forces for force training.
    progress : bool
        Show a progress bar.
    derivative_dtype : {"float32", "float64"}
    chunk_size : int
        Structures per call of ``descriptor.compute_many`` (and per task of a pool).
    n_jobs : int, optional
        Threads or worker processes (default: the number of CPU cores, at most 4). Each
        uses one BLAS thread, so the cores are not oversubscribed. Ignored with
        ``executor``.
    backend : {"auto", "processes", "threads"}
        How ``n_jobs > 1`` workers run. "processes" uses joblib's loky executor (fresh
        interpreters, reused between calls: safe after torch is imported, in Jupyter, and
        in scripts without a ``__main__`` guard); "threads" shares this interpreter.
        "auto" uses processes for jobs of at least :data:`PROCESS_MIN_ATOMS` atoms
        (derivatives count four times) whose descriptor round-trips through ``to_dict``,
        and falls back to threads (with a ``RuntimeWarning``) where no worker can start.
    executor : concurrent.futures.Executor, optional
        Runs the chunks instead (for example a ``ProcessPoolExecutor``, or
        ``client.get_executor()`` of a ``dask.distributed`` cluster, for large data sets);
        it is not shut down. The descriptor must round-trip through ``to_dict``.

    Returns
    -------
    FeaturizedSet
        The result does not depend on ``n_jobs``, ``backend`` or ``executor``, bit for bit.
    """
    if derivative_dtype not in _DERIVATIVE_DTYPES:
        raise ValueError(f"derivative_dtype must be 'float32' or 'float64', got {derivative_dtype!r}")
    if backend not in ("auto", "processes", "threads"):
        raise ValueError(f"backend must be 'auto', 'processes' or 'threads', got {backend!r}")
    if isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    n_jobs = min(os.cpu_count() or 1, 4) if n_jobs is None else n_jobs
    if isinstance(n_jobs, bool) or int(n_jobs) != n_jobs or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}")
    images = list(images)
    if not images:
        raise ValueError("no structures to featurise")
    labels = _labels(descriptor, images, derivatives)
    chunks = [images[s:s + int(chunk_size)] for s in range(0, len(images), int(chunk_size))]
    task = (descriptor, derivatives, derivative_dtype)
    if executor is not None:
        if not _round_trips(descriptor):
            raise ValueError(f"{type(descriptor).__name__} cannot be rebuilt from to_dict() "
                             "in another process; featurise without an executor")
        rows = _collect(_submitted(executor, task, chunks), len(images), progress)
    else:
        n_jobs = min(int(n_jobs), len(chunks))
        use_processes = n_jobs > 1 and _wants_processes(descriptor, backend, derivatives,
                                                        labels["n_atoms"])
        rows = None
        if use_processes:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # loky's resizing notes
                    pool = _process_pool(n_jobs)
                rows = _collect(_submitted(pool, task, chunks), len(images), progress)
            except (OSError, RuntimeError) as err:  # no worker here (embedded Python, limits)
                if backend == "processes":
                    raise
                warnings.warn(f"featurising worker processes could not run ({err}); "
                              "featurising in threads instead", RuntimeWarning, stacklevel=2)
        if rows is None:
            rows = _collect(_in_threads(n_jobs, task, chunks), len(images), progress)
    return _assemble(descriptor, rows, labels, derivatives)


def _labels(descriptor, images, derivatives: bool) -> dict:
    """Reference energies [eV], forces [eV/Å], atom counts and compositions, checked."""
    from nnptutor.structures import check_atoms

    zmap = {atomic_numbers[e]: k for k, e in enumerate(descriptor.elements)}
    out = {"energies": [], "forces": [], "n_atoms": [], "compositions": []}
    for k, atoms in enumerate(images):
        try:
            check_atoms(atoms, descriptor.elements)
            out["energies"].append(float(atoms.get_potential_energy()))
            if derivatives:
                out["forces"].append(np.asarray(atoms.get_forces(), dtype=np.float64))
        except ValueError as exc:
            raise ValueError(f"structure {k}: {exc}") from None
        except Exception as exc:  # no calculator, or one without these results
            raise ValueError(
                f"structure {k} has no reference energy/forces ({type(exc).__name__}); "
                "attach them with nnptutor.data.label or a SinglePointCalculator"
            ) from None
        out["n_atoms"].append(len(atoms))
        composition = np.zeros(len(descriptor.elements), dtype=np.int64)
        np.add.at(composition, [zmap[z] for z in atoms.numbers], 1)
        out["compositions"].append(composition)
    return out


def _assemble(descriptor, rows, labels, derivatives: bool) -> FeaturizedSet:
    """The compact rows of every structure and their labels as one :class:`FeaturizedSet`."""
    values, types, center, neighbor, derivs = (list(column) for column in zip(*rows))
    if not derivatives:
        center = neighbor = derivs = None
    return FeaturizedSet(
        descriptor, values, types, center, neighbor, derivs, np.array(labels["n_atoms"]),
        np.array(labels["energies"]), labels["forces"] if derivatives else None,
        np.array(labels["compositions"]))


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
    # batched descriptors (ACSF.compute_many) save per-call overhead on small molecules
    for atoms, out in zip(images, descriptor.compute_many(images, derivatives, progress=False)):
        v, d = out if derivatives else (out, None)
        rows.append((np.asarray(v, dtype=np.float64),
                     np.asarray(descriptor.center_types(atoms), dtype=np.int64),
                     None if d is None else d.center.astype(np.int32),
                     None if d is None else d.neighbor.astype(np.int32),
                     None if d is None else d.values.astype(derivative_dtype)))
    return rows


def _wants_processes(descriptor, backend: str, derivatives: bool, n_atoms: list) -> bool:
    """Whether ``backend`` and the size of the job call for worker processes."""
    if backend == "threads":
        return False
    if not _round_trips(descriptor):
        if backend == "processes":
            raise ValueError(f"{type(descriptor).__name__} cannot be rebuilt from to_dict() "
                             "in a worker process; use backend='threads'")
        return False
    work = sum(n_atoms) * (_DERIVATIVE_WEIGHT if derivatives else 1)
    return backend == "processes" or work >= PROCESS_MIN_ATOMS


def _round_trips(descriptor) -> bool:
    """Whether a worker process can rebuild ``descriptor`` from its ``to_dict()``."""
    from nnptutor.descriptors import descriptor_from_dict

    try:
        return descriptor_from_dict(descriptor.to_dict()) == descriptor
    except (ValueError, TypeError, NotImplementedError, KeyError):
        return False


def _process_pool(n_jobs: int) -> Executor:
    """joblib's reusable loky executor with ``n_jobs`` workers, one BLAS thread each."""
    from joblib.externals.loky import get_reusable_executor

    one = {var: "1" for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    return get_reusable_executor(max_workers=n_jobs, env=one, initializer=_start_worker)


def _start_worker() -> None:
    """Keep torch out of a loky worker: vesin would import it (3 s of start-up), and the
    descriptors never need it."""
    if "torch" not in sys.modules:
        sys.modules["torch"] = None


def _in_threads(n_jobs: int, task, chunks):
    """Compact rows of each chunk, in order, from ``n_jobs`` threads (or this thread)."""
    descriptor, derivatives, dtype = task
    if n_jobs == 1:
        yield from (compact_chunk(descriptor, chunk, derivatives, dtype) for chunk in chunks)
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=n_jobs) as pool:
        results = pool.map(lambda chunk: compact_chunk(descriptor, chunk, derivatives, dtype),
                           chunks)
        try:
            yield from results
        finally:
            results.close()  # cancels the chunks not started (on an error)


def _submitted(executor: Executor, task, chunks):
    """Compact rows of each chunk, in order, computed by ``executor``'s workers."""
    descriptor, derivatives, dtype = task
    as_dict = descriptor.to_dict()
    futures = [executor.submit(_featurize_plain, as_dict,
                               [_plain_structure(a) for a in chunk], derivatives, dtype)
               for chunk in chunks]
    try:
        for future in futures:
            yield future.result()
    finally:
        for future in futures:
            future.cancel()  # the chunks not started (on an error)


def _collect(results, total: int, progress: bool) -> list:
    """All rows of ``results`` (an iterator over chunks), with a progress bar."""
    from tqdm.auto import tqdm

    rows = []
    with tqdm(total=total, desc="featurising", disable=not progress) as bar:
        for chunk_rows in results:
            rows += chunk_rows
            bar.update(len(chunk_rows))
    return rows


def _plain_structure(atoms: Atoms) -> tuple:
    """(numbers, positions, cell, pbc) of a structure: what a worker needs to rebuild it.

    Shapes (n_atoms,), (n_atoms, 3) [Å], (3, 3) [Å], (3,).
    """
    return (np.asarray(atoms.numbers), np.asarray(atoms.positions),
            np.asarray(atoms.cell.array), np.asarray(atoms.pbc))


_WORKER_DESCRIPTORS: dict = {}  # in a worker: descriptors rebuilt once, each keeps its plan


def _featurize_plain(descriptor_dict: dict, structures: list, derivatives: bool,
                     derivative_dtype: str) -> list:
    """:func:`compact_chunk` of plain structures in a worker process."""
    from nnptutor.descriptors import descriptor_from_dict

    key = repr(descriptor_dict)
    if key not in _WORKER_DESCRIPTORS:
        _WORKER_DESCRIPTORS[key] = descriptor_from_dict(descriptor_dict)
    images = [Atoms(numbers=n, positions=p, cell=c, pbc=b) for n, p, c, b in structures]
    return compact_chunk(_WORKER_DESCRIPTORS[key], images, derivatives, derivative_dtype)

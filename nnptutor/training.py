r"""Training a :class:`Potential` on energies and forces.

Loss of a mini-batch of structures (energy per atom and force errors, both in eV units):

.. math::

    L = \frac{1}{B}\sum_s \Big(\frac{E_s - E_s^{\rm ref}}{N_s}\Big)^2
      + w_F \frac{1}{3 N}\sum_{k,a} \big(F_{ka} - F_{ka}^{\rm ref}\big)^2,
    \qquad
    F_{ka} = -\sum_{c,f} \frac{\partial E}{\partial G_{cf}} \frac{\partial G_{cf}}{\partial R_{ka}}

The chain rule runs through the descriptor's *sparse* derivatives (pairs of centre and
moving atom), never a dense (n_atoms, n_atoms, 3, n_features) array. Derivatives are stored
in float32 by :func:`featurize` (half the memory; the networks train in float32 by default,
which was as accurate as float64 and faster in ``benchmarks/bench_training.py``).

Defaults are the settings that won that benchmark on ``cu_emt``: Adam, 4 structures per
batch, learning rate 5e-3 decaying exponentially to 1e-4 over the run (over the wall-clock
budget when ``max_time_s`` is given), force weight 0.3, float32, one torch thread.

Taught in notebooks/04_behler_parrinello.ipynb.
"""
from __future__ import annotations

import contextlib
import copy
import os
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_numbers

from nnptutor.potential import Potential, scaled_center_energies

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


# ---------------------------------------------------------------------------------------
# featurised data
# ---------------------------------------------------------------------------------------
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
#: :func:`featurize` sends to worker processes. Starting two workers costs about 0.4 s
#: wall; they beat two threads (≈ 1.9x against ≈ 1.3x on two cores) from about 1.7 s of
#: one-core work: ≈ 2000 Cu atoms with derivatives (0.85 ms each at 6 Å), 8000 without.
PROCESS_MIN_ATOMS = 8000
_DERIVATIVE_WEIGHT = 4


def featurize(descriptor, images: Sequence[Atoms], derivatives: bool = True,
              progress: bool = True, derivative_dtype: str = "float32",
              chunk_size: int = 16, n_jobs: int | None = None,
              backend: str = "auto") -> FeaturizedSet:
    """Features, sparse derivatives and reference labels of every structure.

    Structures are featurised in chunks, each converted to compact storage (float32
    derivatives, int32 indices) as soon as it is done, so peak memory stays near the size
    of the result. Chunks run in ``n_jobs`` worker processes (large jobs) or threads; the
    result does not depend on ``n_jobs`` or ``backend``, bit for bit.

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
        Structures per call of ``descriptor.compute_many``.
    n_jobs : int, optional
        Workers (default: the number of CPU cores, at most 4). Each uses one BLAS
        thread, so the cores are not oversubscribed.
    backend : {"auto", "processes", "threads"}
        How ``n_jobs > 1`` workers run. Threads share the interpreter, and numpy holds its
        lock between large operations, so two threads give only about 1.3x; processes
        (fresh interpreters, see :mod:`nnptutor._featurize`: safe after torch is
        imported, in Jupyter, and in scripts without a ``__main__`` guard) give about
        1.9x on two idle cores but take a fraction of a second to start. "auto" uses
        processes for jobs of at least :data:`PROCESS_MIN_ATOMS` atoms (derivatives count
        four times) and descriptors that round-trip through ``to_dict``, and falls back
        to threads (with a ``RuntimeWarning``) where a worker cannot run.

    Returns
    -------
    FeaturizedSet
    """
    from nnptutor._featurize import WorkerError
    from nnptutor.structures import check_atoms

    if derivative_dtype not in _DTYPES:
        raise ValueError(f"derivative_dtype must be 'float32' or 'float64', got {derivative_dtype!r}")
    if backend not in ("auto", "processes", "threads"):
        raise ValueError(f"backend must be 'auto', 'processes' or 'threads', got {backend!r}")
    images = list(images)
    if not images:
        raise ValueError("no structures to featurise")
    zmap = {atomic_numbers[e]: k for k, e in enumerate(descriptor.elements)}
    values, types, center, neighbor, derivs, forces = [], [], [], [], [], []
    energies, n_atoms, compositions = [], [], []
    for k, atoms in enumerate(images):
        try:
            check_atoms(atoms, descriptor.elements)
            energies.append(float(atoms.get_potential_energy()))
            if derivatives:
                forces.append(np.asarray(atoms.get_forces(), dtype=np.float64))
        except ValueError as exc:
            raise ValueError(f"structure {k}: {exc}") from None
        except Exception as exc:  # no calculator, or one without these results
            raise ValueError(
                f"structure {k} has no reference energy/forces ({type(exc).__name__}); "
                "attach them with nnptutor.data.label or a SinglePointCalculator"
            ) from None
        n_atoms.append(len(atoms))
        comp = np.zeros(len(descriptor.elements), dtype=np.int64)
        np.add.at(comp, [zmap[z] for z in atoms.numbers], 1)
        compositions.append(comp)
    if n_jobs is None:
        n_jobs = min(os.cpu_count() or 1, 4)
    if isinstance(n_jobs, bool) or int(n_jobs) != n_jobs or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}")
    n_jobs = int(n_jobs)
    chunks = [images[s:s + chunk_size] for s in range(0, len(images), chunk_size)]
    n_jobs = min(n_jobs, len(chunks))
    work = sum(n_atoms) * (_DERIVATIVE_WEIGHT if derivatives else 1)
    use_processes = n_jobs > 1 and (
        backend == "processes" or (backend == "auto" and work >= PROCESS_MIN_ATOMS))
    if use_processes and not _round_trips(descriptor):
        if backend == "processes":
            raise ValueError(f"{type(descriptor).__name__} cannot be rebuilt from to_dict() "
                             "in a worker process; use backend='threads'")
        use_processes = False

    def collect(use_processes):
        out = []
        with _chunk_results(descriptor, chunks, derivatives, derivative_dtype, n_jobs,
                            use_processes) as results, \
                _progress(len(images), progress) as bar:
            for rows in results:  # in order
                out += rows
                bar.update(len(rows))
        return out

    try:
        rows = collect(use_processes)
    except WorkerError as err:  # no worker interpreter here (embedded Python, limits, …)
        if backend == "processes":
            raise
        import warnings

        warnings.warn(f"{err}; featurising in threads instead", RuntimeWarning, stacklevel=2)
        rows = collect(False)
    for v, t, c, nb, d in rows:
        values.append(v)
        types.append(t)
        if derivatives:
            center.append(c)
            neighbor.append(nb)
            derivs.append(d)
    return FeaturizedSet(
        descriptor, values, types, center if derivatives else None,
        neighbor if derivatives else None, derivs if derivatives else None,
        np.array(n_atoms), np.array(energies), forces if derivatives else None,
        np.array(compositions),
    )


def _progress(total, progress):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="featurising", disable=not progress)


def _round_trips(descriptor) -> bool:
    """Whether a worker process can rebuild ``descriptor`` from its ``to_dict()``."""
    from nnptutor.descriptors import descriptor_from_dict

    try:
        return descriptor_from_dict(descriptor.to_dict()) == descriptor
    except (ValueError, TypeError, NotImplementedError):
        return False


@contextlib.contextmanager
def _chunk_results(descriptor, chunks, derivatives, derivative_dtype, n_jobs,
                   use_processes):
    """Yield an iterator over the compact rows of every chunk, in order."""
    from concurrent.futures import ThreadPoolExecutor

    from nnptutor._featurize import compact_chunk

    from threadpoolctl import threadpool_limits

    if n_jobs == 1:
        yield (compact_chunk(descriptor, chunk, derivatives, derivative_dtype)
               for chunk in chunks)
    elif not use_processes:
        with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=n_jobs) as pool:
            yield pool.map(lambda chunk: compact_chunk(descriptor, chunk, derivatives,
                                                       derivative_dtype), chunks)
    else:  # one worker process per thread; the threads only wait on pipes
        import threading

        from nnptutor._featurize import WorkerProcess

        as_dict = descriptor.to_dict()
        local, workers, lock = threading.local(), [], threading.Lock()

        def run(chunk):
            if not hasattr(local, "worker"):
                local.worker = WorkerProcess()
                with lock:
                    workers.append(local.worker)
            return local.worker.run(as_dict, chunk, derivatives, derivative_dtype)

        try:
            with ThreadPoolExecutor(max_workers=n_jobs) as pool:
                results = pool.map(run, chunks)
                try:
                    yield results
                finally:
                    results.close()  # cancels the chunks not started (on an error)
        finally:
            for worker in workers:
                worker.close()


def _as_featurized(potential, data, progress, name) -> FeaturizedSet | None:
    if data is None:
        return None
    if isinstance(data, FeaturizedSet):
        if data.descriptor != potential.descriptor:
            raise ValueError(f"{name} was featurised with a different descriptor than the potential's")
        return data
    if isinstance(data, Atoms):
        data = [data]
    return featurize(potential.descriptor, data, progress=progress)


# ---------------------------------------------------------------------------------------
# batches and errors
# ---------------------------------------------------------------------------------------
class _Tensors:
    """A FeaturizedSet's per-structure arrays as torch tensors, converted once per training
    run (float arrays in the training dtype, indices as int64), so that a mini-batch is a
    few ``torch.cat`` calls."""

    def __init__(self, data: FeaturizedSet, dtype, forces: bool):
        def floats(seq):
            return [torch.from_numpy(np.asarray(a)).to(dtype) for a in seq]

        def ints(seq):
            return [torch.from_numpy(np.asarray(a, dtype=np.int64)) for a in seq]

        self.values, self.types = floats(data.values), ints(data.types)
        self.n_atoms, self.energies = data.n_atoms, data.energies
        self.center = self.neighbor = self.derivatives = self.forces = None
        if forces:
            self.center, self.neighbor = ints(data.center), ints(data.neighbor)
            self.derivatives, self.forces = floats(data.derivatives), floats(data.forces)


class _Batch:
    """Several structures concatenated into one set of tensors (indices offset)."""

    def __init__(self, data, index, dtype, forces: bool):
        if not isinstance(data, _Tensors):
            data = _Tensors(data[list(index)], dtype, forces)
            index = range(len(data.values))
        index = list(index)
        n_centers = [len(data.types[k]) for k in index]
        n_atoms = data.n_atoms[index]
        self.n_structures = len(index)
        self.x = torch.cat([data.values[k] for k in index])
        self.types = torch.cat([data.types[k] for k in index])
        self.structure = torch.repeat_interleave(torch.arange(len(index)), torch.tensor(n_centers))
        self.n_atoms = torch.from_numpy(n_atoms).to(dtype)
        self.energy = torch.from_numpy(data.energies[index]).to(dtype)  # reference removed later
        self.forces = None
        if forces:
            center_offset = np.concatenate([[0], np.cumsum(n_centers)[:-1]])
            atom_offset = np.concatenate([[0], np.cumsum(n_atoms)[:-1]])
            self.center = torch.cat([data.center[k] + int(o) for k, o in zip(index, center_offset)])
            self.neighbor = torch.cat([data.neighbor[k] + int(o) for k, o in zip(index, atom_offset)])
            self.dG = torch.cat([data.derivatives[k] for k in index])
            self.forces = torch.cat([data.forces[k] for k in index])
            self.n_atoms_total = int(n_atoms.sum())


def _errors(model, shift, scale, batch: _Batch, energy_offset, forces: bool, create_graph: bool):
    """Per-atom energy errors (n_structures,) [eV/atom] and force errors (n_atoms, 3) [eV/Å]."""
    x = batch.x.requires_grad_(forces) if forces else batch.x
    e_centers = scaled_center_energies(model, shift, scale, x, batch.types)  # (n_centers,)
    energy = e_centers.new_zeros(batch.n_structures).index_add(0, batch.structure, e_centers)
    e_err = (energy - (batch.energy - energy_offset)) / batch.n_atoms  # (n_structures,)
    if not forces:
        return e_err, None
    (dE_dG,) = torch.autograd.grad(energy.sum(), x, create_graph=create_graph)  # (n_centers, F)
    # index_select, not dE_dG[center]: its backward is a scatter-add, not a slow index_put
    per_pair = torch.einsum("paf,pf->pa", batch.dG, dE_dG.index_select(0, batch.center))  # (n_pairs, 3)
    dE_dR = per_pair.new_zeros(batch.n_atoms_total, 3).index_add(0, batch.neighbor, per_pair)
    return e_err, -dE_dR - batch.forces  # (n_atoms, 3)


def evaluate(potential: Potential, data, batch_size: int = 32, progress: bool = False) -> dict:
    """Errors of ``potential`` on a data set (images or :class:`FeaturizedSet`).

    Returns
    -------
    dict
        ``energy_rmse_meV_per_atom``, ``energy_mae_meV_per_atom``, ``force_rmse`` [eV/Å]
        (NaN without forces), and for parity plots ``energy_per_atom_ref``,
        ``energy_per_atom_pred`` (n_structures,) [eV/atom], ``forces_ref``,
        ``forces_pred`` (n_atoms_total, 3) [eV/Å].
    """
    data = _as_featurized(potential, data, progress, "data")
    forces = data.has_forces
    offset_all = torch.from_numpy(data.compositions @ _ref_vector(potential))
    e_errs, f_errs = [], []
    for start in range(0, len(data), batch_size):
        index = range(start, min(start + batch_size, len(data)))
        batch = _Batch(data, index, potential.model.dtype, forces)
        offset = offset_all[list(index)].to(potential.model.dtype)
        e_err, f_err = _errors(potential.model, potential.feature_shift.to(potential.model.dtype),
                               potential.feature_scale.to(potential.model.dtype), batch, offset,
                               forces, create_graph=False)
        e_errs.append(e_err.detach().double().numpy())
        if forces:
            f_errs.append(f_err.detach().double().numpy())
    e_err = np.concatenate(e_errs)
    e_ref = data.energies / data.n_atoms
    out = {
        "energy_rmse_meV_per_atom": 1000 * float(np.sqrt(np.mean(e_err**2))),
        "energy_mae_meV_per_atom": 1000 * float(np.mean(np.abs(e_err))),
        "energy_per_atom_ref": e_ref,
        "energy_per_atom_pred": e_ref + e_err,
        "force_rmse": float("nan"),
    }
    if forces:
        f_err = np.concatenate(f_errs)
        f_ref = np.concatenate(data.forces)
        out.update(force_rmse=float(np.sqrt(np.mean(f_err**2))), forces_ref=f_ref,
                   forces_pred=f_ref + f_err)
    return out


def _ref_vector(potential) -> np.ndarray:
    return np.array([potential.reference_energies[e] for e in potential.descriptor.elements])


# ---------------------------------------------------------------------------------------
# history
# ---------------------------------------------------------------------------------------
@dataclass
class TrainingHistory:
    """Per-epoch record of a :func:`train` run.

    Attributes
    ----------
    epoch : ndarray of int, shape (n_epochs,)
    time_s : ndarray, shape (n_epochs,)
        Wall-clock time at the end of each epoch [s].
    lr : ndarray, shape (n_epochs,)
        Learning rate at the end of each epoch.
    train_energy_rmse_meV_per_atom, train_force_rmse : ndarray, shape (n_epochs,)
        Training errors averaged over the epoch's mini-batches [meV/atom], [eV/Å].
    val_energy_rmse_meV_per_atom, val_force_rmse : ndarray, shape (n_epochs,)
        Validation errors after each epoch (NaN without a validation set).
    best_epoch : int
        Epoch whose weights the potential holds at the end (best validation loss, or the
        last epoch without a validation set).
    stopped : str
        "epochs", "time budget" or "early stopping".
    settings : dict
        The arguments of the run.
    """

    epoch: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    time_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lr: np.ndarray = field(default_factory=lambda: np.zeros(0))
    train_energy_rmse_meV_per_atom: np.ndarray = field(default_factory=lambda: np.zeros(0))
    train_force_rmse: np.ndarray = field(default_factory=lambda: np.zeros(0))
    val_energy_rmse_meV_per_atom: np.ndarray = field(default_factory=lambda: np.zeros(0))
    val_force_rmse: np.ndarray = field(default_factory=lambda: np.zeros(0))
    best_epoch: int = -1
    stopped: str = ""
    settings: dict = field(default_factory=dict)

    _COLUMNS = ("epoch", "time_s", "lr", "train_energy_rmse_meV_per_atom", "train_force_rmse",
                "val_energy_rmse_meV_per_atom", "val_force_rmse")

    def _append(self, **row):
        for name in self._COLUMNS:
            setattr(self, name, np.append(getattr(self, name), row[name]))

    def __len__(self) -> int:
        return len(self.epoch)

    @property
    def best(self) -> dict:
        """The row of :attr:`best_epoch` as a dict of floats."""
        k = int(np.flatnonzero(self.epoch == self.best_epoch)[0]) if len(self) else None
        return {} if k is None else {name: float(getattr(self, name)[k]) for name in self._COLUMNS}

    def __repr__(self) -> str:
        if not len(self):
            return "TrainingHistory(empty)"
        b = self.best
        which = "val" if np.isfinite(b["val_energy_rmse_meV_per_atom"]) else "train"
        return (
            f"TrainingHistory({len(self)} epochs in {self.time_s[-1]:.1f} s, stopped: "
            f"{self.stopped}; best epoch {self.best_epoch}: {which} "
            f"{b[f'{which}_energy_rmse_meV_per_atom']:.3g} meV/atom, "
            f"{b[f'{which}_force_rmse']:.3g} eV/Å)"
        )

    def plot(self, axes=None, x: str = "epoch"):
        """Learning curves: energy and force RMSE (log scale) against ``x`` ("epoch" or "time_s").

        Returns the two matplotlib axes.
        """
        import matplotlib.pyplot as plt

        if axes is None:
            _, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
        xs = getattr(self, x)
        for ax, quantity, unit in zip(axes, ("energy_rmse_meV_per_atom", "force_rmse"),
                                      ("energy RMSE [meV/atom]", "force RMSE [eV/Å]")):
            ax.plot(xs, getattr(self, f"train_{quantity}"), label="train")
            if np.isfinite(getattr(self, f"val_{quantity}")).any():
                ax.plot(xs, getattr(self, f"val_{quantity}"), label="validation")
            ax.set_yscale("log")
            ax.set_xlabel("epoch" if x == "epoch" else "training time [s]")
            ax.set_ylabel(unit)
            ax.legend()
        return axes


# ---------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------
def train(
    potential: Potential,
    train_images,
    val_images=None,
    epochs: int | None = None,
    max_time_s: float | None = None,
    force_weight: float = 0.3,
    optimizer: str = "adam",
    lr: float = 5e-3,
    lr_final: float = 1e-4,
    batch_size: int = 4,
    patience: int | None = None,
    seed: int = 0,
    progress: bool = True,
    dtype: str = "float32",
    n_threads: int | None = 1,
) -> TrainingHistory:
    """Fit the potential's network to energies and forces.

    On the first call (a potential never trained) the per-element reference energies and
    per-type feature scaling are fitted on the training set; every call refits the feature
    range used for extrapolation warnings. The network is trained on a copy in ``dtype``
    and the weights are copied back into the potential's (float64) model.

    Parameters
    ----------
    potential : Potential
        Modified in place.
    train_images : list of ase.Atoms or FeaturizedSet
        Structures with reference energies and forces (see :func:`featurize`).
    val_images : list of ase.Atoms or FeaturizedSet, optional
        For early stopping: the weights with the lowest validation loss are restored.
    epochs : int, optional
        Passes over the training set (default 100 unless ``max_time_s`` is given).
    max_time_s : float, optional
        Wall-clock budget for the optimisation [s] (featurisation not counted); the
        learning-rate decay is spread over it. Runs with a budget are not bit-reproducible.
    force_weight : float
        w_F in the loss [Å² / atom²]; 0 trains on energies only.
    optimizer : {"adam", "lbfgs"}
        Adam on mini-batches, or full-batch L-BFGS with a strong-Wolfe line search (one
        ``step`` of up to 20 iterations per epoch).
    lr, lr_final : float
        Adam learning rate at the start and the end (exponential decay).
    batch_size : int
        Structures per Adam step.
    patience : int, optional
        Stop after this many epochs without a lower validation loss.
    seed : int
        Seeds the batch order: the same seed, data and model give the same weights
        (when no time budget is set).
    progress : bool
        Show a progress bar.
    dtype : {"float32", "float64"}
        Precision of the training copy.
    n_threads : int or None
        torch threads during training (restored afterwards); None leaves it alone.

    Returns
    -------
    TrainingHistory
    """
    from tqdm.auto import tqdm

    if optimizer not in ("adam", "lbfgs"):
        raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if force_weight < 0 or lr <= 0 or lr_final <= 0 or batch_size < 1:
        raise ValueError("force_weight must be >= 0, lr and lr_final > 0, batch_size >= 1")
    if epochs is None:
        epochs = 100 if max_time_s is None else 10**9
    settings = dict(epochs=epochs, max_time_s=max_time_s, force_weight=force_weight,
                    optimizer=optimizer, lr=lr, lr_final=lr_final, batch_size=batch_size,
                    patience=patience, seed=seed, dtype=dtype, n_threads=n_threads,
                    progress=progress)
    train_set = _as_featurized(potential, train_images, progress, "train_images")
    val_set = _as_featurized(potential, val_images, progress, "val_images")
    use_forces = force_weight > 0 and train_set.has_forces
    if potential.feature_range is None:  # never trained: fit the non-network parts
        potential.fit_reference_energies(train_set.compositions, train_set.energies)
        potential.fit_scaling(np.concatenate(train_set.values), np.concatenate(train_set.types))
    potential.fit_range(train_set.values, train_set.types)

    old_threads = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(n_threads)
    try:
        return _optimise(potential, train_set, val_set, use_forces, settings, tqdm)
    finally:
        torch.set_num_threads(old_threads)


def _optimise(potential, train_set, val_set, use_forces, s, tqdm) -> TrainingHistory:
    torch_dtype = _DTYPES[s["dtype"]]
    model = copy.deepcopy(potential.model).to(torch_dtype)
    shift = potential.feature_shift.to(torch_dtype)
    scale = potential.feature_scale.to(torch_dtype)
    ref = _ref_vector(potential)
    offsets = torch.from_numpy(train_set.compositions @ ref).to(torch_dtype)
    val_forces = use_forces and val_set is not None and val_set.has_forces
    w = s["force_weight"] if use_forces else 0.0
    rng = np.random.default_rng(s["seed"])
    n = len(train_set)
    n_batches = -(-n // s["batch_size"])
    total_steps = s["epochs"] * n_batches
    decay = np.log(s["lr_final"] / s["lr"])
    history = TrainingHistory(settings=s)

    if s["optimizer"] == "adam":
        tensors = _Tensors(train_set, torch_dtype, use_forces)
        opt = torch.optim.Adam(model.parameters(), lr=s["lr"], foreach=True)
    else:
        opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=20, history_size=100,
                                line_search_fn="strong_wolfe")
        full_batches = [(_Batch(train_set, idx, torch_dtype, use_forces), offsets[idx])
                        for idx in np.array_split(np.arange(n), max(1, n // 64))]

    def batch_loss(batch, offset, n_struct, n_comp, stats=None):
        e_err, f_err = _errors(model, shift, scale, batch, offset, use_forces, create_graph=True)
        e_sq = (e_err**2).sum()
        loss = e_sq / n_struct
        f_sq = torch.zeros(())
        if use_forces:
            f_sq = (f_err**2).sum()
            loss = loss + w * f_sq / n_comp
        if stats is not None:
            stats += np.array([float(e_sq.detach()), len(e_err), float(f_sq.detach()),
                               0 if f_err is None else f_err.numel()])
        return loss

    best_loss, best_state, best_epoch, stale = np.inf, None, -1, 0
    start = time.perf_counter()
    step, stopped = 0, "epochs"
    bar = (tqdm(total=int(np.ceil(s["max_time_s"])), unit="s", desc="training",
                disable=not s["progress"])
           if s["max_time_s"] is not None else
           tqdm(total=s["epochs"], unit="epoch", desc="training", disable=not s["progress"]))
    try:
        for epoch in range(s["epochs"]):
            stats = np.zeros(4)  # e_sq, n_structures, f_sq, n_components
            model.train()
            if s["optimizer"] == "adam":
                order = rng.permutation(n)
                for b in range(n_batches):
                    idx = np.sort(order[b * s["batch_size"]:(b + 1) * s["batch_size"]])
                    batch = _Batch(tensors, idx, torch_dtype, use_forces)
                    n_comp = 3 * batch.n_atoms_total if use_forces else 1
                    loss = batch_loss(batch, offsets[idx], len(idx), n_comp, stats)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    step += 1
                    progress_fraction = (
                        (time.perf_counter() - start) / s["max_time_s"]
                        if s["max_time_s"] is not None else step / total_steps)
                    for group in opt.param_groups:
                        group["lr"] = s["lr"] * float(np.exp(decay * min(progress_fraction, 1.0)))
                    if s["max_time_s"] is not None and time.perf_counter() - start >= s["max_time_s"]:
                        stopped = "time budget"
                        break
            else:
                n_comp = 3 * int(train_set.n_atoms.sum())

                def closure():
                    opt.zero_grad(set_to_none=True)
                    stats[:] = 0
                    total = 0.0
                    for batch, off in full_batches:
                        loss = batch_loss(batch, off, n, n_comp, stats)
                        loss.backward()
                        total += float(loss.detach())
                    return torch.tensor(total)

                opt.step(closure)
                if s["max_time_s"] is not None and time.perf_counter() - start >= s["max_time_s"]:
                    stopped = "time budget"

            # --- end of epoch: record, validate, early stopping
            e_rmse = 1000 * np.sqrt(stats[0] / max(stats[1], 1))
            f_rmse = np.sqrt(stats[2] / stats[3]) if stats[3] else np.nan
            v_e, v_f, val_loss = np.nan, np.nan, e_rmse**2 / 1e6 + w * (0 if np.isnan(f_rmse) else f_rmse**2)
            if val_set is not None:
                v_e, v_f = _validate(model, shift, scale, val_set, ref, torch_dtype, val_forces)
                val_loss = (v_e / 1000) ** 2 + (w * v_f**2 if val_forces else 0.0)
            history._append(epoch=epoch, time_s=time.perf_counter() - start,
                            lr=opt.param_groups[0]["lr"], train_energy_rmse_meV_per_atom=e_rmse,
                            train_force_rmse=f_rmse, val_energy_rmse_meV_per_atom=v_e,
                            val_force_rmse=v_f)
            if val_set is None or val_loss < best_loss:
                best_loss, best_epoch, stale = val_loss, epoch, 0
                if val_set is not None:
                    best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
            bar.set_postfix_str(f"E {e_rmse:.3g} meV/atom, F {f_rmse:.3g} eV/Å"
                                + (f", val E {v_e:.3g}" if val_set is not None else ""))
            if s["max_time_s"] is not None:
                bar.n = min(int(time.perf_counter() - start), bar.total)
                bar.refresh()
            else:
                bar.update(1)
            if stopped == "time budget":
                break
            if s["patience"] is not None and stale >= s["patience"]:
                stopped = "early stopping"
                break
    finally:
        bar.close()

    if best_state is not None:
        model.load_state_dict(best_state)
    potential.model.load_state_dict(model.state_dict())  # copy_ casts back to float64
    history.best_epoch, history.stopped = best_epoch, stopped
    return history


def _validate(model, shift, scale, data, ref, dtype, forces, batch_size=32):
    offsets = torch.from_numpy(data.compositions @ ref).to(dtype)
    e_sq, f_sq, n_comp = 0.0, 0.0, 0
    for start in range(0, len(data), batch_size):
        idx = np.arange(start, min(start + batch_size, len(data)))
        batch = _Batch(data, idx, dtype, forces)
        e_err, f_err = _errors(model, shift, scale, batch, offsets[idx], forces, create_graph=False)
        e_sq += float((e_err.detach() ** 2).sum())
        if forces:
            f_sq += float((f_err.detach() ** 2).sum())
            n_comp += f_err.numel()
    return 1000 * np.sqrt(e_sq / len(data)), (np.sqrt(f_sq / n_comp) if forces else np.nan)

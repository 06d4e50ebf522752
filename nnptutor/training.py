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

import copy
import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from ase import Atoms

from nnptutor.featurize import FeaturizedSet, featurize
from nnptutor.potential import Potential, scaled_center_energies

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
@dataclass(frozen=True)
class TrainSettings:
    """Settings of a :func:`train` run, checked when made (see :func:`train` for each).

    ``epochs`` defaults to 100, or to no limit when ``max_time_s`` is given.
    """

    epochs: int | None = None
    max_time_s: float | None = None
    force_weight: float = 0.3
    optimizer: str = "adam"
    lr: float = 5e-3
    lr_final: float = 1e-4
    batch_size: int = 4
    patience: int | None = None
    seed: int = 0
    progress: bool = True
    dtype: str = "float32"
    n_threads: int | None = 1

    def __post_init__(self):
        if self.optimizer not in ("adam", "lbfgs"):
            raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {self.optimizer!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        for name in ("epochs", "batch_size", "patience", "n_threads"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) != value
                                      or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("lr", "lr_final", "max_time_s"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not (np.isfinite(self.force_weight) and self.force_weight >= 0):
            raise ValueError(f"force_weight must be >= 0, got {self.force_weight!r}")
        if self.epochs is None:
            object.__setattr__(self, "epochs", 100 if self.max_time_s is None else 10**9)


def train(potential: Potential, train_images, val_images=None, **settings) -> TrainingHistory:
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
        w_F in the loss [Å² / atom²] (default 0.3); 0 trains on energies only.
    optimizer : {"adam", "lbfgs"}
        Adam on mini-batches (default), or full-batch L-BFGS with a strong-Wolfe line
        search (one ``step`` of up to 20 iterations per epoch).
    lr, lr_final : float
        Adam learning rate at the start and the end (default 5e-3 and 1e-4; exponential
        decay over the epochs or the time budget).
    batch_size : int
        Structures per Adam step (default 4).
    patience : int, optional
        Stop after this many epochs without a lower validation loss.
    seed : int
        Seeds the batch order (default 0): the same seed, data and model give the same
        weights (when no time budget is set).
    progress : bool
        Show a progress bar (default True).
    dtype : {"float32", "float64"}
        Precision of the training copy (default float32).
    n_threads : int or None
        torch threads during training (default 1, restored afterwards); None leaves it.

    Returns
    -------
    TrainingHistory
        Its ``settings`` holds the :class:`TrainSettings` of the run as a dict.
    """
    s = TrainSettings(**settings)
    train_set = _as_featurized(potential, train_images, s.progress, "train_images")
    val_set = _as_featurized(potential, val_images, s.progress, "val_images")
    use_forces = s.force_weight > 0 and train_set.has_forces
    if potential.feature_range is None:  # never trained: fit the non-network parts
        potential.fit_reference_energies(train_set.compositions, train_set.energies)
        potential.fit_scaling(np.concatenate(train_set.values), np.concatenate(train_set.types))
    potential.fit_range(train_set.values, train_set.types)

    old_threads = torch.get_num_threads()
    if s.n_threads is not None:
        torch.set_num_threads(int(s.n_threads))
    try:
        return _optimise(potential, train_set, val_set, use_forces, s)
    finally:
        torch.set_num_threads(old_threads)


def _optimise(potential, train_set, val_set, use_forces, s: TrainSettings) -> TrainingHistory:
    """The training loop: epochs of optimiser steps, each followed by a validation."""
    objective = _Objective(potential, train_set, val_set, use_forces, s)
    clock = _Clock(s.max_time_s)
    run_epoch, optimizer = _epoch_runner(objective, train_set, s, clock)
    stopper = _EarlyStopping(s.patience, keep_best=val_set is not None)
    history = TrainingHistory(settings=dataclasses.asdict(s))
    stopped = "epochs"
    clock.restart()  # optimisers are built: the budget counts only the optimisation
    with _progress_bar(s) as bar:
        for epoch in range(s.epochs):
            objective.model.train()
            train_e, train_f = _rmse(run_epoch())
            val_e, val_f, val_loss = objective.validate(train_e, train_f)
            history._append(epoch=epoch, time_s=clock.elapsed(),
                            lr=optimizer.param_groups[0]["lr"],
                            train_energy_rmse_meV_per_atom=train_e, train_force_rmse=train_f,
                            val_energy_rmse_meV_per_atom=val_e, val_force_rmse=val_f)
            stopper.update(val_loss, epoch, objective.model)
            _show_progress(bar, clock, train_e, train_f, val_e, val_set is not None)
            if clock.out_of_time():
                stopped = "time budget"
                break
            if stopper.should_stop():
                stopped = "early stopping"
                break
    if stopper.best_state is not None:
        objective.model.load_state_dict(stopper.best_state)
    potential.model.load_state_dict(objective.model.state_dict())  # casts back to float64
    history.best_epoch, history.stopped = stopper.best_epoch, stopped
    return history


class _Objective:
    """The training copy of the network, the loss of a batch and the validation errors."""

    def __init__(self, potential, train_set, val_set, use_forces: bool, s: TrainSettings):
        self.dtype = _DTYPES[s.dtype]
        self.model = copy.deepcopy(potential.model).to(self.dtype)
        self.shift = potential.feature_shift.to(self.dtype)
        self.scale = potential.feature_scale.to(self.dtype)
        self.ref = _ref_vector(potential)
        self.offsets = torch.from_numpy(train_set.compositions @ self.ref).to(self.dtype)
        self.use_forces = use_forces
        self.force_weight = s.force_weight if use_forces else 0.0
        self.val_set = val_set
        self.val_forces = use_forces and val_set is not None and val_set.has_forces

    def loss(self, batch, offset, n_structures: int, n_components: int, stats) -> torch.Tensor:
        """L of one batch (normalised by the given counts); adds its squared errors and
        counts to ``stats`` = [Σ e², n_structures, Σ f², n_force_components]."""
        e_err, f_err = _errors(self.model, self.shift, self.scale, batch, offset,
                               self.use_forces, create_graph=True)
        e_sq = (e_err**2).sum()
        loss = e_sq / n_structures
        f_sq = torch.zeros(())
        if self.use_forces:
            f_sq = (f_err**2).sum()
            loss = loss + self.force_weight * f_sq / n_components
        stats += np.array([float(e_sq.detach()), len(e_err), float(f_sq.detach()),
                           0 if f_err is None else f_err.numel()])
        return loss

    def validate(self, train_e: float, train_f: float) -> tuple[float, float, float]:
        """Validation energy [meV/atom] and force [eV/Å] RMSE and the loss early stopping
        compares (the training loss without a validation set)."""
        w = self.force_weight
        if self.val_set is None:
            return np.nan, np.nan, train_e**2 / 1e6 + w * (0 if np.isnan(train_f) else train_f**2)
        v_e, v_f = _validate(self.model, self.shift, self.scale, self.val_set, self.ref,
                             self.dtype, self.val_forces)
        return v_e, v_f, (v_e / 1000) ** 2 + (w * v_f**2 if self.val_forces else 0.0)


def _epoch_runner(objective: _Objective, train_set, s: TrainSettings, clock):
    """(run_epoch, optimizer): ``run_epoch()`` makes one pass and returns its stats.

    Adam takes a step per mini-batch of ``batch_size`` structures in a seeded random
    order, its learning rate decaying exponentially from ``lr`` to ``lr_final`` over the
    steps (or the time budget); L-BFGS takes one ``step`` on the whole set per epoch.
    """
    params, n = objective.model.parameters(), len(train_set)
    if s.optimizer == "lbfgs":
        optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=20, history_size=100,
                                      line_search_fn="strong_wolfe")
        batches = [(_Batch(train_set, idx, objective.dtype, objective.use_forces), idx)
                   for idx in np.array_split(np.arange(n), max(1, n // 64))]
        n_components = 3 * int(train_set.n_atoms.sum())

        def run_epoch():
            stats = np.zeros(4)

            def closure():
                optimizer.zero_grad(set_to_none=True)
                stats[:] = 0  # the stats of the last evaluation
                total = 0.0
                for batch, idx in batches:
                    loss = objective.loss(batch, objective.offsets[idx], n, n_components, stats)
                    loss.backward()
                    total += float(loss.detach())
                return torch.tensor(total)

            optimizer.step(closure)
            return stats

        return run_epoch, optimizer

    optimizer = torch.optim.Adam(params, lr=s.lr, foreach=True)
    total_steps = s.epochs * -(-n // s.batch_size)
    decay = np.log(s.lr_final / s.lr)

    def lr_factor(step):  # fraction of the run done: of the steps, or of the time budget
        done = clock.fraction() if s.max_time_s is not None else step / total_steps
        return float(np.exp(decay * min(done, 1.0)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    tensors = _Tensors(train_set, objective.dtype, objective.use_forces)
    rng = np.random.default_rng(s.seed)

    def run_epoch():
        stats, order = np.zeros(4), rng.permutation(n)
        for start in range(0, n, s.batch_size):
            idx = np.sort(order[start:start + s.batch_size])
            batch = _Batch(tensors, idx, objective.dtype, objective.use_forces)
            n_components = 3 * batch.n_atoms_total if objective.use_forces else 1
            loss = objective.loss(batch, objective.offsets[idx], len(idx), n_components, stats)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if clock.out_of_time():
                break
        return stats

    return run_epoch, optimizer


def _rmse(stats) -> tuple[float, float]:
    """Energy [meV/atom] and force [eV/Å] RMSE from [Σ e², n_structures, Σ f², n_components]."""
    e_rmse = 1000 * np.sqrt(stats[0] / max(stats[1], 1))
    return e_rmse, (np.sqrt(stats[2] / stats[3]) if stats[3] else np.nan)


class _Clock:
    """Wall-clock time since the start of training, against an optional budget [s]."""

    def __init__(self, budget_s: float | None):
        self.budget_s, self.start = budget_s, time.perf_counter()

    def restart(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def fraction(self) -> float:
        return self.elapsed() / self.budget_s

    def out_of_time(self) -> bool:
        return self.budget_s is not None and self.elapsed() >= self.budget_s


class _EarlyStopping:
    """Tracks the best loss, its epoch and (with a validation set) its weights."""

    def __init__(self, patience: int | None, keep_best: bool):
        self.patience, self.keep_best = patience, keep_best
        self.best_loss, self.best_epoch, self.best_state, self.stale = np.inf, -1, None, 0

    def update(self, loss: float, epoch: int, model) -> None:
        if not self.keep_best or loss < self.best_loss:
            self.best_loss, self.best_epoch, self.stale = loss, epoch, 0
            if self.keep_best:
                self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.stale += 1

    def should_stop(self) -> bool:
        return self.patience is not None and self.stale >= self.patience


def _progress_bar(s: TrainSettings):
    """A tqdm bar counting seconds of the budget, or epochs."""
    from tqdm.auto import tqdm

    if s.max_time_s is not None:
        return tqdm(total=int(np.ceil(s.max_time_s)), unit="s", desc="training",
                    disable=not s.progress)
    return tqdm(total=s.epochs, unit="epoch", desc="training", disable=not s.progress)


def _show_progress(bar, clock, train_e, train_f, val_e, has_val: bool) -> None:
    bar.set_postfix_str(f"E {train_e:.3g} meV/atom, F {train_f:.3g} eV/Å"
                        + (f", val E {val_e:.3g}" if has_val else ""))
    if clock.budget_s is not None:
        bar.n = min(int(clock.elapsed()), bar.total)
        bar.refresh()
    else:
        bar.update(1)


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

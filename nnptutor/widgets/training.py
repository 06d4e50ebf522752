r"""Training explorer for notebook 04: force weight, hidden width and training-set size.

A *run* trains a fresh Behler–Parrinello potential on part of a featurised training set and
measures it on a test set (:func:`train_run`). :func:`draw_training_runs` draws the latest
run's parity plots beside every earlier run's test errors; the notebook calls it once
statically (the explorer's static twin), and :class:`TrainingExplorer` redraws it behind a
"Train" button so that students can compare settings run by run.

Taught in notebooks/04_behler_parrinello.ipynb, "Explore: force weight, width and data".
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import matplotlib as mpl
import numpy as np

from nnptutor.widgets._display import show_png


#: Choices of the explorer's controls.
FORCE_WEIGHTS = (0.0, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
HIDDEN_WIDTHS = (4, 8, 16, 32, 64, 128)


@dataclass
class TrainingRun:
    """Settings and test errors of one training run.

    Attributes
    ----------
    force_weight : float
        w_F of the loss [Å²/atom²].
    width : int
        Neurons in each of the two hidden layers.
    n_train : int
        Training structures used.
    n_parameters : int
        Trainable parameters of the network.
    time_s : float
        Wall-clock time of the optimisation [s].
    energy_rmse : float
        Test energy RMSE [meV/atom].
    force_rmse : float
        Test force RMSE [eV/Å].
    energy_ref, energy_pred : ndarray, shape (n_test,)
        Test energies per atom [eV/atom].
    forces_ref, forces_pred : ndarray, shape (n_test_atoms, 3)
        Test forces [eV/Å].
    """

    force_weight: float
    width: int
    n_train: int
    n_parameters: int
    time_s: float
    energy_rmse: float
    force_rmse: float
    energy_ref: np.ndarray
    energy_pred: np.ndarray
    forces_ref: np.ndarray
    forces_pred: np.ndarray

    @property
    def settings(self) -> str:
        """The run's settings in one line.

        e.g. "w_F = 0.3 Å²/atom², 2 × 32 neurons, 64 structures".
        """
        return _settings(self.force_weight, self.width, self.n_train)


def _settings(force_weight, width, n_train) -> str:
    return f"w_F = {force_weight:g} Å²/atom², 2 × {width} neurons, {n_train} structures"


def run_from_potential(potential, history, test_set, n_train: int) -> TrainingRun:
    """Summarise a potential trained by :func:`nnptutor.train` as a :class:`TrainingRun`.

    Parameters
    ----------
    potential : Potential
        A potential whose model has two hidden layers of equal width.
    history : TrainingHistory
        What :func:`nnptutor.train` returned for it.
    test_set : FeaturizedSet
        Test structures with energies and forces.
    n_train : int
        Number of training structures it saw.

    Returns
    -------
    TrainingRun
    """
    from nnptutor.training import evaluate

    err = evaluate(potential, test_set)
    return TrainingRun(
        force_weight=float(history.settings["force_weight"]),
        width=int(potential.model.hidden[0]), n_train=int(n_train),
        n_parameters=potential.model.n_parameters, time_s=float(history.time_s[-1]),
        energy_rmse=err["energy_rmse_meV_per_atom"], force_rmse=err["force_rmse"],
        energy_ref=err["energy_per_atom_ref"], energy_pred=err["energy_per_atom_pred"],
        forces_ref=err["forces_ref"], forces_pred=err["forces_pred"],
    )


def train_run(train_set, test_set, val_set=None, force_weight: float = 0.3, width: int = 32,
              n_train: int | None = None, steps: int = 400, seed: int = 0) -> TrainingRun:
    """Train a fresh BPNN with two hidden layers of ``width`` neurons and test it.

    Every run takes about ``steps`` Adam steps of 4 structures, whatever ``n_train``
    (fewer structures, more epochs), so runs differ only in the settings compared.

    Parameters
    ----------
    train_set, test_set : FeaturizedSet
        From :func:`nnptutor.training.featurize`, with energies and forces.
    val_set : FeaturizedSet, optional
        For early stopping (the weights of the best validation epoch are kept).
    force_weight : float
        w_F in the loss [Å²/atom²]; 0 trains on energies only.
    width : int
        Neurons per hidden layer.
    n_train : int, optional
        Use the first ``n_train`` training structures (default: all).
    steps : int
        Approximate number of optimiser steps.
    seed : int
        Seeds the weights and the batch order.

    Returns
    -------
    TrainingRun
    """
    from nnptutor.models import BPNN
    from nnptutor.potential import Potential
    from nnptutor.training import train

    n_train = len(train_set) if n_train is None else int(n_train)
    if not 1 <= n_train <= len(train_set):
        raise ValueError(f"n_train must lie between 1 and {len(train_set)}, got {n_train}")
    subset = train_set[:n_train]
    descriptor = train_set.descriptor
    potential = Potential(descriptor, BPNN(descriptor.type_labels, descriptor.n_features,
                                           hidden=(width, width), seed=seed))
    batch_size = 4
    epochs = max(1, round(steps * batch_size / n_train))
    history = train(potential, subset, val_set, epochs=epochs, force_weight=force_weight,
                    batch_size=batch_size, seed=seed, progress=False)
    return run_from_potential(potential, history, test_set, n_train)


def draw_training_runs(runs, fig=None, pending: str | None = None):
    """Parity plots of the latest run and the test errors of every run.

    Left and middle: energy per atom and force components of the last run in ``runs``,
    predicted against reference. Right: test force RMSE against test energy RMSE of every
    run, numbered in order, the latest one ringed. Below: a table of the last six runs.

    Parameters
    ----------
    runs : sequence of TrainingRun
        At least one run.
    fig : matplotlib.figure.Figure, optional
        An empty figure to draw into (a new pyplot figure when None).
    pending : str, optional
        Settings of the next run, shown in the title (the explorer's controls).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from nnptutor.plotting import COLORS, parity_plot

    if not runs:
        raise ValueError("draw_training_runs needs at least one run")
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(12.5, 5.0))
    grid = fig.add_gridspec(2, 3, height_ratios=(3.2, 1.0))
    axes = [fig.add_subplot(grid[0, k]) for k in range(3)]
    last = runs[-1]
    number = len(runs)
    parity_plot(last.energy_ref, last.energy_pred, ax=axes[0], unit="eV/atom",
                label=f"run {number}")
    parity_plot(last.forces_ref, last.forces_pred, ax=axes[1], unit="eV/Å",
                quantity="force component", label=f"run {number}")
    _draw_run_errors(axes[2], runs, COLORS)
    _draw_run_table(fig.add_subplot(grid[1, :]), runs[-6:], first=number - len(runs[-6:]) + 1)
    title = f"shown: run {number} ({last.settings})"
    if pending is not None:
        title += f"   ·   next run: {pending}  (press Train)"
    fig.suptitle(title, fontsize=10)
    return fig


def _draw_run_errors(ax, runs, colors):
    """Test force RMSE [eV/Å] against test energy RMSE [meV/atom], one numbered point per run."""
    energy = np.array([run.energy_rmse for run in runs])  # (n_runs,)
    force = np.array([run.force_rmse for run in runs])  # (n_runs,)
    ax.scatter(energy, force, s=30, color=colors["model"])
    ax.scatter(energy[-1:], force[-1:], s=160, facecolors="none",
               edgecolors=colors["hard"], linewidths=1.5, label="latest run")
    for k, (x, y) in enumerate(zip(energy, force), start=1):
        ax.annotate(str(k), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=9)
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_locator(mpl.ticker.LogLocator(subs=(2.0, 5.0)))  # labelled minor ticks only
        axis.set_major_formatter(mpl.ticker.FuncFormatter(_tick_label))
        axis.set_minor_formatter(mpl.ticker.FuncFormatter(_tick_label))
    # at least a factor 3 on each axis, so that a few close runs are not stretched apart
    ax.set_xlim(energy.min() / 1.8, max(energy.max(), 3 * energy.min()) * 1.8)
    ax.set_ylim(force.min() / 1.8, max(force.max(), 3 * force.min()) * 1.8)
    ax.set_xlabel("test energy RMSE [meV/atom]")
    ax.set_ylabel("test force RMSE [eV/Å]")
    ax.set_title("every run (lower left is better)")
    ax.legend(loc="upper left")


def _tick_label(value, _position) -> str:
    """Plain log-axis labels at 1, 2 and 5 times a power of ten ("0.02", not "2×10⁻²")."""
    mantissa = value / 10 ** np.floor(np.log10(value))
    return f"{value:g}" if round(mantissa) in (1, 2, 5) else ""


def _draw_run_table(ax, runs, first: int):
    """A table of settings and test errors of ``runs``, numbered from ``first``, as monospaced
    text (one text artist: far cheaper to lay out and draw than a matplotlib table)."""
    ax.axis("off")
    header = ("run", "w_F [Å²/atom²]", "hidden width", "parameters", "training structures",
              "test E RMSE [meV/atom]", "test F RMSE [eV/Å]", "time [s]")
    rows = [(str(first + k), f"{run.force_weight:g}", str(run.width), str(run.n_parameters),
             str(run.n_train), f"{run.energy_rmse:.2f}", f"{run.force_rmse:.3f}",
             f"{run.time_s:.1f}") for k, run in enumerate(runs)]
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]
    lines = ["   ".join(cell.rjust(width) for cell, width in zip(row, widths))
             for row in [header, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    ax.text(0.5, 1.0, "\n".join(lines), family="monospace", fontsize=8.5, ha="center",
            va="top", transform=ax.transAxes)


class TrainingExplorer:
    """Controls for w_F, hidden width and training-set size, a Train button and the figure
    of :func:`draw_training_runs`, all runs kept for comparison.

    Moving a control redraws the figure with the next run's settings in its title; Train
    trains a new run (a few seconds) and adds it. Display the explorer as the last
    expression of a cell.

    Parameters
    ----------
    train_set, test_set : FeaturizedSet
        With energies and forces; the size control runs up to ``len(train_set)``.
    val_set : FeaturizedSet, optional
        For early stopping.
    runs : sequence of TrainingRun, optional
        Runs to start from (e.g. the static twin's); without any, the first run is
        trained at the default settings when the explorer is made.
    steps : int
        Optimiser steps per run (:func:`train_run`).

    Attributes
    ----------
    force_weight, width, n_train : ipywidgets.SelectionSlider, SelectionSlider, IntSlider
        The controls.
    button : ipywidgets.Button
    output : ipywidgets.Output
        Where the figure is displayed.
    figure : matplotlib.figure.Figure
        The figure drawn last.
    runs : list of TrainingRun
    widget : ipywidgets.VBox
        Controls, button, status line and figure.
    """

    def __init__(self, train_set, test_set, val_set=None, runs=(), steps: int = 400):
        import ipywidgets as w

        self.train_set, self.test_set, self.val_set = train_set, test_set, val_set
        self.steps = steps
        self.runs = list(runs)
        self._lock = threading.Lock()  # one redraw or run at a time, whichever thread calls
        common = dict(continuous_update=False, style={"description_width": "initial"},
                      layout=w.Layout(width="390px"))
        self.force_weight = w.SelectionSlider(
            options=FORCE_WEIGHTS, value=0.3, description="force weight w_F [Å²/atom²]", **common)
        self.width = w.SelectionSlider(options=HIDDEN_WIDTHS, value=32,
                                       description="hidden width [neurons]", **common)
        step = max(1, len(train_set) // 8)
        self.n_train = w.IntSlider(value=len(train_set), min=step, max=len(train_set),
                                   step=step, description="training structures [count]",
                                   **common)
        self.button = w.Button(description="Train", button_style="primary",
                               tooltip="train a new model with these settings")
        self.status = w.Label()
        self.output = w.Output()
        if not self.runs:
            self.runs.append(self._train())
        for control in self.controls:
            control.observe(lambda change: self.redraw(), names="value")
        self.button.on_click(lambda button: self.train())
        self.widget = w.VBox([w.HBox(self.controls, layout=w.Layout(flex_flow="row wrap")),
                              w.HBox([self.button, self.status]),
                              self.output])
        self.redraw()

    @property
    def controls(self) -> list:
        """The three sliders, in display order."""
        return [self.force_weight, self.width, self.n_train]

    def pending(self) -> str:
        """Settings of the next run, as :attr:`TrainingRun.settings` writes them."""
        return _settings(self.force_weight.value, self.width.value, self.n_train.value)

    def _train(self) -> TrainingRun:
        return train_run(self.train_set, self.test_set, self.val_set,
                         force_weight=self.force_weight.value, width=self.width.value,
                         n_train=self.n_train.value, steps=self.steps)

    def redraw(self):
        """Draw the runs on a new figure (outside pyplot) and show it in :attr:`output`."""
        from matplotlib.figure import Figure

        with self._lock:
            pending = self.pending()
            # A Figure pyplot does not know: widget callbacks may run on a kernel subshell
            # thread, where pyplot figures can be closed half-drawn (tests/browser/README.md).
            fig = Figure(figsize=(12.5, 5.0), layout="constrained")
            draw_training_runs(self.runs, fig=fig,
                               pending=None if pending == self.runs[-1].settings else pending)
            self.figure = fig
            self.output.clear_output(wait=True)
            with self.output:
                show_png(fig)

    def train(self):
        """Train a run with the current settings, add it to :attr:`runs` and redraw."""
        self.button.disabled = True
        self.status.value = f"training: {self.pending()} …"
        try:
            with self._lock:
                self.runs.append(self._train())
            self.status.value = f"run {len(self.runs)} done in {self.runs[-1].time_s:.1f} s"
        finally:
            self.button.disabled = False
        self.redraw()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def training_explorer(train_set, test_set, val_set=None, runs=(), steps: int = 400):
    """A :class:`TrainingExplorer` (see there); display it as the last expression of a cell."""
    return TrainingExplorer(train_set, test_set, val_set, runs=runs, steps=steps)

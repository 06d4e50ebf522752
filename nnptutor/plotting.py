"""The course's one house style for figures, and the plots the notebooks share.

Every function draws on ``ax`` (a new figure when ``ax`` is None), labels its axes with
units, and returns the Axes; none changes global state except :func:`use_style`, which the
notebooks call once in their setup cell. Colours come from :data:`COLORS` (Okabe–Ito,
colour-blind safe), so that one quantity has one colour in every notebook.

Sections: style · cutoffs and locality · descriptors · model quality · dynamics ·
performance.
Add new functions to the section they belong to; keep them pure and small.
"""
from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

# --- style ------------------------------------------------------------------------------

#: Okabe–Ito palette by name.
PALETTE = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}

#: One colour per recurring quantity or method across the course.
COLORS = {
    "reference": PALETTE["black"],
    "model": PALETTE["blue"],
    "train": PALETTE["blue"],
    "validation": PALETTE["orange"],
    "hard": PALETTE["vermillion"],
    "shifted": PALETTE["orange"],
    "cosine": PALETTE["blue"],
    "tanh3": PALETTE["green"],
    "centre": PALETTE["vermillion"],
    "neighbour": PALETTE["blue"],
    "other": "#BBBBBB",
}

#: rcParams applied by :func:`use_style`.
STYLE = {
    "figure.figsize": (5.0, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "figure.constrained_layout.use": True,
    "font.size": 11,
    "axes.titlesize": 11,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.8,
    "axes.prop_cycle": mpl.cycler(color=[PALETTE[k] for k in
                                         ("blue", "orange", "green", "vermillion",
                                          "purple", "sky", "black")]),
    "image.cmap": "viridis",
}


def use_style() -> None:
    """Apply the house style to matplotlib's global rcParams (call once per notebook)."""
    mpl.rcParams.update(STYLE)


def _axes(ax, **subplot_kw):
    if ax is None:
        _, ax = plt.subplots(subplot_kw=subplot_kw or None)
    return ax


# --- cutoffs and locality ---------------------------------------------------------------


def plot_cutoffs(r_cut: float, names=("cosine", "tanh3"), derivative: bool = False, ax=None):
    """Cutoff functions f_c(r), or their first derivatives, from 0 to 1.1 r_c.

    Parameters
    ----------
    r_cut : float
        Cutoff radius r_c [Å].
    names : sequence of str
        Cutoffs from :mod:`nnptutor.cutoffs`.
    derivative : bool
        Plot df_c/dr [Å⁻¹] instead of f_c [dimensionless].
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    from nnptutor.cutoffs import get_cutoff

    ax = _axes(ax)
    r = np.linspace(0.0, 1.1 * r_cut, 400)  # (n_points,)
    for name in names:
        value, slope = get_cutoff(name)(r, r_cut)
        ax.plot(r, slope if derivative else value, color=COLORS.get(name), label=name)
    ax.axvline(r_cut, color=COLORS["other"], linestyle="--", linewidth=1)
    ax.set_xlabel("r [Å]")
    ax.set_ylabel("df$_c$/dr [Å$^{-1}$]" if derivative else "f$_c$(r)")
    ax.legend()
    return ax


def plot_cutoff_sphere(atoms, center: int, r_cut: float, ax=None):
    """3-D view of one atom, its neighbours within r_c (periodic images included) and the
    rest of the cell.

    Parameters
    ----------
    atoms : ase.Atoms
        Positions in Å.
    center : int
        Index of the central atom.
    r_cut : float
        Cutoff radius r_c [Å].
    ax : matplotlib 3-D Axes, optional

    Returns
    -------
    matplotlib Axes (3-D)
    """
    from nnptutor.neighbors import neighbor_pairs

    ax = _axes(ax, projection="3d")
    pairs = neighbor_pairs(atoms, r_cut)
    mine = pairs.i == center
    origin = atoms.positions[center]
    neighbours = origin + pairs.vectors[mine]  # (n_neighbours, 3), images included
    ax.scatter(*atoms.positions.T, s=12, color=COLORS["other"], label="atoms in the cell")
    ax.scatter(*neighbours.T, s=30, color=COLORS["neighbour"],
               label=f"{int(mine.sum())} neighbours within r$_c$")
    ax.scatter(*origin, s=80, color=COLORS["centre"], label=f"atom {center}")
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 30), np.linspace(0, np.pi, 15))
    sphere = [origin[0] + r_cut * np.cos(u) * np.sin(v), origin[1] + r_cut * np.sin(u) * np.sin(v),
              origin[2] + r_cut * np.cos(v)]
    ax.plot_wireframe(*sphere, color=COLORS["neighbour"], linewidth=0.3, alpha=0.4)
    ax.set_xlabel("x [Å]")
    ax.set_ylabel("y [Å]")
    ax.set_zlabel("z [Å]")
    ax.set_box_aspect((1, 1, 1))
    ax.legend(loc="upper left")
    return ax


def plot_pair_energy(epsilon: float, sigma: float, r_cut: float,
                     cutoffs=("hard", "shifted", "cosine", "tanh3"), derivative: bool = False,
                     r_range=None, ax=None):
    """Cut-off Lennard-Jones pair energy V(r), or the pair force −dV/dr, for several cutoffs.

    Parameters
    ----------
    epsilon, sigma : float
        Lennard-Jones ε [eV] and σ [Å].
    r_cut : float
        Cutoff radius r_c [Å].
    cutoffs : sequence of str
        Schemes of :func:`nnptutor.demos.pair_energy`.
    derivative : bool
        Plot −dV/dr [meV/Å] instead of V [meV].
    r_range : (float, float), optional
        Distances to plot [Å]; default (0.95 σ, 1.1 r_c).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    from nnptutor.demos import pair_energy

    ax = _axes(ax)
    low, high = r_range or (0.95 * sigma, 1.1 * r_cut)
    r = np.linspace(low, high, 600)  # (n_points,)
    for name in cutoffs:
        value, slope = pair_energy(r, epsilon, sigma, r_cut, name)
        ax.plot(r, 1e3 * (-slope if derivative else value), color=COLORS.get(name), label=name)
    ax.axvline(r_cut, color=COLORS["other"], linestyle="--", linewidth=1)
    ax.set_xlabel("r [Å]")
    ax.set_ylabel("pair force −dV/dr [meV/Å]" if derivative else "V(r) [meV]")
    ax.legend()
    return ax


# --- descriptors ------------------------------------------------------------------------


def plot_matrix(matrix, labels=None, ax=None, title=None, colorbar_label="M$_{ij}$"):
    """Heat map of a square matrix, e.g. a Coulomb matrix.

    Parameters
    ----------
    matrix : ndarray, shape (n, n)
    labels : sequence of str, optional
        Tick labels, one per row (e.g. "C0", "H6").
    ax : matplotlib Axes, optional
    title : str, optional
    colorbar_label : str

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    matrix = np.asarray(matrix)
    image = ax.imshow(matrix)
    ax.figure.colorbar(image, ax=ax, label=colorbar_label)
    ax.grid(False)
    if labels is not None:
        ticks = np.arange(len(labels))
        ax.set_xticks(ticks, labels, rotation=90, fontsize=8)
        ax.set_yticks(ticks, labels, fontsize=8)
    ax.set_xlabel("atom j")
    ax.set_ylabel("atom i")
    if title:
        ax.set_title(title)
    return ax


# --- model quality ----------------------------------------------------------------------


def parity_plot(y_true, y_pred, ax=None, unit="eV", label=None, quantity="energy"):
    """Predicted against reference values with the line y = x and the MAE in the legend.

    Parameters
    ----------
    y_true, y_pred : ndarray, shape (n,)
        Reference and predicted values [``unit``].
    ax : matplotlib Axes, optional
    unit : str
        Unit shown on the axes.
    label : str, optional
        Legend entry (the MAE is appended).
    quantity : str
        Name on the axes, e.g. "energy" or "force component".

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    y_true, y_pred = np.ravel(y_true), np.ravel(y_pred)
    mae = np.mean(np.abs(y_pred - y_true))
    text = f"MAE {mae:.3g} {unit}"
    ax.scatter(y_true, y_pred, s=8, alpha=0.6, color=COLORS["model"],
               label=f"{label}: {text}" if label else text)
    limits = [min(y_true.min(), y_pred.min()), max(y_true.max(), y_pred.max())]
    ax.plot(limits, limits, color=COLORS["reference"], linewidth=1, label="y = x")
    ax.set_xlabel(f"reference {quantity} [{unit}]")
    ax.set_ylabel(f"predicted {quantity} [{unit}]")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend()
    return ax


def learning_curve_plot(n_train, errors, ax=None, unit="meV", label=None, color=None):
    """Test error against training-set size on log–log axes.

    Parameters
    ----------
    n_train : ndarray, shape (n_sizes,)
        Training-set sizes.
    errors : ndarray, shape (n_sizes,)
        Test errors [``unit``], e.g. MAE.
    ax : matplotlib Axes, optional
    unit : str
    label : str, optional
    color : str, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    ax.loglog(n_train, errors, "o-", label=label, color=color)
    plain = mpl.ticker.FuncFormatter(lambda value, _: f"{value:g}")  # 200, not 2×10²
    ax.set_xticks(n_train, [f"{n:g}" for n in n_train])
    ax.xaxis.set_minor_formatter(mpl.ticker.NullFormatter())
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_xlabel("training structures")
    ax.set_ylabel(f"test MAE [{unit}]")
    if label:
        ax.legend()
    return ax


# --- dynamics ---------------------------------------------------------------------------


def energy_trace_plot(time_fs, total, n_atoms: int = 1, ax=None, label=None, color=None):
    """Total-energy change E(t) − E(0) in an MD run, per atom, against time.

    Parameters
    ----------
    time_fs : ndarray, shape (n_steps,)
        Times [fs]; plotted in ps.
    total : ndarray, shape (n_steps,)
        Total energies [eV].
    n_atoms : int
        Divide by this to plot per atom.
    ax : matplotlib Axes, optional
    label, color : str, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    total = np.asarray(total)
    change = 1e3 * (total - total[0]) / n_atoms  # meV/atom
    ax.plot(np.asarray(time_fs) / 1e3, change, label=label, color=color)
    ax.set_xlabel("time [ps]")
    ax.set_ylabel("E(t) − E(0) [meV/atom]" if n_atoms > 1 else "E(t) − E(0) [meV]")
    if label:
        ax.legend()
    return ax


# --- performance ------------------------------------------------------------------------


def timing_plot(n_atoms, seconds, ax=None, label=None, color=None):
    """Run time against system size on log–log axes, with a guide of slope 1 (linear scaling).

    Parameters
    ----------
    n_atoms : ndarray, shape (n_sizes,)
    seconds : ndarray, shape (n_sizes,)
        Run times [s].
    ax : matplotlib Axes, optional
    label, color : str, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax)
    n_atoms, seconds = np.asarray(n_atoms, dtype=float), np.asarray(seconds, dtype=float)
    ax.loglog(n_atoms, seconds, "o-", label=label, color=color)
    guide = seconds[-1] * n_atoms / n_atoms[-1]  # slope 1 through the largest system
    ax.loglog(n_atoms, guide, linestyle="--", color=COLORS["other"], label="∝ N (linear)")
    ax.set_xlabel("number of atoms N")
    ax.set_ylabel("time [s]")
    ax.legend()
    return ax

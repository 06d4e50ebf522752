r"""Cutoff-function explorer for notebook 02: f_c, f_c′, f_c″ and the energy error of NVE MD.

:func:`show_cutoffs` is the static twin that the notebook draws once; :func:`cutoff_explorer`
redraws the same figure for the chosen cutoff and radius R_c. The MD panel reads a grid of
short NVE runs (:func:`nnptutor.demos.energy_error_grid`) computed once, so a control move
only redraws.

Taught in notebooks/02_atomic_decomposition.ipynb, "Smoothness and energy conservation".
"""
from __future__ import annotations

import functools

import numpy as np

from nnptutor.cutoffs import CUTOFFS, get_cutoff
from nnptutor.demos import PAIR_CUTOFFS, energy_error_grid

#: Lennard-Jones argon of notebook 02: ε [eV], σ [Å].
ARGON_EPSILON, ARGON_SIGMA = 0.0104, 3.40
#: Cutoff radii R_c [Å] of the precomputed MD grid (6.8 Å = 2σ is the notebook's choice).
GRID_R_CUTS = tuple(np.round(np.arange(4.4, 8.01, 0.4), 1))


def cutoff_with_derivatives(distances, r_cut: float, cutoff: str):
    r"""A cutoff function with its first and second derivatives.

    .. math::
        \text{cosine: } f_c'' = -\tfrac12 (\pi/R_c)^2 \cos(\pi R/R_c); \qquad
        \text{tanh}^3\text{: } f_c'' = 6 t (1 - 2t^2)(1 - t^2) / R_c^2,\ t = \tanh(1 - R/R_c)

    Parameters
    ----------
    distances : array_like, any shape
        Distances R [Å].
    r_cut : float
        Cutoff radius R_c [Å].
    cutoff : {"cosine", "tanh3"}

    Returns
    -------
    (ndarray, ndarray, ndarray), same shape as ``distances``
        f_c [dimensionless], f_c′ [Å⁻¹] and f_c″ [Å⁻²]; all zero beyond R_c.
    """
    r = np.asarray(distances, dtype=float)
    value, slope = get_cutoff(cutoff)(r, r_cut)
    inside = r <= r_cut
    if cutoff == "cosine":
        curvature = -0.5 * (np.pi / r_cut) ** 2 * np.cos(np.pi * r / r_cut)
    else:
        t = np.tanh(np.where(inside, 1.0 - r / r_cut, 0.0))
        curvature = 6.0 * t * (1.0 - 2.0 * t**2) * (1.0 - t**2) / r_cut**2
    return value, slope, np.where(inside, curvature, 0.0)


@functools.lru_cache(maxsize=4)
def argon_energy_errors(n_steps: int = 300, timestep_fs: float = 5.0, temperature_K: float = 60.0):
    """Energy errors of NVE runs of 32 argon atoms for every pair scheme and R_c of the grid.

    Parameters
    ----------
    n_steps : int
        Steps per run (300 steps of 5 fs: 1.5 ps).
    timestep_fs : float
        Δt [fs].
    temperature_K : float
        Starting temperature [K].

    Returns
    -------
    dict
        As :func:`nnptutor.demos.energy_error_grid` for :data:`GRID_R_CUTS`: ``r_cut`` [Å]
        and max |E_tot(t) − E_tot(0)| / N [meV/atom] for "hard", "shifted", "cosine", "tanh3".
        Cached: the first call takes a few seconds, later calls none.
    """
    from ase.build import bulk

    argon = bulk("Ar", "fcc", a=5.26, cubic=True) * (2, 2, 2)  # 32 atoms, box 10.52 Å
    return energy_error_grid(argon, ARGON_EPSILON, ARGON_SIGMA, GRID_R_CUTS, PAIR_CUTOFFS,
                             n_steps, timestep_fs, temperature_K, seed=0)


def draw_cutoffs(fig, cutoff: str = "cosine", r_cut: float = 6.8, grid=None):
    """Draw f_c, f_c′, f_c″ (the chosen cutoff bold, the other thin) and the MD energy errors.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        An empty figure; four panels are added (2 × 2).
    cutoff : {"cosine", "tanh3"}
        The cutoff drawn bold.
    r_cut : float
        Cutoff radius R_c [Å]; for the MD panel one of :data:`GRID_R_CUTS`.
    grid : dict, optional
        :func:`argon_energy_errors` (computed when None).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from nnptutor.plotting import COLORS

    if cutoff not in CUTOFFS:
        raise ValueError(f"unknown cutoff {cutoff!r}; choose one of {CUTOFFS}")
    grid = argon_energy_errors() if grid is None else grid
    axes = fig.subplots(2, 2).ravel()
    r = np.linspace(0.0, 1.15 * max(GRID_R_CUTS), 500)  # (n_points,) Å
    names = ("f$_c$ [–]", "f$_c$′ [Å$^{-1}$]", "f$_c$″ [Å$^{-2}$]")
    for name in CUTOFFS:
        curves = cutoff_with_derivatives(r, r_cut, name)
        chosen = name == cutoff
        for ax, curve in zip(axes[:3], curves):
            ax.plot(r, curve, color=COLORS[name], linewidth=2.4 if chosen else 1.0,
                    linestyle="-" if chosen else "--", label=name)
    for ax, label in zip(axes[:3], names):
        ax.axvline(r_cut, color=COLORS["other"], linewidth=1)
        ax.set(xlabel="R [Å]", ylabel=label)
    axes[0].legend(loc="upper right")
    at_rc = cutoff_with_derivatives(r_cut - 1e-9, r_cut, cutoff)[2]
    axes[2].set_title(f"{cutoff}: f$_c$″ just inside R$_c$ = {float(at_rc):.3f} Å$^{{-2}}$",
                      fontsize=9)
    axes[0].set_title(f"R$_c$ = {r_cut:.1f} Å", fontsize=9)

    ax = axes[3]
    k = int(np.argmin(np.abs(grid["r_cut"] - r_cut)))
    for name in PAIR_CUTOFFS:
        chosen = name == cutoff
        ax.semilogy(grid["r_cut"], grid[name], marker="o", markersize=4 if chosen else 2.5,
                    color=COLORS[name], linewidth=2.4 if chosen else 1.0, label=name)
    ax.axvline(grid["r_cut"][k], color=COLORS["other"], linewidth=1)
    ax.set(xlabel="R$_c$ [Å]", ylabel="max |ΔE$_{tot}$| [meV/atom]")
    ax.set_title(f"NVE, 32 Ar: hard {grid['hard'][k]:.2g}, {cutoff} {grid[cutoff][k]:.2g} meV/atom",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    return fig


def show_cutoffs(cutoff: str = "cosine", r_cut: float = 6.8, grid=None):
    """:func:`draw_cutoffs` on a new pyplot figure (the widget's static twin).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    return draw_cutoffs(plt.figure(figsize=(9.0, 6.0)), cutoff, r_cut, grid)


def cutoff_explorer(grid=None):
    """A "cutoff" toggle and an "R_c [Å]" slider that redraw :func:`draw_cutoffs`.

    Parameters
    ----------
    grid : dict, optional
        :func:`argon_energy_errors` (computed once when None).

    Returns
    -------
    ipywidgets.interactive
        Display it as the last expression of a cell.
    """
    import threading

    import ipywidgets as w
    from IPython.display import display
    from matplotlib.figure import Figure

    grid = argon_energy_errors() if grid is None else grid
    lock = threading.Lock()  # one redraw at a time, whichever kernel thread delivers the move

    def draw(cutoff, r_cut):
        with lock:
            # a Figure pyplot does not know (tests/browser/README.md, "never pyplot")
            display(draw_cutoffs(Figure(figsize=(9.0, 6.0)), cutoff, r_cut, grid))

    style = {"description_width": "70px"}
    return w.interactive(
        draw,
        cutoff=w.ToggleButtons(options=list(CUTOFFS), value="cosine", description="cutoff",
                               style=style),
        r_cut=w.SelectionSlider(options=[(f"{r:.1f}", float(r)) for r in GRID_R_CUTS],
                                value=6.8, description="R_c [Å]", continuous_update=False,
                                style=style),
    )

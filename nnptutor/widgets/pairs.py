r"""Pair-function explorer for notebook 08: thin ipywidgets over pure, tested functions.

One figure, three panels, for the pair symmetry functions of notebook 08 (eq. 2 there):

1. the functions of the bond itself, :math:`P_2 = f_c(R_{AB})` and
   :math:`P_6 = e^{-\eta (R_{AB} - R_s)^2} f_c(R_{AB})`, with the neighbour shells of fcc Cu;
2. the angular factor of :math:`P_4`, :math:`2^{1-\zeta}(1 + \lambda\cos\theta_n)^\zeta`;
3. the cost: network evaluations per atom of a pair model (pairs per atom) against one for an
   atom-centred model, as the cutoff grows.

:func:`show_pair_functions` draws the figure (the notebook's static twin);
:func:`pair_function_explorer` redraws it from sliders on a figure pyplot does not know
(``tests/browser/README.md``, "Figures in widget callbacks: never pyplot").
"""
from __future__ import annotations

import numpy as np
from ase.build import bulk
from ase.neighborlist import neighbor_list

from nnptutor.cutoffs import get_cutoff
from nnptutor.plotting import COLORS
from nnptutor.widgets.symmetry import angular_term, radial_term
from nnptutor.widgets._display import show_png


#: (width, height) of the figure [inches].
FIGSIZE = (13.0, 3.4)
#: Largest cutoff offered [Å].
MAX_CUTOFF = 7.0


def pairs_per_atom(r_cuts, a: float = 3.61):
    """Unordered pairs per atom of perfect fcc Cu within each cutoff: neighbours / 2.

    Parameters
    ----------
    r_cuts : ndarray, shape (n,)
        Cutoff radii R_c [Å], at most :data:`MAX_CUTOFF`.
    a : float
        Cubic lattice constant [Å].

    Returns
    -------
    ndarray, shape (n,)
        Pairs per atom, i.e. pair-network evaluations per atom [dimensionless].
    """
    distances = np.sort(neighbor_list("d", bulk("Cu", "fcc", a=a), MAX_CUTOFF + 1e-9))  # one atom per cell
    return np.searchsorted(distances, np.asarray(r_cuts, dtype=float), side="right") / 2


def show_pair_functions(r_cut: float = 4.0, eta: float = 0.78, r_s: float = 2.5, zeta: float = 1.0,
                        lambda_: float = 1.0):
    """Draw the three panels (module docstring) on a new pyplot figure.

    Parameters
    ----------
    r_cut : float
        Cutoff radius R_c [Å].
    eta : float
        Width η of P6 [Å⁻²].
    r_s : float
        Centre R_s of P6 [Å].
    zeta : float
        ζ of P4.
    lambda_ : float
        λ = ±1 of P4.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=FIGSIZE)
    draw_pair_functions(fig, r_cut, eta, r_s, zeta, lambda_)
    return fig


def draw_pair_functions(fig, r_cut, eta, r_s, zeta, lambda_):
    """Draw :func:`show_pair_functions`'s panels into the empty figure ``fig``; returns its axes."""
    axes = fig.subplots(1, 3)
    r = np.linspace(0.0, MAX_CUTOFF, 400)
    ax = axes[0]
    ax.plot(r, get_cutoff("cosine")(r, r_cut)[0], ":", color=COLORS["reference"], label="P2 = f_c(R_AB)")
    ax.plot(r, radial_term(r, eta, r_s, r_cut), color=COLORS["model"], label=f"P6 (η={eta:g}, R_s={r_s:g})")
    for shell in (3.61 / np.sqrt(2), 3.61, 3.61 * np.sqrt(1.5)):
        ax.axvline(shell, color=COLORS["other"], linewidth=1, zorder=0)
    ax.set(xlabel="R_AB [Å]", ylabel="feature", ylim=(-0.02, 1.05),
           title=f"functions of the bond, R_c = {r_cut:g} Å\n(grey: fcc Cu neighbour shells)")
    ax.legend(loc="upper right", fontsize=8)

    theta = np.linspace(0.0, np.pi, 200)
    ax = axes[1]
    ax.plot(np.degrees(theta), angular_term(theta, zeta, lambda_), color=COLORS["validation"])
    ax.set(xlabel="θ_n [degrees]", ylabel="$2^{1-ζ}(1+λ\\cos θ_n)^ζ$", ylim=(0, 2.1),
           title=f"P4 angular factor (ζ={zeta:g}, λ={lambda_:+g})")

    ax = axes[2]
    radii = np.linspace(2.0, MAX_CUTOFF, 101)
    ax.step(radii, pairs_per_atom(radii), where="post", color=COLORS["model"], label="pair model")
    ax.axhline(1.0, color=COLORS["reference"], linestyle="--", label="atom-centred model")
    ax.plot([r_cut], pairs_per_atom([r_cut]), "o", color=COLORS["hard"], label=f"R_c = {r_cut:g} Å")
    ax.set(xlabel="R_c [Å]", ylabel="network evaluations per atom", yscale="log", ylim=(0.5, 100),
           title="cost, fcc Cu")
    ax.legend(loc="upper left", fontsize=8)
    return axes


def pair_function_explorer():
    """Sliders for R_c [Å], η [Å⁻²], R_s [Å], ζ and λ that redraw :func:`show_pair_functions`.

    Returns
    -------
    ipywidgets.interactive
        Display it as the last expression of a cell.
    """
    import threading

    import ipywidgets as w
    from matplotlib.figure import Figure

    lock = threading.Lock()  # one redraw at a time, whichever kernel thread delivers the move

    def draw(r_cut, eta, r_s, zeta, lambda_):
        with lock:
            # a Figure pyplot does not know: safe on a kernel subshell thread
            fig = Figure(figsize=FIGSIZE, layout="tight")
            draw_pair_functions(fig, r_cut, eta, r_s, zeta, lambda_)
            show_png(fig)

    common = dict(style={"description_width": "70px"}, continuous_update=False)
    return w.interactive(
        draw,
        r_cut=w.FloatSlider(value=4.0, min=3.0, max=MAX_CUTOFF, step=0.25, description="R_c [Å]", **common),
        eta=w.FloatLogSlider(value=0.78, base=10, min=-2, max=1, step=0.1, description="η [Å⁻²]", **common),
        r_s=w.FloatSlider(value=2.5, min=0.0, max=MAX_CUTOFF, step=0.25, description="R_s [Å]", **common),
        zeta=w.FloatLogSlider(value=1.0, base=2, min=0, max=5, step=1, description="ζ", **common),
        lambda_=w.SelectionSlider(options=[("−1", -1.0), ("+1", 1.0)], value=1.0, description="λ", **common),
    )

r"""Gaussian-multipole probe explorer for notebook 06: thin ipywidgets over pure, tested functions.

One figure, four panels, for a probe of order n and width σ (eqs. 2–5 of notebook 06):

1. the radial weight of one Cu neighbour, :math:`R_{n\sigma}(r)\, r^n`, with the neighbour
   shells of the structure marked;
2. the angular shape: a slice of the probe's axial component :math:`S^{(n)}_{00n}` times its
   Gaussian envelope through the x–z plane;
3. the feature :math:`F_{n\sigma} = \sqrt{Q_{n\sigma}}` of one atom (and Q) as that atom's
   environment is moved from the perfect crystal along a random rattle and back through it:
   where all moments of an order vanish, √Q has a kink like |x| and Q is smooth;
4. the features of all orders of that atom before and after the rattle.

:func:`show_gmp_probe` draws the figure (the notebook's static twin);
:func:`gmp_explorer` redraws it from sliders on a figure pyplot does not know
(``tests/browser/README.md``, "Figures in widget callbacks: never pyplot").
"""
from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list

from matplotlib.ticker import LogLocator, NullLocator

from nnptutor.descriptors import GMP
from nnptutor.descriptors._mcsh import components, solid_harmonics
from nnptutor.plotting import COLORS
from nnptutor.widgets._display import show_png


#: Orders shown in the before/after panel.
ORDERS = (0, 1, 2, 3)
#: Values below this are drawn at this height on the logarithmic feature axis.
FLOOR = 1e-17


def default_crystal() -> Atoms:
    """Perfect fcc Cu, 32 atoms (2 × 2 × 2 cubic cells, a = 3.61 Å): every site a cubic site."""
    return bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)


def radial_weight(distances, order: int, sigma: float, element: str = "Cu"):
    r"""What one neighbour at distance r adds to a moment of order n: :math:`R_{n\sigma e}(r)\, r^n`.

    Parameters
    ----------
    distances : ndarray, shape (n_points,)
        r [Å].
    order : int
        MCSH order n ≥ 0.
    sigma : float
        Probe width σ [Å].
    element : str
        Element of the neighbour; its density is the library's teaching density.

    Returns
    -------
    ndarray, shape (n_points,)
        :math:`R_{n\sigma e}(r)\, r^n` [e Å⁻³⁺ⁿ].
    """
    r = np.asarray(distances, dtype=float)
    a, c = GMP([element], orders=(order,), sigmas=(sigma,)).radial_coefficients(order, sigma)
    return (a[0] * np.exp(np.outer(r**2, c[0]))).sum(axis=1) * r**order  # (n_points,)


def probe_slice(order: int, sigma: float, extent: float = 3.0, n_points: int = 121):
    r"""The probe's axial component on the plane y = 0, eq. (2) of notebook 06.

    :math:`\phi(\mathbf r) = (\sigma\sqrt{2\pi})^{-3} S^{(n)}_{00n}(\mathbf r)\, e^{-r^2/2\sigma^2}`
    (for n = 0 the constant 1).

    Parameters
    ----------
    order : int
        MCSH order n ≥ 0.
    sigma : float
        Probe width σ [Å].
    extent : float
        The slice covers x, z ∈ [−extent, extent] [Å].
    n_points : int
        Grid points per axis.

    Returns
    -------
    x, z : ndarray, shape (n_points,)
        Grid axes [Å].
    values : ndarray, shape (n_points, n_points)
        φ on the grid, rows along z [Å⁻³⁺ⁿ].
    """
    axis = np.linspace(-extent, extent, n_points)
    X, Z = np.meshgrid(axis, axis)  # (n_points, n_points), rows along z
    points = np.stack([X.ravel(), np.zeros(X.size), Z.ravel()], axis=1)  # (n_points², 3)
    envelope = (sigma * np.sqrt(2 * np.pi)) ** -3 * np.exp(-(points**2).sum(axis=1) / (2 * sigma**2))
    axial = solid_harmonics(points, order)[:, components(order).index((0, 0, order))]
    return axis, axis, (axial * envelope).reshape(X.shape)


def rattle_displacements(n_atoms: int, amplitude: float, seed: int = 0):
    """Random displacements, Gaussian with standard deviation ``amplitude`` per component.

    Parameters
    ----------
    n_atoms : int
    amplitude : float
        Standard deviation [Å] (ASE's ``rattle(stdev=...)``).
    seed : int

    Returns
    -------
    ndarray, shape (n_atoms, 3)
        Displacements [Å].
    """
    return np.random.default_rng(seed).normal(scale=amplitude, size=(n_atoms, 3))


def rattle_sweep(atoms: Atoms, atom: int, sigma: float, amplitude: float, steps=None, seed: int = 0):
    r"""Features of one atom along the straight path from ``atoms`` through a rattle.

    Positions are ``R + s · ΔR`` for every step s, with ΔR from :func:`rattle_displacements`;
    s = 0 is ``atoms`` itself, s = 1 the rattled structure, s < 0 the opposite rattle.

    Parameters
    ----------
    atoms : ase.Atoms
        The structure (e.g. a perfect crystal).
    atom : int
        Index of the atom whose features are returned.
    sigma : float
        Probe width σ [Å].
    amplitude : float
        Rattle standard deviation [Å].
    steps : ndarray, shape (n_steps,), optional
        Values of s; default −1 to 1 in steps of 0.25.
    seed : int

    Returns
    -------
    steps : ndarray, shape (n_steps,)
    features : ndarray, shape (n_steps, len(ORDERS))
        :math:`F_{n\sigma} = \sqrt{Q_{n\sigma}}` of ``atom`` for n in :data:`ORDERS`
        [e Å⁻³⁺ⁿ].
    """
    steps = np.linspace(-1.0, 1.0, 9) if steps is None else np.asarray(steps, dtype=float)
    gmp = GMP(sorted(set(atoms.get_chemical_symbols())), orders=ORDERS, sigmas=(sigma,))
    shift = rattle_displacements(len(atoms), amplitude, seed)  # (n_atoms, 3)
    features = []
    for s in steps:
        moved = atoms.copy()
        moved.positions += s * shift
        features.append(gmp.compute(moved)[atom])  # (len(ORDERS),)
    return steps, np.array(features)


def show_gmp_probe(order: int = 2, sigma: float = 0.5, atom: int = 0, rattle: float = 0.05,
                   atoms: Atoms | None = None):
    """Draw the four panels (module docstring) on a new pyplot figure.

    Parameters
    ----------
    order : int
        MCSH order n, 0–3.
    sigma : float
        Probe width σ [Å].
    atom : int
        Atom whose features are shown.
    rattle : float
        Rattle standard deviation [Å].
    atoms : ase.Atoms, optional
        Default :func:`default_crystal` (perfect fcc Cu).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=FIGSIZE)
    draw_gmp_probe(fig, order, sigma, atom, rattle, atoms)
    return fig


#: (width, height) of the figure [inches].
FIGSIZE = (14.0, 3.4)


def draw_gmp_probe(fig, order, sigma, atom, rattle, atoms=None):
    """Draw :func:`show_gmp_probe`'s panels into the empty figure ``fig``; returns its axes."""
    atoms = default_crystal() if atoms is None else atoms
    axes = fig.subplots(1, 4)
    _draw_radial(axes[0], atoms, atom, order, sigma)
    _draw_slice(axes[1], order, sigma)
    steps, features = rattle_sweep(atoms, atom, sigma, rattle)
    _draw_kink(axes[2], steps * rattle, features[:, ORDERS.index(order)], order, sigma)
    _draw_before_after(axes[3], features[steps == 0][0], features[steps == 1][0], order, sigma, rattle, atom)
    return axes


def _draw_radial(ax, atoms, atom, order, sigma):
    r = np.linspace(0.0, 6.0, 300)
    ax.plot(r, radial_weight(r, order, sigma), color=COLORS["model"])
    i, d = neighbor_list("id", atoms, 6.0)
    for shell in np.unique(np.round(d[i == atom], 2)):
        ax.axvline(shell, color=COLORS["other"], linewidth=1, zorder=0)
    ax.set(xlabel="neighbour distance R [Å]", ylabel=f"$R_{{{order}σ}}(r)\\,r^{order}$ [e Å$^{{{order - 3}}}$]",
           title=f"radial weight, n = {order}, σ = {sigma:g} Å\n(grey: neighbour shells)")


def _draw_slice(ax, order, sigma):
    x, z, values = probe_slice(order, sigma)
    limit = np.abs(values).max()
    ax.imshow(values, origin="lower", extent=(x[0], x[-1], z[0], z[-1]), cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set(xlabel="x [Å]", ylabel="z [Å]", aspect="equal",
           title=f"angular shape: $S^{{({order})}}_{{00{order}}}$ slice\n(red +, blue −)")
    ax.grid(False)


def _draw_kink(ax, shifts, values, order, sigma):
    # both forms relative to their value after the full rattle: a V (√Q) against a parabola (Q)
    ax.plot(shifts, values / values[-1], "o-", color=COLORS["model"], label="F = √Q (default)")
    ax.plot(shifts, (values / values[-1]) ** 2, "s--", color=COLORS["validation"], label="Q (square=True)")
    ax.set(xlabel="s × rattle [Å]  (0: perfect crystal)", ylabel="feature / its value at s = 1",
           title=f"$F_{{{order}}}$ of the atom, σ = {sigma:g} Å")
    ax.set_xticks([shifts[0], 0.0, shifts[-1]])
    ax.legend(loc="upper center")


def _draw_before_after(ax, before, after, order, sigma, rattle, atom):
    positions = np.arange(len(ORDERS))
    ax.bar(positions - 0.2, np.maximum(before, FLOOR), 0.4, color=COLORS["reference"], label="perfect crystal")
    ax.bar(positions + 0.2, np.maximum(after, FLOOR), 0.4, color=COLORS["validation"],
           label=f"rattled ({rattle:g} Å)")
    ax.bar([ORDERS.index(order)], [1.0], 0.9, bottom=FLOOR, fill=False, edgecolor=COLORS["hard"])
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10.0, numticks=4))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set(ylim=(FLOOR / 3, 1e5), xticks=positions, xticklabels=[f"n = {n}" for n in ORDERS],
           ylabel=f"$F_{{nσ}}$ of atom {atom} [e Å$^{{n-3}}$]", title=f"all orders at σ = {sigma:g} Å")
    ax.legend(loc="upper center", ncols=2, fontsize=8)


def gmp_explorer(atoms: Atoms | None = None):
    """Sliders for order n, σ [Å], the atom and the rattle [Å] that redraw :func:`show_gmp_probe`.

    Parameters
    ----------
    atoms : ase.Atoms, optional
        Default :func:`default_crystal` (perfect fcc Cu).

    Returns
    -------
    ipywidgets.interactive
        Display it as the last expression of a cell.
    """
    import threading

    import ipywidgets as w
    from matplotlib.figure import Figure

    atoms = default_crystal() if atoms is None else atoms
    lock = threading.Lock()  # one redraw at a time, whichever kernel thread delivers the move

    def draw(order, sigma, atom, rattle):
        with lock:
            # a Figure pyplot does not know: safe on a kernel subshell thread
            fig = Figure(figsize=FIGSIZE, layout="tight")
            draw_gmp_probe(fig, order, sigma, atom, rattle, atoms)
            show_png(fig)

    common = dict(style={"description_width": "80px"}, continuous_update=False)
    return w.interactive(
        draw,
        order=w.IntSlider(value=2, min=0, max=3, step=1, description="order n", **common),
        sigma=w.FloatSlider(value=0.5, min=0.25, max=1.25, step=0.25, description="σ [Å]", **common),
        atom=w.IntSlider(value=0, min=0, max=len(atoms) - 1, step=1, description="atom", **common),
        rattle=w.FloatSlider(value=0.05, min=0.01, max=0.2, step=0.01, description="rattle [Å]", **common),
    )

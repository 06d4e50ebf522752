r"""Coulomb-matrix explorer for notebook 01: permute and rotate a molecule, watch the three forms.

:func:`coulomb_forms` computes the raw matrix, the sorted matrix and the eigenvalues of a
molecule after a permutation of its atoms and a rotation; :func:`draw_coulomb_forms` draws
them beside the molecule and says in the figure which forms changed. :func:`show_coulomb_forms`
is the static twin; :func:`coulomb_matrix_explorer` redraws it from three controls.

Taught in notebooks/01_coulomb_matrix.ipynb, "Atom order, and what the fixes give up".
"""
from __future__ import annotations

import numpy as np

from nnptutor.descriptors import CoulombMatrix

#: Molecules of the explorer: label -> name in ``ase.build.molecule``.
MOLECULES = {"H2O": "H2O", "CH4": "CH4", "ethanol": "CH3CH2OH", "benzene": "C6H6"}
#: Rotation axis of the explorer (a generic direction, so every angle moves every atom).
ROTATION_AXIS = (1.0, 2.0, 3.0)


def explorer_molecule(name: str):
    """A molecule of :data:`MOLECULES`, rattled by 0.03 Å (fixed seed).

    The rattle breaks the exact symmetry of ASE's ideal geometries: with ties between row
    norms, the sorted form would depend on how the tie is broken.

    Parameters
    ----------
    name : str
        A key of :data:`MOLECULES`.

    Returns
    -------
    ase.Atoms
        Positions in Å.
    """
    from ase.build import molecule

    if name not in MOLECULES:
        raise ValueError(f"unknown molecule {name!r}; choose one of {tuple(MOLECULES)}")
    atoms = molecule(MOLECULES[name])
    atoms.rattle(0.03, seed=1)
    return atoms


def permutation_of(n_atoms: int, seed: int) -> np.ndarray:
    """The atom order numbered ``seed``: 0 is the original order, any other seed a shuffle.

    Parameters
    ----------
    n_atoms : int
    seed : int
        0 keeps the order; k > 0 draws a permutation with ``np.random.default_rng(k)``.

    Returns
    -------
    ndarray of int, shape (n_atoms,)
        New atom k is old atom ``order[k]``; never the identity for seed > 0 when n_atoms > 1.
    """
    order = np.arange(n_atoms)
    if seed == 0 or n_atoms < 2:
        return order
    order = np.random.default_rng(seed).permutation(n_atoms)
    if np.array_equal(order, np.arange(n_atoms)):
        order = np.roll(order, 1)  # a shuffle must change something
    return order


def coulomb_forms(atoms, permutation: int = 0, angle_deg: float = 0.0) -> dict:
    """The molecule after a permutation and a rotation, and its three Coulomb-matrix forms.

    Parameters
    ----------
    atoms : ase.Atoms
        A molecule (positions in Å).
    permutation : int
        Seed of :func:`permutation_of`.
    angle_deg : float
        Rotation [deg] about :data:`ROTATION_AXIS` through the centre of mass.

    Returns
    -------
    dict
        ``atoms`` (the moved copy), ``order`` (n_atoms,), ``raw`` and ``sorted``
        (n_atoms, n_atoms) [Å⁻¹, charges in e; diagonal 0.5 Z^2.4], ``eigenvalues``
        (n_atoms,) sorted by decreasing magnitude.
    """
    order = permutation_of(len(atoms), int(permutation))
    moved = atoms[order]
    moved.rotate(angle_deg, ROTATION_AXIS, center="COM")
    n = len(moved)
    raw = CoulombMatrix(n, "none").matrix(moved)  # (n, n)
    sorted_ = CoulombMatrix(n, "sorted").compute(moved).reshape(n, n)  # (n, n)
    eigenvalues = CoulombMatrix(n, "eigenspectrum").compute(moved)  # (n,)
    return {"atoms": moved, "order": order, "raw": raw, "sorted": sorted_,
            "eigenvalues": eigenvalues}


def form_changes(atoms, permutation: int = 0, angle_deg: float = 0.0) -> dict:
    """Largest change of each form against the original order at 0°.

    Returns
    -------
    dict
        ``raw``, ``sorted``, ``eigenvalues``: max |Δ| [Å⁻¹ (charges in e)].
    """
    now, start = coulomb_forms(atoms, permutation, angle_deg), coulomb_forms(atoms)
    return {key: float(np.abs(now[key] - start[key]).max()) for key in ("raw", "sorted", "eigenvalues")}


def draw_coulomb_forms(fig, name: str = "ethanol", permutation: int = 0, angle_deg: float = 0.0):
    """Draw the molecule and its raw, sorted and eigenvalue forms side by side.

    The title of each form says whether it changed against the original order at 0°
    (max |Δ| > 1e-9).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        An empty figure; four panels are added.
    name : str
        A key of :data:`MOLECULES`.
    permutation : int
        Seed of :func:`permutation_of` (0: the original order).
    angle_deg : float
        Rotation [deg] about :data:`ROTATION_AXIS`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ase.data import atomic_numbers
    from ase.data.colors import jmol_colors
    from matplotlib.ticker import MaxNLocator

    atoms = explorer_molecule(name)
    forms = coulomb_forms(atoms, permutation, angle_deg)
    changes = form_changes(atoms, permutation, angle_deg)
    moved = forms["atoms"]
    labels = [f"{s}{k}" for k, s in enumerate(moved.get_chemical_symbols())]
    vmax = forms["raw"].max()  # the largest diagonal entry: one colour scale for both maps
    axes = fig.subplots(1, 4, gridspec_kw={"width_ratios": [1, 1, 1, 0.9]})

    ax = axes[0]  # the molecule, projected on the xy plane, atoms labelled in the current order
    xy = moved.positions[:, :2] - moved.get_center_of_mass()[:2]  # (n_atoms, 2)
    colors = [jmol_colors[atomic_numbers[s]] for s in moved.get_chemical_symbols()]
    ax.scatter(*xy.T, s=[60 + 25 * z for z in moved.numbers], c=colors, edgecolors="k")
    for label, (x, y) in zip(labels, xy):
        ax.annotate(label, (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set(xlabel="x [Å]", ylabel="y [Å]", aspect="equal",
           title=f"{name}: order #{permutation}, {angle_deg:.0f}°")
    ax.title.set_fontsize(9)

    def verdict(key):
        return f"changed (max |Δ| = {changes[key]:.2g})" if changes[key] > 1e-9 else "unchanged"

    for ax, key, title, ticks in ((axes[1], "raw", "raw M", labels),
                                  (axes[2], "sorted", "sorted M", None)):
        ax.imshow(forms[key], vmin=0.0, vmax=vmax, cmap="viridis")
        ax.grid(False)
        if ticks is not None:
            positions = np.arange(len(ticks))
            ax.set_xticks(positions, ticks, rotation=90, fontsize=6)
            ax.set_yticks(positions, ticks, fontsize=6)
        else:
            ax.set(xticks=[], yticks=[])
        ax.set(xlabel="column j", ylabel="row i")
        ax.set_title(f"{title}: {verdict(key)}", fontsize=9)
    image = axes[2].images[0]
    fig.colorbar(image, ax=axes[1:3], shrink=0.8, label="M$_{ij}$ [e²/Å; diagonal 0.5 Z$^{2.4}$]")

    ax = axes[3]
    ax.bar(np.arange(1, len(forms["eigenvalues"]) + 1), forms["eigenvalues"], color="C0")
    ax.axhline(0.0, color="k", linewidth=0.8)
    ax.set(xlabel="eigenvalue index k", ylabel="ε$_k$ [e²/Å]")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"eigenvalues: {verdict('eigenvalues')}", fontsize=9)
    return fig


def show_coulomb_forms(name: str = "ethanol", permutation: int = 0, angle_deg: float = 0.0):
    """:func:`draw_coulomb_forms` on a new pyplot figure (the widget's static twin).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    return draw_coulomb_forms(plt.figure(figsize=(13.0, 3.6)), name, permutation, angle_deg)


def coulomb_matrix_explorer():
    """"molecule", "permutation" and "rotation [deg]" controls that redraw
    :func:`draw_coulomb_forms`.

    Returns
    -------
    ipywidgets.interactive
        Display it as the last expression of a cell.
    """
    import threading

    import ipywidgets as w
    from IPython.display import display
    from matplotlib.figure import Figure

    lock = threading.Lock()  # one redraw at a time, whichever kernel thread delivers the move

    def draw(name, permutation, angle_deg):
        with lock:
            # a Figure pyplot does not know (tests/browser/README.md, "never pyplot")
            display(draw_coulomb_forms(Figure(figsize=(13.0, 3.6), layout="constrained"),
                                       name, permutation, angle_deg))

    style = {"description_width": "110px"}
    return w.interactive(
        draw,
        name=w.Dropdown(options=list(MOLECULES), value="ethanol", description="molecule",
                        style=style),
        permutation=w.IntSlider(value=0, min=0, max=20, description="permutation",
                                continuous_update=False, style=style),
        angle_deg=w.FloatSlider(value=0.0, min=0.0, max=360.0, step=15.0,
                                description="rotation [deg]", continuous_update=False,
                                style=style),
    )

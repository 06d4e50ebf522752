r"""Symmetry-function explorer for notebook 03: thin ipywidgets over pure, tested functions.

The explorer redraws :func:`show_symmetry_functions`, which the notebook also calls once
statically (the explorer's *static twin*), so the figure is checked in CI and the controls only
re-run it. The figure has three panels: the radial terms of G2 and G3 with the cutoff function,
the angular factor of G4/G5, and the fingerprint of a structure as a heat map with every row
scaled by its own largest magnitude (so that small features are as visible as large ones).
The chosen centre atom is marked in all three: its neighbour distances and angles as ticks,
its column in the heat map.

Taught in notebooks/03_symmetry_functions.ipynb, "Explore the parameters".
"""
from __future__ import annotations

import itertools

import numpy as np

from nnptutor.cutoffs import get_cutoff
from nnptutor.widgets._display import show_png


#: Starting values of the explorer: η [Å⁻²] and R_s [Å] of G2, κ [Å⁻¹] of G3, η [Å⁻²], ζ
#: and λ of G4/G5, R_c [Å], cutoff and centre atom.
DEFAULTS = dict(eta=0.5, r_s=2.5, kappa=2.0, eta_angular=0.005, zeta=2.0, lambda_=1.0,
                r_cut=6.0, cutoff="cosine", center=0)


def radial_term(distances, eta: float, r_s: float, r_cut: float, cutoff: str = "cosine"):
    r"""One neighbour's contribution to G2: :math:`e^{-\eta (R_{ij} - R_s)^2} f_c(R_{ij})`.

    Parameters
    ----------
    distances : ndarray, shape (n,)
        R_ij [Å].
    eta : float
        Width parameter η [Å⁻²].
    r_s : float
        Centre R_s [Å].
    r_cut : float
        Cutoff radius R_c [Å].
    cutoff : str
        "cosine" or "tanh3".

    Returns
    -------
    ndarray, shape (n,)
        [dimensionless]
    """
    fc, _ = get_cutoff(cutoff)(distances, r_cut)
    return np.exp(-eta * (np.asarray(distances) - r_s) ** 2) * fc


def cosine_term(distances, kappa: float, r_cut: float, cutoff: str = "cosine"):
    r"""One neighbour's contribution to G3: :math:`\cos(\kappa R_{ij}) f_c(R_{ij})`.

    Parameters
    ----------
    distances : ndarray, shape (n,)
        R_ij [Å].
    kappa : float
        Wave number κ [Å⁻¹].
    r_cut : float
        Cutoff radius R_c [Å].
    cutoff : str
        "cosine" or "tanh3".

    Returns
    -------
    ndarray, shape (n,)
        Between −1 and 1 [dimensionless].
    """
    fc, _ = get_cutoff(cutoff)(distances, r_cut)
    return np.cos(kappa * np.asarray(distances)) * fc


def angular_term(theta, zeta: float, lambda_: float):
    r"""The angular factor of G4/G5: :math:`2^{1-\zeta} (1 + \lambda \cos\theta_{ijk})^\zeta`.

    Parameters
    ----------
    theta : ndarray, shape (n,)
        Angle θ_ijk [rad].
    zeta : float
        ζ ≥ 1, sharpness of the angular peak.
    lambda_ : float
        λ = +1 (peak at 0°) or −1 (peak at 180°).

    Returns
    -------
    ndarray, shape (n,)
        Between 0 and 2 [dimensionless].
    """
    return 2.0 ** (1.0 - zeta) * (1.0 + lambda_ * np.cos(theta)) ** zeta


def explorer_descriptor(elements, eta=0.5, r_s=2.5, kappa=2.0, eta_angular=0.005, zeta=2.0,
                        lambda_=1.0, r_cut=6.0, cutoff="cosine"):
    """The ACSF the explorer shows: G1, one G2, one G3, one G4 and one G5 per element (pair).

    G4 and G5 share their own η (``eta_angular`` [Å⁻²]), ζ and λ; G2 has η [Å⁻²] and R_s [Å],
    G3 κ [Å⁻¹]; R_c = ``r_cut`` [Å].

    Returns
    -------
    nnptutor.descriptors.ACSF
    """
    from nnptutor.descriptors import ACSF

    angular = [(eta_angular, zeta, lambda_)]
    return ACSF(list(elements), r_cut=r_cut, g2=[(eta, r_s)], g3=[kappa], g4=angular,
                g5=angular, cutoff=cutoff)


def normalized_rows(values):
    """Each feature (row of ``values.T``) divided by its largest magnitude over the atoms.

    Parameters
    ----------
    values : ndarray, shape (n_atoms, n_features)

    Returns
    -------
    scaled : ndarray, shape (n_features, n_atoms)
        Between −1 and 1; a feature that is zero for every atom stays zero.
    scale : ndarray, shape (n_features,)
        The largest magnitude of each feature over the atoms (0 for an all-zero feature).
    """
    rows = np.asarray(values, dtype=float).T  # (n_features, n_atoms)
    scale = np.abs(rows).max(axis=1)  # (n_features,)
    safe = np.where(scale > 0, scale, 1.0)[:, None]  # (n_features, 1)
    return rows / safe, scale


def center_geometry(atoms, center: int, r_cut: float):
    """Neighbour distances R_ij [Å] and pair angles θ_jik [rad] of one centre atom.

    Parameters
    ----------
    atoms : ase.Atoms
        A molecule (no periodic images are taken).
    center : int
        Index i of the centre atom.
    r_cut : float
        Cutoff radius R_c [Å]; neighbours beyond it are left out.

    Returns
    -------
    distances : ndarray, shape (n_neighbors,)
    angles : ndarray, shape (n_neighbors * (n_neighbors - 1) / 2,)
        One angle per unordered neighbour pair j < k.
    """
    vectors = atoms.positions - atoms.positions[center]  # (n_atoms, 3) Å
    distances = np.linalg.norm(vectors, axis=1)  # (n_atoms,)
    inside = (distances > 0) & (distances < r_cut)
    vectors, distances = vectors[inside], distances[inside]
    angles = [np.arccos(np.clip(vectors[j] @ vectors[k] / (distances[j] * distances[k]), -1, 1))
              for j, k in itertools.combinations(range(len(distances)), 2)]
    return distances, np.array(angles)


def show_symmetry_functions(eta=0.5, r_s=2.5, kappa=2.0, zeta=2.0, lambda_=1.0, atoms=None,
                            r_cut=6.0, cutoff="cosine", eta_angular=0.005, center=0):
    """Draw the radial (G2, G3) and angular (G4/G5) terms and, if ``atoms`` is given, that
    molecule's fingerprint for these parameters, with atom ``center`` marked.

    Parameters are those of eqs. (1)–(5) of notebook 03: η [Å⁻²] and R_s [Å] of G2, κ [Å⁻¹]
    of G3, ``eta_angular`` [Å⁻²], ζ and λ of G4/G5, R_c = ``r_cut`` [Å], ``cutoff``
    ("cosine" or "tanh3").

    Returns
    -------
    matplotlib.figure.Figure
        A pyplot figure (for static cells; end the cell with ``plt.show()``).
    """
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=_figure_size(atoms))
    _draw_symmetry_functions(fig, dict(eta=eta, r_s=r_s, kappa=kappa, eta_angular=eta_angular,
                                       zeta=zeta, lambda_=lambda_, r_cut=r_cut, cutoff=cutoff,
                                       center=center), atoms)
    return fig


def _figure_size(atoms):
    """(width, height) [inches] of the figure: 2 panels, 3 with ``atoms``."""
    return (13.5, 4.2) if atoms is not None else (9.0, 3.6)


def _draw_symmetry_functions(fig, p, atoms):
    """Draw :func:`show_symmetry_functions`'s panels for parameters ``p`` into empty ``fig``."""
    from nnptutor.plotting import COLORS

    widths = [1, 1, 1.5] if atoms is not None else [1, 1]
    axes = fig.subplots(1, len(widths), gridspec_kw={"width_ratios": widths})
    distances = angles = None
    if atoms is not None:
        distances, angles = center_geometry(atoms, p["center"], p["r_cut"])

    ax = axes[0]
    r = np.linspace(0.0, max(p["r_cut"] * 1.05, 1.0), 400)  # Å
    ax.plot(r, radial_term(r, p["eta"], p["r_s"], p["r_cut"], p["cutoff"]),
            label=f"G2: η={p['eta']:.3g} Å⁻², R_s={p['r_s']:g} Å")
    ax.plot(r, cosine_term(r, p["kappa"], p["r_cut"], p["cutoff"]), label=f"G3: κ={p['kappa']:g} Å⁻¹")
    ax.plot(r, get_cutoff(p["cutoff"])(r, p["r_cut"])[0], "k:", label=f"f_c ({p['cutoff']})")
    ax.axvline(p["r_cut"], color="0.6", lw=0.8)
    if distances is not None:
        ax.plot(distances, np.full_like(distances, -1.0), "|", ms=14, color=COLORS["centre"],
                label=f"R_ij of atom {p['center']}")
    ax.set(xlabel="R_ij [Å]", ylabel="term [dimensionless]", ylim=(-1.1, 1.1),
           title=f"radial terms (R_c = {p['r_cut']:g} Å)")
    ax.legend(fontsize=7, loc="upper right")

    ax = axes[1]
    theta = np.linspace(0.0, np.pi, 300)  # rad
    ax.plot(np.degrees(theta), angular_term(theta, p["zeta"], p["lambda_"]), color=COLORS["tanh3"])
    if angles is not None and len(angles):
        ax.plot(np.degrees(angles), np.zeros_like(angles), "|", ms=14, color=COLORS["centre"],
                label=f"θ_jik of atom {p['center']}")
        ax.legend(fontsize=7, loc="upper center")
    ax.set(xlabel="θ_ijk [degrees]", ylabel="2^(1−ζ) (1 + λ cos θ)^ζ", ylim=(-0.1, 2.1),
           title=f"angular factor (ζ={p['zeta']:g}, λ={p['lambda_']:+g})")

    if atoms is not None:
        _draw_fingerprint(fig, axes[2], p, atoms)
    if fig.get_layout_engine() is None:  # use_style() sets constrained layout; tight_layout would clash
        fig.tight_layout()


def _draw_fingerprint(fig, ax, p, atoms):
    """Heat map of the explorer's features of ``atoms``, rows scaled to ±1, centre framed."""
    from matplotlib.patches import Rectangle

    symbols = atoms.get_chemical_symbols()
    elements = sorted(set(symbols), key=lambda s: atoms.numbers[symbols.index(s)])
    descriptor = explorer_descriptor(elements, **{k: v for k, v in p.items() if k != "center"})
    scaled, scale = normalized_rows(descriptor.compute(atoms))  # (n_features, n_atoms)
    image = ax.imshow(scaled, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    n_features, n_atoms = scaled.shape
    ax.set_yticks(range(n_features))
    ax.set_yticklabels([label.split("(")[0] for label in descriptor.feature_labels], fontsize=6)
    ax.set_xticks(range(n_atoms))
    ax.set_xticklabels([f"{k}{s}" for k, s in enumerate(symbols)], fontsize=7)
    ax.add_patch(Rectangle((p["center"] - 0.5, -0.5), 1, n_features, fill=False, lw=2, color="k"))
    right = ax.secondary_yaxis("right")
    right.set_yticks(range(n_features))
    right.set_yticklabels([f"{s:.2g}" for s in scale], fontsize=6)
    ax.grid(False)
    ax.set(xlabel="atom", title=f"{atoms.get_chemical_formula()}: features of each atom")
    colorbar = fig.colorbar(image, ax=ax, shrink=0.9, pad=0.12)
    colorbar.set_label("G / (largest |G| in its row) [right: that value]", fontsize=8)


def symmetry_function_explorer(atoms=None, r_cut: float = 6.0, cutoff: str = "cosine"):
    """Controls for every parameter of :func:`show_symmetry_functions` that redraw it.

    G2: η [Å⁻²], R_s [Å]; G3: κ [Å⁻¹]; G4/G5: their own η [Å⁻²], ζ, λ; R_c [Å], cutoff type
    and, with ``atoms``, the centre atom.

    Returns
    -------
    ipywidgets.VBox
        The controls above an ``Output`` holding the figure; display it as the last
        expression of a cell.
    """
    import threading

    import ipywidgets as w
    from matplotlib.figure import Figure

    lock = threading.Lock()  # one redraw at a time, whichever kernel thread delivers the move

    def draw(**p):
        with lock:
            # A Figure outside pyplot: in JupyterLab widget messages may arrive on a kernel
            # subshell thread, and every comm message ends with the inline backend's
            # post-execute hook, which renders and closes *all* pyplot figures. A pyplot figure
            # drawn here could be rendered half-built (blank PNG) or closed by another thread.
            fig = Figure(figsize=_figure_size(atoms), layout="constrained")
            _draw_symmetry_functions(fig, p, atoms)
            show_png(fig)  # this figure only, fully drawn

    controls = _controls(w, atoms, r_cut, cutoff)
    output = w.interactive_output(draw, controls)
    columns = [["eta", "r_s", "kappa"], ["eta_angular", "zeta", "lambda_"], ["r_cut", "cutoff", "center"]]
    boxes = [w.VBox([controls[name] for name in column if isinstance(controls[name], w.Widget)])
             for column in columns]
    return w.VBox([w.HBox(boxes), output])


def _controls(w, atoms, r_cut, cutoff):
    """The explorer's controls by parameter name (redraw when released, not on every pixel)."""
    common = dict(style={"description_width": "90px"}, continuous_update=False,
                  layout=w.Layout(width="300px"))
    d = DEFAULTS
    controls = dict(
        eta=w.FloatLogSlider(value=d["eta"], base=10, min=-2, max=1, step=0.1, description="G2 η [Å⁻²]", **common),
        r_s=w.FloatSlider(value=d["r_s"], min=0.0, max=8.0, step=0.25, description="R_s [Å]", **common),
        kappa=w.FloatSlider(value=d["kappa"], min=0.0, max=6.0, step=0.25, description="κ [Å⁻¹]", **common),
        eta_angular=w.FloatLogSlider(value=d["eta_angular"], base=10, min=-3, max=0, step=0.1,
                                     description="G4/G5 η [Å⁻²]", **common),
        zeta=w.SelectionSlider(options=[1, 2, 4, 8, 16, 32], value=2, description="ζ", **common),
        lambda_=w.SelectionSlider(options=[("−1", -1.0), ("+1", 1.0)], value=1.0, description="λ", **common),
        r_cut=w.FloatSlider(value=r_cut, min=2.0, max=8.0, step=0.25, description="R_c [Å]", **common),
        cutoff=w.Dropdown(options=["cosine", "tanh3"], value=cutoff, description="cutoff",
                          style=common["style"], layout=common["layout"]),
    )
    if atoms is not None:
        controls["center"] = w.Dropdown(
            options=[(f"{k} {s}", k) for k, s in enumerate(atoms.get_chemical_symbols())],
            value=d["center"], description="centre atom", style=common["style"], layout=common["layout"])
    else:
        controls["center"] = w.fixed(d["center"])
    return controls

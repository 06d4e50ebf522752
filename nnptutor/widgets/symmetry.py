r"""Symmetry-function explorer for notebook 03: thin ipywidgets over pure, tested functions.

Every widget calls a plain function (:func:`show_symmetry_functions`) that the notebook also
calls once statically, so the figures are checked in CI and the sliders only re-run it.
"""
from __future__ import annotations

import numpy as np

from nnptutor.cutoffs import get_cutoff


def radial_term(distances, eta: float, r_s: float, r_cut: float, cutoff: str = "cosine"):
    r"""One neighbour's contribution to G2: :math:`e^{-\eta (r - R_s)^2} f_c(r)`.

    Parameters
    ----------
    distances : ndarray, shape (n,)
        r [Å].
    eta : float
        Width parameter η [Å⁻²].
    r_s : float
        Centre R_s [Å].
    r_cut : float
        Cutoff radius [Å].
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
    r"""One neighbour's contribution to G3: :math:`\cos(\kappa r) f_c(r)`; κ in Å⁻¹."""
    fc, _ = get_cutoff(cutoff)(distances, r_cut)
    return np.cos(kappa * np.asarray(distances)) * fc


def angular_term(theta, zeta: float, lambda_: float):
    r"""The angular factor of G4/G5: :math:`2^{1-\zeta} (1 + \lambda \cos\theta)^\zeta`.

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


def show_symmetry_functions(
    eta: float = 0.5,
    r_s: float = 2.5,
    kappa: float = 2.0,
    zeta: float = 2.0,
    lambda_: float = 1.0,
    atoms=None,
    r_cut: float = 6.0,
    cutoff: str = "cosine",
):
    """Draw the radial (G2, G3) and angular (G4) functions and, if ``atoms`` is given,
    that structure's fingerprint for these parameters.

    Parameters are those of acsf.md (η [Å⁻²], R_s [Å], κ [Å⁻¹], ζ, λ, r_cut [Å]).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=_figure_size(atoms))
    _draw_symmetry_functions(fig, eta, r_s, kappa, zeta, lambda_, atoms, r_cut, cutoff)
    return fig


def _figure_size(atoms):
    """(width, height) [inches] of the symmetry-function figure: 2 panels, 3 with ``atoms``."""
    return (4.2 * (3 if atoms is not None else 2), 3.4)


def _draw_symmetry_functions(fig, eta, r_s, kappa, zeta, lambda_, atoms, r_cut, cutoff):
    """Draw :func:`show_symmetry_functions`'s panels into the empty figure ``fig``."""
    n_panels = 3 if atoms is not None else 2
    axes = fig.subplots(1, n_panels)
    r = np.linspace(0.0, r_cut * 1.05, 400)
    ax = axes[0]
    ax.plot(r, radial_term(r, eta, r_s, r_cut, cutoff), label=f"G2 term (η={eta:g}, R_s={r_s:g})")
    ax.plot(r, cosine_term(r, kappa, r_cut, cutoff), label=f"G3 term (κ={kappa:g})")
    ax.plot(r, get_cutoff(cutoff)(r, r_cut)[0], "k:", label=f"f_c ({cutoff})")
    ax.axvline(r_cut, color="0.6", lw=0.8)
    ax.set(xlabel="r_ij [Å]", ylabel="contribution", ylim=(-1.05, 1.05), title="radial")
    ax.legend(fontsize=7, loc="lower left")

    theta = np.linspace(0.0, np.pi, 300)
    ax = axes[1]
    ax.plot(np.degrees(theta), angular_term(theta, zeta, lambda_), color="C2")
    ax.set(xlabel="θ_ijk [degrees]", ylabel="2^(1-ζ)(1+λcosθ)^ζ", ylim=(0, 2.1),
           title=f"angular (ζ={zeta:g}, λ={lambda_:+g})")

    if atoms is not None:
        from nnptutor.descriptors import ACSF

        elements = sorted(set(atoms.get_chemical_symbols()))
        descriptor = ACSF(elements, r_cut=r_cut, g2=[(eta, r_s)], g3=[kappa],
                          g4=[(eta / 10, zeta, lambda_)], cutoff=cutoff)
        values = descriptor.compute(atoms)  # (n_atoms, n_features)
        ax = axes[2]
        image = ax.imshow(values.T, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_yticks(range(descriptor.n_features))
        ax.set_yticklabels([label.split("(")[0] for label in descriptor.feature_labels], fontsize=7)
        ax.set(xlabel="atom index", title=f"fingerprint of {atoms.get_chemical_formula()}")
        fig.colorbar(image, ax=ax, shrink=0.8)
    if fig.get_layout_engine() is None:  # use_style() sets constrained layout; tight_layout would clash
        fig.tight_layout()


def symmetry_function_explorer(atoms=None, r_cut: float = 6.0, cutoff: str = "cosine"):
    """Sliders for η, R_s, κ, ζ and λ that redraw :func:`show_symmetry_functions`.

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

    def draw(eta, r_s, kappa, zeta, lambda_):
        with lock:
            # echo the values the kernel received (students see them; browser tests read them)
            print(f"kernel received: eta={eta:.3g} r_s={r_s:.3g} kappa={kappa:.3g} "
                  f"zeta={zeta:.3g} lambda={lambda_:+.0f}")
            # A Figure outside pyplot: in JupyterLab widget messages may arrive on a kernel
            # subshell thread, and every comm message ends with the inline backend's
            # post-execute hook, which renders and closes *all* pyplot figures. A pyplot figure
            # drawn here could be rendered half-built (blank PNG) or closed by another thread.
            fig = Figure(figsize=_figure_size(atoms))
            _draw_symmetry_functions(fig, eta, r_s, kappa, zeta, lambda_, atoms, r_cut, cutoff)
            display(fig)  # this figure only, fully drawn

    # redraw when a slider is released, not on every pixel of a drag (each redraw costs ~0.1 s)
    style = {"description_width": "40px"}
    common = dict(style=style, continuous_update=False)
    return w.interactive(
        draw,
        eta=w.FloatLogSlider(value=0.5, base=10, min=-2, max=1, step=0.1, description="η", **common),
        r_s=w.FloatSlider(value=2.5, min=0.0, max=r_cut, step=0.25, description="R_s", **common),
        kappa=w.FloatSlider(value=2.0, min=0.0, max=6.0, step=0.25, description="κ", **common),
        zeta=w.FloatLogSlider(value=2.0, base=2, min=0, max=5, step=1, description="ζ", **common),
        lambda_=w.SelectionSlider(options=[("−1", -1.0), ("+1", 1.0)], value=1.0, description="λ", **common),
    )

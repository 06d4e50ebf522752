r"""Helpers for choosing symmetry-function parameters (Behler 2011, 2015; Gastegger 2018).

Radial functions must cover the distances up to r_c; angular functions resolve angles
with a few ζ and both signs of λ. The formulas here follow the conventions of n2p2's
``nnp-sfparamgen`` and of Gastegger et al. (wACSF):

*Centred* grid (R_s = 0, one η per function): the Gaussian exp(−η r²) has width
σ = 1/√(2η); the n widths are spaced evenly from r_min to r_c, so that η decreases
from the narrowest (probing the first shell) to the widest (probing the whole sphere):

.. math:: \sigma_m = r_{min} + m\,\frac{r_c - r_{min}}{n - 1},\quad
          \eta_m = \frac{1}{2\sigma_m^2},\quad R_s = 0                        \tag{1}

*Shifted* grid (one η, R_s on an even grid): n centres from r_min to r_c, spacing
Δ = (r_c − r_min)/(n − 1), and one width equal to the spacing so that neighbouring
Gaussians overlap at about half height:

.. math:: R_{s,m} = r_{min} + m\Delta,\quad \eta = \frac{1}{2\Delta^2}             \tag{2}

*Geometric* grid (R_s = 0 like the centred one, widths in geometric progression from
r_min to r_c): as many narrow as wide Gaussians. Their sums are a smooth basis in which a
decaying radial function such as exp(−a r) (an embedding density, a pair repulsion) is
a linear combination to better than 1e-3, which the even grids are not
(``ACSF.default`` uses it; benchmarks/README.md, "Choosing the default descriptor"):

.. math:: \sigma_m = r_{min}\left(\frac{r_c}{r_{min}}\right)^{m/(n-1)},\quad
          \eta_m = \frac{1}{2\sigma_m^2},\quad R_s = 0                        \tag{3}

Taught in notebooks/03_symmetry_functions.ipynb, "Choosing parameters".
"""
from __future__ import annotations

from itertools import product
from typing import Sequence

import numpy as np

from nnptutor.descriptors import validation as check

MODES = ("centered", "shifted", "geometric")


def radial_grid(r_cut: float, n: int, mode: str = "centered", r_min: float = 1.0) -> list:
    """Radial (G2) parameters covering 0 … r_cut, eqs. (1) and (2).

    Parameters
    ----------
    r_cut : float
        Cutoff radius [Å], > 0.
    n : int
        Number of functions, ≥ 1.
    mode : {"centered", "shifted", "geometric"}
        Centred Gaussians of decreasing η (widths evenly spaced, eq. 1, or in geometric
        progression, eq. 3), or Gaussians of one η with shifted centres (eq. 2).
    r_min : float
        Smallest width (centred, geometric) or first centre (shifted) [Å],
        0 ≤ r_min < r_cut; for the centred grids it must be > 0.

    Returns
    -------
    list of (eta, r_s)
        eta [Å⁻²], r_s [Å], ready for ``ACSF(g2=...)``.
    """
    r_cut = check.r_cut(r_cut)
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    check.choice(mode, MODES, "mode")
    if not 0 <= r_min < r_cut or (mode != "shifted" and r_min <= 0):
        raise ValueError(f"r_min must be in (0, r_cut) for centred and [0, r_cut) for "
                         f"shifted grids, got {r_min}")
    n = int(n)
    if mode != "shifted":
        if n == 1:
            widths = np.array([r_cut / 2])
        elif mode == "centered":
            widths = np.linspace(r_min, r_cut, n)
        else:
            widths = np.geomspace(r_min, r_cut, n)
        return [(float(round(1.0 / (2.0 * w**2), 6)), 0.0) for w in widths]
    centres = np.linspace(r_min, r_cut, n) if n > 1 else np.array([r_min])
    spacing = (r_cut - r_min) / (n - 1) if n > 1 else r_cut / 2
    eta = float(round(1.0 / (2.0 * spacing**2), 6))
    return [(eta, float(round(c, 6))) for c in centres]


def angular_set(etas: Sequence[float], zetas: Sequence[float] = (1, 2, 4, 16),
                lambdas: Sequence[float] = (-1, 1)) -> list:
    """Angular (G4/G5) parameters: every combination of η, ζ and λ.

    Parameters
    ----------
    etas : sequence of float
        [Å⁻²], ≥ 0. Small values (≈ 0.001–0.05) weight distant neighbours only mildly.
    zetas : sequence of float
        ≥ 1; larger ζ narrows the angular peak (at θ = 0 for λ = +1, θ = π for λ = −1).
    lambdas : sequence of {−1, +1}

    Returns
    -------
    list of (eta, zeta, lambda_)
        Ordered by η, then ζ, then λ, ready for ``ACSF(g4=...)`` or ``ACSF(g5=...)``.
    """
    etas, zetas, lambdas = list(etas), list(zetas), list(lambdas)
    if not etas or not zetas or not lambdas:
        raise ValueError("etas, zetas and lambdas must each hold at least one value")
    return check.angular(product(etas, zetas, lambdas), "angular_set")

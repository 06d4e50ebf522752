r"""Cutoff functions f_c(r) and their first derivatives (docs/acsf.md, "Cutoff functions").

Both vanish with zero slope at r_c, so energies and forces built from them are continuous
when an atom crosses the cutoff sphere; tanh³ also has a vanishing second derivative there.
Taught in notebooks/02_atomic_decomposition.ipynb.
"""
from __future__ import annotations

import numpy as np

CUTOFFS = ("cosine", "tanh3")


def cosine(distances, r_cut: float):
    r"""Behler's cosine cutoff and its derivative.

    .. math:: f_c(r) = \tfrac12\left[\cos(\pi r / r_c) + 1\right],\ r \le r_c;\quad 0\ \text{else}

    Parameters
    ----------
    distances : array_like, any shape
        Distances r [Å].
    r_cut : float
        Cutoff radius r_c [Å].

    Returns
    -------
    (ndarray, ndarray), same shape as ``distances``
        f_c(r) [dimensionless] and df_c/dr [Å⁻¹].
    """
    r = np.asarray(distances, dtype=float)
    inside = r <= r_cut
    x = np.pi * r / r_cut
    value = np.where(inside, 0.5 * (np.cos(x) + 1.0), 0.0)
    derivative = np.where(inside, -0.5 * np.pi / r_cut * np.sin(x), 0.0)
    return value, derivative


def tanh3(distances, r_cut: float):
    r"""Behler's tanh³ cutoff (unnormalised, f_c(0) = tanh³(1) ≈ 0.4417) and its derivative.

    .. math:: f_c(r) = \tanh^3(1 - r / r_c),\ r \le r_c;\quad 0\ \text{else}

    Parameters and returns as :func:`cosine`.
    """
    r = np.asarray(distances, dtype=float)
    inside = r <= r_cut
    t = np.tanh(np.where(inside, 1.0 - r / r_cut, 0.0))
    value = t**3
    derivative = -3.0 * t**2 * (1.0 - t**2) / r_cut
    return np.where(inside, value, 0.0), np.where(inside, derivative, 0.0)


def get_cutoff(name: str):
    """Return the cutoff function called ``name`` ("cosine" or "tanh3")."""
    if name == "cosine":
        return cosine
    if name == "tanh3":
        return tanh3
    raise ValueError(f"unknown cutoff {name!r}; choose one of {CUTOFFS}")

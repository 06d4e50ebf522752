r"""Solid Maxwell–Cartesian spherical harmonics (MCSH), generated from their definition.

The order-n solid MCSH are the components of the rank-n symmetric traceless Cartesian tensor
(docs/gmp.md, section 4)

.. math:: S^{(n)}_{n_x n_y n_z}(\mathbf d) = (-1)^n\, r^{2n+1}\,
          \partial_x^{n_x}\partial_y^{n_y}\partial_z^{n_z} \frac{1}{r},
          \qquad n_x + n_y + n_z = n .

Each is a harmonic homogeneous polynomial of degree n, e.g. ``x``, ``3x² − r²``, ``3xy``,
``15x³ − 9x r²``, ``15xyz``, ``105x⁴ − 90x² r² + 9r⁴``. Instead of typing the table of
docs/gmp.md §4, the polynomials are derived here once, exactly in integers, by differentiating
``p(x) r^(-q)`` repeatedly:

.. math:: \partial_a \left[p\, r^{-q}\right] = \left[(\partial_a p)\, r^2 - q\, x_a\, p\right] r^{-(q+2)} .

Components with the same permutation pattern of (n_x, n_y, n_z) form a *group*; its weight is
the multinomial ``n!/(n_x! n_y! n_z!)``, so that ``Σ_k w_k S_k(u) S_k(v)`` is the full tensor
contraction, equal to ``N_n P_n(u·v)`` with ``N_n = (2n)!/2^n`` for unit vectors u, v.
Component order within a group is ours; rotation-invariant features do not depend on it.

Evaluation is one matrix product: monomials ``x^a y^b z^c`` of degree n, shape
(n_pairs, n_components), times a coefficient matrix; gradients use the monomials of degree
n − 1. Taught in notebooks/06_gaussian_multipoles.ipynb.
"""
from __future__ import annotations

from functools import lru_cache
from itertools import permutations
from math import factorial

import numpy as np

#: Highest MCSH order offered (the formulas are generic; 6 keeps cutoffs and tests sane).
MAX_ORDER = 6


def legendre_norm(n: int) -> int:
    """N_n = (2n)!/2^n: ``Σ_k w_k S_k(u) S_k(v) = N_n P_n(u·v)`` for unit vectors u, v."""
    return factorial(2 * n) // 2**n


@lru_cache(maxsize=None)
def components(n: int) -> tuple[tuple[int, int, int], ...]:
    """Exponent triples (n_x, n_y, n_z) of order n, grouped by permutation pattern.

    Groups come in descending pattern order, e.g. n = 3: (3,0,0)×3, (2,1,0)×6, (1,1,1)×1.
    """
    patterns = sorted(
        {tuple(sorted((a, b, n - a - b), reverse=True)) for a in range(n + 1) for b in range(n + 1 - a)},
        reverse=True,
    )
    out = []
    for pattern in patterns:
        seen = []
        for perm in permutations(pattern):
            if perm not in seen:
                seen.append(perm)
        out.extend(sorted(seen, reverse=True))
    return tuple(out)


@lru_cache(maxsize=None)
def weights(n: int) -> np.ndarray:
    """Multinomial weights n!/(n_x! n_y! n_z!) of the components, shape (n_components,)."""
    return np.array(
        [factorial(n) / (factorial(a) * factorial(b) * factorial(c)) for a, b, c in components(n)]
    )


def _times_r2(poly: dict) -> dict:
    out: dict = {}
    for (a, b, c), coef in poly.items():
        for shift in ((2, 0, 0), (0, 2, 0), (0, 0, 2)):
            key = (a + shift[0], b + shift[1], c + shift[2])
            out[key] = out.get(key, 0) + coef
    return out


def _derivative(poly: dict, axis: int) -> dict:
    out: dict = {}
    for powers, coef in poly.items():
        if powers[axis]:
            key = list(powers)
            key[axis] -= 1
            out[tuple(key)] = out.get(tuple(key), 0) + coef * powers[axis]
    return out


@lru_cache(maxsize=None)
def polynomial(triple: tuple[int, int, int]) -> tuple[tuple[tuple[int, int, int], int], ...]:
    """The solid MCSH of one component as ((powers, integer coefficient), ...).

    ``polynomial((2, 0, 0))`` gives 2x² − y² − z² (= 3x² − r²).
    """
    poly, q = {(0, 0, 0): 1}, 1  # p(x) r^(-q), starting from 1/r
    for axis, count in enumerate(triple):
        for _ in range(count):
            d_poly = _times_r2(_derivative(poly, axis))
            for powers, coef in poly.items():  # − q x_axis p
                key = list(powers)
                key[axis] += 1
                d_poly[tuple(key)] = d_poly.get(tuple(key), 0) - q * coef
            poly, q = d_poly, q + 2
    sign = (-1) ** sum(triple)
    return tuple(sorted((k, sign * v) for k, v in poly.items() if v != 0))


@lru_cache(maxsize=None)
def _coefficients(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Matrices C (M_n, K) and grad (3, M_{n−1}, K): S = X_n @ C, ∂_a S = X_{n−1} @ grad[a]."""
    comps = components(n)
    index = {p: m for m, p in enumerate(comps)}  # monomials of degree n use the same list
    lower = {p: m for m, p in enumerate(components(n - 1))} if n > 0 else {}
    C = np.zeros((len(comps), len(comps)))
    G = np.zeros((3, max(len(lower), 1), len(comps)))
    for k, triple in enumerate(comps):
        for powers, coef in polynomial(triple):
            C[index[powers], k] += coef
            for axis in range(3):
                if powers[axis]:
                    down = list(powers)
                    down[axis] -= 1
                    G[axis, lower[tuple(down)], k] += coef * powers[axis]
    return C, G


def monomials(vectors: np.ndarray, n_max: int) -> list[np.ndarray]:
    """x^a y^b z^c for the triples of ``components(n)``, for every n ≤ n_max.

    Returns
    -------
    list of ndarray
        Entry n has shape (n_pairs, n_components(n)) [Åⁿ]. Powers are built by repeated
        multiplication (much faster than ``**``), once for all orders.
    """
    vectors = np.asarray(vectors, dtype=float)
    powers = [np.ones((3, len(vectors)))]  # powers[k][axis] = coordinate**k, (3, n_pairs)
    for _ in range(n_max):
        powers.append(powers[-1] * vectors.T)
    out = []
    for n in range(n_max + 1):
        table = np.empty((len(vectors), len(components(n))))
        for m, (a, b, c) in enumerate(components(n)):
            table[:, m] = powers[a][0] * powers[b][1] * powers[c][2]
        out.append(table)
    return out


def solid_harmonics(vectors: np.ndarray, n: int, gradient: bool = False, table=None):
    """Solid MCSH of order n at displacement vectors d.

    Parameters
    ----------
    vectors : ndarray, shape (n_pairs, 3)
        Displacements d [Å].
    n : int
        Order, 0 ≤ n ≤ :data:`MAX_ORDER`.
    gradient : bool
        Also return ∇_d S.
    table : list of ndarray, optional
        :func:`monomials` of ``vectors`` up to order ≥ n, to share between orders.

    Returns
    -------
    S : ndarray, shape (n_pairs, n_components)
        S^{(n)}_k(d) [Åⁿ].
    grad : ndarray, shape (3, n_pairs, n_components), only if ``gradient``
        ∂S_k/∂d_a [Åⁿ⁻¹], Cartesian axis first (contiguous per axis).
    """
    if not 0 <= n <= MAX_ORDER:
        raise ValueError(f"MCSH order must be between 0 and {MAX_ORDER}, got {n}")
    if table is None or len(table) <= n:
        table = monomials(vectors, n)
    C, G = _coefficients(n)
    S = table[n] @ C  # (n_pairs, K)
    if not gradient:
        return S
    if n == 0:
        return S, np.zeros((3, len(S), 1))
    grad = np.stack([table[n - 1] @ G[a] for a in range(3)])  # (3, n_pairs, K)
    return S, grad

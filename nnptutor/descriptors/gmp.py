r"""Gaussian multipole (GMP) descriptors with analytic derivatives (docs/gmp.md).

Which GMP this is (three incompatible definitions share the name, docs/gmp.md §1): **solid** MCSH
polynomials, the **order-norm** invariant per (order, σ), the **3-D radial** probe
normalisation and **sqrt** output by default — the definition of GMP-featurizer (Lei & Medford
2022) — with ``square=True`` returning Q instead (AMPtorch ``GMPOrderNorm``).

The probe of order n, width σ and component k at atom i overlaps the Gaussian density of
every source atom j (periodic images and the centre itself included):

.. math::

   \mu_{n\sigma k}(i) = \sum_j R_{n\sigma e_j}(r_{ij})\, S^{(n)}_k(\mathbf d_{ij})
   \qquad (1)

   R_{n\sigma e}(r) = \sum_g A\, B_{eg} \left(\frac{\pi}{\gamma_g}\right)^{3/2} \lambda_g^n\,
   e^{-\alpha \beta_{eg} r^2/\gamma_g},\quad A = (\sigma\sqrt{2\pi})^{-3},\ \alpha = \frac{1}{2\sigma^2},\
   \gamma_g = \alpha + \beta_{eg},\ \lambda_g = \beta_{eg}/\gamma_g \qquad (2)

   Q_{n\sigma}(i) = \sum_k w_k\, \mu_{n\sigma k}(i)^2, \qquad F_{n\sigma}(i) = \sqrt{Q_{n\sigma}(i)}
   \ \ (\text{or } Q \text{ with } \texttt{square=True}) \qquad (3)

with ``d_ij = R_j + shift − R_i``, ``S^{(n)}_k`` the solid MCSH and ``w_k`` their multinomial
weights (:mod:`._mcsh`). Eq. (1) uses that Gaussian smoothing leaves harmonic polynomials
unchanged, so the whole overlap is a radial function times ``S(d)`` (docs/gmp.md §3). Order −1
is the model density at the atom, ``ρ(R_i) = Σ_j Σ_g B e^{−β r²}``, reported as ``|ρ|`` (or ρ²).

===================  ====================  ==========
symbol               code                  unit
===================  ====================  ==========
n                    ``orders``            –
σ                    ``sigmas``            Å
B, β                 ``density`` table     e·Å⁻³, Å⁻²
r_c                  ``r_cut``             Å
F (sqrt), Q          feature values        e·Å⁻³⁺ⁿ, its square
===================  ====================  ==========

Choices, each tested in ``tests/test_gmp.py``:

* **Feature order**: a single ``GMP(n=-1)`` first if order −1 is requested, then sorted
  orders × sorted sigmas, order-major: ``GMP(n=0,sigma=0.25), GMP(n=0,sigma=0.5), …``. The
  length does not depend on the number of elements: chemistry enters through the density.
* **Self term**: the centre's own density is a source (d = 0); it contributes to n = 0 and
  n = −1 only, since ``S^{(n)}(0) = 0`` for n ≥ 1.
* **Cutoff**: sources beyond ``r_cut`` are dropped (hard truncation, as in the reference
  codes). The default, ``r_cut=None``, is ``sqrt(2 v ln 10¹⁰)`` rounded up to 0.5 Å with
  ``v = σ_max² + max_g 1/(2β_g)`` the widest radial Gaussian of eq. (2): the envelope of the
  slowest-decaying term has fallen by 10⁻¹⁰ there (about 8 Å for σ = 1 Å and Cu). The jumps
  as atoms cross r_c are then far below any fitting error; :meth:`GMP.convergence` measures
  them against a larger cutoff for your structures.
* **sqrt singularity**: ``F = ‖μ‖_w`` is not differentiable where μ = 0, e.g. odd orders at
  an inversion centre (an fcc bulk site, the middle atom of CO₂). Values are exactly sqrt(Q).
  Where F is zero to round-off, ``F ≤ 10⁻¹⁰ · sqrt(N_n) Σ_j |R(r_j)| r_jⁿ`` (the bound of
  ‖μ‖_w by the triangle inequality), the derivative is set to **zero**: the minimum-norm
  subgradient, and what central finite differences give at an inversion centre. Train with
  ``square=True`` if you want features that are smooth everywhere.
* **Derivatives** (docs/gmp.md, section 7): per neighbour-list entry, ``∂F_i/∂d_p``; then
  ``∂F_i/∂R_j += ∂F_i/∂d_p`` and ``∂F_i/∂R_i −= ∂F_i/∂d_p``, summed per real atom, so periodic
  images are folded once per atom (not rescaled per image) and the centre term is included.

Taught in notebooks/06_gaussian_multipoles.ipynb.

References: X. Lei, A. J. Medford, Phys. Rev. Mater. 6, 113801 (2022),
doi:10.1103/PhysRevMaterials.6.113801; X. Lei, A. J. Medford, "A universal framework for
featurization of atomic configurations…", arXiv:2102.02390.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np
from ase import Atoms
from scipy.sparse import csr_matrix

from nnptutor.descriptors._mcsh import MAX_ORDER, legendre_norm, monomials, solid_harmonics, weights
from nnptutor.descriptors import validation as check
from nnptutor.descriptors.base import (Descriptor, SparseDerivatives, fold_entry_derivatives,
                                       register, scatter_pair_gradients)
from nnptutor.descriptors.densities import resolve_density
from nnptutor.neighbors import neighbor_pairs
from nnptutor.structures import check_atoms, normalize_elements

#: Default probe widths [Å] (docs/gmp.md, section 8: 0.2 … 1.5–2 Å).
DEFAULT_SIGMAS = (0.25, 0.5, 0.75, 1.0)
#: Envelope reduction at the default cutoff.
CUTOFF_TOLERANCE = 1e-10
#: Relative size below which F counts as zero and its derivative is set to 0 (sqrt mode).
SINGULAR_RTOL = 1e-10


def default_cutoff(sigmas: Sequence[float], density: Mapping) -> float:
    """The default ``r_cut`` [Å]: ``sqrt(2 v ln(1/10⁻¹⁰))`` rounded up to 0.5 Å.

    ``v = σ_max² + max_g 1/(2β_g)`` [Å²] is the variance of the widest radial Gaussian of
    eq. (2) over the probes and the density table.
    """
    widest = max(1 / (2 * beta) for rows in density.values() for _, beta in rows)
    v = max(sigmas, default=0.0) ** 2 + widest
    return math.ceil(2 * math.sqrt(2 * v * math.log(1 / CUTOFF_TOLERANCE))) / 2


@register
class GMP(Descriptor):
    """Gaussian multipole features (equations in the module docstring).

    Parameters
    ----------
    elements : sequence of str
        Elements the descriptor accepts (sorted by atomic number internally).
    orders : sequence of int
        MCSH orders, each in −1 … 6 (−1: density at the atom, one feature).
    sigmas : sequence of float
        Probe widths σ [Å], > 0 (standard deviations, α = 1/(2σ²)).
    r_cut : float, optional
        Cutoff [Å]; default from :func:`default_cutoff`.
    square : bool
        Return Q = Σ_k w_k μ_k² instead of F = sqrt(Q).
    density : "teaching", path of a density file, or mapping
        Atomic Gaussian densities (:mod:`.densities`); stored by value in :meth:`to_dict`.

    Examples
    --------
    >>> from ase.build import molecule
    >>> gmp = GMP(["H", "O"], orders=(0, 1, 2), sigmas=(0.5, 1.0))
    >>> gmp.compute(molecule("H2O")).shape
    (3, 6)
    """

    def __init__(
        self,
        elements: Sequence[str],
        orders: Sequence[int] = (0, 1, 2, 3),
        sigmas: Sequence[float] = DEFAULT_SIGMAS,
        r_cut: float | None = None,
        square: bool = False,
        density="teaching",
    ):
        self.elements = normalize_elements(elements)
        self.orders = self._check_orders(orders)
        self.sigmas = check.widths(sigmas)
        if not self.sigmas and self.orders != (-1,):
            raise ValueError("sigmas must contain at least one probe width")
        self.square = check.flag(square, "square")
        self.density = resolve_density(density, self.elements)
        if r_cut is None:
            r_cut = default_cutoff(self.sigmas, self.density)
        self.r_cut = check.r_cut(r_cut)

    # --- parameters ------------------------------------------------------------------
    @staticmethod
    def _check_orders(orders) -> tuple[int, ...]:
        orders = list(orders)
        if not orders:
            raise ValueError("orders must contain at least one MCSH order")
        for n in orders:
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not -1 <= n <= MAX_ORDER:
                raise ValueError(f"unknown order {n!r}: orders must be integers from -1 to {MAX_ORDER}")
        if len(set(orders)) != len(orders):
            raise ValueError(f"orders contains duplicates: {orders}")
        return tuple(sorted(int(n) for n in orders))

    @property
    def groups(self) -> list[tuple[int, float | None]]:
        """(order, sigma) of every feature column; sigma is None for order −1."""
        out = [(-1, None)] if -1 in self.orders else []
        out += [(n, s) for n in self.orders if n >= 0 for s in self.sigmas]
        return out

    @property
    def feature_labels(self) -> list[str]:
        return [f"GMP(n={n})" if s is None else f"GMP(n={n},sigma={s:g})" for n, s in self.groups]

    def to_dict(self) -> dict:
        return {
            "name": "GMP",
            "elements": list(self.elements),
            "orders": list(self.orders),
            "sigmas": list(self.sigmas),
            "r_cut": self.r_cut,
            "square": self.square,
            "density": {e: [list(row) for row in rows] for e, rows in self.density.items()},
        }

    def __repr__(self) -> str:
        return (
            f"GMP(elements={list(self.elements)}, orders={list(self.orders)}, "
            f"sigmas={list(self.sigmas)}, r_cut={self.r_cut}, square={self.square}, "
            f"n_features={self.n_features})"
        )

    # --- radial part, eq. (2) ------------------------------------------------------------
    def _table(self) -> tuple[np.ndarray, np.ndarray]:
        """B and β padded to (n_elements, G_max) with B = 0, β = 1 [e·Å⁻³, Å⁻²]."""
        g_max = max(len(rows) for rows in self.density.values())
        B = np.zeros((len(self.elements), g_max))
        beta = np.ones((len(self.elements), g_max))
        for e, symbol in enumerate(self.elements):
            rows = np.asarray(self.density[symbol])
            B[e, : len(rows)], beta[e, : len(rows)] = rows[:, 0], rows[:, 1]
        return B, beta

    def radial_coefficients(self, n: int, sigma: float | None) -> tuple[np.ndarray, np.ndarray]:
        """``R_n(r) = Σ_g a[e, g] exp(c[e, g] r²)`` for each source element e, eq. (2).

        Returns
        -------
        a : ndarray, shape (n_elements, G_max)
            ``A B (π/γ)^{3/2} λⁿ`` [e·Å⁻³]; for n = −1 simply B.
        c : ndarray, shape (n_elements, G_max)
            ``−αβ/γ`` [Å⁻²]; for n = −1, −β.
        """
        B, beta = self._table()
        if n == -1:
            return B, -beta
        alpha = 1 / (2 * sigma**2)
        norm = (sigma * np.sqrt(2 * np.pi)) ** -3
        gamma = alpha + beta
        lam = beta / gamma
        return norm * B * (np.pi / gamma) ** 1.5 * lam**n, -alpha * beta / gamma

    # --- evaluation ------------------------------------------------------------------------
    def _evaluate(self, atoms: Atoms, keep: bool):
        """Features and, if ``keep``, what the derivatives need (one pass over the pairs)."""
        pairs = neighbor_pairs(atoms, self.r_cut)
        n_atoms, n_pairs = len(atoms), len(pairs)
        types = self.center_types(atoms)  # element index of every atom, (n_atoms,)
        source = types[pairs.j]  # (n_pairs,) element index of each source
        r2 = pairs.distances**2
        # segment sum over the pairs of each centre: mu = seg @ per_pair
        seg = csr_matrix((np.ones(n_pairs), (pairs.i, np.arange(n_pairs))), shape=(n_atoms, n_pairs))
        table = monomials(pairs.vectors, max(self.orders))  # x^a y^b z^c, shared by all orders
        harmonics = {n: solid_harmonics(pairs.vectors, n, table=table) for n in self.orders if n >= 0}
        harmonics[-1] = np.ones((n_pairs, 1))
        values = np.empty((n_atoms, len(self.groups)))
        kept = []
        envelopes = {}
        for f, (n, sigma) in enumerate(self.groups):
            a, c = self.radial_coefficients(n, sigma)  # (n_elements, G)
            if sigma not in envelopes:  # exp(c r²) depends on sigma only
                envelopes[sigma] = np.exp(c[source] * r2[:, None])  # (n_pairs, G)
            terms = a[source] * envelopes[sigma]  # (n_pairs, G)
            radial = terms.sum(axis=1)  # R_n(r), (n_pairs,)
            S = harmonics[n]  # (n_pairs, K)
            w = weights(max(n, 0))  # (K,)
            mu = seg @ (radial[:, None] * S)  # (n_atoms, K), eq. (1)
            if n <= 0:
                mu[:, 0] += a.sum(axis=1)[types]  # self term, d = 0
            Q = mu**2 @ w  # (n_atoms,), eq. (3)
            if self.square:
                values[:, f] = Q
                factor = 2 * w * mu  # dQ/dmu, (n_atoms, K)
            else:
                F = np.sqrt(Q)
                values[:, f] = F
                if keep:
                    bound = np.sqrt(legendre_norm(max(n, 0))) * (seg @ (np.abs(radial) * r2 ** (max(n, 0) / 2)))
                    if n <= 0:
                        bound += np.abs(a.sum(axis=1))[types]
                    singular = F <= SINGULAR_RTOL * bound
                    factor = w * mu / np.where(singular, 1.0, F)[:, None]  # dF/dmu
                    factor[singular] = 0.0
            if keep:
                d_radial = (2 * c[source] * terms).sum(axis=1)  # (dR/dr)/r, (n_pairs,)
                kept.append((n, radial, d_radial, factor))
        return values, (pairs, table, harmonics, kept)

    def _pair_gradients(self, state, weights_per_feature=None):
        """∂F_i/∂d_p for every pair p = (i → j) and feature (docs/gmp.md, section 7).

        With ``weights_per_feature`` c (n_atoms, n_features) return Σ_f c[i_p, f] ∂F_i,f/∂d_p,
        shape (n_pairs, 3) (the vector–Jacobian product); else shape (n_pairs, 3, n_features).
        """
        pairs, table, harmonics, kept = state
        i, vectors = pairs.i, pairs.vectors
        grads = {n: solid_harmonics(vectors, n, True, table)[1] for n in self.orders if n >= 0}  # (3, n_pairs, K)
        grads[-1] = np.zeros((3, len(pairs), 1))
        if weights_per_feature is None:
            out = np.empty((len(pairs), 3, len(kept)))
            for f, (n, radial, d_radial, factor) in enumerate(kept):
                fac = factor[i]  # (n_pairs, K)
                along_d = d_radial * np.einsum("pk,pk->p", fac, harmonics[n])  # (n_pairs,)
                angular = np.einsum("pk,apk->pa", fac, grads[n])  # Σ_k fac_k ∇S_k, (n_pairs, 3)
                out[:, :, f] = radial[:, None] * angular + along_d[:, None] * vectors
            return out
        # VJP: gather the per-feature factors per order first, contract with ∇S once per order
        out = np.zeros((len(pairs), 3))
        by_order: dict[int, list[np.ndarray]] = {}
        for f, (n, radial, d_radial, factor) in enumerate(kept):
            fac = factor[i] * weights_per_feature[i, f][:, None]  # (n_pairs, K)
            angular, radial_part = by_order.setdefault(n, [0.0, 0.0])
            by_order[n] = [angular + radial[:, None] * fac, radial_part + d_radial * np.einsum("pk,pk->p", fac, harmonics[n])]
        for n, (angular, radial_part) in by_order.items():
            out += np.einsum("pk,apk->pa", angular, grads[n]) + radial_part[:, None] * vectors
        return out

    def _compute(self, atoms: Atoms, derivatives: bool):
        values, state = self._evaluate(atoms, keep=derivatives)
        if not derivatives:
            return values
        pairs = state[0]
        per_pair = self._pair_gradients(state)  # (n_pairs, 3, n_features): ∂F_i/∂d_p
        center, neighbor, folded = fold_entry_derivatives(pairs.i, pairs.j, per_pair, len(atoms))
        return values, SparseDerivatives(center, neighbor, folded, len(atoms))

    def compute_with_vjp(self, atoms: Atoms) -> tuple[np.ndarray, Callable]:
        """Features and ``vjp(dE/dG (n_atoms, n_features)) -> dE/dR (n_atoms, 3)`` [eV/Å].

        Cheaper than :meth:`compute` with derivatives: the sparse (n_pairs, 3, n_features)
        array is never built; ∇S is contracted once per order instead of once per σ.
        """
        check_atoms(atoms, self.elements)
        values, state = self._evaluate(atoms, keep=True)
        pairs = state[0]

        def vjp(grad_values: np.ndarray) -> np.ndarray:
            grad_values = np.asarray(grad_values, dtype=float)
            if grad_values.shape != values.shape:
                raise ValueError(f"grad_values must have shape {values.shape}, got {grad_values.shape}")
            per_pair = self._pair_gradients(state, grad_values)  # (n_pairs, 3)
            return scatter_pair_gradients(pairs.i, pairs.j, per_pair, len(atoms))

        return values, vjp

    # --- cutoff convergence -----------------------------------------------------------------
    def convergence(self, atoms: Atoms, r_cut_large: float | None = None) -> dict[str, float]:
        """How much the features change when the cutoff grows to ``r_cut_large``.

        Parameters
        ----------
        atoms : ase.Atoms
        r_cut_large : float, optional
            Reference cutoff [Å], > ``r_cut``; default 1.5 × ``r_cut``.

        Returns
        -------
        dict
            ``max_abs_difference`` [feature units] and ``max_relative_difference`` (per
            column, divided by the column's largest |value|), ``r_cut``, ``r_cut_large``.
        """
        r_cut_large = 1.5 * self.r_cut if r_cut_large is None else float(r_cut_large)
        if not r_cut_large > self.r_cut:
            raise ValueError(f"r_cut_large ({r_cut_large} Å) must exceed r_cut ({self.r_cut} Å)")
        large = GMP.from_dict({**self.to_dict(), "r_cut": r_cut_large})
        reference = large.compute(atoms)
        diff = np.abs(self.compute(atoms) - reference)  # (n_atoms, n_features)
        scale = np.maximum(np.abs(reference).max(axis=0), np.finfo(float).tiny)
        return {
            "max_abs_difference": float(diff.max()),
            "max_relative_difference": float((diff.max(axis=0) / scale).max()),
            "r_cut": self.r_cut,
            "r_cut_large": r_cut_large,
        }

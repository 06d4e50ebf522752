r"""Atom-centred symmetry functions G1–G5 (Behler 2011), with analytic derivatives.

For a centre atom i with neighbours j, k within the cutoff r_c (periodic images included),
with f_c the cutoff function and cos θ_ijk = D_ij·D_ik / (r_ij r_ik):

.. math::

    G^1_i &= \sum_j f_c(r_{ij})                                                      \tag{1}\\
    G^2_i &= \sum_j e^{-\eta (r_{ij} - R_s)^2} f_c(r_{ij})                           \tag{2}\\
    G^3_i &= \sum_j \cos(\kappa r_{ij}) f_c(r_{ij})                                  \tag{3}\\
    G^4_i &= 2^{1-\zeta} \sum_{j<k} (1 + \lambda\cos\theta_{ijk})^\zeta
             e^{-\eta (r_{ij}^2 + r_{ik}^2 + r_{jk}^2)} f_c(r_{ij}) f_c(r_{ik}) f_c(r_{jk}) \tag{4}\\
    G^5_i &= 2^{1-\zeta} \sum_{j<k} (1 + \lambda\cos\theta_{ijk})^\zeta
             e^{-\eta (r_{ij}^2 + r_{ik}^2)} f_c(r_{ij}) f_c(r_{ik})                 \tag{5}

G4 and G5 sum each unordered neighbour pair once, as DScribe and n2p2 do (Behler's 2011
paper sums over all j, k ≠ i: exactly twice our values). Each sum runs over neighbours of
one element (G1–G3) or one unordered element pair (G4, G5); the layout is that of
docs/acsf.md: for each element s: G1, all G2, all G3; then for each element
pair (a, b), a ≥ b, in the order (0,0), (1,0), (1,1), (2,0), …: all G4, then all G5.

Two implementations give the same numbers (tested to 1e-12):

* ``method="reference"`` (this module, :func:`reference_features`): one row per neighbour
  pair and one row per triplet, the equations written out. This is the one
  notebooks/03_symmetry_functions.ipynb shows.
* ``method="fast"`` (default, :mod:`._acsf_fast`): dense per-centre neighbour blocks and
  batched matrix products; 3–4× faster than DScribe's C++ on bulk metals
  (benchmarks/README.md). Centres with few neighbours (molecules) use one flat list of
  triplets instead when no derivatives are asked for.

Derivatives: every term depends on R_i and R_j only through D_p = R_j + shift − R_i of a
neighbour-list entry p. Both implementations compute dG_i/dD_p per entry and then *fold*
(:func:`fold_entry_derivatives`): dG_i/dR_j = Σ_{p: i→j} dG_i/dD_p and
dG_i/dR_i = −Σ_p dG_i/dD_p, which maps periodic images onto the real atom.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii

from nnptutor.cutoffs import get_cutoff
from nnptutor.descriptors import validation as check
from nnptutor.descriptors._acsf_fast import fast_features, fast_features_with_vjp
from nnptutor.descriptors._verlet import VerletPairs
from nnptutor.descriptors.base import (Descriptor, SparseDerivatives, fold_entry_derivatives,
                                       register)
from nnptutor.neighbors import neighbor_pairs, pair_order
from nnptutor.descriptors.parameters import angular_set, radial_grid
from nnptutor.structures import MIN_DISTANCE, check_atoms, normalize_elements

METHODS = ("fast", "reference")


def _num(x: float) -> str:
    return f"{x:g}"


@register
class ACSF(Descriptor):
    r"""Behler's atom-centred symmetry functions G1–G5, eqs. (1)–(5).

    Parameters
    ----------
    elements : sequence of str
        Elements the descriptor supports; features are ordered by atomic number.
    r_cut : float
        Cutoff radius r_c [Å], > 0.
    g2 : sequence of (eta, r_s)
        eta [Å⁻²] > 0, r_s [Å] ≥ 0 (eta is *not* scaled by r_c, as in DScribe).
    g3 : sequence of float
        kappa [Å⁻¹].
    g4, g5 : sequence of (eta, zeta, lambda_)
        eta [Å⁻²] ≥ 0, zeta ≥ 1 (dimensionless), lambda_ = ±1.
    cutoff : {"cosine", "tanh3"}
        Cutoff function (:mod:`nnptutor.cutoffs`).
    method : {"fast", "reference"}
        Implementation; both give the same numbers. Not stored by :meth:`to_dict`.

    Notes
    -----
    G1 is always included (as in DScribe). Number of features:
    S (1 + n_G2 + n_G3) + S(S+1)/2 (n_G4 + n_G5) for S elements.
    Taught in notebooks/03_symmetry_functions.ipynb.

    Examples
    --------
    >>> from ase.build import bulk
    >>> acsf = ACSF.default(["Cu"], r_cut=6.0)
    >>> acsf.compute(bulk("Cu", cubic=True)).shape
    (4, 17)
    """

    def __init__(
        self,
        elements: Sequence[str] = ("H", "O"),
        r_cut: float = 6.0,
        g2: Sequence = (),
        g3: Sequence = (),
        g4: Sequence = (),
        g5: Sequence = (),
        cutoff: str = "cosine",
        method: str = "fast",
    ):
        self.elements = normalize_elements(elements)
        self.r_cut = check.r_cut(r_cut)
        self.g2 = check.radial(g2, "g2")
        self.g3 = [check.finite(k, f"g3[{n}] kappa") for n, k in enumerate(g3 or [])]
        self.g4 = check.angular(g4, "g4")
        self.g5 = check.angular(g5, "g5")
        self.cutoff = check.cutoff(cutoff)
        self.method = check.choice(method, METHODS, "method")

    # ---------------------------------------------------------------- construction
    @classmethod
    def default(cls, elements: Sequence[str], r_cut: float = 6.0, n_radial: int | None = None,
                zetas: Sequence[float] | None = None, **kwargs) -> "ACSF":
        """The course's default set, chosen by measurement (benchmarks/README.md).

        Radial: ``n_radial`` centred G2 (R_s = 0) whose widths σ = 1/√(2η) run in
        geometric progression from σ_min to r_cut
        (:func:`~nnptutor.descriptors.parameters.radial_grid`, ``"geometric"``). σ_min
        is a quarter of the shortest distance one can expect, 0.75 × twice the smallest
        covalent radius of ``elements`` (2.0 Å for Cu, so σ_min = 0.5 Å), but not below
        0.35 Å: a narrower Gaussian at the origin is zero at every real bond. Sums of
        such Gaussians reproduce smooth radial functions (EMT's density and pair terms,
        exp(−a r) in general) to about 1e-4 with their slopes, which is what forces
        need. Angular: G4 with one small η (a mild distance weight), the given ζ and
        λ = ±1 (Behler 2011, 2015): ζ sharpens the angular resolution around θ = 0
        (λ = +1) and θ = π (λ = −1).

        * **One element** (a metal): 8 G2 and ζ ∈ {1, 4}, 13 features. On ``cu_emt``,
          at equal training (40 epochs), its force error was 0.003 eV/Å, against 0.012
          for 24 narrow shifted G2 and 0.085 for 4 centred + 4 broad shifted G2 (evenly
          spaced widths).
        * **Several elements** (molecules, alloys): 8 G2 and ζ ∈ {1, 2, 4, 16}: every
          function is repeated for each neighbour element (pair), and molecules need
          the angles. On ``ethanol_xtb`` (40 epochs) 1.8 meV/atom and 0.067 eV/Å,
          against 2.9 and 0.087 for 16 shifted G2 with the same G4.

        Parameters
        ----------
        elements : sequence of str
        r_cut : float
            [Å].
        n_radial : int, optional
            G2 functions per neighbour element (default 8).
        zetas : sequence of float, optional
            ζ of the G4 (default (1, 4) for one element, else (1, 2, 4, 16)).
        **kwargs
            Passed on to :class:`ACSF` (``cutoff``, ``method``).
        """
        elements = normalize_elements(elements)
        one = len(elements) == 1
        n_radial = 8 if n_radial is None else n_radial
        zetas = ((1, 4) if one else (1, 2, 4, 16)) if zetas is None else tuple(zetas)
        shortest = round(0.75 * 2 * min(covalent_radii[atomic_numbers[e]] for e in elements), 1)
        sigma_min = min(max(shortest / 4, 0.35), 0.5 * r_cut)
        g2 = radial_grid(r_cut, n_radial, mode="geometric", r_min=sigma_min)
        g4 = angular_set(etas=[0.005], zetas=zetas, lambdas=(-1, 1))
        return cls(elements, r_cut, g2=g2, g4=g4, **kwargs)

    def to_dict(self) -> dict:
        """JSON-able parameters (``method`` is not part of the descriptor's identity)."""
        return {
            "name": "ACSF",
            "elements": list(self.elements),
            "r_cut": self.r_cut,
            "g2": [list(p) for p in self.g2],
            "g3": list(self.g3),
            "g4": [list(p) for p in self.g4],
            "g5": [list(p) for p in self.g5],
            "cutoff": self.cutoff,
        }

    def __repr__(self) -> str:
        return (
            f"ACSF(elements={list(self.elements)}, r_cut={self.r_cut}, G2={len(self.g2)}, "
            f"G3={len(self.g3)}, G4={len(self.g4)}, G5={len(self.g5)}, cutoff={self.cutoff!r}, "
            f"method={self.method!r}, n_features={self.n_features})"
        )

    # ---------------------------------------------------------------- layout
    @property
    def n_radial(self) -> int:
        """Radial features per neighbour element: 1 + n_G2 + n_G3."""
        return 1 + len(self.g2) + len(self.g3)

    @property
    def n_angular(self) -> int:
        """Angular features per element pair: n_G4 + n_G5."""
        return len(self.g4) + len(self.g5)

    @property
    def n_features(self) -> int:
        s = len(self.elements)
        return s * self.n_radial + s * (s + 1) // 2 * self.n_angular

    @property
    def feature_labels(self) -> list[str]:
        labels = []
        for el in self.elements:
            labels.append(f"G1[{el}]")
            labels += [f"G2[{el}](eta={_num(e)},r_s={_num(r)})" for e, r in self.g2]
            labels += [f"G3[{el}](kappa={_num(k)})" for k in self.g3]
        for a in range(len(self.elements)):
            for b in range(a + 1):
                pair = f"{self.elements[b]},{self.elements[a]}"
                for name, params in (("G4", self.g4), ("G5", self.g5)):
                    labels += [
                        f"{name}[{pair}](eta={_num(e)},zeta={_num(z)},lambda={int(l):+d})"
                        for e, z, l in params
                    ]
        return labels

    # ---------------------------------------------------------------- computation
    def _engine(self):
        if self.method == "reference":
            return reference_features
        return fast_features

    def _compute(self, atoms: Atoms, derivatives: bool):
        pairs = neighbor_pairs(atoms, self.r_cut)
        species = self.element_indices(atoms.numbers)
        values, entry_derivs = self._engine()(
            self, pairs.i, pairs.j, pairs.vectors, pairs.distances, species, derivatives
        )
        if not derivatives:
            return values
        center, neighbor, dvalues = fold_entry_derivatives(pairs.i, pairs.j, entry_derivs, len(atoms))
        return values, SparseDerivatives(center, neighbor, dvalues, len(atoms))

    def compute_many(self, images: Sequence[Atoms], derivatives: bool = False,
                     progress: bool = True) -> list:
        """Features of many structures in one batched call.

        All structures are validated, their neighbour lists concatenated with atom-index
        offsets (molecules share one neighbour-list call), and the whole list is featurised
        at once, so that a thousand small molecules do not pay a thousand times the
        per-call overhead.

        Parameters
        ----------
        images : sequence of ase.Atoms
        derivatives : bool
            Also return :class:`SparseDerivatives` per structure.
        progress : bool
            Show a progress bar over the neighbour lists.

        Returns
        -------
        list
            One entry per image: ``values`` (n_atoms, n_features) or
            ``(values, SparseDerivatives)``.
        """
        from tqdm.auto import tqdm

        images = list(images)
        if not images:
            return []
        # chunks of about BATCH_ATOMS atoms bound the memory of the per-entry derivatives
        sizes = np.array([len(a) if isinstance(a, Atoms) else 0 for a in images])
        chunk = np.cumsum(sizes) // self.BATCH_ATOMS
        bounds = np.flatnonzero(np.r_[True, chunk[1:] != chunk[:-1], True])
        out = []
        with tqdm(total=len(images), desc="ACSF", disable=not progress) as bar:
            for lo, hi in zip(bounds[:-1], bounds[1:]):
                try:
                    out += self._compute_batch(images[lo:hi], derivatives)
                except ValueError as err:
                    raise ValueError(_renumber_image(str(err), lo)) from None
                bar.update(hi - lo)
        return out

    #: Largest number of atoms featurised in one batch by :meth:`compute_many`.
    BATCH_ATOMS = 8192

    def _compute_batch(self, images, derivatives):
        i, j, vectors, distances, numbers, offsets = batched_pairs(
            images, self.r_cut, self.elements, False
        )
        species = self.element_indices(numbers)
        values, entry_derivs = self._engine()(self, i, j, vectors, distances, species, derivatives)
        out_values = [values[offsets[n]:offsets[n + 1]] for n in range(len(images))]
        if not derivatives:
            return out_values
        center, neighbor, dvalues = fold_entry_derivatives(i, j, entry_derivs, offsets[-1])
        bounds = np.searchsorted(center, offsets)  # rows of each structure (sorted by centre)
        out = []
        for n in range(len(images)):
            lo, hi, o = bounds[n], bounds[n + 1], offsets[n]
            derivs = SparseDerivatives(center[lo:hi] - o, neighbor[lo:hi] - o, dvalues[lo:hi],
                                       int(offsets[n + 1] - o))
            out.append((out_values[n], derivs))
        return out

    def compute_with_vjp(self, atoms: Atoms):
        """Features and a cheap vector–Jacobian product for forces.

        Returns
        -------
        values : ndarray, shape (n_atoms, n_features)
        vjp : callable
            ``vjp(dE_dG)`` with dE_dG of shape (n_atoms, n_features) [eV / feature unit]
            returns dE/dR of shape (n_atoms, 3) [eV/Å] (forces are −dE/dR). With the fast
            method, dE/dG is contracted into per-pair and per-triplet scalars before any
            3-vector is formed, so no derivative array is built (the backward pass
            recomputes each block's geometry; nothing large is kept between the two).
            ``vjp`` may be called more than once. Consecutive calls
            on one system (MD) reuse a neighbour list with a 0.5 Å Verlet skin
            (:mod:`._verlet`).
        """
        if self.method == "reference":
            return super().compute_with_vjp(atoms)
        check_atoms(atoms, self.elements)
        verlet = getattr(self, "_verlet_pairs", None)
        if verlet is None or verlet.r_cut != self.r_cut:
            verlet = self._verlet_pairs = VerletPairs(self.r_cut)
        pairs = verlet(atoms)  # neighbor_pairs(atoms, r_cut), reused between MD steps
        species = self.element_indices(atoms.numbers)
        return fast_features_with_vjp(self, pairs.i, pairs.j, pairs.vectors, pairs.distances,
                                      species, len(atoms))


# --------------------------------------------------------------------------------------
# the reference implementation: one row per pair, one row per triplet
# --------------------------------------------------------------------------------------
def radial_terms(distances, fc, dfc, g2, g3, derivatives=True):
    r"""Per-pair terms of G1, G2, G3 (eqs. 1–3) and their derivatives with respect to r.

    Parameters
    ----------
    distances, fc, dfc : ndarray, shape (n_pairs,)
        r_ij [Å], f_c(r_ij), f_c'(r_ij) [Å⁻¹].
    g2 : list of (eta, r_s); g3 : list of kappa
    derivatives : bool
        Also compute ``dterms`` (else None).

    Returns
    -------
    terms, dterms : ndarray, shape (n_pairs, 1 + n_G2 + n_G3)
        Terms to be summed over j [dimensionless] and d/dr_ij [Å⁻¹].
    """
    r = distances[:, None]  # (n_pairs, 1)
    fc, dfc = fc[:, None], dfc[:, None]
    eta = np.array([p[0] for p in g2]).reshape(1, -1)  # (1, n_G2)
    r_s = np.array([p[1] for p in g2]).reshape(1, -1)
    kappa = np.array(g3, dtype=float).reshape(1, -1)  # (1, n_G3)
    gauss = np.exp(-eta * (r - r_s) ** 2)  # (n_pairs, n_G2)
    g3_terms = np.cos(kappa * r) * fc  # (n_pairs, n_G3)
    terms = np.concatenate([fc, gauss * fc, g3_terms], axis=1)
    if not derivatives:
        return terms, None
    g2_dterms = gauss * (dfc - 2 * eta * (r - r_s) * fc)
    g3_dterms = np.cos(kappa * r) * dfc - kappa * np.sin(kappa * r) * fc
    dterms = np.concatenate([dfc, g2_dterms, g3_dterms], axis=1)
    return terms, dterms


def triplets(i):
    """All unordered pairs (p, q), p < q, of neighbour-list entries with the same centre.

    Parameters
    ----------
    i : ndarray of int, shape (n_pairs,)
        Centres, sorted.

    Returns
    -------
    p, q : ndarray of int, shape (n_triplets,)
    """
    n_pairs = len(i)
    if n_pairs == 0:
        return np.zeros(0, int), np.zeros(0, int)
    # entry p has (last entry of its centre) − p partners q > p
    center_end = np.searchsorted(i, i, side="right")  # (n_pairs,)
    n_partners = center_end - np.arange(n_pairs) - 1
    p = np.repeat(np.arange(n_pairs), n_partners)
    first = np.cumsum(n_partners) - n_partners  # where each p's run starts
    q = p + 1 + np.arange(len(p)) - np.repeat(first, n_partners)
    return p, q


def angular_terms(r_ij, r_ik, r_jk, cos, fc_ij, fc_ik, fc_jk, dfc_ij, dfc_ik, dfc_jk,
                  params, with_rjk):
    r"""Per-triplet terms of G4 (``with_rjk=True``, eq. 4) or G5 (eq. 5) and partial derivatives.

    Parameters
    ----------
    r_ij, r_ik, r_jk, cos : ndarray, shape (n_triplets,)
        Distances [Å] and cos θ_ijk.
    fc_*, dfc_* : ndarray, shape (n_triplets,)
        Cutoff values and derivatives [Å⁻¹] at those distances.
    params : list of (eta, zeta, lambda_)

    Returns
    -------
    terms : ndarray, shape (n_triplets, n_params)
    d_cos, d_rij, d_rik, d_rjk : ndarray, shape (n_triplets, n_params)
        Partial derivatives of the terms with respect to cos θ, r_ij, r_ik, r_jk [Å⁻¹].
    """
    eta, zeta, lam = (np.array([p[n] for p in params]).reshape(1, -1) for n in range(3))
    col = lambda x: x[:, None]  # noqa: E731  (n_triplets,) -> (n_triplets, 1)
    # (n_triplets, n_params); |cos θ| may exceed 1 by rounding: clip, or ζ ∉ ℤ gives NaN
    base = np.maximum(1.0 + lam * col(cos), 0.0)
    norm = 2.0 ** (1.0 - zeta)
    if with_rjk:
        gauss = np.exp(-eta * col(r_ij**2 + r_ik**2 + r_jk**2))
        fc = col(fc_ij * fc_ik * fc_jk)
    else:
        gauss = np.exp(-eta * col(r_ij**2 + r_ik**2))
        fc = col(fc_ij * fc_ik)
    radial = gauss * fc  # (n_triplets, n_params)
    terms = norm * base**zeta * radial
    d_cos = norm * zeta * lam * base ** (zeta - 1) * radial
    angular = norm * base**zeta * gauss  # everything except the cutoff product
    rest_ij = col(fc_ik * fc_jk) if with_rjk else col(fc_ik)
    rest_ik = col(fc_ij * fc_jk) if with_rjk else col(fc_ij)
    d_rij = angular * (col(dfc_ij) * rest_ij - 2 * eta * col(r_ij) * fc)
    d_rik = angular * (col(dfc_ik) * rest_ik - 2 * eta * col(r_ik) * fc)
    if with_rjk:
        d_rjk = angular * (col(dfc_jk * fc_ij * fc_ik) - 2 * eta * col(r_jk) * fc)
    else:
        d_rjk = np.zeros_like(terms)
    return terms, d_cos, d_rij, d_rik, d_rjk


def reference_features(acsf: ACSF, i, j, vectors, distances, species, derivatives):
    """Features (and per-entry derivatives) from a neighbour list, written out plainly.

    Parameters
    ----------
    acsf : ACSF
    i, j : ndarray of int, shape (n_pairs,)
        Full neighbour list sorted by i then j.
    vectors : ndarray, shape (n_pairs, 3)
        D_p = R_j + shift − R_i [Å].
    distances : ndarray, shape (n_pairs,)
    species : ndarray of int, shape (n_atoms,)
        Element index of every atom.
    derivatives : bool

    Returns
    -------
    values : ndarray, shape (n_atoms, n_features)
    entry_derivs : ndarray, shape (n_pairs, 3, n_features) or None
        dG_i/dD_p for every entry p [feature unit / Å].
    """
    n_atoms, n_pairs = len(species), len(i)
    n_el = len(acsf.elements)
    n_rad, n_ang = acsf.n_radial, acsf.n_angular
    ang0 = n_el * n_rad  # first angular column
    fc_fn = get_cutoff(acsf.cutoff)
    values = np.zeros((n_atoms, acsf.n_features))
    entry = np.zeros((n_pairs, 3, acsf.n_features)) if derivatives else None

    # ---- radial: G1, G2, G3, summed over neighbours j of element s_j
    fc, dfc = fc_fn(distances, acsf.r_cut)
    terms, dterms = radial_terms(distances, fc, dfc, acsf.g2, acsf.g3, derivatives)
    s_j = species[j]
    columns = s_j[:, None] * n_rad + np.arange(n_rad)  # (n_pairs, n_rad)
    np.add.at(values, (i[:, None], columns), terms)
    if derivatives:
        unit = vectors / distances[:, None]  # dr/dD_p, (n_pairs, 3)
        rows = np.arange(n_pairs)[:, None, None]
        entry[rows, np.arange(3)[None, :, None], columns[:, None, :]] = (
            unit[:, :, None] * dterms[:, None, :])  # (n_pairs, 3, n_rad)

    if n_ang == 0:
        return values, entry

    # ---- angular: G4, G5 over unordered pairs of entries (p, q) of the same centre
    p, q = triplets(i)
    D_ij, D_ik = vectors[p], vectors[q]  # (n_triplets, 3)
    r_ij, r_ik = distances[p], distances[q]
    D_jk = D_ik - D_ij
    r_jk = np.linalg.norm(D_jk, axis=1)
    cos = np.einsum("ta,ta->t", D_ij, D_ik) / (r_ij * r_ik)
    fc_jk, dfc_jk = fc_fn(r_jk, acsf.r_cut)
    args = (r_ij, r_ik, r_jk, cos, fc[p], fc[q], fc_jk, dfc[p], dfc[q], dfc_jk)
    g4 = angular_terms(*args, acsf.g4, with_rjk=True)
    g5 = angular_terms(*args, acsf.g5, with_rjk=False)
    # (n_triplets, n_ang) each: G4 columns, then G5 columns
    terms, d_cos, d_rij, d_rik, d_rjk = (np.concatenate([x4, x5], axis=1) for x4, x5 in zip(g4, g5))
    a, b = np.maximum(s_j[p], s_j[q]), np.minimum(s_j[p], s_j[q])
    columns = ang0 + ((a * (a + 1)) // 2 + b)[:, None] * n_ang + np.arange(n_ang)
    centre = i[p]
    np.add.at(values, (centre[:, None], columns), terms)
    if derivatives:
        # chain rule through cos θ = D_ij·D_ik/(r_ij r_ik), r_ij, r_ik and r_jk = |D_ik − D_ij|
        col = lambda x: x[:, :, None]  # noqa: E731
        rr = (r_ij * r_ik)[:, None]
        dcos_dDij = D_ik / rr - cos[:, None] * D_ij / r_ij[:, None] ** 2  # (n_triplets, 3)
        dcos_dDik = D_ij / rr - cos[:, None] * D_ik / r_ik[:, None] ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            u_jk = np.where(r_jk[:, None] > 0, D_jk / r_jk[:, None], 0.0)
        d_Dij = (col(dcos_dDij) * d_cos[:, None, :] + col(D_ij / r_ij[:, None]) * d_rij[:, None, :]
                 - col(u_jk) * d_rjk[:, None, :])  # (n_triplets, 3, n_ang)
        d_Dik = (col(dcos_dDik) * d_cos[:, None, :] + col(D_ik / r_ik[:, None]) * d_rik[:, None, :]
                 + col(u_jk) * d_rjk[:, None, :])
        xyz = np.arange(3)[None, :, None]
        cols3 = columns[:, None, :]  # (n_triplets, 1, n_ang)
        np.add.at(entry, (p[:, None, None], xyz, cols3), d_Dij)
        np.add.at(entry, (q[:, None, None], xyz, cols3), d_Dik)
    return values, entry


# --------------------------------------------------------------------------------------
# many structures, one neighbour list
# --------------------------------------------------------------------------------------
def batched_pairs(images, r_cut, elements, progress=False):
    """One neighbour list for many structures, with atom indices offset per structure.

    Molecules (no periodic axis) are placed side by side, far apart, in one box and share a
    single neighbour-list call; vectors are then recomputed from the original positions so
    that no precision is lost. Periodic structures get one call each.

    Parameters
    ----------
    images : list of ase.Atoms
    r_cut : float
        [Å].
    elements : sequence of str
        Supported elements (every image is validated with :func:`check_atoms`).
    progress : bool

    Returns
    -------
    i, j : ndarray of int, shape (n_pairs,)
        Global atom indices, sorted by i then j.
    vectors : ndarray, shape (n_pairs, 3); distances : ndarray, shape (n_pairs,)
    numbers : ndarray of int, shape (n_atoms_total,)
    offsets : ndarray of int, shape (n_images + 1,)
        Atoms of image n are ``offsets[n]:offsets[n+1]``.
    """
    from tqdm.auto import tqdm

    for n, atoms in enumerate(images):
        if not isinstance(atoms, Atoms):
            raise ValueError(f"image {n}: expected an ase.Atoms object, got {type(atoms).__name__}")
    positions = [a.positions for a in images]  # one pass over the ASE objects
    numbers = [a.numbers for a in images]
    molecule = ~np.array([a.pbc for a in images]).reshape(-1, 3).any(axis=1)
    sizes = np.array([len(p) for p in positions])
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    _check_images(images, elements, positions, numbers, molecule, sizes)
    numbers = np.concatenate(numbers)
    parts = []  # (i, j, vectors, distances), global indices

    if molecule.any():
        # lay the molecules out on a line along x, each shifted by its extent + 2 r_cut
        mol = np.flatnonzero(molecule)
        original = np.concatenate([positions[n] for n in mol])  # (n_mol_atoms, 3)
        local = np.concatenate([[0], np.cumsum(sizes[mol])])[:-1]  # first atom of each
        lows = np.minimum.reduceat(original, local, axis=0)  # (n_mol, 3)
        extents = np.maximum.reduceat(original[:, 0], local) - lows[:, 0]
        starts = np.concatenate([[0.0], np.cumsum(extents + 2 * r_cut + 1.0)[:-1]])
        shift = lows - np.c_[starts, np.zeros((len(mol), 2))]  # (n_mol, 3)
        shifted = original - np.repeat(shift, sizes[mol], axis=0)
        # global index of each molecule atom: position in the stack + (its image's offset
        # − where that image starts in the stack)
        to_global = np.arange(len(original)) + np.repeat(offsets[mol] - local, sizes[mol])
        pi, pj = _molecule_pairs(shifted, r_cut)
        # vectors from the original positions: no precision lost to the large offsets
        vectors = original[pj] - original[pi]
        distances = np.sqrt(np.add.reduce(vectors * vectors, axis=1))
        if len(distances) and distances.min() < MIN_DISTANCE:
            neighbor_pairs(Atoms(positions=shifted, pbc=False), r_cut)  # raises, names them
        parts.append((to_global[pi], to_global[pj], vectors, distances))
    periodic = np.flatnonzero(~molecule)
    for n in tqdm(periodic, desc="neighbour lists", disable=not progress or len(periodic) < 2):
        pairs = neighbor_pairs(images[n], r_cut)
        o = offsets[n]
        parts.append((pairs.i + o, pairs.j + o, pairs.vectors, pairs.distances))
    i = np.concatenate([p[0] for p in parts])
    j = np.concatenate([p[1] for p in parts])
    vectors = np.concatenate([p[2] for p in parts])
    distances = np.concatenate([p[3] for p in parts])
    order = pair_order(i, j, offsets[-1])  # None when all images are molecules, or all periodic
    if order is not None:
        i, j, vectors, distances = i[order], j[order], vectors[order], distances[order]
    return i, j, vectors, distances, numbers, offsets


def _molecule_pairs(positions, r_cut):
    """(i, j) of :func:`~nnptutor.neighbors.neighbor_pairs` for one non-periodic point set.

    The same vesin call and the same ``d <= r_cut`` convention, without the shifts and vectors
    that a batch of molecules does not need: 1000 ethanol in 6 ms instead of 11.
    """
    from vesin import NeighborList

    i, j, d = NeighborList(cutoff=r_cut, full_list=True).compute(
        points=positions, box=np.zeros((3, 3)), periodic=False, quantities="ijd")
    keep = np.asarray(d) <= r_cut
    i = np.asarray(i, dtype=np.int64)[keep]
    j = np.asarray(j, dtype=np.int64)[keep]
    order = pair_order(i, j, len(positions))
    return (i, j) if order is None else (i[order], j[order])


def _check_images(images, elements, positions, numbers, molecule, sizes):
    """:func:`check_atoms` for many structures, vectorised for the common case.

    All positions and numbers are checked at once; only periodic structures (whose
    cells need checking) and any failing structure go through ``check_atoms`` one by one,
    which also produces the error message, prefixed with the image index.
    """
    allowed = np.zeros(119, dtype=bool)
    allowed[[atomic_numbers[s] for s in elements]] = True
    all_numbers = np.concatenate(numbers) if len(numbers) else np.zeros(0, int)
    all_positions = np.concatenate(positions) if len(positions) else np.zeros((0, 3))
    bad_atoms = ~np.isfinite(all_positions).all(axis=1) | ~allowed[np.clip(all_numbers, 0, 118)]
    suspects = set(np.flatnonzero(sizes == 0).tolist()) | set(np.flatnonzero(~molecule).tolist())
    if bad_atoms.any():
        owner = np.searchsorted(np.cumsum(sizes), np.flatnonzero(bad_atoms), side="right")
        suspects |= set(owner.tolist())
    for n in sorted(suspects):
        try:
            check_atoms(images[n], elements)
        except ValueError as err:
            raise ValueError(f"image {n}: {err}") from None


def _renumber_image(message, offset):
    """Shift the index in an "image n: ..." message by the chunk's first image."""
    import re

    match = re.match(r"image (\d+): (.*)", message, re.S)
    if not match:
        return message
    return f"image {int(match.group(1)) + offset}: {match.group(2)}"

r"""Pair-centred symmetry functions (Jose, Artrith & Behler 2012; RuNNer pair mode).

Instead of one feature vector per atom, every atom *pair* (A, B) with R_AB ≤ r_c (periodic
images included, each unordered pair once) gets a feature vector G_AB, and the energy is

.. math:: E = \sum_{(A,B):\,R_{AB} \le r_c} E^{(Z_A Z_B)}(\mathbf G_{AB})       \tag{1}

with one network per element pair ("Cu-Cu", "Cu-Pt", "Pt-Pt"). The *environment* of a pair
is every atom n within r_c of A or of B, except A and B themselves. The functions, named
by RuNNer's type numbers (docs/gmp.md, section 9), with f = f_c the cutoff function:

.. math::

    P_1 &= f(R_{AB}) \textstyle\sum_n [f(R_{An}) + f(R_{Bn})]                        \\
    P_2 &= f(R_{AB})                                                                \\
    P_3 &= e^{-\eta R_{AB}^2} f(R_{AB}) \textstyle\sum_n
           [e^{-\eta (R_{An}-R_s)^2} f(R_{An}) + e^{-\eta (R_{Bn}-R_s)^2} f(R_{Bn})] \\
    P_4 &= 2^{1-\zeta} \textstyle\sum_n (1 + \lambda\cos\theta_n)^\zeta
           e^{-\eta (R_{An}^2 + R_{Bn}^2 + R_{AB}^2)} f(R_{An}) f(R_{Bn}) f(R_{AB})  \\
    P_5 &= R_{AB}                                                                   \\
    P_6 &= e^{-\eta (R_{AB}-R_s)^2} f(R_{AB})                                       \tag{2}

P1, P3 and P4 are element-resolved: one column per element of the neighbour n. P1 is P3
at η = 0, and P2 is P6 at η = 0; they are computed that way.

The angle in P4 (RuNNer ``pairsymfunction4``): for a homonuclear pair θ is the angle *at
the neighbour n* between n→A and n→B, so P4 is symmetric under A ↔ B; for a heteronuclear
pair (A the lighter element) θ is the angle *at B* between B→n and B→A.

Smoothness: every function except P5 goes to zero with zero slope as R_AB → r_c. A network
need not give E_pair = 0 there, so :class:`~nnptutor.potential.Potential` subtracts the
energy of a pair at the cutoff (:meth:`PairACSF.features_at_cutoff`) and E stays continuous
as pairs cross r_c. P5 = R_AB itself does not vanish, so its derivative jumps at r_c: it is
off by default.

Derivatives use the sparse layout of :class:`~nnptutor.descriptors.base.SparseDerivatives`
with the pair as the centre: entry e holds dG[pair, :]/dR[atom, :] for every atom of the
pair and of its environment, images folded onto the real atom.

Taught in notebooks/08_pair_symmetry_functions.ipynb.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from ase import Atoms

from nnptutor.cutoffs import get_cutoff
from nnptutor.descriptors import validation as check
from nnptutor.descriptors.base import Descriptor, SparseDerivatives, register
from nnptutor.neighbors import Pairs, neighbor_pairs
from nnptutor.structures import MIN_DISTANCE, check_atoms, normalize_elements


@dataclass
class PairList:
    """Unordered atom pairs within the cutoff, one row per pair (the descriptor's centres).

    Attributes
    ----------
    a, b : ndarray of int, shape (n_pairs,)
        Atom indices. A is the lighter element (lower atomic number); for two atoms of the
        same element, the lower index (a ≤ b).
    shifts : ndarray of int, shape (n_pairs, 3)
        Periodic image of b, in units of the cell vectors.
    vectors : ndarray, shape (n_pairs, 3)
        D_AB = R_b + shifts @ cell − R_a [Å].
    distances : ndarray, shape (n_pairs,)
        R_AB [Å].
    """

    a: np.ndarray
    b: np.ndarray
    shifts: np.ndarray
    vectors: np.ndarray
    distances: np.ndarray

    def __len__(self) -> int:
        return len(self.a)


def _pair_list(nl: Pairs, numbers: np.ndarray) -> PairList:
    """Keep each unordered pair of a full neighbour list once, oriented light → heavy."""
    i, j, S = nl.i, nl.j, nl.shifts
    # an atom's own images come as ±S: keep the one whose first non-zero component is > 0
    first_nonzero = S[np.arange(len(S)), np.argmax(S != 0, axis=1)] if len(S) else S[:, 0]
    keep = (i < j) | ((i == j) & (first_nonzero > 0))
    i, j, S, D, d = i[keep], j[keep], S[keep], nl.vectors[keep], nl.distances[keep]
    flip = numbers[i] > numbers[j]  # heteronuclear: A must be the lighter element
    a = np.where(flip, j, i)
    b = np.where(flip, i, j)
    S = np.where(flip[:, None], -S, S)
    D = np.where(flip[:, None], -D, D)
    order = np.lexsort((S[:, 2], S[:, 1], S[:, 0], b, a))
    return PairList(a[order], b[order], S[order], D[order], d[order])


def _expand(nl: Pairs, centres: np.ndarray):
    """For every pair p and every neighbour-list entry q of atom ``centres[p]``.

    Returns
    -------
    p, q : ndarray of int, shape (n_combos,)
        Pair index and neighbour-list entry, n_combos = Σ_p n_neighbours(centres[p]).
    """
    counts = np.bincount(nl.i, minlength=nl.n_atoms)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    per_pair = counts[centres]  # (n_pairs,)
    p = np.repeat(np.arange(len(centres)), per_pair)
    first = np.repeat(np.cumsum(per_pair) - per_pair, per_pair)
    q = starts[centres][p] + np.arange(len(p)) - first
    return p, q


#: neighbour-list entries (of A and B) handled per chunk of pairs
CHUNK_WORK = 100_000


def _chunks(work: np.ndarray, size: int | None = None):
    """Consecutive slices of rows whose ``work`` sums to about ``size`` each."""
    size = CHUNK_WORK if size is None else size
    ends = np.searchsorted(np.cumsum(work), np.arange(size, work.sum(), size), side="right")
    bounds = np.unique(np.concatenate(([0], ends, [len(work)])))
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _pair_terms(distances, eta, r_s, cutoff, r_cut):
    """exp(−η (r − R_s)²) f_c(r) and its r-derivative, shapes (n, n_params) [—, Å⁻¹]."""
    r = distances[:, None]  # (n, 1)
    fc, dfc = cutoff(distances, r_cut)
    gauss = np.exp(-eta * (r - r_s) ** 2)  # (n, n_params)
    value = gauss * fc[:, None]
    derivative = gauss * (dfc[:, None] - 2.0 * eta * (r - r_s) * fc[:, None])
    return value, derivative


@register
class PairACSF(Descriptor):
    """Pair-centred symmetry functions, eq. (2): one feature vector per atom pair.

    Parameters
    ----------
    elements : sequence of str
        Elements that may occur; sorted by atomic number internally.
    r_cut : float
        Cutoff radius r_c [Å] for the pair and for its environment, > 0.
    p1, p2, p5 : bool
        Include P1 (per element), P2, P5.
    p3 : sequence of (eta, r_s)
        Radial environment functions, per element; eta [Å⁻²] ≥ 0, r_s [Å] ≥ 0.
    p4 : sequence of (eta, zeta, lambda_)
        Angular environment functions, per element; eta [Å⁻²] ≥ 0, zeta ≥ 1,
        lambda_ = ±1.
    p6 : sequence of (eta, r_s)
        Gaussians of the pair distance; eta [Å⁻²] ≥ 0, r_s [Å] ≥ 0.
    cutoff : {"cosine", "tanh3"}
        Cutoff function f_c (RuNNer's pair mode uses the cosine).

    Notes
    -----
    Centres are pairs, so ``compute`` returns ``(n_pairs, n_features)`` and
    :meth:`center_types` gives each pair's element-pair type; a
    :class:`~nnptutor.models.BPNN` built on ``type_labels`` is then the pair network of
    eq. (1). Feature order: P2, P5, every P6; then for each neighbour element (by atomic
    number) P1, every P3, every P4. Cost O(n_pairs × neighbours) for values and derivatives;
    derivative memory is about 2 × neighbours × 3 × n_features floats per pair.

    Examples
    --------
    >>> from ase.build import bulk
    >>> d = PairACSF.default(["Cu"], r_cut=4.0)
    >>> values = d.compute(bulk("Cu", "fcc", a=3.6, cubic=True))
    >>> values.shape[0] == len(d.pairs(bulk("Cu", "fcc", a=3.6, cubic=True)))
    True
    """

    def __init__(
        self,
        elements: Sequence[str],
        r_cut: float,
        p1: bool = True,
        p2: bool = True,
        p3: Sequence = (),
        p4: Sequence = (),
        p5: bool = False,
        p6: Sequence = (),
        cutoff: str = "cosine",
    ):
        self.elements = normalize_elements(elements)
        self.r_cut = check.r_cut(r_cut)
        self.cutoff = check.cutoff(cutoff)
        self.p1, self.p2, self.p5 = check.flag(p1, "p1"), check.flag(p2, "p2"), check.flag(p5, "p5")
        self.p3 = check.radial(p3, "p3", positive_eta=False)
        self.p4 = check.angular(p4, "p4")
        self.p6 = check.radial(p6, "p6", positive_eta=False)
        if self.n_features == 0:
            raise ValueError("no pair symmetry functions selected (p1..p6 all empty)")

    @classmethod
    def default(cls, elements: Sequence[str], r_cut: float = 5.0, cutoff: str = "cosine"):
        """A small general-purpose set scaled to ``r_cut``: 5 pair + 8 per-element features.

        P2; four P6 Gaussians of R_AB with R_s on a grid from 0.3 r_c to 0.9 r_c; P1;
        three centred P3 (widths r_c, r_c/2, r_c/3); P4 with η = 0.5/r_c², ζ ∈ {1, 4},
        λ = ±1. P5 is left out (it does not vanish at r_c).
        """
        r_cut = check.r_cut(r_cut)
        r_s = np.linspace(0.3, 0.9, 4) * r_cut
        eta_pair = 0.5 / (r_s[1] - r_s[0]) ** 2
        p6 = [(float(eta_pair), float(x)) for x in r_s]
        p3 = [(float(0.5 / (r_cut / k) ** 2), 0.0) for k in (1, 2, 3)]
        eta_ang = float(0.5 / r_cut**2)
        p4 = [(eta_ang, zeta, lam) for zeta in (1.0, 4.0) for lam in (1.0, -1.0)]
        return cls(elements, r_cut, p1=True, p2=True, p3=p3, p4=p4, p5=False, p6=p6,
                   cutoff=cutoff)

    # --- layout ---------------------------------------------------------------------------
    @property
    def _pair_params(self) -> np.ndarray:
        """(eta, r_s) of the P2/P6 columns, shape (n, 2): P2 is P6 at η = 0."""
        return np.array(([(0.0, 0.0)] if self.p2 else []) + list(self.p6)).reshape(-1, 2)

    @property
    def _radial_params(self) -> np.ndarray:
        """(eta, r_s) of the P1/P3 columns, shape (n, 2): P1 is P3 at η = 0."""
        return np.array(([(0.0, 0.0)] if self.p1 else []) + list(self.p3)).reshape(-1, 2)

    @property
    def _n_pair_block(self) -> int:
        return len(self._pair_params) + int(self.p5)

    @property
    def _n_per_element(self) -> int:
        return len(self._radial_params) + len(self.p4)

    @property
    def feature_labels(self) -> list[str]:
        labels = ["P2"] if self.p2 else []
        labels += ["P5"] if self.p5 else []
        labels += [f"P6(eta={e:g},r_s={r:g})" for e, r in self.p6]
        for s in self.elements:
            labels += [f"P1[{s}]"] if self.p1 else []
            labels += [f"P3[{s}](eta={e:g},r_s={r:g})" for e, r in self.p3]
            labels += [f"P4[{s}](eta={e:g},zeta={z:g},lambda={x:g})" for e, z, x in self.p4]
        return labels

    @property
    def n_features(self) -> int:
        return self._n_pair_block + len(self.elements) * self._n_per_element

    # --- centres and types ----------------------------------------------------------------
    @property
    def type_labels(self) -> tuple[str, ...]:
        """Element pairs "A-B" (A not heavier than B), in the pair-block order of docs/acsf.md:
        for two elements ("H", "O"): ("H-H", "H-O", "O-O")."""
        el = self.elements
        return tuple(f"{el[a]}-{el[b]}" for b in range(len(el)) for a in range(b + 1))

    def pairs(self, atoms: Atoms) -> PairList:
        """The pairs (centres) of ``atoms``, in the row order of :meth:`compute`."""
        check_atoms(atoms, self.elements)
        return self._lists(atoms)[1]

    def _lists(self, atoms: Atoms) -> tuple[Pairs, PairList]:
        """Neighbour and pair lists of ``atoms``, remembered for the last geometry only:
        a prediction asks for features, centre types and centre atoms of one structure."""
        key = (atoms.positions.tobytes(), atoms.numbers.tobytes(), atoms.cell.array.tobytes(),
               atoms.pbc.tobytes())
        cached = getattr(self, "_last_lists", None)
        if cached is None or cached[0] != key:
            nl = neighbor_pairs(atoms, self.r_cut)
            cached = self._last_lists = (key, nl, _pair_list(nl, atoms.numbers))
        return cached[1], cached[2]

    def center_atoms(self, atoms: Atoms) -> np.ndarray:
        """The two atoms (a, b) of every pair, shape (n_pairs, 2), int.

        Used to split a pair energy between its atoms and to flag atoms whose pairs
        extrapolate.
        """
        pl = self.pairs(atoms)
        return np.stack([pl.a, pl.b], axis=1)

    def features_at_cutoff(self) -> np.ndarray:
        """Features of a pair at R_AB = r_c, shape (n_features,).

        Every function carries f_c(R_AB) and vanishes there, except P5 = R_AB = r_c.
        :class:`~nnptutor.potential.Potential` subtracts E_pair at these features, so a pair
        that crosses the cutoff adds or removes no energy (docs/gmp.md, section 9; smooth MD).
        """
        values = np.zeros(self.n_features)
        values[[k for k, label in enumerate(self.feature_labels) if label.startswith("P5")]] = self.r_cut
        return values

    def center_types(self, atoms: Atoms) -> np.ndarray:
        """Index into :attr:`type_labels` of every pair, shape (n_pairs,), int."""
        pl = self.pairs(atoms)
        s = self.element_indices(atoms.numbers)
        sa, sb = s[pl.a], s[pl.b]  # sa ≤ sb by construction
        return sb * (sb + 1) // 2 + sa

    # --- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "name": type(self).__name__,
            "elements": list(self.elements),
            "r_cut": self.r_cut,
            "p1": self.p1,
            "p2": self.p2,
            "p3": [list(t) for t in self.p3],
            "p4": [list(t) for t in self.p4],
            "p5": self.p5,
            "p6": [list(t) for t in self.p6],
            "cutoff": self.cutoff,
        }

    # --- the computation ------------------------------------------------------------------
    def _compute(self, atoms: Atoms, derivatives: bool):
        nl, pl = self._lists(atoms)
        n_pairs, n_atoms = len(pl), len(atoms)
        cutoff = get_cutoff(self.cutoff)
        species = self.element_indices(atoms.numbers)  # (n_atoms,)
        values = np.zeros((n_pairs, self.n_features))
        # atom-centred sums of the radial environment terms, (n_atoms, n_el, n_rad)
        eta, r_s = self._radial_params.T
        n_el, n_rad = len(self.elements), len(eta)
        g, dg = _pair_terms(nl.distances, eta, r_s, cutoff, self.r_cut)  # (n_entries, n_rad)
        atom_sums = _scatter_rows(nl.i * n_el + species[nl.j], g, n_atoms * n_el)
        atom_sums = atom_sums.reshape(n_atoms, n_el, n_rad)

        # Chunks of consecutive pairs keep the temporaries small. The derivative entries
        # (pair, atom) are known before any geometry: A, and every neighbour of A and of B.
        # Sorted by pair, each chunk's entries are one contiguous block of the result,
        # which is allocated once and filled in place.
        counts = np.bincount(nl.i, minlength=n_atoms)
        chunks = _chunks(counts[pl.a] + counts[pl.b])
        if derivatives:
            entries = [_entries(nl, pl, rows) for rows in chunks]
            offsets = np.cumsum([0] + [len(e) for e in entries])
            all_entries = np.concatenate(entries) if entries else np.zeros(0, dtype=np.int64)
            derivs = SparseDerivatives(all_entries // n_atoms, all_entries % n_atoms,
                                       np.zeros((len(all_entries), 3, self.n_features)),
                                       n_atoms, n_pairs)
        for k, rows in enumerate(chunks):
            grads = None
            if derivatives:
                grads = _Gradients(pl, rows, n_atoms, entries[k],
                                   derivs.values[offsets[k]:offsets[k + 1]])
            self._pair_block(pl, rows, cutoff, values, grads)
            if n_rad:
                self._radial(nl, pl, rows, species, cutoff, atom_sums, dg, values, grads)
            if len(self.p4):
                self._angular(nl, pl, rows, species, cutoff, values, grads)
            if derivatives:
                grads.apply_sum_rule()
        return (values, derivs) if derivatives else values

    def _pair_block(self, pl, rows, cutoff, values, grads):
        """P2, P5, P6 of the pairs ``rows``: functions of R_AB only."""
        r, D = pl.distances[rows], pl.vectors[rows]
        eta, r_s = self._pair_params.T
        val, der = _pair_terms(r, eta, r_s, cutoff, self.r_cut)  # (n_rows, n)
        if self.p5:
            val = np.insert(val, int(self.p2), r, axis=1)
            der = np.insert(der, int(self.p2), 1.0, axis=1)
        cols = np.arange(self._n_pair_block)
        values[rows, :len(cols)] = val
        if grads is not None:  # +d/dD_AB on B; A's entry comes from the sum rule
            unit = D / r[:, None]  # (n_rows, 3)
            grads.add(np.arange(rows.start, rows.stop), pl.b[rows], cols,
                      der[:, None, :] * unit[:, :, None])

    def _radial(self, nl, pl, rows, species, cutoff, atom_sums, dg, values, grads):
        """P1 and P3 of the pairs ``rows``: h(R_AB) × environment sums of g(R_An), g(R_Bn).

        ``atom_sums`` (n_atoms, n_el, n_rad) are the atom-centred sums of g; ``dg``
        (n_entries, n_rad) is dg/dr on every neighbour-list entry.
        """
        n_el = len(self.elements)
        eta, r_s = self._radial_params.T
        n_rad = len(eta)
        # column of element s, function k: n_pair_block + s * n_per_element + k
        cols = self._n_pair_block + np.arange(n_el)[:, None] * self._n_per_element + np.arange(n_rad)
        a, b, r = pl.a[rows], pl.b[rows], pl.distances[rows]
        h, dh = _pair_terms(r, eta, 0.0, cutoff, self.r_cut)  # (n_rows, n_rad)
        g_ab, _ = _pair_terms(r, eta, r_s, cutoff, self.r_cut)  # (n_rows, n_rad)
        # environment sums: E_A + E_B minus the partner's own term in each
        env = atom_sums[a] + atom_sums[b]  # (n_rows, n_el, n_rad)
        local = np.arange(len(r))
        env[local, species[b]] -= g_ab
        env[local, species[a]] -= g_ab
        values[rows, cols.ravel()] = (h[:, None, :] * env).reshape(len(r), n_el * n_rad)
        if grads is None:
            return
        # d/dD_AB of the pair factor, on B: (n_rows, 3, n_el * n_rad)
        unit = pl.vectors[rows] / r[:, None]
        pair_grad = (env * dh[:, None, :]).reshape(len(r), 1, n_el * n_rad) * unit[:, :, None]
        grads.add(np.arange(rows.start, rows.stop), b, cols.ravel(), pair_grad)
        # d/d(R_n − R_X) of the environment sums, X = A, B: every neighbour entry but the partner
        for centre, partner, image in ((pl.a, pl.b, pl.shifts), (pl.b, pl.a, -pl.shifts)):
            p, q = _expand(nl, centre[rows])
            p += rows.start
            own = (nl.j[q] == partner[p]) & (nl.shifts[q] == image[p]).all(axis=1)
            p, q = p[~own], q[~own]
            u = nl.vectors[q] / nl.distances[q][:, None]  # (n_combos, 3)
            grad = (h[p - rows.start] * dg[q])[:, None, :] * u[:, :, None]  # (n_combos, 3, n_rad)
            col = cols[species[nl.j[q]]]  # (n_combos, n_rad)
            grads.add(p, nl.j[q], col, grad)
            if centre is pl.b:  # A's own entry comes from the sum rule in _Gradients.result
                grads.add(p, centre[p], col, -grad)

    def _angular(self, nl, pl, rows, species, cutoff, values, grads):
        """P4 of the pairs ``rows`` (a slice): triplets (pair, n), n within r_c of A and B."""
        n_el, n_rad = len(self.elements), len(self._radial_params)
        eta, zeta, lambda_ = np.array(self.p4, dtype=float).T  # (n_ang,)
        cols = (self._n_pair_block + np.arange(n_el)[:, None] * self._n_per_element
                + n_rad + np.arange(len(eta)))  # (n_el, n_ang)
        p, q = _expand(nl, pl.a[rows])  # candidates n: the neighbours of A
        p += rows.start
        v = nl.vectors[q] - pl.vectors[p]  # D_Bn = D_An − D_AB, (n_combos, 3)
        b = np.linalg.norm(v, axis=1)
        # within r_c of B too; b ≈ 0 is B itself (real atoms are ≥ MIN_DISTANCE apart)
        keep = (b <= self.r_cut) & (b > 0.5 * MIN_DISTANCE)
        p, q, v, b = p[keep], q[keep], v[keep], b[keep]
        u, D = nl.vectors[q], pl.vectors[p]  # D_An, D_AB: (n_trip, 3)
        a, r, n = nl.distances[q], pl.distances[p], nl.j[q]  # (n_trip,)

        # homonuclear: angle at n between n→A and n→B, cos = u·v / (a b)
        # heteronuclear: angle at B between B→n and B→A, cos = −v·D / (b r)
        homo = (species[pl.a] == species[pl.b])[p]
        cos = np.where(homo, np.einsum("ta,ta->t", u, v) / (a * b),
                       -np.einsum("ta,ta->t", v, D) / (b * r))
        cos = np.clip(cos, -1.0, 1.0)
        fa, dfa = cutoff(a, self.r_cut)
        fb, dfb = cutoff(b, self.r_cut)
        fr, dfr = cutoff(r, self.r_cut)
        base = 1.0 + lambda_ * cos[:, None]  # (n_trip, n_ang)
        ang = 2.0 ** (1.0 - zeta) * base**zeta
        radial = np.exp(-eta * (a**2 + b**2 + r**2)[:, None])  # (n_trip, n_ang)
        weight = radial * (fa * fb * fr)[:, None]
        col = cols[species[n]]  # (n_trip, n_ang)
        F, n_rows = values.shape[1], rows.stop - rows.start
        local = (p - rows.start)[:, None] * F + col  # (n_trip, n_ang) into values[rows]
        values[rows] += _scatter_rows(local, ang * weight, n_rows * F).reshape(n_rows, F)
        if grads is None:
            return

        # gradients of cos as combinations of u, v, D (v = u − D): d cos/du and d cos/dD
        ab, br = a * b, b * r
        zero = np.zeros_like(cos)
        cu_u = np.where(homo, 1 / ab - cos / a**2, zero)
        cu_v = np.where(homo, 1 / ab, zero) - cos / b**2
        cu_d = np.where(homo, zero, -1 / br)
        cd_u = np.where(homo, -1 / ab, zero)
        cd_v = cos / b**2 - np.where(homo, zero, 1 / br)
        cd_d = np.where(homo, zero, 1 / br - cos / r**2)
        # derivatives of the radial weight W = e^{−η(a²+b²+r²)} f(a) f(b) f(r): (n_trip, n_ang)
        dw_da = radial * (dfa * fb * fr)[:, None] - 2 * eta * a[:, None] * weight
        dw_db = radial * (fa * dfb * fr)[:, None] - 2 * eta * b[:, None] * weight
        dw_dr = radial * (fa * fb * dfr)[:, None] - 2 * eta * r[:, None] * weight
        w_dang = weight * 2.0 ** (1.0 - zeta) * zeta * lambda_ * base ** (zeta - 1.0)
        # coefficients of u, v, D in dT/du (moves n) and dT/dD (moves B): (n_trip, n_ang)
        coef_du = (ang * dw_da / a[:, None] + w_dang * cu_u[:, None],
                   ang * dw_db / b[:, None] + w_dang * cu_v[:, None],
                   w_dang * cu_d[:, None])
        coef_dd = (w_dang * cd_u[:, None],
                   -ang * dw_db / b[:, None] + w_dang * cd_v[:, None],
                   ang * dw_dr / r[:, None] + w_dang * cd_d[:, None])
        for atom, coef in ((n, coef_du), (pl.b[p], coef_dd)):  # A: sum rule in _Gradients
            grad = sum(c[:, None, :] * x[:, :, None] for c, x in zip(coef, (u, v, D)))
            grads.add(p, atom, col, grad)  # (n_trip, 3, n_ang)


def _scatter_rows(index, weights, size):
    """Sum ``weights`` into a flat array of ``size`` at ``index`` (same shape as weights)
    or, for 1-D ``index`` and 2-D ``weights`` (n, m), at rows ``index`` of an (size, m) array."""
    weights = np.asarray(weights)
    if index.ndim == 1 and weights.ndim == 2:
        m = weights.shape[1]
        flat = (index[:, None] * m + np.arange(m)).ravel()
        out = np.bincount(flat, weights.ravel(), minlength=size * m).reshape(size, m)
    else:
        out = np.bincount(index.ravel(), weights.ravel(), minlength=size)
    return out.astype(np.float64, copy=False)  # bincount of nothing is int


def _entries(nl: Pairs, pl: PairList, rows: slice) -> np.ndarray:
    """Sorted keys pair × n_atoms + atom of the derivative entries of the pairs ``rows``:
    atom A and every neighbour-list neighbour of A and of B (B is one of A's)."""
    keys = [np.arange(rows.start, rows.stop) * nl.n_atoms + pl.a[rows]]
    for centre in (pl.a, pl.b):
        p, q = _expand(nl, centre[rows])
        keys.append((p + rows.start) * nl.n_atoms + nl.j[q])
    keys = np.sort(np.concatenate(keys))
    return keys[np.concatenate((keys[:1] >= 0, keys[1:] != keys[:-1]))]  # unique


class _Gradients:
    """Adds contributions dG[pair, col]/dR[atom, :] of the pairs ``rows`` into ``out``.

    ``entries`` are the sorted keys (pair × n_atoms + atom) of the rows of ``out``, shape
    (n_entries, 3, n_features), a view into the final derivative array. Contributions to
    atom A of each pair's own frame are not added: translation invariance
    (Σ_atoms dG_p/dR = 0) gives A's entry as minus the sum of all the others
    (:meth:`apply_sum_rule`). Contributions to A through a periodic image of A are added
    as usual.
    """

    def __init__(self, pl: PairList, rows: slice, n_atoms: int, entries: np.ndarray,
                 out: np.ndarray):
        self.pl, self.rows, self.n_atoms, self.entries, self.out = pl, rows, n_atoms, entries, out

    def add(self, pair, atom, cols, grad):
        """pair, atom: (n,); cols: (n, m) or (m,); grad: (n, 3, m) [feature unit/Å]."""
        F = self.out.shape[2]
        dest = np.searchsorted(self.entries, pair * self.n_atoms + atom)  # (n,)
        cols = np.broadcast_to(cols, (len(dest), grad.shape[2]))  # (n, m)
        index = (dest[:, None, None] * 3 + np.arange(3)[:, None]) * F + cols[:, None, :]
        np.add.at(self.out.reshape(-1), index.ravel(), grad.ravel())  # index, grad: (n, 3, m)

    def apply_sum_rule(self):
        """dG_p/dR_A = −Σ_{k≠A} dG_p/dR_k (entries are sorted by pair, A's included)."""
        pairs = np.arange(self.rows.start, self.rows.stop)
        center = self.entries // self.n_atoms
        total = np.add.reduceat(self.out, np.searchsorted(center, pairs), axis=0)  # (n_rows, 3, F)
        own_a = pairs * self.n_atoms + self.pl.a[self.rows]
        self.out[np.searchsorted(self.entries, own_a)] -= total



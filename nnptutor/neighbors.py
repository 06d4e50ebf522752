"""Neighbour lists: every atom j within r_cut of atom i, periodic images included.

Arrays follow ASE's ``neighbor_list`` letters: ``i, j`` (indices), ``S`` (integer image
shifts, ``shifts`` here), ``D`` (vectors R_j + S·cell − R_i, ``vectors``), ``d``
(``distances``). The work is done by vesin (30–80× faster than ASE's pure-Python list
here); tests compare with :func:`ase.neighborlist.neighbor_list`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from nnptutor.structures import MIN_DISTANCE

#: Highest plausible number density of atoms [Å⁻³]: about five times that of diamond
#: (0.176 Å⁻³), the densest solid at ambient pressure. A neighbour list denser than this
#: within r_cut comes from a cell or positions in the wrong unit (nm typed as Å).
MAX_DENSITY = 1.0


def max_neighbors(r_cut: float) -> int:
    """Most neighbours an atom can plausibly have within ``r_cut`` [Å]: MAX_DENSITY times
    the sphere's volume, and at least 64 (small spheres hold whole coordination shells)."""
    return max(64, int(MAX_DENSITY * 4.0 / 3.0 * np.pi * r_cut**3))


def _dense_error(count: float, r_cut: float, what: str) -> ValueError:
    return ValueError(
        f"implausibly dense neighbour list: {what} {count:.3g} neighbours within "
        f"r_cut = {r_cut:g} Å, more than any real material has (at most about "
        f"{max_neighbors(r_cut)}); is the cell or are the positions in the wrong unit "
        "(e.g. nm instead of Å)?")


def check_density(atoms: Atoms, r_cut: float) -> None:
    """Raise ``ValueError`` before a neighbour search that would be implausibly dense.

    Every atom has at least its own periodic images as neighbours: about V_d(r_c) / A_d
    of them, with A_d the length, area or volume spanned by the d periodic cell vectors
    and V_d(r_c) that of a d-dimensional ball (2 r_c, π r_c², 4π r_c³/3). If that alone
    exceeds :func:`max_neighbors`, the list would be huge (4 Cu atoms in a 0.5 Å cubic cell
    at r_c = 5 Å: 4,200 images, 67,000 pairs, and a descriptor's per-centre arrays of
    4 × 16,800² triplets); it is refused before any of it is allocated.

    Parameters
    ----------
    atoms : ase.Atoms
        Positions and cell in Å.
    r_cut : float
        Cutoff radius [Å].
    """
    axes = np.flatnonzero(atoms.pbc)
    if len(axes) == 0:
        return
    vectors = atoms.cell.array[axes]
    measure = np.sqrt(abs(np.linalg.det(vectors @ vectors.T)))  # length, area or volume
    ball = (2 * r_cut, np.pi * r_cut**2, 4.0 / 3.0 * np.pi * r_cut**3)[len(axes) - 1]
    if measure > 0 and ball / measure > max_neighbors(r_cut):
        raise _dense_error(ball / measure, r_cut, "each atom's periodic images alone give")


@dataclass
class Pairs:
    """A full (both directions) neighbour list, sorted by ``i`` then ``j``.

    Attributes
    ----------
    i, j : ndarray of int, shape (n_pairs,)
        Centre and neighbour indices.
    shifts : ndarray of int, shape (n_pairs, 3)
        Periodic image of j, in units of the cell vectors.
    vectors : ndarray, shape (n_pairs, 3)
        D_ij = R_j + shifts @ cell − R_i [Å].
    distances : ndarray, shape (n_pairs,)
        |D_ij| [Å].
    n_atoms : int
    """

    i: np.ndarray
    j: np.ndarray
    shifts: np.ndarray
    vectors: np.ndarray
    distances: np.ndarray
    n_atoms: int

    def __len__(self) -> int:
        return len(self.i)

    def counts(self) -> np.ndarray:
        """Number of neighbours of each atom, shape (n_atoms,)."""
        return np.bincount(self.i, minlength=self.n_atoms)


def _vesin_lists(atoms: Atoms, r_cut: float):
    from vesin import NeighborList

    pbc = atoms.pbc
    positions = atoms.positions
    if pbc.all():
        box, periodic = atoms.cell.array, True
    elif not pbc.any():
        box, periodic = np.zeros((3, 3)), False
    else:
        # Mixed periodicity (slabs): vesin takes one flag per axis in recent versions;
        # otherwise fall back to ASE, which is always correct.
        try:
            return NeighborList(cutoff=r_cut, full_list=True).compute(
                points=positions, box=atoms.cell.array, periodic=pbc, quantities="ijSDd"
            )
        except Exception:
            from ase.neighborlist import neighbor_list

            return neighbor_list("ijSDd", atoms, r_cut)
    return NeighborList(cutoff=r_cut, full_list=True).compute(
        points=positions, box=box, periodic=periodic, quantities="ijSDd"
    )


def pair_order(i: np.ndarray, j: np.ndarray, n_atoms: int) -> np.ndarray | None:
    """Permutation that sorts pairs by (i, j), stably, or None if they are sorted already.

    The order of ``np.lexsort((j, i))`` from one stable argsort of the key i·n + j, several
    times cheaper; vesin often returns the pairs sorted, and then nothing is gathered.

    i, j : (n_pairs,) int; n_atoms : the atom count (j < n_atoms).
    """
    key = i * n_atoms + j
    if not np.any(key[1:] < key[:-1]):
        return None
    return np.argsort(key, kind="stable")


def neighbor_pairs(atoms: Atoms, r_cut: float, check_overlap: bool = True) -> Pairs:
    """All ordered pairs (i, j, image) with 0 < |D_ij| ≤ r_cut.

    Parameters
    ----------
    atoms : ase.Atoms
        Positions in Å; periodic along the axes where ``atoms.pbc`` is True. Images of atom
        i itself (in a small cell) are neighbours of i; i at zero shift is not.
    r_cut : float
        Cutoff radius [Å], > 0.
    check_overlap : bool
        Raise ``ValueError`` if two atoms are closer than 0.1 Å.

    Raises
    ------
    ValueError
        For r_cut ≤ 0, overlapping atoms, or an implausibly dense list (more than
        :func:`max_neighbors` neighbours per atom, checked before the search where the
        periodic images alone give that many: :func:`check_density`).

    Returns
    -------
    Pairs
    """
    if not r_cut > 0:
        raise ValueError(f"r_cut must be positive, got {r_cut}")
    check_density(atoms, r_cut)
    i, j, S, D, d = _vesin_lists(atoms, float(r_cut))
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    S = np.asarray(S, dtype=np.int64).reshape(-1, 3)
    D = np.asarray(D, dtype=float).reshape(-1, 3)
    d = np.asarray(d, dtype=float)
    keep = d <= r_cut  # vesin uses <, ASE <; keep the boundary convention explicit
    i, j, S, D, d = i[keep], j[keep], S[keep], D[keep], d[keep]
    order = pair_order(i, j, len(atoms))
    if order is not None:
        i, j, S, D, d = i[order], j[order], S[order], D[order], d[order]
    pairs = Pairs(i, j, S, D, d, len(atoms))
    counts = pairs.counts()
    if len(pairs) and counts.max() > max_neighbors(r_cut):
        raise _dense_error(counts.max(), r_cut, f"atom {int(np.argmax(counts))} has")
    if check_overlap and len(pairs) and pairs.distances.min() < MIN_DISTANCE:
        p = int(np.argmin(pairs.distances))
        raise ValueError(
            f"atoms {pairs.i[p]} and {pairs.j[p]} are {pairs.distances[p]:.3g} Å apart "
            f"(closer than {MIN_DISTANCE} Å): overlapping atoms"
        )
    return pairs

"""A neighbour list reused between MD steps (Verlet skin), for ``compute_with_vjp``.

A list built at positions R⁰ with cutoff r_c + s contains every pair within r_c as long as
no atom has moved more than s/2 from R⁰ (two atoms then approach by less than s), and the
cell, periodicity and atoms are unchanged. Between rebuilds a step costs one gather of the
stored pairs, D = R_j − R_i + S·cell, and a filter d ≤ r_c, instead of a new search (about
5× cheaper for 108 Cu atoms at r_c = 6 Å). The pairs come out as :func:`neighbor_pairs`
gives them: sorted by i then j, 0 < d ≤ r_c, overlapping atoms rejected.

Taught nowhere; used by :meth:`ACSF.compute_with_vjp` (forces for MD).
"""
from __future__ import annotations

import numpy as np
from ase import Atoms

from nnptutor.neighbors import Pairs, neighbor_pairs
from nnptutor.structures import MIN_DISTANCE

#: Verlet skin s [Å]: at 300 K a Cu atom moves about 0.005 Å per fs, so the list is
#: rebuilt every few tens of 1-fs steps.
SKIN = 0.5


class VerletPairs:
    """Neighbour lists within ``r_cut`` for consecutive geometries of one system.

    The first call for a system (atomic numbers, cell, periodicity) is a plain
    :func:`neighbor_pairs`; from the second call on, a list with cutoff r_cut + skin is
    kept and reused while it is valid. Keeps the arrays of one list (about 100 bytes per
    pair) and a copy of the positions.

    Parameters
    ----------
    r_cut : float
        Cutoff radius [Å].
    skin : float
        Verlet skin [Å], ≥ 0.
    """

    def __init__(self, r_cut: float, skin: float = SKIN):
        self.r_cut, self.skin = float(r_cut), float(skin)
        self._system = None  # (numbers, cell, pbc) of the last call
        self._kept = None  # (positions at build, Pairs with r_cut + skin)

    def __call__(self, atoms: Atoms) -> Pairs:
        """:func:`neighbor_pairs` (atoms, r_cut), from the kept list when it is valid."""
        system = (atoms.numbers.copy(), atoms.cell.array.copy(), atoms.pbc.copy())
        same = self._system is not None and all(
            a.shape == b.shape and np.array_equal(a, b) for a, b in zip(system, self._system))
        self._system = system
        if not same:  # a new system: nothing to reuse yet
            self._kept = None
            return neighbor_pairs(atoms, self.r_cut)
        positions = atoms.positions
        kept = self._kept
        if kept is not None:
            moved = np.einsum("ij,ij->i", positions - kept[0], positions - kept[0])
            if moved.max(initial=0.0) >= (self.skin / 2) ** 2:
                kept = None
        if kept is None:
            kept = self._kept = (positions.copy(),
                                 neighbor_pairs(atoms, self.r_cut + self.skin, check_overlap=False))
        p = kept[1]
        vectors = positions[p.j] - positions[p.i] + p.shifts @ atoms.cell.array
        distances = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
        keep = distances <= self.r_cut
        if keep.any() and distances[keep].min() < MIN_DISTANCE:
            return neighbor_pairs(atoms, self.r_cut)  # raises, naming the atoms
        return Pairs(p.i[keep], p.j[keep], p.shifts[keep], vectors[keep], distances[keep],
                     len(atoms))

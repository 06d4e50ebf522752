"""What every descriptor shares: sparse derivatives, batching, serialisation, a registry.

A descriptor maps a structure to one feature vector per atom, ``values`` of shape
(n_atoms, n_features), and optionally to the derivatives of those features with respect
to atomic positions in a sparse layout (:class:`SparseDerivatives`). Models never look
inside a descriptor; they only need these two arrays.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from ase import Atoms

from nnptutor.structures import check_atoms, element_indices

_REGISTRY: dict[str, type] = {}


def register(cls):
    """Class decorator: make ``cls`` loadable by :func:`descriptor_from_dict` by name."""
    _REGISTRY[cls.__name__] = cls
    return cls


def descriptor_from_dict(data: dict):
    """:func:`nnptutor.descriptors.descriptor_from_dict`, for callers that import it from
    here (the package is always loaded before this module, so nothing is imported)."""
    import sys

    return sys.modules["nnptutor.descriptors"].descriptor_from_dict(data)


# --------------------------------------------------------------------------------------
# folding per-entry derivatives onto real atoms, and their transpose for forces
# --------------------------------------------------------------------------------------
def fold_entry_derivatives(i, j, entry_derivs, n_atoms):
    """Turn dG_i/dD_p per neighbour-list entry into dG_i/dR_j per (centre, atom) pair.

    dG_i/dR_j = Σ_{p: i→j} dG_i/dD_p (all images of j), and the self term
    dG_i/dR_i = −Σ_{p: i→·} dG_i/dD_p (plus any images of i itself among its neighbours).

    Parameters
    ----------
    i, j : ndarray of int, shape (n_entries,)
        Neighbour list sorted by i then j.
    entry_derivs : ndarray, shape (n_entries, 3, n_features)
        dG_i/dD_p [feature unit / Å].
    n_atoms : int

    Returns
    -------
    center, neighbor : ndarray of int, shape (n_pairs,)
        Sorted by centre, then neighbour; the self pair (i, i) present for every atom.
    values : ndarray, shape (n_pairs, 3, n_features)
    """
    n_features = entry_derivs.shape[-1]
    entry_derivs = entry_derivs.reshape(len(i), 3 * n_features)  # reduceat is fastest in 2D
    keys = i * n_atoms + j  # non-decreasing, since the list is sorted by (i, j)
    # sum entries that map to the same (i, j): all images of j seen from i
    if len(keys):
        summed, unique_keys = _sum_runs(entry_derivs, keys)  # (n_unique, 3 F), (n_unique,)
        # self terms: minus the sum over all entries of each centre
        # (the partial sums per (i, j) are fewer rows than the entries)
        per_center = np.zeros((n_atoms, 3 * n_features))
        unique_i = unique_keys // n_atoms
        center_starts = np.flatnonzero(np.r_[True, unique_i[1:] != unique_i[:-1]])
        per_center[unique_i[center_starts]] = np.add.reduceat(summed, center_starts, axis=0)
    else:
        summed = np.zeros((0, 3 * n_features))
        unique_keys = keys
        per_center = np.zeros((n_atoms, 3 * n_features))
    self_keys = np.arange(n_atoms) * (n_atoms + 1)
    # sorted union of two sorted key lists (a merge; np.union1d would hash)
    all_keys = np.sort(np.concatenate([unique_keys, self_keys]), kind="stable")
    all_keys = all_keys[np.r_[True, all_keys[1:] != all_keys[:-1]]]
    values = np.zeros((len(all_keys), 3 * n_features))
    values[np.searchsorted(all_keys, unique_keys)] = summed  # keys are unique: no +=
    values[np.searchsorted(all_keys, self_keys)] -= per_center
    return all_keys // n_atoms, all_keys % n_atoms, values.reshape(-1, 3, n_features)


def _sum_runs(rows, keys):
    """Sums of the rows of each run of equal ``keys`` (sorted), and the keys of the runs.

    The same sums as ``np.add.reduceat(rows, starts, axis=0)``, to rounding, about four
    times faster: runs are short (1 to 4 images of a neighbour), and reduceat pays a
    per-run overhead, so the first row of every run is copied and the k-th rows of all
    runs are added in one vectorised step per k.

    rows : (n_rows, n_cols); keys : (n_rows,) non-decreasing.
    """
    is_start = np.r_[True, keys[1:] != keys[:-1]]
    starts = np.flatnonzero(is_start)
    summed = rows[starts]  # (n_runs, n_cols), a copy
    if len(starts) < len(keys):
        run = np.cumsum(is_start) - 1  # run of every row
        rank = np.arange(len(keys)) - starts[run]  # position of every row in its run
        for k in range(1, rank.max() + 1):  # the 2nd rows of all runs, the 3rd, ...
            rows_k = np.flatnonzero(rank == k)  # at most one per run: no repeated targets
            summed[run[rows_k]] += rows[rows_k]
    return summed, keys[starts]


def scatter_pair_gradients(i, j, grad, n_atoms):
    """dE/dR (n_atoms, 3) from dE/dD_p per neighbour-list entry p, D_p = R_j − R_i + shift:
    dE/dR_j += dE/dD_p and dE/dR_i −= dE/dD_p (the transpose of the fold above).

    i, j : (n_entries,) int; grad : (n_entries, 3) [eV/Å].
    """
    out = np.zeros((n_atoms, 3))
    for a in range(3):
        out[:, a] = (np.bincount(j, grad[:, a], minlength=n_atoms)
                     - np.bincount(i, grad[:, a], minlength=n_atoms))
    return out


@dataclass
class SparseDerivatives:
    """Derivatives of atom-centred features with respect to positions, stored sparsely.

    Entry p holds ``values[p, a, f] = dG[center[p], f] / dR[neighbor[p], a]``: the
    derivative of feature f of atom ``center[p]`` with respect to Cartesian component a
    of atom ``neighbor[p]``'s position. Self terms (center == neighbor) are included and
    periodic images are already folded onto the real atom, so each (center, neighbor)
    pair appears at most once. Memory is O(n_atoms × neighbours × n_features).

    Attributes
    ----------
    center : ndarray of int, shape (n_pairs,)
        Index of the centre whose features are differentiated (an atom for atom-centred
        descriptors, an atom pair for :class:`PairACSF`).
    neighbor : ndarray of int, shape (n_pairs,)
        Index of the atom that moves.
    values : ndarray, shape (n_pairs, 3, n_features)
        [feature unit / Å].
    n_atoms : int
    n_centers : int, optional
        Number of centres; defaults to ``n_atoms`` (atom-centred descriptors).
    """

    center: np.ndarray
    neighbor: np.ndarray
    values: np.ndarray
    n_atoms: int
    n_centers: int | None = None

    def __post_init__(self):
        if self.n_centers is None:
            self.n_centers = self.n_atoms

    @property
    def n_pairs(self) -> int:
        return len(self.center)

    @property
    def n_features(self) -> int:
        return self.values.shape[-1]

    @property
    def nbytes(self) -> int:
        return self.center.nbytes + self.neighbor.nbytes + self.values.nbytes

    def to_dense(self) -> np.ndarray:
        """Dense array of shape (n_centers, n_atoms, 3, n_features): [center, neighbor, a, f].

        O(n_atoms²) memory: for tests and small teaching examples only.
        """
        dense = np.zeros((self.n_centers, self.n_atoms, 3, self.n_features))
        np.add.at(dense, (self.center, self.neighbor), self.values)
        return dense

    def vjp(self, grad_values: np.ndarray) -> np.ndarray:
        """Contract with dE/dG to get dE/dR (forces are the negative).

        Parameters
        ----------
        grad_values : ndarray, shape (n_centers, n_features)
            dE/dG [eV / feature unit].

        Returns
        -------
        ndarray, shape (n_atoms, 3)
            dE/dR [eV/Å].
        """
        per_pair = np.einsum("paf,pf->pa", self.values, grad_values[self.center])  # (n_pairs, 3)
        out = np.zeros((self.n_atoms, 3))
        np.add.at(out, self.neighbor, per_pair)
        return out

    def __repr__(self) -> str:
        return (
            f"SparseDerivatives(n_atoms={self.n_atoms}, n_pairs={self.n_pairs}, "
            f"n_features={self.n_features}, {self.nbytes / 1e6:.1f} MB)"
        )


class Descriptor:
    """Base class. Subclasses set ``elements``, ``r_cut`` and implement
    ``feature_labels``, ``_compute(atoms, derivatives)``, ``to_dict`` and ``from_dict``.

    ``_compute`` receives a structure that already passed :func:`check_atoms`.

    Centres and types: an atom-centred descriptor has one *centre* per atom and the centre's
    *type* is its element (index into ``elements``). A model has one network (or output)
    per type. A pair-centred descriptor overrides :meth:`center_types` and ``type_labels``
    so that the same models, training and calculator work unchanged.
    """

    elements: tuple[str, ...]
    r_cut: float

    # --- to be provided by subclasses -------------------------------------------------
    @property
    def feature_labels(self) -> list[str]:
        raise NotImplementedError

    def _compute(self, atoms: Atoms, derivatives: bool):
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: dict):
        data = dict(data)
        name = data.pop("name", cls.__name__)
        if name != cls.__name__:
            raise ValueError(f"data describes a {name}, not a {cls.__name__}")
        return cls(**data)

    # --- shared behaviour ---------------------------------------------------------------
    @property
    def n_features(self) -> int:
        return len(self.feature_labels)

    @property
    def type_labels(self) -> tuple[str, ...]:
        """Names of the centre types, one network per type (default: the elements)."""
        return tuple(self.elements)

    def center_atoms(self, atoms: Atoms) -> np.ndarray:
        """Atoms each centre belongs to, shape (n_centers, k), int (default: atom i, k = 1).

        Used to split centre energies between atoms and to flag extrapolating atoms.
        """
        return np.arange(len(atoms))[:, None]

    def features_at_cutoff(self) -> np.ndarray | None:
        """Features of a centre that is just leaving the cutoff, shape (n_features,), or None.

        Atom-centred descriptors return None: their centres (atoms) never appear or vanish.
        A pair-centred descriptor gains and loses centres as pairs cross r_cut; a potential
        subtracts the network's energy at these features so that E stays continuous.
        """
        return None

    def element_indices(self, numbers) -> np.ndarray:
        """Index into ``elements`` of every atom, shape (n_atoms,), int."""
        return element_indices(numbers, self.elements)

    def center_types(self, atoms: Atoms) -> np.ndarray:
        """Type index of every centre, shape (n_centers,), int (default: element index)."""
        return self.element_indices(atoms.numbers)

    def compute(self, atoms: Atoms) -> np.ndarray:
        """Features of every atom.

        Parameters
        ----------
        atoms : ase.Atoms
            Positions in Å; periodic along the axes where ``atoms.pbc`` is True.

        Returns
        -------
        ndarray, shape (n_centers, n_features)
            One row per centre (per atom for atom-centred descriptors).
        """
        check_atoms(atoms, self.elements)
        return self._compute(atoms, False)

    def compute_with_derivatives(self, atoms: Atoms) -> tuple[np.ndarray, SparseDerivatives]:
        """Features of every atom and their derivatives with respect to positions.

        Returns
        -------
        values : ndarray, shape (n_centers, n_features)
        derivatives : SparseDerivatives
            dG/dR [feature unit / Å], see :class:`SparseDerivatives`.
        """
        check_atoms(atoms, self.elements)
        return self._compute(atoms, True)

    def compute_many(
        self, images: Sequence[Atoms], derivatives: bool = False, progress: bool = True
    ) -> list:
        """:meth:`compute` for a list of structures, with a progress bar.

        Subclasses may override this with a batched implementation that avoids per-call
        overhead for many small molecules.

        Returns
        -------
        list
            One entry per image: ``values`` or ``(values, derivatives)``.
        """
        from tqdm.auto import tqdm

        images = list(images)
        iterator = tqdm(images, desc=f"{type(self).__name__} features", disable=not progress)
        compute = self.compute_with_derivatives if derivatives else self.compute
        return [compute(atoms) for atoms in iterator]

    def compute_with_vjp(self, atoms: Atoms) -> tuple[np.ndarray, Callable]:
        """Features and a function mapping dE/dG (n_atoms, n_features) to dE/dR (n_atoms, 3).

        Used for MD, where only the forces are needed. The default builds the sparse
        derivatives; descriptors may override it with a cheaper vector–Jacobian product.
        """
        values, derivs = self.compute_with_derivatives(atoms)
        return values, derivs.vjp

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(elements={list(self.elements)}, r_cut={self.r_cut}, "
            f"n_features={self.n_features})"
        )

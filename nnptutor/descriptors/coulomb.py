r"""The Coulomb matrix: one fixed-size vector for a whole molecule (Rupp et al. 2012).

.. math::

    M_{ii} = \tfrac12 Z_i^{2.4}, \qquad
    M_{ij} = \frac{Z_i Z_j}{|\mathbf R_i - \mathbf R_j|}\quad (i \ne j)        \tag{1}

Unlike the atom-centred descriptors, it describes the *whole* structure: ``compute``
returns one vector per molecule, not one row per atom. Distances are in Å and the entries
are in e²/Å (Z_i Z_j / r with r in Å, no conversion to atomic units), exactly as DScribe
computes them, so the numbers agree with ``dscribe.descriptors.CoulombMatrix``.

Three forms (``permutation``):

- ``"none"``: the matrix in the order the atoms are given, zero-padded to
  (n_atoms_max, n_atoms_max) and flattened row by row. Depends on atom order.
- ``"sorted"``: rows and columns permuted so that row L2 norms descend (DScribe's
  ``"sorted_l2"``, stable sort), then padded and flattened. Invariant to atom order, but
  jumps when two row norms cross.
- ``"eigenspectrum"``: the eigenvalues, sorted by descending absolute value and
  zero-padded to n_atoms_max. Invariant and continuous, but n numbers cannot pin down
  3n − 6 coordinates.

Taught in notebooks/01_coulomb_matrix.ipynb.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms

from nnptutor.descriptors.base import Descriptor, register
from nnptutor.structures import MIN_DISTANCE, check_atoms

PERMUTATIONS = ("none", "sorted", "eigenspectrum")


@register
class CoulombMatrix(Descriptor):
    """Whole-molecule Coulomb matrix descriptor, eq. (1), as a flat feature vector.

    Parameters
    ----------
    n_atoms_max : int
        Size to which every matrix is zero-padded; larger molecules are rejected.
    permutation : {"none", "sorted", "eigenspectrum"}
        Which form to return (module docstring).

    Notes
    -----
    Molecules only: periodic structures are rejected (the sum over images would not
    converge). No element list: any element is accepted. No position derivatives: the
    Coulomb matrix is used with kernel ridge regression on energies in this course.

    Examples
    --------
    >>> from ase.build import molecule
    >>> cm = CoulombMatrix(n_atoms_max=12, permutation="eigenspectrum")
    >>> cm.compute(molecule("C6H6")).shape
    (12,)
    """

    elements = None  # any element
    r_cut = np.inf  # every pair interacts

    def __init__(self, n_atoms_max: int, permutation: str = "sorted"):
        if isinstance(n_atoms_max, bool) or int(n_atoms_max) != n_atoms_max or n_atoms_max < 1:
            raise ValueError(f"n_atoms_max must be a positive integer, got {n_atoms_max!r}")
        if permutation not in PERMUTATIONS:
            raise ValueError(
                f"unknown permutation {permutation!r}; choose one of {PERMUTATIONS} "
                "(DScribe's 'sorted_l2' is 'sorted' here)"
            )
        self.n_atoms_max = int(n_atoms_max)
        self.permutation = permutation

    @property
    def feature_labels(self) -> list[str]:
        n = self.n_atoms_max
        if self.permutation == "eigenspectrum":
            return [f"lambda_{k}" for k in range(n)]
        return [f"M[{i},{j}]" for i in range(n) for j in range(n)]

    def matrix(self, atoms: Atoms) -> np.ndarray:
        """The Coulomb matrix of eq. (1) in the given atom order, without padding.

        Parameters
        ----------
        atoms : ase.Atoms
            A molecule (no periodic axes); positions in Å.

        Returns
        -------
        ndarray, shape (n_atoms, n_atoms)
            M [e²/Å off the diagonal; the diagonal 0.5 Z^2.4 is a fit to free-atom
            energies and carries no unit of its own].
        """
        self._check(atoms)
        return _coulomb_matrix(atoms.numbers, atoms.positions)

    def compute(self, atoms: Atoms) -> np.ndarray:
        """Feature vector of one molecule.

        Parameters
        ----------
        atoms : ase.Atoms
            A molecule with at most ``n_atoms_max`` atoms; positions in Å.

        Returns
        -------
        ndarray, shape (n_features,)
            n_features = n_atoms_max² for "none" and "sorted" (padded matrix flattened row
            by row), n_atoms_max for "eigenspectrum".
        """
        self._check(atoms)
        matrix = _coulomb_matrix(atoms.numbers, atoms.positions)  # (n_atoms, n_atoms)
        n = len(atoms)
        if self.permutation == "eigenspectrum":
            eigenvalues = np.linalg.eigvalsh(matrix)  # (n_atoms,)
            out = np.zeros(self.n_atoms_max)
            out[:n] = eigenvalues[np.argsort(-np.abs(eigenvalues), kind="stable")]
            return out
        if self.permutation == "sorted":
            order = np.argsort(-np.linalg.norm(matrix, axis=1), kind="stable")  # (n_atoms,)
            matrix = matrix[np.ix_(order, order)]
        padded = np.zeros((self.n_atoms_max, self.n_atoms_max))
        padded[:n, :n] = matrix
        return padded.ravel()  # (n_atoms_max**2,)

    def compute_with_derivatives(self, atoms: Atoms):
        raise ValueError(
            "CoulombMatrix provides no position derivatives (it is used for energies "
            "with kernel ridge regression); use compute()"
        )

    def compute_many(self, images: Sequence[Atoms], progress: bool = False) -> np.ndarray:
        """Feature matrix of many molecules, ready for scikit-learn.

        Parameters
        ----------
        images : sequence of ase.Atoms
        progress : bool
            Show a progress bar.

        Returns
        -------
        ndarray, shape (n_images, n_features)
        """
        rows = super().compute_many(images, progress=progress)
        return np.asarray(rows).reshape(len(rows), self.n_features)

    def _check(self, atoms: Atoms) -> None:
        check_atoms(atoms)
        if atoms.pbc.any():
            raise ValueError(
                f"the Coulomb matrix is defined for molecules only; this structure is "
                f"periodic along axes {np.flatnonzero(atoms.pbc).tolist()} (set atoms.pbc = False)"
            )
        if len(atoms) > self.n_atoms_max:
            raise ValueError(
                f"the structure has {len(atoms)} atoms, more than n_atoms_max="
                f"{self.n_atoms_max}; build the descriptor with a larger n_atoms_max"
            )

    def to_dict(self) -> dict:
        return {
            "name": type(self).__name__,
            "n_atoms_max": self.n_atoms_max,
            "permutation": self.permutation,
        }

    #: One centre per structure: the whole molecule, of a single type.
    type_labels = ("molecule",)

    def center_atoms(self, atoms: Atoms) -> np.ndarray:
        """No atom is a centre on its own: an empty index array, shape (0,)."""
        return np.zeros(0, dtype=np.int64)

    def center_types(self, atoms: Atoms) -> np.ndarray:
        """The one centre's type: ``[0]`` ("molecule"), shape (1,), for any molecule.

        The Coulomb matrix describes the molecule as a whole (one feature vector from
        :meth:`compute`), as kernel ridge regression on energies uses it.
        """
        self._check(atoms)
        return np.zeros(1, dtype=np.int64)

    def __repr__(self) -> str:
        return (
            f"CoulombMatrix(n_atoms_max={self.n_atoms_max}, permutation={self.permutation!r}, "
            f"n_features={self.n_features})"
        )


def _coulomb_matrix(numbers: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Eq. (1) for atomic numbers (n_atoms,) and positions (n_atoms, 3) [Å].

    Raises ``ValueError`` for atoms closer than ``MIN_DISTANCE``. (The O(n²) distance
    matrix is needed anyway, and a neighbour-list call per small molecule would cost more
    than the descriptor itself.)
    """
    z = numbers.astype(float)  # (n_atoms,)
    distances = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    np.fill_diagonal(distances, np.inf)  # (n_atoms, n_atoms); the diagonal is set below
    if distances.min() < MIN_DISTANCE:
        i, j = np.unravel_index(np.argmin(distances), distances.shape)
        raise ValueError(
            f"atoms {i} and {j} are {distances[i, j]:.3g} Å apart "
            f"(closer than {MIN_DISTANCE} Å): overlapping atoms"
        )
    matrix = np.outer(z, z) / distances  # (n_atoms, n_atoms)
    np.fill_diagonal(matrix, 0.5 * z**2.4)
    return matrix

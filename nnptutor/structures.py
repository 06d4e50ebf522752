"""Validation of structures at the library's public boundary.

Every descriptor and potential calls :func:`check_atoms` first, so that bad input fails
early with a message that says what is wrong and where, instead of producing NaN features.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

#: Atoms closer than this [Å] are rejected as overlapping.
MIN_DISTANCE = 0.1


def normalize_elements(elements: Iterable[str]) -> tuple[str, ...]:
    """Validate element symbols and return them sorted by atomic number.

    Parameters
    ----------
    elements : iterable of str
        Chemical symbols such as ``("O", "H")``.

    Returns
    -------
    tuple of str
        Unique symbols sorted by atomic number, e.g. ``("H", "O")``.
    """
    if isinstance(elements, str):
        elements = [elements]
    elements = list(elements)
    if not elements:
        raise ValueError("elements must name at least one chemical element")
    for symbol in elements:
        if symbol not in atomic_numbers or symbol == "X":
            raise ValueError(f"unknown chemical element {symbol!r}")
    if len(set(elements)) != len(elements):
        raise ValueError(f"elements contains duplicates: {elements}")
    return tuple(sorted(elements, key=lambda s: atomic_numbers[s]))


def element_indices(numbers, elements: Sequence[str]) -> np.ndarray:
    """Index into ``elements`` of every atom, shape (n_atoms,), int; −1 for other elements.

    Parameters
    ----------
    numbers : array_like of int, shape (n_atoms,)
        Atomic numbers (``atoms.numbers``).
    elements : sequence of str
        Chemical symbols, in the order that defines the indices.
    """
    lookup = np.full(119, -1)
    lookup[[atomic_numbers[s] for s in elements]] = np.arange(len(elements))
    return lookup[np.asarray(numbers)]


def check_atoms(atoms: Atoms, elements: Sequence[str] | None = None) -> None:
    """Raise ``ValueError`` if ``atoms`` cannot be featurised.

    Checks: an ``ase.Atoms`` object, at least one atom, finite positions and cell, and (if
    ``elements`` is given) no element outside ``elements``. Overlapping atoms are detected
    by the neighbour list (:func:`nnptutor.neighbors.neighbor_pairs`), which already has
    the distances.

    Parameters
    ----------
    atoms : ase.Atoms
        The structure; positions in Å.
    elements : sequence of str, optional
        Elements the caller supports.
    """
    if not isinstance(atoms, Atoms):
        raise ValueError(f"expected an ase.Atoms object, got {type(atoms).__name__}")
    if len(atoms) == 0:
        raise ValueError("the structure is empty (0 atoms)")
    positions = atoms.positions
    bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
    if bad.size:
        raise ValueError(f"positions of atoms {bad[:10].tolist()} are NaN or infinite")
    if atoms.pbc.any():
        cell = atoms.cell.array
        if not np.isfinite(cell).all():
            raise ValueError("the cell contains NaN or infinite entries")
        for axis in np.flatnonzero(atoms.pbc):
            if np.linalg.norm(cell[axis]) < 1e-8:
                raise ValueError(f"periodic along axis {axis} but the cell vector is zero")
        if atoms.pbc.all() and abs(np.linalg.det(cell)) < 1e-8:
            raise ValueError("the periodic cell has zero volume")
    if elements is not None:
        allowed = set(atomic_numbers[s] for s in elements)
        unknown = sorted(set(atoms.numbers.tolist()) - allowed)
        if unknown:
            names = [chemical_symbols[z] for z in unknown]
            where = np.flatnonzero(np.isin(atoms.numbers, unknown))[:10].tolist()
            raise ValueError(
                f"element(s) {names} (atoms {where}) not among the supported elements "
                f"{list(elements)}"
            )

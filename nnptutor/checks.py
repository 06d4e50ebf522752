"""Physics checks shared by the tests and shown in the notebooks.

Each check returns numbers (not booleans) so a notebook can print them and a test can
assert on them with a tolerance of its own.
"""
from __future__ import annotations

import numpy as np
from ase import Atoms


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation matrix, shape (3, 3) (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def transformed_copies(atoms: Atoms, rng: np.random.Generator) -> dict[str, tuple[Atoms, np.ndarray]]:
    """Copies of ``atoms`` that every descriptor must map to the same per-atom features.

    Returns
    -------
    dict
        name -> (new_atoms, index) where ``index[k]`` is the atom of the original structure
        that atom k of the copy corresponds to. Names: "rotation", "translation",
        "permutation", and for fully periodic cells "wrapped" and "supercell".
    """
    n = len(atoms)
    out = {}
    rot = atoms.copy()
    R = random_rotation(rng)
    rot.positions = atoms.positions @ R.T
    if atoms.pbc.any():
        rot.set_cell(atoms.cell.array @ R.T, scale_atoms=False)
    out["rotation"] = (rot, np.arange(n))

    tr = atoms.copy()
    tr.positions = atoms.positions + rng.normal(scale=2.0, size=3)
    out["translation"] = (tr, np.arange(n))

    # permute atoms of the same element only (the identity of each atom is kept by index)
    perm = rng.permutation(n)
    out["permutation"] = (atoms[perm], perm)

    if atoms.pbc.all():
        wrapped = atoms.copy()
        wrapped.positions = atoms.positions + atoms.cell.array.T @ rng.integers(-2, 3, size=3)
        wrapped.wrap()
        out["wrapped"] = (wrapped, np.arange(n))
        sc = atoms.repeat((2, 1, 1))
        out["supercell"] = (sc, np.tile(np.arange(n), 2))
    return out


def check_invariance(descriptor, atoms: Atoms, seed: int = 0) -> dict[str, float]:
    """Largest absolute change of any feature under each symmetry operation.

    Parameters
    ----------
    descriptor : Descriptor
        Anything with ``compute(atoms) -> (n_atoms, n_features)``.
    atoms : ase.Atoms
    seed : int

    Returns
    -------
    dict
        operation -> max |G(transformed)[k] − G(original)[index[k]]| [feature units].
    """
    rng = np.random.default_rng(seed)
    reference = descriptor.compute(atoms)
    report = {}
    for name, (new_atoms, index) in transformed_copies(atoms, rng).items():
        values = descriptor.compute(new_atoms)
        report[name] = float(np.max(np.abs(values - reference[index])))
    return report


def finite_difference_derivatives(descriptor, atoms: Atoms, atom: int, h: float = 1e-5) -> np.ndarray:
    """Central finite differences dG[:, f]/dR[atom, a], shape (n_atoms, 3, n_features)."""
    out = []
    for a in range(3):
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[atom, a] += h
        minus.positions[atom, a] -= h
        out.append((descriptor.compute(plus) - descriptor.compute(minus)) / (2 * h))
    return np.stack(out, axis=1)  # (n_atoms, 3, n_features)


def finite_difference_gradient(energy, atoms: Atoms, h: float = 1e-5) -> np.ndarray:
    """Central finite differences of a scalar function of the positions.

    Parameters
    ----------
    energy : callable
        ``energy(atoms) -> float`` (e.g. [eV]); called 6 n_atoms times on displaced copies.
    atoms : ase.Atoms
    h : float
        Displacement [Å].

    Returns
    -------
    ndarray, shape (n_atoms, 3)
        dE/dR [unit of energy / Å]; forces are its negative.
    """
    out = np.zeros((len(atoms), 3))
    for k in range(len(atoms)):
        for a in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[k, a] += h
            minus.positions[k, a] -= h
            out[k, a] = (energy(plus) - energy(minus)) / (2 * h)
    return out


def analytic_column(derivatives, atom: int) -> np.ndarray:
    """dG[:, f]/dR[atom, a] from SparseDerivatives, shape (n_centers, 3, n_features).

    n_centers is n_atoms for atom-centred descriptors, n_pairs for PairACSF.
    """
    out = np.zeros((derivatives.n_centers, 3, derivatives.n_features))
    mask = derivatives.neighbor == atom
    np.add.at(out, derivatives.center[mask], derivatives.values[mask])
    return out


def check_derivatives(descriptor, atoms: Atoms, atoms_to_check=None, h: float = 1e-5) -> dict[str, float]:
    """Compare analytic derivatives with central finite differences.

    Parameters
    ----------
    descriptor : Descriptor
        With ``compute_with_derivatives(atoms) -> (values, SparseDerivatives)``.
    atoms : ase.Atoms
    atoms_to_check : sequence of int, optional
        Atoms whose positions are displaced (default: up to 3 atoms spread over the structure).
    h : float
        Displacement [Å].

    Returns
    -------
    dict
        ``max_abs_error`` [feature unit/Å], ``max_relative_error`` (error / largest
        derivative), ``max_abs_derivative`` (the not-trivially-small guard).
    """
    _, derivatives = descriptor.compute_with_derivatives(atoms)
    if atoms_to_check is None:
        atoms_to_check = sorted(set(np.linspace(0, len(atoms) - 1, 3).astype(int).tolist()))
    err, scale = 0.0, 0.0
    for atom in atoms_to_check:
        fd = finite_difference_derivatives(descriptor, atoms, atom, h)
        an = analytic_column(derivatives, atom)
        err = max(err, float(np.max(np.abs(fd - an))))
        scale = max(scale, float(np.max(np.abs(an))))
    return {
        "max_abs_error": err,
        "max_relative_error": err / scale if scale > 0 else np.inf,
        "max_abs_derivative": scale,
    }

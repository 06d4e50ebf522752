r"""Atomic pseudo-densities for GMP: sums of atom-centred Gaussians (docs/gmp.md, section 2).

.. math:: \rho(\mathbf r) = \sum_j \sum_g B_{e_j,g}\, e^{-\beta_{e_j,g} \|\mathbf r - \mathbf R_j\|^2}

A *density table* maps an element symbol to a list of ``[B, beta]`` pairs: amplitude B
[e·Å⁻³] and exponent β [Å⁻²]. Amplitudes may be negative (fits to pseudo-densities often
need one, e.g. for the dip of a valence density near the core). The number of electrons of
an element is ``Σ_g B_g (π/β_g)^{3/2}`` (:func:`electron_count`).

Two sources of tables:

* **The teaching density** (:func:`teaching_density`): one normalised Gaussian per element,
  ``B = Z_val (2π s²)^{-3/2}``, ``β = 1/(2 s²)``, carrying the valence charge ``Z_val`` with
  standard deviation ``s``. Our choices, stated once:

  - ``Z_val`` (:func:`valence_charge`) is the number of electrons outside the last closed
    noble-gas shell, with filled d shells of main-group elements counted as core: the group
    number for groups 1–12 and the group number − 10 for groups 13–18 (H 1, He 2, C 4, N 5,
    O 6, Co 9, Pt 10, Cu 11, Zn 12, Ga 3). Lanthanides and actinides have no teaching
    density (their valence is not a single number); pass a table instead.
  - ``s = r_cov / 2`` with ``r_cov`` the covalent radius of Cordero et al. (2008), as in
    ``ase.data.covalent_radii`` (H 0.155 Å, C 0.38 Å, O 0.33 Å, Cu 0.66 Å, Pt 0.68 Å): a
    Gaussian whose "radius" grows with the size of the atom, and which overlaps its bonded
    neighbours at about 2 s.

* **Fitted multi-Gaussian densities** read from a plain-text file (:func:`read_density_file`),
  a format modelled on GMP-featurizer's ``.gpsp``::

      # free text: comment lines start with '#', blank lines are ignored
      ! 2 elements
      ****
      H 1 1            <- symbol, atomic number, number of Gaussians
      0.3213 1.7730    <- B [e Å^-3]  beta [Å^-2], one line per Gaussian
      ****
      C 6 3
      ...

  ``nnptutor/datasets/densities/`` holds an example (``fitted_HCNO.gdens``); ``data/densities/`` the script that made it.

GMP stores the table of the elements it uses *by value* in ``to_dict``, so a saved model does
not depend on a file path.
"""
from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from ase.data import atomic_numbers, covalent_radii

TEACHING = "teaching"


def _group(z: int) -> int | None:
    """Periodic-table group (1–18) of element z, or None for lanthanides and actinides."""
    if z <= 2:
        return 1 if z == 1 else 18
    for start, length in ((3, 8), (11, 8), (19, 18), (37, 18), (55, 32), (87, 32)):
        k = z - start  # position within the period
        if 0 <= k < length:
            break
    else:
        return None
    if length == 8:  # periods 2–3: groups 1, 2, 13–18
        return k + 1 if k < 2 else k + 11
    if length == 18:  # periods 4–5
        return k + 1
    if k < 2:  # periods 6–7: Cs, Ba / Fr, Ra
        return k + 1
    if k < 17:  # La–Lu, Ac–Lr
        return None
    return k - 13  # Hf (k = 17) is group 4


def valence_charge(symbol: str) -> int:
    """Valence charge Z_val of the teaching density [e] (rule in the module docstring)."""
    if symbol not in atomic_numbers or symbol == "X":
        raise ValueError(f"unknown chemical element {symbol!r}")
    group = _group(atomic_numbers[symbol])
    if group is None:
        raise ValueError(
            f"no teaching density for {symbol!r} (lanthanide/actinide or beyond): "
            "pass a density table or file"
        )
    if symbol == "He":
        return 2
    return group if group <= 12 else group - 10


def teaching_width(symbol: str) -> float:
    """Standard deviation s of the teaching Gaussian: half the covalent radius [Å]."""
    return float(covalent_radii[atomic_numbers[symbol]]) / 2


def teaching_density(elements: Sequence[str]) -> dict[str, list[list[float]]]:
    """One normalised Gaussian per element: ``{symbol: [[B, beta]]}``.

    Parameters
    ----------
    elements : sequence of str

    Returns
    -------
    dict
        symbol -> [[B [e·Å⁻³], β [Å⁻²]]] with ``B (π/β)^{3/2} = Z_val``.
    """
    table = {}
    for symbol in elements:
        z_val, s = valence_charge(symbol), teaching_width(symbol)
        table[symbol] = [[float(z_val * (2 * np.pi * s**2) ** -1.5), float(1 / (2 * s**2))]]
    return table


def electron_count(gaussians) -> float:
    """``Σ_g B_g (π/β_g)^{3/2}``: the integral of one element's density [e].

    Parameters
    ----------
    gaussians : array_like, shape (n_gaussians, 2)
        Rows ``[B, beta]``.
    """
    g = np.asarray(gaussians, dtype=float).reshape(-1, 2)
    return float(np.sum(g[:, 0] * (np.pi / g[:, 1]) ** 1.5))


def check_table(table: Mapping, elements: Sequence[str]) -> dict[str, list[list[float]]]:
    """Validate a density table and return a plain copy restricted to ``elements``.

    Raises ``ValueError`` for a missing element, an empty list, a row that is not
    ``[B, beta]``, a non-finite number or β ≤ 0.
    """
    if not isinstance(table, Mapping):
        raise ValueError(f"a density table must be a mapping symbol -> [[B, beta], ...], got {type(table).__name__}")
    out = {}
    for symbol in elements:
        if symbol not in table:
            raise ValueError(f"the density has no entry for element {symbol!r} (has {sorted(table)})")
        try:
            g = np.asarray(table[symbol], dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"density of {symbol!r} is not a list of [B, beta] rows") from None
        if g.ndim != 2 or g.shape[1] != 2 or len(g) == 0:
            raise ValueError(f"density of {symbol!r} must have shape (n_gaussians, 2), got {g.shape}")
        if not np.isfinite(g).all():
            raise ValueError(f"density of {symbol!r} contains NaN or infinite values")
        if (g[:, 1] <= 0).any():
            raise ValueError(f"density of {symbol!r}: every exponent beta must be > 0 Å⁻², got {g[:, 1].tolist()}")
        out[symbol] = g.tolist()
    return out


def read_density_file(path: str | PathLike) -> dict[str, list[list[float]]]:
    """Read a Gaussian density file (format in the module docstring).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    dict
        symbol -> [[B [e·Å⁻³], β [Å⁻²]], ...].
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"density file {str(path)!r} does not exist")
    lines = [
        (number, line.split())
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]

    def fail(number, message):
        raise ValueError(f"{path.name}, line {number}: {message}")

    if not lines or lines[0][1][:1] != ["!"] or len(lines[0][1]) < 2:
        fail(lines[0][0] if lines else 1, "expected a header '! N elements'")
    try:
        n_elements = int(lines[0][1][1])
    except ValueError:
        fail(lines[0][0], "expected a header '! N elements'")
    table, k = {}, 1
    for _ in range(n_elements):
        if k >= len(lines) or lines[k][1] != ["****"]:
            fail(lines[min(k, len(lines) - 1)][0], "expected a '****' separator before each element")
        if k + 1 >= len(lines) or len(lines[k + 1][1]) != 3:
            fail(lines[min(k + 1, len(lines) - 1)][0], "expected 'Symbol Z n_gaussians'")
        number, (symbol, z, count) = lines[k + 1]
        if symbol not in atomic_numbers or str(atomic_numbers[symbol]) != z:
            fail(number, f"element {symbol!r} does not have atomic number {z}")
        rows = lines[k + 2 : k + 2 + int(count)]
        if len(rows) != int(count) or any(len(r) != 2 for _, r in rows):
            fail(number, f"expected {count} lines 'B beta' for {symbol}")
        table[symbol] = [[float(b), float(beta)] for _, (b, beta) in rows]
        k += 2 + int(count)
    if k != len(lines):
        fail(lines[k][0], f"unexpected content after {n_elements} elements")
    return check_table(table, list(table))


def write_density_file(path: str | PathLike, table: Mapping, comment: str = "") -> None:
    """Write ``table`` in the format :func:`read_density_file` reads (B, β to 10 digits)."""
    out = [f"# {line}" for line in comment.splitlines()]
    out.append(f"! {len(table)} elements")
    for symbol in sorted(table, key=lambda s: atomic_numbers[s]):
        out += ["****", f"{symbol} {atomic_numbers[symbol]} {len(table[symbol])}"]
        out += [f"{b: .10e} {beta: .10e}" for b, beta in table[symbol]]
    Path(path).write_text("\n".join(out) + "\n")


def resolve_density(density, elements: Sequence[str]) -> dict[str, list[list[float]]]:
    """Turn GMP's ``density`` argument into a validated table for ``elements``.

    Parameters
    ----------
    density : "teaching", str or path-like to a density file, or mapping
    elements : sequence of str
    """
    if isinstance(density, str) and density == TEACHING:
        return teaching_density(elements)
    if isinstance(density, Mapping):
        return check_table(density, elements)
    if isinstance(density, (str, PathLike)):
        if not Path(density).is_file():
            raise ValueError(
                f"unknown density {str(density)!r}: expected 'teaching', the path of a "
                "density file, or a mapping symbol -> [[B, beta], ...]"
            )
        return check_table(read_density_file(density), elements)
    raise ValueError(f"unknown density of type {type(density).__name__}")


__all__ = [
    "valence_charge",
    "teaching_width",
    "teaching_density",
    "electron_count",
    "read_density_file",
    "write_density_file",
    "resolve_density",
]

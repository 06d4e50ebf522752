"""Checks of descriptor parameters, in one place: each returns the clean value or raises a
``ValueError`` that names the parameter, its unit and what was given.

Used by :class:`.ACSF`, :class:`.PairACSF`, :class:`.GMP` and the parameter grids of
:mod:`.parameters`, so that r_cut, η, r_s, ζ, λ and σ are checked alike everywhere.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from nnptutor.cutoffs import CUTOFFS


def finite(x, what: str) -> float:
    """``x`` as a finite float; ``what`` names it in the error."""
    if isinstance(x, (bool, np.bool_)):
        raise ValueError(f"{what} must be a number, got {x!r}")
    try:
        value = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {x!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value}")
    return value


def r_cut(x) -> float:
    """A finite, positive cutoff radius [Å] as float."""
    try:
        value = finite(x, "r_cut")
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ValueError(f"r_cut must be a positive number of Å, got {x!r}")
    return value


def choice(value, choices: Sequence, what: str):
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {tuple(choices)}")
    return value


def cutoff(name: str) -> str:
    """The name of a cutoff function of :mod:`nnptutor.cutoffs`."""
    return choice(name, CUTOFFS, "cutoff")


def flag(value, what: str) -> bool:
    """A bool (numpy's included); ``"yes"`` or 1 are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{what} must be True or False, got {value!r}")
    return bool(value)


def eta(x, what: str, positive: bool = False) -> float:
    """A Gaussian exponent η [Å⁻²], ≥ 0 (> 0 with ``positive``)."""
    value = finite(x, what)
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{what} must be {'>' if positive else '>='} 0 Å⁻², got {value}")
    return value


def r_s(x, what: str) -> float:
    """A Gaussian centre R_s [Å], ≥ 0."""
    value = finite(x, what)
    if value < 0:
        raise ValueError(f"{what} must be >= 0 Å, got {value}")
    return value


def zeta(x, what: str) -> float:
    """An angular exponent ζ ≥ 1 (dimensionless)."""
    value = finite(x, what)
    if value < 1:
        raise ValueError(f"{what} must be >= 1, got {value}")
    return value


def lambda_(x, what: str) -> float:
    """An angular sign λ = ±1."""
    value = finite(x, what)
    if value not in (-1.0, 1.0):
        raise ValueError(f"{what} must be +1 or -1, got {value}")
    return value


def tuples(entries: Iterable, name: str, fields: Sequence[str]) -> list[tuple]:
    """Each entry of ``entries`` as a tuple of len(fields) values (not yet checked)."""
    out = []
    for n, entry in enumerate(entries or []):
        try:
            entry = tuple(entry)
        except TypeError:
            entry = (entry,)
        if len(entry) != len(fields):
            raise ValueError(f"{name}[{n}] must be ({', '.join(fields)}), got {entry!r}")
        out.append(entry)
    return out


def radial(entries: Iterable, name: str, positive_eta: bool = True) -> list[tuple[float, float]]:
    """Radial parameters (η [Å⁻²], R_s [Å]): η > 0 (≥ 0 without ``positive_eta``), R_s ≥ 0."""
    return [(eta(e, f"{name}[{n}]: eta", positive_eta), r_s(r, f"{name}[{n}]: r_s"))
            for n, (e, r) in enumerate(tuples(entries, name, ("eta", "r_s")))]


def angular(entries: Iterable, name: str) -> list[tuple[float, float, float]]:
    """Angular parameters (η [Å⁻²] ≥ 0, ζ ≥ 1, λ = ±1)."""
    return [(eta(e, f"{name}[{n}]: eta"), zeta(z, f"{name}[{n}]: zeta"),
             lambda_(l, f"{name}[{n}]: lambda"))
            for n, (e, z, l) in enumerate(tuples(entries, name, ("eta", "zeta", "lambda_")))]


def widths(values: Iterable, what: str = "sigma") -> tuple[float, ...]:
    """Distinct positive widths [Å] (GMP's probe widths σ), sorted."""
    try:
        values = [float(s) for s in values]
    except (TypeError, ValueError):
        raise ValueError(f"{what}s must be a sequence of numbers in Å, got {values!r}") from None
    for s in values:
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"every {what} must be a positive width in Å, got {s}")
    if len(set(values)) != len(values):
        raise ValueError(f"{what}s contains duplicates: {values}")
    return tuple(sorted(values))

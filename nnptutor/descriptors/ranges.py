"""Value ranges of descriptor features over a data set.

Two uses (docs/acsf.md, "Choosing parameters"):

* :class:`FeatureRange` keeps the per-type (per-element) min and max of every feature over the
  training data. A structure whose features fall outside that box is an *extrapolation*:
  :class:`nnptutor.Potential` uses :meth:`FeatureRange.outside` to raise
  ``nt.ExtrapolationWarning``.
* :func:`range_report` tabulates min, max, mean and std of every feature per element and
  flags columns that are useless (constant) or redundant (near-duplicates of an earlier
  column), which is how one prunes a symmetry-function set.

Taught in notebooks/03_symmetry_functions.ipynb, "Fingerprint ranges".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


def _as_values_and_types(values_list, types_list, n_types: int):
    """Validate and concatenate lists of per-atom values and integer types."""
    if isinstance(values_list, np.ndarray):
        values_list, types_list = [values_list], [types_list]
    values_list, types_list = list(values_list), list(types_list)
    if len(values_list) != len(types_list):
        raise ValueError(
            f"values_list has {len(values_list)} entries but types_list has {len(types_list)}"
        )
    if not values_list:
        raise ValueError("values_list is empty: need at least one structure")
    values = [np.asarray(v, dtype=float) for v in values_list]
    types = [np.asarray(t).reshape(-1) for t in types_list]
    n_features = values[0].shape[1] if values[0].ndim == 2 else None
    for k, (v, t) in enumerate(zip(values, types)):
        if v.ndim != 2 or v.shape[1] != n_features:
            raise ValueError(
                f"values_list[{k}] has shape {v.shape}; expected (n_atoms, {n_features})"
            )
        if len(t) != len(v):
            raise ValueError(
                f"types_list[{k}] has {len(t)} entries but values_list[{k}] has {len(v)} rows"
            )
        if len(t) and (t.min() < 0 or t.max() >= n_types):
            raise ValueError(f"types_list[{k}] holds types outside 0..{n_types - 1}")
        if not np.isfinite(v).all():
            raise ValueError(f"values_list[{k}] contains NaN or infinite values")
    return np.concatenate(values), np.concatenate(types).astype(int)


@dataclass
class FeatureRange:
    """Per-type minimum and maximum of every feature over training data.

    Attributes
    ----------
    minimum, maximum : ndarray, shape (n_types, n_features)
        [feature units]. Types never seen in the data have ``minimum = +inf`` and
        ``maximum = -inf``, so any atom of such a type is flagged as outside.
    counts : ndarray of int, shape (n_types,)
        Number of atoms of each type seen in the data.
    """

    minimum: np.ndarray
    maximum: np.ndarray
    counts: np.ndarray = field(default=None)

    def __post_init__(self):
        self.minimum = np.asarray(self.minimum, dtype=float)
        self.maximum = np.asarray(self.maximum, dtype=float)
        if self.minimum.shape != self.maximum.shape or self.minimum.ndim != 2:
            raise ValueError(
                f"minimum {self.minimum.shape} and maximum {self.maximum.shape} must both be "
                "(n_types, n_features)"
            )
        if self.counts is None:
            self.counts = np.zeros(len(self.minimum), dtype=int)
        self.counts = np.asarray(self.counts, dtype=int)

    @property
    def n_types(self) -> int:
        return self.minimum.shape[0]

    @property
    def n_features(self) -> int:
        return self.minimum.shape[1]

    @classmethod
    def fit(cls, values_list, types_list, n_types: int) -> "FeatureRange":
        """Min and max of each feature per type.

        Parameters
        ----------
        values_list : sequence of ndarray, each shape (n_atoms, n_features)
            Features of each training structure (a single array is also accepted).
        types_list : sequence of ndarray of int, each shape (n_atoms,)
            Type (element index) of every atom.
        n_types : int
            Number of types (elements).

        Returns
        -------
        FeatureRange
        """
        values, types = _as_values_and_types(values_list, types_list, n_types)
        n_features = values.shape[1]
        minimum = np.full((n_types, n_features), np.inf)
        maximum = np.full((n_types, n_features), -np.inf)
        counts = np.bincount(types, minlength=n_types)
        for t in range(n_types):
            rows = values[types == t]
            if len(rows):
                minimum[t] = rows.min(axis=0)
                maximum[t] = rows.max(axis=0)
        return cls(minimum, maximum, counts)

    def outside_features(self, values, types, tolerance: float = 1e-3) -> np.ndarray:
        """Which feature of which atom lies outside the training range.

        An atom's feature f is outside when it is below ``min − tol·width`` or above
        ``max + tol·width``, with width = max − min of that feature for that type (a relative
        tolerance, so that rounding noise on a boundary structure is not flagged).

        Parameters
        ----------
        values : ndarray, shape (n_atoms, n_features)
        types : ndarray of int, shape (n_atoms,)
        tolerance : float
            Fraction of each feature's width allowed beyond the range, ≥ 0.

        Returns
        -------
        ndarray of bool, shape (n_atoms, n_features)
        """
        values = np.asarray(values, dtype=float)
        types = np.asarray(types).reshape(-1).astype(int)
        if values.ndim != 2 or values.shape[1] != self.n_features:
            raise ValueError(
                f"values has shape {values.shape}; expected (n_atoms, {self.n_features})"
            )
        if len(types) != len(values):
            raise ValueError(f"types has {len(types)} entries for {len(values)} atoms")
        if len(types) and (types.min() < 0 or types.max() >= self.n_types):
            raise ValueError(f"types outside 0..{self.n_types - 1}")
        if not tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {tolerance}")
        lo, hi = self.minimum[types], self.maximum[types]  # (n_atoms, n_features)
        with np.errstate(invalid="ignore"):  # inf - inf for unseen types
            width = np.nan_to_num(hi - lo, nan=0.0, posinf=0.0, neginf=0.0)
        slack = tolerance * width
        return (values < lo - slack) | (values > hi + slack) | ~np.isfinite(values)

    def outside(self, values, types, tolerance: float = 1e-3) -> np.ndarray:
        """True for every atom with at least one feature outside the training range.

        Parameters as :meth:`outside_features`.

        Returns
        -------
        ndarray of bool, shape (n_atoms,)
        """
        return self.outside_features(values, types, tolerance).any(axis=1)

    def to_dict(self) -> dict:
        """JSON-able values (infinities of unseen types become None)."""

        def clean(a):
            return [[None if not np.isfinite(x) else float(x) for x in row] for row in a]

        return {
            "minimum": clean(self.minimum),
            "maximum": clean(self.maximum),
            "counts": self.counts.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureRange":
        """Inverse of :meth:`to_dict`."""
        try:
            lo = np.array(data["minimum"], dtype=object)
            hi = np.array(data["maximum"], dtype=object)
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a FeatureRange dict: {err}") from None
        lo = np.where(lo == None, np.inf, lo).astype(float)  # noqa: E711
        hi = np.where(hi == None, -np.inf, hi).astype(float)  # noqa: E711
        return cls(lo, hi, data.get("counts"))

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, FeatureRange)
            and np.array_equal(self.minimum, other.minimum)
            and np.array_equal(self.maximum, other.maximum)
            and np.array_equal(self.counts, other.counts)
        )

    def __repr__(self) -> str:
        return (
            f"FeatureRange(n_types={self.n_types}, n_features={self.n_features}, "
            f"atoms per type={self.counts.tolist()})"
        )


@dataclass
class RangeRow:
    """One feature of one element in a :class:`RangeReport`."""

    element: str
    feature: int
    label: str
    minimum: float
    maximum: float
    mean: float
    std: float
    constant: bool
    duplicate_of: int | None  # index of an earlier feature it is nearly collinear with


@dataclass
class RangeReport:
    """Table returned by :func:`range_report`: a list of :class:`RangeRow`.

    ``repr`` prints a plain-text table, ``_repr_html_`` an HTML one (Jupyter).
    """

    rows: list
    constant_tol: float
    correlation_tol: float

    def flagged(self) -> list:
        """Rows that are constant or near-duplicates."""
        return [r for r in self.rows if r.constant or r.duplicate_of is not None]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def _cells(self, row):
        flag = "constant" if row.constant else ""
        if row.duplicate_of is not None:
            flag = f"~ duplicate of #{row.duplicate_of}"
        return [
            row.element, str(row.feature), row.label, f"{row.minimum:.4g}",
            f"{row.maximum:.4g}", f"{row.mean:.4g}", f"{row.std:.3g}", flag,
        ]

    _HEAD = ["element", "#", "feature", "min", "max", "mean", "std", "flag"]

    def __repr__(self) -> str:
        table = [self._HEAD] + [self._cells(r) for r in self.rows]
        widths = [max(len(line[c]) for line in table) for c in range(len(self._HEAD))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                 for line in table]
        n_flag = len(self.flagged())
        lines.append(f"{len(self.rows)} rows, {n_flag} flagged (constant: range < "
                     f"{self.constant_tol:g}; duplicate: |corr| > {self.correlation_tol:g})")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        head = "".join(f"<th>{h}</th>" for h in self._HEAD)
        body = []
        for r in self.rows:
            style = ' style="background:#fde2e2"' if (r.constant or r.duplicate_of is not None) else ""
            cells = "".join(f"<td>{html.escape(c)}</td>" for c in self._cells(r))
            body.append(f"<tr{style}>{cells}</tr>")
        return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def range_report(
    descriptor,
    images: Sequence,
    constant_tol: float = 1e-8,
    correlation_tol: float = 0.999,
    values_list=None,
) -> RangeReport:
    """Min, max, mean and std of every feature per element, with flags.

    A column is *constant* for an element when max − min < ``constant_tol`` (useless as an
    input); it is a *near-duplicate* when its Pearson correlation with an earlier
    non-constant column of the same element exceeds ``correlation_tol`` in absolute value
    (redundant; after scaling it only adds noise).

    Parameters
    ----------
    descriptor : Descriptor
        With ``elements``, ``feature_labels``, ``compute_many`` and ``center_types``.
    images : sequence of ase.Atoms
    constant_tol : float
        [feature units].
    correlation_tol : float
        In (0, 1].
    values_list : sequence of ndarray, optional
        Precomputed features of ``images`` (skips the featurisation).

    Returns
    -------
    RangeReport
        One row per (element, feature), elements in descriptor order.
    """
    images = list(images)
    if not images:
        raise ValueError("images is empty: need at least one structure")
    if not 0 < correlation_tol <= 1:
        raise ValueError(f"correlation_tol must be in (0, 1], got {correlation_tol}")
    if values_list is None:
        values_list = descriptor.compute_many(images, progress=False)
    types_list = [descriptor.center_types(atoms) for atoms in images]
    values, types = _as_values_and_types(values_list, types_list, len(descriptor.type_labels))
    labels = descriptor.feature_labels
    rows = []
    for t, element in enumerate(descriptor.type_labels):
        block = values[types == t]  # (n_atoms_of_type, n_features)
        if not len(block):
            continue
        lo, hi = block.min(axis=0), block.max(axis=0)
        constant = (hi - lo) < constant_tol
        std = block.std(axis=0)
        centred = (block - block.mean(axis=0)) / np.where(std > 0, std, 1.0)
        corr = centred.T @ centred / len(block)  # (n_features, n_features)
        for f in range(block.shape[1]):
            duplicate = None
            if not constant[f]:
                earlier = [g for g in range(f) if not constant[g]
                           and abs(corr[f, g]) > correlation_tol]
                duplicate = earlier[0] if earlier else None
            rows.append(RangeRow(element, f, labels[f], float(lo[f]), float(hi[f]),
                                 float(block[:, f].mean()), float(std[f]),
                                 bool(constant[f]), duplicate))
    return RangeReport(rows, constant_tol, correlation_tol)

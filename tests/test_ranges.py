import json

import numpy as np
import pytest
from ase import Atoms

from nnptutor.descriptors.ranges import FeatureRange, range_report


def _data(rng):
    values = [rng.normal(size=(5, 3)), rng.normal(size=(4, 3))]
    types = [np.array([0, 0, 1, 1, 0]), np.array([1, 1, 0, 0])]
    return values, types


def test_fit_matches_per_type_min_max():
    rng = np.random.default_rng(0)
    values, types = _data(rng)
    fr = FeatureRange.fit(values, types, n_types=3)
    allv, allt = np.concatenate(values), np.concatenate(types)
    for t in (0, 1):
        np.testing.assert_array_equal(fr.minimum[t], allv[allt == t].min(axis=0))
        np.testing.assert_array_equal(fr.maximum[t], allv[allt == t].max(axis=0))
    assert fr.counts.tolist() == [5, 4, 0]
    # the unseen type 2 has an empty range: anything of that type is outside
    assert np.isinf(fr.minimum[2]).all() and np.isinf(fr.maximum[2]).all()


def test_outside_flags_exactly_the_atoms_beyond_the_range():
    rng = np.random.default_rng(1)
    values, types = _data(rng)
    fr = FeatureRange.fit(values, types, n_types=3)
    # the training data itself is inside
    for v, t in zip(values, types):
        assert not fr.outside(v, t).any()
    probe = np.vstack([fr.minimum[0], fr.maximum[1], fr.maximum[0], fr.minimum[0]])
    probe[2, 1] += 0.5  # above the max of feature 1 for type 0
    probe[3, 2] -= 0.5  # below the min of feature 2
    flags = fr.outside_features(probe, np.array([0, 1, 0, 0]))
    assert flags.tolist() == [[False] * 3, [False] * 3, [False, True, False], [False, False, True]]
    assert fr.outside(probe, np.array([0, 1, 0, 0])).tolist() == [False, False, True, True]
    assert fr.outside(probe[:1], np.array([2])).tolist() == [True]


def test_tolerance_is_relative_to_the_width():
    fr = FeatureRange.fit([np.array([[0.0], [1.0]])], [np.array([0, 0])], n_types=1)
    assert not fr.outside(np.array([[1.0005]]), np.array([0]), tolerance=1e-3).any()
    assert fr.outside(np.array([[1.002]]), np.array([0]), tolerance=1e-3).all()
    assert fr.outside(np.array([[1.0005]]), np.array([0]), tolerance=0.0).all()


def test_dict_roundtrip_is_json_able():
    rng = np.random.default_rng(2)
    values, types = _data(rng)
    fr = FeatureRange.fit(values, types, n_types=3)
    data = json.loads(json.dumps(fr.to_dict()))
    assert FeatureRange.from_dict(data) == fr


def test_bad_input():
    with pytest.raises(ValueError, match="types outside"):
        FeatureRange.fit([np.zeros((2, 3))], [np.array([0, 5])], n_types=2)
    with pytest.raises(ValueError, match="shape"):
        FeatureRange.fit([np.zeros((2, 3)), np.zeros((2, 4))], [np.zeros(2, int)] * 2, 1)
    with pytest.raises(ValueError, match="NaN"):
        FeatureRange.fit([np.full((2, 3), np.nan)], [np.zeros(2, int)], 1)
    with pytest.raises(ValueError, match="empty"):
        FeatureRange.fit([], [], 1)
    fr = FeatureRange.fit([np.zeros((2, 3))], [np.zeros(2, int)], 1)
    with pytest.raises(ValueError, match="expected"):
        fr.outside(np.zeros((2, 4)), np.zeros(2, int))
    with pytest.raises(ValueError, match="tolerance"):
        fr.outside(np.zeros((2, 3)), np.zeros(2, int), tolerance=-1)


class _ToyDescriptor:
    """Columns: x, 2x + 1 (duplicate), a constant, x**2 (not a duplicate on symmetric data)."""

    elements = ("H", "O")
    type_labels = ("H", "O")
    feature_labels = ["x", "2x+1", "const", "x^2"]

    def center_types(self, atoms):
        return (atoms.numbers == 8).astype(int)

    def compute_many(self, images, progress=True):
        out = []
        for atoms in images:
            x = atoms.positions[:, 0]
            out.append(np.stack([x, 2 * x + 1, np.full_like(x, 3.0), x**2], axis=1))
        return out


def test_range_report_flags_constant_and_duplicate_columns():
    images = [Atoms("H3O", positions=[[x, 0, 0] for x in (-1.0, 0.0, 1.0, 2.0)]),
              Atoms("H2O2", positions=[[x, 0, 0] for x in (-2.0, 2.0, 0.5, -0.5)])]
    report = range_report(_ToyDescriptor(), images)
    assert len(report) == 8
    h = [r for r in report if r.element == "H"]
    assert [r.constant for r in h] == [False, False, True, False]
    assert [r.duplicate_of for r in h] == [None, 0, None, None]
    assert h[0].minimum == -2.0 and h[0].maximum == 2.0
    assert h[3].mean == pytest.approx(np.mean(np.array([-1, 0, 1, -2, 2.0]) ** 2))
    text = repr(report)
    assert "constant" in text and "duplicate of #0" in text
    assert "<table>" in report._repr_html_()


def test_range_report_with_acsf_flags_the_constant_columns_of_a_perfect_crystal():
    from ase.build import bulk

    from nnptutor.descriptors.acsf import ACSF

    d = ACSF(["Cu"], 4.0, g2=[(0.5, 0.0), (0.5, 0.0 + 1e-9)])  # two (nearly) equal columns
    perfect = bulk("Cu", "fcc", a=3.61, cubic=True)
    rattled = []
    for seed in range(3):
        atoms = perfect.repeat((2, 1, 1))
        atoms.rattle(0.1, seed=seed)
        rattled.append(atoms)
    report = range_report(d, rattled)
    rows = list(report)
    assert [r.label for r in rows] == d.feature_labels
    assert not any(r.constant for r in rows)  # rattling changes every column
    assert [r.duplicate_of for r in rows] == [None, None, 1]
    # one structure only: every atom sees the same environment -> all columns constant
    single = range_report(d, [perfect])
    assert all(r.constant for r in single)

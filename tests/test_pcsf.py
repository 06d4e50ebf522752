"""PairACSF: pair-centred symmetry functions (science/gmp.md §15).

References: a loop over an explicit cloud of periodic images written from the definitions,
ASE's neighbour list for the pair count, invariances with pairs matched by atom indices,
central finite differences.
"""
import json
from collections import defaultdict

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.neighborlist import neighbor_list

from nnptutor.checks import check_derivatives, finite_difference_gradient, transformed_copies
from nnptutor.descriptors import descriptor_from_dict
from nnptutor.descriptors.pcsf import PairACSF

R_CUT = 4.0


def _full(elements, r_cut=R_CUT, cutoff="cosine"):
    """Every function type, several parameters each."""
    return PairACSF(
        elements, r_cut, p1=True, p2=True, p3=[(0.3, 0.0), (0.5, 2.5)],
        p4=[(0.05, 1.0, 1.0), (0.05, 2.0, -1.0), (0.01, 4.0, 1.0)], p5=True,
        p6=[(1.0, 2.5), (0.5, 3.5)], cutoff=cutoff,
    )


def _cu_cell(seed=1):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.1, seed=seed)
    return atoms


def _cupt_cell(seed=3):
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
    atoms.numbers[[1, 2]] = 78  # two Cu, two Pt
    atoms.rattle(0.1, seed=seed)
    return atoms


def _molecule():
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.02, seed=4)
    return atoms


# --- an independent reference: explicit loops over a cloud of images --------------------
def _fc(r, r_cut):
    return np.where(r <= r_cut, 0.5 * (np.cos(np.pi * r / r_cut) + 1.0), 0.0)


def _reference_row(d, numbers, cloud_pos, cloud_idx, a, b_point):
    """Features of the pair (atom a at shift 0, cloud point b_point), from eq. (2)."""
    rc = d.r_cut
    xa, xb = cloud_pos[a], cloud_pos[b_point]  # the real atoms come first in the cloud
    R = np.linalg.norm(xb - xa)
    env = np.ones(len(cloud_pos), bool)
    env[[a, b_point]] = False
    x = cloud_pos[env]
    z = numbers[cloud_idx[env]]
    ra, rb = np.linalg.norm(x - xa, axis=1), np.linalg.norm(x - xb, axis=1)
    homo = numbers[a] == numbers[cloud_idx[b_point]]
    if homo:  # angle at n between n->A and n->B
        cos = np.einsum("na,na->n", xa - x, xb - x) / (ra * rb)
    else:  # angle at B between B->n and B->A
        cos = (x - xb) @ (xa - xb) / (rb * R)
    row = [_fc(R, rc)] if d.p2 else []
    row += [R] if d.p5 else []
    row += [np.exp(-eta * (R - rs) ** 2) * _fc(R, rc) for eta, rs in d.p6]
    for element in d.elements:
        from ase.data import atomic_numbers

        s = z == atomic_numbers[element]
        if d.p1:
            row.append(_fc(R, rc) * np.sum((_fc(ra, rc) + _fc(rb, rc))[s]))
        for eta, rs in d.p3:
            env_sum = np.exp(-eta * (ra - rs) ** 2) * _fc(ra, rc) + np.exp(-eta * (rb - rs) ** 2) * _fc(rb, rc)
            row.append(np.exp(-eta * R**2) * _fc(R, rc) * np.sum(env_sum[s]))
        for eta, zeta, lam in d.p4:
            t = (2.0 ** (1 - zeta) * (1 + lam * cos) ** zeta * np.exp(-eta * (ra**2 + rb**2 + R**2))
                 * _fc(ra, rc) * _fc(rb, rc) * _fc(R, rc))
            row.append(np.sum(t[s]))
    return np.array(row)


def _reference(d, atoms):
    """{(atom, atom, shift) of either orientation, canonical: row} for every pair."""
    n = len(atoms)
    if atoms.pbc.any():
        k = int(np.ceil(2 * d.r_cut / min(atoms.cell.lengths()))) + 1
        grid = np.array([(x, y, z) for x in range(-k, k + 1) for y in range(-k, k + 1)
                         for z in range(-k, k + 1)])
        grid = grid[np.argsort(np.abs(grid).sum(1), kind="stable")]  # shift 0 first
    else:
        grid = np.zeros((1, 3), int)
    cloud_idx = np.tile(np.arange(n), len(grid))
    cloud_shift = np.repeat(grid, n, axis=0)
    cloud_pos = atoms.positions[cloud_idx] + cloud_shift @ atoms.cell.array
    rows = {}
    for a in range(n):
        dist = np.linalg.norm(cloud_pos - cloud_pos[a], axis=1)
        for point in np.flatnonzero((dist > 0) & (dist <= d.r_cut)):
            b, S = int(cloud_idx[point]), tuple(cloud_shift[point].tolist())
            row = _reference_row(d, atoms.numbers, cloud_pos, cloud_idx, a, point)
            key = min((a, b, S), (b, a, tuple(-x for x in S)))
            if atoms.numbers[a] == atoms.numbers[b] and key in rows:
                # homonuclear: the same pair seen from B must give the same features
                np.testing.assert_allclose(row, rows[key], rtol=1e-12, atol=1e-14)
            if atoms.numbers[a] <= atoms.numbers[b]:
                rows[key] = row
    return rows


@pytest.mark.parametrize("case", ["molecule", "Cu", "CuPt"])
def test_values_equal_loop_reference(case):
    atoms, d = {
        "molecule": (_molecule(), _full(["H", "C", "O"], 3.5)),
        "Cu": (_cu_cell(), _full(["Cu"])),
        "CuPt": (_cupt_cell(), _full(["Cu", "Pt"])),
    }[case]
    values = d.compute(atoms)
    pl = d.pairs(atoms)
    reference = _reference(d, atoms)
    assert len(pl) == len(reference) == values.shape[0]
    for row, a, b, S in zip(values, pl.a, pl.b, pl.shifts):
        key = min((a, b, tuple(S.tolist())), (b, a, tuple((-S).tolist())))
        np.testing.assert_allclose(row, reference[key], rtol=1e-10, atol=1e-12)
    assert np.abs(values).max() > 0.5  # not trivially zero


def test_pair_count_and_types():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 2, 2)
    d = PairACSF.default(["Cu"], r_cut=3.0)  # first shell only: 12 neighbours
    assert len(d.pairs(atoms)) == 6 * len(atoms) == len(neighbor_list("i", atoms, 3.0)) // 2
    mixed = _cupt_cell()
    d2 = PairACSF.default(["Pt", "Cu"], r_cut=R_CUT)
    assert d2.type_labels == ("Cu-Cu", "Cu-Pt", "Pt-Pt")
    pl, types = d2.pairs(mixed), d2.center_types(mixed)
    za, zb = mixed.numbers[pl.a], mixed.numbers[pl.b]
    assert (za <= zb).all()  # A is the lighter element
    expected = np.select([(za == 29) & (zb == 29), (za == 29) & (zb == 78)], [0, 1], 2)
    np.testing.assert_array_equal(types, expected)
    assert len(pl) == len(neighbor_list("i", mixed, R_CUT)) // 2
    np.testing.assert_array_equal(d2.center_atoms(mixed), np.stack([pl.a, pl.b], axis=1))


def test_homonuclear_pair_symmetric_under_swapping_its_atoms():
    atoms = _molecule()  # atoms 0 and 1 are the two carbons
    d = _full(["H", "C", "O"], 3.5)
    swapped = atoms[[1, 0] + list(range(2, len(atoms)))]
    pl, pl_swapped = d.pairs(atoms), d.pairs(swapped)
    row = np.flatnonzero((pl.a == 0) & (pl.b == 1))[0]
    row_swapped = np.flatnonzero((pl_swapped.a == 0) & (pl_swapped.b == 1))[0]
    # same pair, roles of A and B exchanged
    np.testing.assert_allclose(d.compute(swapped)[row_swapped], d.compute(atoms)[row], rtol=1e-12)
    # a heteronuclear pair is oriented by element (A = C, B = O) and P4 takes the angle
    # at B, which here differs from the angle at n
    d_co = PairACSF(["C", "O"], 3.5, p1=False, p2=False, p4=[(0.0, 1.0, 1.0)])
    co = Atoms("COC", positions=[[0, 0, 0], [1.2, 0, 0], [1.0, 1.5, 0]])
    values, pl = d_co.compute(co), d_co.pairs(co)
    row = np.flatnonzero((pl.a == 0) & (pl.b == 1))[0]
    x_a, x_b, x_n = co.positions
    cos_at_b = (x_n - x_b) @ (x_a - x_b) / np.linalg.norm(x_n - x_b) / np.linalg.norm(x_a - x_b)
    cos_at_n = (x_a - x_n) @ (x_b - x_n) / np.linalg.norm(x_a - x_n) / np.linalg.norm(x_b - x_n)
    f = _fc(co.get_all_distances()[[0, 1, 0], [2, 2, 1]], 3.5).prod()
    column = d_co.feature_labels.index("P4[C](eta=0,zeta=1,lambda=1)")
    assert values[row, column] == pytest.approx((1 + cos_at_b) * f, rel=1e-12)
    assert abs(cos_at_b - cos_at_n) > 0.1


def _rows_by_atom_pair(d, atoms, index):
    groups = defaultdict(list)
    pl = d.pairs(atoms)
    for row, a, b in zip(d.compute(atoms), pl.a, pl.b):
        groups[tuple(sorted((int(index[a]), int(index[b]))))].append(row)
    return {key: np.array(rows) for key, rows in groups.items()}


@pytest.mark.parametrize("case", ["CuPt", "molecule"])
def test_invariances(case):
    atoms, d = {"CuPt": (_cupt_cell(), _full(["Cu", "Pt"])),
                "molecule": (_molecule(), _full(["H", "C", "O"], 3.5))}[case]
    reference = _rows_by_atom_pair(d, atoms, np.arange(len(atoms)))
    copies = transformed_copies(atoms, np.random.default_rng(0))
    assert len(copies) == (5 if case == "CuPt" else 3)
    for name, (new, index) in copies.items():
        found = _rows_by_atom_pair(d, new, index)
        assert found.keys() == reference.keys(), name
        multiplicity = len(new) // len(atoms)  # supercell: every pair appears twice
        for key, rows in found.items():
            ref = reference[key]
            assert len(rows) == multiplicity * len(ref), (name, key)
            # every row has a partner within rounding error, and vice versa
            dist = np.abs(rows[:, None, :] - ref[None, :, :]).max(axis=2)
            assert dist.min(axis=1).max() < 1e-10 and dist.min(axis=0).max() < 1e-10, name


@pytest.mark.parametrize("case", ["Cu", "CuPt", "molecule", "tanh3"])
def test_derivatives_against_finite_differences(case):
    atoms, d = {
        "Cu": (_cu_cell(), _full(["Cu"])),
        "CuPt": (_cupt_cell(), _full(["Cu", "Pt"])),
        "molecule": (_molecule(), _full(["H", "C", "O"], 3.5)),
        "tanh3": (_cupt_cell(seed=5), _full(["Cu", "Pt"], cutoff="tanh3")),
    }[case]
    report = check_derivatives(d, atoms, atoms_to_check=[0, 2, len(atoms) - 1], h=1e-5)
    assert report["max_abs_derivative"] > 0.1  # not trivially small
    assert report["max_relative_error"] < 1e-7, report


def test_sparse_layout_and_translation_sum_rule():
    atoms = _cupt_cell()
    d = _full(["Cu", "Pt"])
    values, der = d.compute_with_derivatives(atoms)
    np.testing.assert_allclose(values, d.compute(atoms), rtol=0, atol=0)
    assert der.n_centers == values.shape[0] and der.n_atoms == len(atoms)
    keys = der.center * der.n_atoms + der.neighbor
    assert len(np.unique(keys)) == len(keys)  # images folded: each (pair, atom) once
    # moving every atom by the same vector changes no feature: Σ_atoms dG/dR = 0
    total = np.zeros((der.n_centers, 3, der.n_features))
    np.add.at(total, der.center, der.values)
    assert np.abs(total).max() < 1e-12 * np.abs(der.values).max() * 100
    assert np.abs(der.values).max() > 0.1


def test_chunks_give_the_same_numbers(monkeypatch):
    from nnptutor.descriptors import pcsf

    atoms = _cupt_cell()
    d = _full(["Cu", "Pt"])
    values, der = d.compute_with_derivatives(atoms)
    monkeypatch.setattr(pcsf, "CHUNK_WORK", 50)  # a few pairs per chunk
    assert len(pcsf._chunks(np.full(len(values), 30))) > 10
    values_c, der_c = d.compute_with_derivatives(atoms)
    np.testing.assert_allclose(values_c, values, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(der_c.center, der.center)
    np.testing.assert_array_equal(der_c.neighbor, der.neighbor)
    np.testing.assert_allclose(der_c.values, der.values, rtol=1e-12, atol=1e-14)


def test_features_vanish_at_the_cutoff_except_p5():
    d = _full(["Cu"])
    dimer = Atoms("Cu3", positions=[[0, 0, 0], [R_CUT - 1e-7, 0, 0], [1.5, 2.0, 0]])
    values, pl = d.compute(dimer), d.pairs(dimer)
    row = np.flatnonzero((pl.a == 0) & (pl.b == 1))[0]
    p5 = d.feature_labels.index("P5")
    assert values[row, p5] == pytest.approx(R_CUT - 1e-7)
    assert np.abs(np.delete(values[row], p5)).max() < 1e-12


def test_no_pairs_gives_empty_arrays():
    d = PairACSF.default(["H"], r_cut=2.0)
    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 3.0]])
    values, der = d.compute_with_derivatives(atoms)
    assert values.shape == (0, d.n_features)
    assert der.values.shape == (0, 3, d.n_features) and der.n_centers == 0
    assert d.center_types(atoms).shape == (0,)


def test_default_labels_and_serialisation():
    d = PairACSF.default(["O", "H"], r_cut=5.0)
    assert d.elements == ("H", "O")
    assert d.n_features == len(d.feature_labels) == 5 + 2 * 8
    assert d.feature_labels[:2] == ["P2", "P6(eta=0.5,r_s=1.5)"]
    assert "P4[O](eta=0.02,zeta=4,lambda=-1)" in d.feature_labels
    data = json.loads(json.dumps(d.to_dict()))
    again = descriptor_from_dict(data)
    assert again == d and type(again) is PairACSF
    assert PairACSF.from_dict(data) == d
    assert _full(["H", "O"]) != d


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(r_cut=0.0), "r_cut must be a positive"),
        (dict(r_cut=-1.0), "r_cut must be a positive"),
        (dict(r_cut="far"), "r_cut must be a positive"),
        (dict(elements=["Cu", "Xx"]), "unknown chemical element"),
        (dict(p3=[(-0.1, 0.0)]), r"p3\[0\]: eta must be >= 0"),
        (dict(p6=[(0.5, -1.0)]), r"p6\[0\]: r_s must be >= 0"),
        (dict(p4=[(-0.1, 1.0, 1.0)]), r"p4\[0\]: eta must be"),
        (dict(p4=[(0.1, 0.5, 1.0)]), "zeta must be >= 1"),
        (dict(p4=[(0.1, 1.0, 0.5)]), r"lambda must be \+1 or -1"),
        (dict(p4=[(0.1, 1.0)]), r"p4\[0\] must be \(eta, zeta, lambda_\)"),
        (dict(p3=[(0.1, np.nan)]), "r_s must be finite"),
        (dict(p1=False, p2=False), "no pair symmetry functions"),
        (dict(p5="yes"), "p5 must be True or False"),
        (dict(cutoff="gauss"), "unknown cutoff"),
    ],
)
def test_bad_parameters(kwargs, match):
    args = dict(elements=["Cu"], r_cut=R_CUT) | kwargs
    with pytest.raises(ValueError, match=match):
        PairACSF(**args)


def test_bad_structures():
    d = PairACSF.default(["Cu"], r_cut=R_CUT)
    with pytest.raises(ValueError, match="not among the supported elements"):
        d.compute(_cupt_cell())
    with pytest.raises(ValueError, match="overlapping"):
        d.compute(Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 0.05]]))
    with pytest.raises(ValueError, match="empty"):
        d.compute(Atoms())
    with pytest.raises(ValueError, match="not among the supported elements"):
        d.center_types(_cupt_cell())


# --- the pair potential: E = Σ_pairs E_pair(G_AB), trained with nt.train ------------------
def _emt_images(n, seed=0):
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    images = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.6 * (1 + 0.02 * rng.normal()), cubic=True) * (2, 1, 1)
        atoms.rattle(0.08, seed=seed * 100 + k)
        atoms.calc = EMT()
        atoms.get_potential_energy(), atoms.get_forces()
        images.append(atoms)
    return images


def _fd_forces(pot, atoms, h=1e-4):
    energy = lambda a: pot.predict(a, forces=False, warn=False)["energy"]  # noqa: E731
    return -finite_difference_gradient(energy, atoms, h)


def test_pair_potential_trains_and_its_forces_match_finite_differences(tmp_path):
    import torch

    import nnptutor as nt

    torch.set_num_threads(1)
    images = _emt_images(8)
    pot = nt.PairPotential(PairACSF.default(["Cu"], r_cut=R_CUT), hidden=(8,), seed=0)
    assert pot.model.type_labels == ("Cu-Cu",)
    history = nt.train(pot, images[:6], images[6:], epochs=30, force_weight=0.3,
                       dtype="float64", progress=False)
    # learning happened: validation error well below the first epoch's
    assert history.val_energy_rmse_meV_per_atom.min() < 0.5 * history.val_energy_rmse_meV_per_atom[0]

    atoms = images[7].copy()
    atoms.calc = nt.NNPCalculator(pot, warn=False)
    forces = atoms.get_forces()
    assert np.abs(forces).max() > 0.05  # not trivially small
    np.testing.assert_allclose(forces, _fd_forces(pot, atoms), atol=1e-6)
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-10)  # no net force
    energy = atoms.get_potential_energy()
    assert atoms.calc.results["energies"].sum() == pytest.approx(energy, rel=1e-12)

    pot.save(tmp_path / "pair.pt")
    loaded = nt.Potential.load(tmp_path / "pair.pt")
    assert isinstance(loaded.descriptor, PairACSF) and loaded.descriptor == pot.descriptor
    assert loaded.predict(atoms, warn=False)["energy"] == pytest.approx(energy, rel=1e-12)


def test_pair_potential_two_elements_forces_match_finite_differences():
    import nnptutor as nt

    atoms = _cupt_cell()
    pot = nt.PairPotential(_full(["Cu", "Pt"]), hidden=(6,), seed=1)
    assert pot.model.type_labels == ("Cu-Cu", "Cu-Pt", "Pt-Pt")
    forces = pot.predict(atoms, warn=False)["forces"]
    assert np.abs(forces).max() > 0.01
    np.testing.assert_allclose(forces, _fd_forces(pot, atoms), atol=1e-7)


def test_pair_potential_needs_a_pair_descriptor():
    import nnptutor as nt
    from nnptutor.descriptors import ACSF

    with pytest.raises(ValueError, match="needs a PairACSF"):
        nt.PairPotential(ACSF.default(["Cu"], r_cut=R_CUT))


def test_pair_potential_energy_is_continuous_when_a_pair_crosses_the_cutoff():
    """A pair leaving the cutoff must take no energy with it (features_at_cutoff offset)."""
    from ase import Atoms

    from nnptutor.pair_model import PairPotential

    descriptor = PairACSF.default(["Cu"], r_cut=4.0)
    pot = PairPotential(descriptor, hidden=(8,), seed=1)
    # random scaling so the untrained network gives a clearly nonzero pair energy
    pot.feature_shift += 0.3
    energies = []
    for r in (4.0 - 1e-7, 4.0 + 1e-7):
        dimer = Atoms("Cu2", positions=[[0, 0, 0], [r, 0, 0]])
        energies.append(pot.predict(dimer, forces=False, warn=False)["energy"])
    assert abs(energies[0] - energies[1]) < 1e-9
    inside = pot.predict(Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]]), forces=False, warn=False)
    assert abs(inside["energy"] - energies[1]) > 1e-4  # the guard: pairs do carry energy

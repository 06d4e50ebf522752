import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.lj import LennardJones

from nnptutor.demos import (
    PAIR_CUTOFFS,
    CutoffPairPotential,
    benzene_derivative,
    energy_drift,
    lennard_jones,
    nve_energy_trace,
    pair_energy,
)

EPSILON, SIGMA, R_CUT = 0.0104, 3.40, 6.8  # argon [eV, Å, Å]


def _argon(seed=0):
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True) * (2, 2, 2)  # 32 atoms
    atoms.rattle(0.1, seed=seed)
    return atoms


def _energy(atoms, calc):
    atoms = atoms.copy()
    atoms.calc = calc
    return atoms.get_potential_energy()


@pytest.mark.parametrize("cutoff", PAIR_CUTOFFS)
def test_forces_are_minus_energy_gradient(cutoff):
    atoms = _argon()
    calc = CutoffPairPotential(EPSILON, SIGMA, R_CUT, cutoff)
    atoms.calc = calc
    forces = atoms.get_forces()
    # the hard cutoff is discontinuous only when a pair crosses r_c: stay away from it
    d = atoms.get_all_distances(mic=True)
    assert np.abs(d - R_CUT).min() > 1e-3
    h = 1e-5
    for atom in (0, 13):
        for a in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[atom, a] += h
            minus.positions[atom, a] -= h
            fd = -(_energy(plus, calc) - _energy(minus, calc)) / (2 * h)
            assert forces[atom, a] == pytest.approx(fd, abs=1e-7)
    assert np.abs(forces).max() > 1e-3  # not trivially small
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-12)


def test_shifted_equals_ase_lennard_jones():
    atoms = _argon(seed=1)
    atoms.calc = CutoffPairPotential(EPSILON, SIGMA, R_CUT, "shifted")
    ours = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_potential_energies()
    atoms.calc = LennardJones(epsilon=EPSILON, sigma=SIGMA, rc=R_CUT, smooth=False)
    np.testing.assert_allclose(ours[0], atoms.get_potential_energy(), rtol=1e-12)
    np.testing.assert_allclose(ours[1], atoms.get_forces(), atol=1e-12)
    np.testing.assert_allclose(ours[2], atoms.get_potential_energies(), atol=1e-12)


def test_atomic_energies_sum_to_total():
    atoms = _argon()
    atoms.calc = CutoffPairPotential(EPSILON, SIGMA, R_CUT, "cosine")
    assert atoms.get_potential_energies().sum() == pytest.approx(atoms.get_potential_energy())


def test_lennard_jones_minimum():
    r_min = 2 ** (1 / 6) * SIGMA
    value, derivative = lennard_jones(np.array([r_min, SIGMA]), EPSILON, SIGMA)
    np.testing.assert_allclose(value, [-EPSILON, 0.0], atol=1e-15)
    assert abs(derivative[0]) < 1e-15


def test_continuity_at_the_cutoff():
    r = np.array([R_CUT - 1e-9, R_CUT + 1e-9])
    jumps = {}
    for cutoff in PAIR_CUTOFFS:
        value, derivative = pair_energy(r, EPSILON, SIGMA, R_CUT, cutoff)
        jumps[cutoff] = (abs(value[1] - value[0]), abs(derivative[1] - derivative[0]))
    assert jumps["hard"][0] > 1e-4  # the energy jumps by |phi(r_c)|
    assert jumps["shifted"][0] < 1e-12 and jumps["shifted"][1] > 1e-4  # the force jumps
    for smooth in ("cosine", "tanh3"):
        assert jumps[smooth][0] < 1e-12 and jumps[smooth][1] < 1e-9


def test_smooth_cutoff_conserves_energy_hard_does_not():
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True) * (2, 2, 2)
    deviation = {}
    for cutoff in ("hard", "tanh3"):
        calc = CutoffPairPotential(EPSILON, SIGMA, R_CUT, cutoff)
        trace = nve_energy_trace(atoms, calc, n_steps=150, timestep_fs=5.0, temperature_K=60, seed=0)
        assert trace["total"].shape == trace["time_fs"].shape == (151,)
        np.testing.assert_allclose(trace["total"], trace["potential"] + trace["kinetic"])
        deviation[cutoff] = np.abs(trace["total"] - trace["total"][0]).max() / len(atoms)
    assert trace["kinetic"][0] > 0  # the atoms do move
    assert deviation["tanh3"] < 2e-5  # eV/atom
    assert deviation["hard"] > 10 * deviation["tanh3"]


def test_energy_drift_of_a_line():
    time_fs = np.linspace(0, 2000, 11)
    total = 3.0 + 0.02 * time_fs / 1000  # 20 meV/ps for 10 atoms
    assert energy_drift(time_fs, total, n_atoms=10) == pytest.approx(2.0)


def test_bad_parameters():
    with pytest.raises(ValueError, match="unknown cutoff 'smooth'"):
        CutoffPairPotential(EPSILON, SIGMA, R_CUT, "smooth")
    with pytest.raises(ValueError, match="r_cut must be positive"):
        CutoffPairPotential(EPSILON, SIGMA, 0.0)
    with pytest.raises(ValueError, match="timestep_fs must be positive"):
        nve_energy_trace(Atoms("Ar"), CutoffPairPotential(EPSILON, SIGMA, R_CUT), 10, 0.0, 10.0)


def test_overlapping_atoms_are_rejected():
    atoms = Atoms("Ar2", positions=[[0, 0, 0], [0, 0, 0.05]])
    atoms.calc = CutoffPairPotential(EPSILON, SIGMA, R_CUT)
    with pytest.raises(ValueError, match="overlapping"):
        atoms.get_potential_energy()


@pytest.mark.parametrize(
    "substituent, formula, bond",
    [("H", "C6H6", 1.09), ("F", "C6H5F", 1.35), ("OH", "C6H6O", 1.36), ("CH3", "C7H8", 1.51)],
)
def test_benzene_derivatives(substituent, formula, bond):
    atoms = benzene_derivative(substituent)
    assert atoms.get_chemical_formula(mode="hill") == formula
    assert atoms.get_distance(0, 11 if substituent != "H" else 6) == pytest.approx(bond, abs=0.01)
    d = atoms.get_all_distances()
    assert d[np.triu_indices(len(atoms), 1)].min() > 0.9  # nothing overlaps
    if substituent == "CH3":  # tetrahedral methyl
        for k, l in ((12, 13), (13, 14), (12, 14)):
            assert atoms.get_angle(k, 11, l) == pytest.approx(109.4, abs=0.5)
    with pytest.raises(ValueError, match="unknown substituent 'Cl'"):
        benzene_derivative("Cl")


# --- the house plots (nnptutor.plotting) draw what they say, with units -------------------


def test_plots_return_labelled_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnptutor import plotting

    y_true = np.array([0.0, 1.0, 2.0])
    ax = plotting.parity_plot(y_true, y_true + 0.3, unit="eV")
    assert "MAE 0.3 eV" in ax.get_legend().get_texts()[0].get_text()
    assert ax.get_xlabel() == "reference energy [eV]"

    ax = plotting.energy_trace_plot([0.0, 1000.0], [2.0, 2.5], n_atoms=5)
    np.testing.assert_allclose(ax.lines[0].get_xydata(), [[0.0, 0.0], [1.0, 100.0]])  # ps, meV/atom

    ax = plotting.plot_cutoffs(5.0, names=("cosine",))
    x, y = ax.lines[0].get_xdata(), ax.lines[0].get_ydata()
    assert y[0] == pytest.approx(1.0) and y[x > 5.0].max() == 0.0

    ax = plotting.learning_curve_plot([10, 100], [5.0, 1.0])
    assert ax.get_xscale() == ax.get_yscale() == "log" and "meV" in ax.get_ylabel()

    ax = plotting.plot_matrix(np.eye(3), labels=["a", "b", "c"])
    assert ax.images[0].get_array().shape == (3, 3)

    ax = plotting.plot_cutoff_sphere(bulk("Cu", "fcc", a=3.61, cubic=True), 0, 2.6)
    assert "12 neighbours" in ax.get_legend().get_texts()[1].get_text()  # fcc: 12 nearest
    plt.close("all")


@pytest.mark.parametrize("cutoff", PAIR_CUTOFFS)
def test_fast_trace_equals_ase_velocity_verlet(cutoff):
    from nnptutor.demos import fast_nve_energy_trace

    argon = bulk("Ar", "fcc", a=5.26, cubic=True) * (2, 2, 2)
    reference = nve_energy_trace(argon, CutoffPairPotential(EPSILON, SIGMA, R_CUT, cutoff),
                                 n_steps=60, timestep_fs=5.0, temperature_K=60, seed=3)
    fast = fast_nve_energy_trace(argon, EPSILON, SIGMA, R_CUT, cutoff, n_steps=60,
                                 timestep_fs=5.0, temperature_K=60, seed=3)
    for key in ("time_fs", "potential", "kinetic", "total"):
        np.testing.assert_allclose(fast[key], reference[key], rtol=0, atol=1e-10)
    assert np.ptp(fast["potential"]) > 1e-3  # the atoms really moved


def test_fast_trace_rebuilds_its_pair_list():
    from nnptutor.demos import fast_nve_energy_trace

    argon = bulk("Ar", "fcc", a=5.26, cubic=True) * (2, 2, 2)
    # a tiny skin forces many rebuilds; the result must not depend on it
    args = (argon, EPSILON, SIGMA, R_CUT, "tanh3", 80, 5.0, 120.0, 0)
    small, large = fast_nve_energy_trace(*args, skin=0.02), fast_nve_energy_trace(*args, skin=1.5)
    np.testing.assert_allclose(small["total"], large["total"], rtol=0, atol=1e-10)


def test_energy_error_grid_orders_the_cutoffs():
    from nnptutor.demos import energy_error_grid

    argon = bulk("Ar", "fcc", a=5.26, cubic=True) * (2, 2, 2)
    grid = energy_error_grid(argon, EPSILON, SIGMA, [6.0, 6.8], n_steps=200)
    assert grid["r_cut"].tolist() == [6.0, 6.8]
    for name in PAIR_CUTOFFS:
        assert grid[name].shape == (2,) and np.all(grid[name] >= 0)
    # pairs cross R_c at 60 K: the jump of the hard cutoff dominates every smooth one
    assert np.all(grid["hard"] > 10 * grid["tanh3"])
    assert np.all(grid["hard"] > 10 * grid["cosine"])

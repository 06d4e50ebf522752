"""The training explorer of notebook 04: runs, their figure, and the controls."""
import io

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from matplotlib.figure import Figure

import nnptutor as nt
from nnptutor.featurize import featurize
from nnptutor.training import evaluate
from nnptutor.widgets.training import (
    TrainingExplorer,
    draw_training_runs,
    run_from_potential,
    train_run,
    training_explorer,
)


@pytest.fixture(scope="module")
def copper():
    """Rattled and strained 4-atom copper cells with EMT labels: (train, validation, test)."""
    rng = np.random.default_rng(0)
    images = []
    for k in range(28):
        atoms = bulk("Cu", "fcc", a=3.61 * (1 + 0.02 * rng.standard_normal()), cubic=True)
        atoms.rattle(0.08, seed=k)
        atoms.calc = EMT()
        atoms.get_forces()
        images.append(atoms)
    data = featurize(nt.ACSF.default(["Cu"], r_cut=4.0), images, progress=False)
    return data[:16], data[16:20], data[20:]


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def test_run_reports_the_errors_of_the_trained_potential(copper):
    train_set, val_set, test_set = copper
    run = train_run(train_set, test_set, val_set, force_weight=0.3, width=8, n_train=12, steps=40)
    assert (run.force_weight, run.width, run.n_train) == (0.3, 8, 12)
    # two hidden layers of 8 on 13 features: (13+1)*8 + (8+1)*8 + (8+1)
    assert run.n_parameters == 14 * 8 + 9 * 8 + 9
    force_errors = run.forces_pred - run.forces_ref  # (n_test_atoms, 3)
    assert run.force_rmse == pytest.approx(np.sqrt(np.mean(force_errors**2)))
    energy_errors = 1000 * (run.energy_pred - run.energy_ref)  # (n_test,) meV/atom
    assert run.energy_rmse == pytest.approx(np.sqrt(np.mean(energy_errors**2)))
    assert run.forces_ref.shape == (4 * len(test_set), 3)
    assert run.settings == "w_F = 0.3 Å²/atom², 2 × 8 neurons, 12 structures"


def test_training_lowers_the_test_error(copper):
    train_set, val_set, test_set = copper
    untrained = train_run(train_set, test_set, width=8, steps=1)
    trained = train_run(train_set, test_set, width=8, steps=200)
    assert trained.force_rmse < 0.7 * untrained.force_rmse


def test_run_from_potential_matches_evaluate(copper):
    train_set, _, test_set = copper
    pot = nt.Potential(train_set.descriptor, nt.BPNN(["Cu"], train_set.descriptor.n_features,
                                                     hidden=(6, 6)))
    history = nt.train(pot, train_set, epochs=2, force_weight=1.0, progress=False)
    run = run_from_potential(pot, history, test_set, n_train=len(train_set))
    err = evaluate(pot, test_set)
    assert run.energy_rmse == err["energy_rmse_meV_per_atom"]
    assert run.force_rmse == err["force_rmse"]
    assert (run.force_weight, run.width, run.n_train) == (1.0, 6, 16)


def test_bad_training_set_size(copper):
    train_set, _, test_set = copper
    with pytest.raises(ValueError, match="n_train"):
        train_run(train_set, test_set, n_train=0)
    with pytest.raises(ValueError, match="n_train"):
        train_run(train_set, test_set, n_train=len(train_set) + 1)


def test_figure_shows_parity_errors_and_a_table(copper):
    train_set, _, test_set = copper
    runs = [train_run(train_set, test_set, width=w, steps=8) for w in (4, 8)]
    fig = draw_training_runs(runs, fig=Figure())
    parity_e, parity_f, errors, table = fig.axes
    assert "[eV/atom]" in parity_e.get_xlabel() and "[eV/Å]" in parity_f.get_ylabel()
    assert "[meV/atom]" in errors.get_xlabel() and "[eV/Å]" in errors.get_ylabel()
    # one point per run, the latest ringed
    points = errors.collections[0].get_offsets()
    np.testing.assert_allclose(points, [[r.energy_rmse, r.force_rmse] for r in runs])
    np.testing.assert_allclose(errors.collections[1].get_offsets(), points[-1:])
    lines = table.texts[0].get_text().splitlines()  # header, rule, one row per run
    assert len(lines) == 2 + len(runs) and lines[0].split()[0] == "run"
    assert "run 2" in fig.get_suptitle()
    with pytest.raises(ValueError, match="at least one run"):
        draw_training_runs([], fig=Figure())


def test_explorer_controls_have_units_and_change_the_figure(copper):
    train_set, val_set, test_set = copper
    explorer = training_explorer(train_set, test_set, val_set, steps=8)
    assert len(explorer.runs) == 1  # trained at the defaults when no run is given
    descriptions = [control.description for control in explorer.controls]
    assert all("[" in d and "]" in d for d in descriptions), descriptions
    assert all(not control.continuous_update for control in explorer.controls)
    assert explorer.button.description == "Train"
    for control, value in zip(explorer.controls, (3.0, 16, explorer.n_train.min)):
        before = _png(explorer.figure)
        control.value = value
        assert _png(explorer.figure) != before, f"{control.description} left the figure alone"
        assert explorer.pending() in explorer.figure.get_suptitle()


def test_train_button_adds_a_run_with_the_chosen_settings(copper):
    train_set, _, test_set = copper
    first = train_run(train_set, test_set, width=4, steps=8)
    explorer = TrainingExplorer(train_set, test_set, runs=[first], steps=8)
    explorer.width.value = 8
    explorer.force_weight.value = 0.0
    explorer.button.click()
    assert len(explorer.runs) == 2 and not explorer.button.disabled
    assert (explorer.runs[-1].width, explorer.runs[-1].force_weight) == (8, 0.0)
    assert "next run" not in explorer.figure.get_suptitle()  # the controls match the run shown
    assert "run 2" in explorer.figure.get_suptitle()

"""train(), featurize() and evaluate() on tiny EMT-labelled Cu sets."""
import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.fd import calculate_numerical_forces
from ase.calculators.singlepoint import SinglePointCalculator

import nnptutor as nt
from nnptutor.descriptors import ACSF
from nnptutor.potential import Potential
from nnptutor.training import FeaturizedSet, evaluate, featurize


def descriptor():
    return ACSF(["Cu"], r_cut=4.5, g2=[(0.5, 0.0), (1.0, 2.5), (2.0, 3.5)],
                g4=[(0.01, 1, 1), (0.01, 2, -1)], method="reference")


def cu_images(n=12, seed=0):
    """Strained and rattled 4- and 8-atom fcc Cu cells labelled with EMT."""
    rng = np.random.default_rng(seed)
    images = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.6 * (1 + 0.03 * rng.uniform(-1, 1)), cubic=True)
        if k % 3 == 0:
            atoms = atoms.repeat((2, 1, 1))
        atoms.rattle(0.12, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f)
        images.append(atoms)
    return images


@pytest.fixture(scope="module")
def data():
    return featurize(descriptor(), cu_images(), progress=False)


def new_potential(cls=nt.BPNN, seed=0):
    d = descriptor()
    return Potential(d, cls(d.type_labels, d.n_features, hidden=(16, 16), seed=seed))


def test_featurized_set_is_compact_and_splits(data):
    assert len(data) == 12 and data.has_forces
    assert data.derivatives[0].dtype == np.float32 and data.center[0].dtype == np.int32
    assert data.values[0].dtype == np.float64
    train, val = data.split(0.75, seed=1)
    assert (len(train), len(val)) == (9, 3)
    assert "FeaturizedSet(12 structures" in repr(data)
    assert data.nbytes > sum(d.nbytes for d in data.derivatives)


def test_featurize_threads_give_the_same_arrays_in_the_same_order():
    images = cu_images(9, seed=3)
    d = ACSF.default(["Cu"], r_cut=4.5)
    one = featurize(d, images, progress=False, n_jobs=1, chunk_size=2)
    two = featurize(d, images, progress=False, n_jobs=2, chunk_size=2)
    assert [len(v) for v in one.values] == [len(a) for a in images]  # order kept
    for name in ("values", "types", "center", "neighbor", "derivatives"):
        for a, b in zip(getattr(one, name), getattr(two, name)):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="n_jobs"):
        featurize(d, images, n_jobs=0)


def test_featurize_processes_give_the_same_arrays_in_the_same_order(capsys):
    """Worker processes (what large jobs use) give the single-process result bit for bit,
    in order, with a progress bar that reaches the end."""
    images = cu_images(9, seed=4)
    d = ACSF.default(["Cu"], r_cut=4.5)
    one = featurize(d, images, progress=False, n_jobs=1, chunk_size=2)
    capsys.readouterr()
    two = featurize(d, images, progress=True, n_jobs=2, chunk_size=2, backend="processes")
    assert "9/9" in capsys.readouterr().err
    assert [len(v) for v in two.values] == [len(a) for a in images]
    for name in ("values", "types", "center", "neighbor", "derivatives", "forces"):
        for a, b in zip(getattr(one, name), getattr(two, name)):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    features = [featurize(d, images, derivatives=False, progress=False, n_jobs=n,
                          chunk_size=4, backend=backend)
                for n, backend in ((1, "auto"), (2, "processes"))]
    assert features[1].derivatives is None
    for a, b in zip(features[0].values, features[1].values):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="backend"):
        featurize(d, images, backend="fork")


def assert_same_sets(one, two):
    """Two FeaturizedSets hold the same arrays, bit for bit, in the same order."""
    for name in ("values", "types", "center", "neighbor", "derivatives", "forces"):
        for a, b in zip(getattr(one, name), getattr(two, name)):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(one.energies, two.energies)


def test_featurize_falls_back_to_threads_when_workers_cannot_run(monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    import nnptutor.featurize as featurize_module

    class Broken:  # a pool whose workers died at start-up
        def submit(self, *args, **kwargs):
            raise BrokenProcessPool("a worker process terminated abruptly")

    images = cu_images(4)
    d = ACSF.default(["Cu"], r_cut=4.5)
    reference = featurize(d, images, progress=False, n_jobs=1, chunk_size=2)
    monkeypatch.setattr(featurize_module, "_process_pool", lambda n_jobs: Broken())
    with pytest.raises(BrokenProcessPool):
        featurize(d, images, progress=False, n_jobs=2, chunk_size=2, backend="processes")
    monkeypatch.setattr(featurize_module, "PROCESS_MIN_ATOMS", 1)  # "auto" would use processes
    with pytest.warns(RuntimeWarning, match="threads instead"):
        fallback = featurize(d, images, progress=False, n_jobs=2, chunk_size=2)
    assert_same_sets(reference, fallback)


def test_featurize_runs_in_any_executor():
    """A standard process pool gives the single-process result bit for bit, in order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    images = cu_images(7, seed=5)
    d = ACSF.default(["Cu"], r_cut=4.5)
    reference = featurize(d, images, progress=False, n_jobs=1, chunk_size=3)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        pooled = featurize(d, images, progress=False, chunk_size=3, executor=pool)
    assert_same_sets(reference, pooled)


def test_featurize_on_a_dask_cluster():
    distributed = pytest.importorskip("dask.distributed", reason="dask is in the test extra")
    images = cu_images(5, seed=6)
    d = ACSF.default(["Cu"], r_cut=4.5)
    reference = featurize(d, images, progress=False, n_jobs=1, chunk_size=2)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = featurize(d, images, progress=False, chunk_size=2,
                           executor=client.get_executor())
    assert_same_sets(reference, remote)


def test_featurize_processes_need_a_descriptor_that_round_trips():
    class Unregistered(ACSF):  # not in the registry: a worker cannot rebuild it
        pass

    d = Unregistered(["Cu"], r_cut=4.5, g2=[(0.5, 0.0)])
    with pytest.raises(ValueError, match="cannot be rebuilt"):
        featurize(d, cu_images(4), n_jobs=2, chunk_size=2, backend="processes")
    with pytest.raises(ValueError, match="cannot be rebuilt"):
        featurize(d, cu_images(4), executor=object())
    auto = featurize(d, cu_images(4), progress=False, n_jobs=2, chunk_size=2)  # threads
    assert len(auto) == 4


@pytest.mark.parametrize("cls", [nt.BPNN, nt.SingleNN])
def test_training_lowers_energy_and_force_errors(data, cls):
    pot = new_potential(cls)
    history = nt.train(pot, data, epochs=1, lr=1e-9, lr_final=1e-9, progress=False)
    before = evaluate(pot, data)
    history = nt.train(pot, data, epochs=30, progress=False)
    after = evaluate(pot, data)
    assert len(history) == 30 and history.stopped == "epochs"
    assert after["energy_rmse_meV_per_atom"] < 0.5 * before["energy_rmse_meV_per_atom"]
    assert after["force_rmse"] < 0.7 * before["force_rmse"]
    assert history.train_force_rmse[-1] < history.train_force_rmse[0]


def test_training_forces_equal_predicted_forces(data):
    """The batched chain rule of training and the VJP of predict agree."""
    pot = new_potential()
    nt.train(pot, data, epochs=2, progress=False)
    out = evaluate(pot, data)
    n0 = data.n_atoms[0]
    predicted = pot.predict(cu_images()[0])
    assert predicted["energy"] / n0 == pytest.approx(out["energy_per_atom_pred"][0], abs=1e-12)
    # stored derivatives are float32: agreement to about 1e-7 relative
    np.testing.assert_allclose(out["forces_pred"][:n0], predicted["forces"], atol=1e-5)


def test_trained_forces_are_minus_energy_gradient(data):
    pot = new_potential()
    nt.train(pot, data, epochs=10, progress=False)
    atoms = cu_images()[1]
    forces = pot.predict(atoms)["forces"]
    atoms.calc = nt.NNPCalculator(pot, warn=False)
    fd = calculate_numerical_forces(atoms, 1e-4, iatoms=[0, 3])  # −dE/dR, (2, 3) [eV/Å]
    np.testing.assert_allclose(forces[[0, 3]], fd, rtol=0, atol=1e-6)
    assert np.abs(forces).max() > 0.1  # not trivially small


def test_same_seed_same_weights(data):
    pots = [new_potential(), new_potential(), new_potential()]
    for pot, seed in zip(pots, (4, 4, 5)):
        nt.train(pot, data, epochs=3, seed=seed, progress=False)
    s0, s1, s2 = (p.model.state_dict() for p in pots)
    assert all(torch.equal(s0[k], s1[k]) for k in s0)
    assert not all(torch.equal(s0[k], s2[k]) for k in s0)


def test_early_stopping_restores_best_weights(data):
    train, val = data.split(0.75, seed=0)
    pot = new_potential()
    history = nt.train(pot, train, val, epochs=40, lr=3e-2, lr_final=3e-2, patience=3,
                       dtype="float64", progress=False)
    best = history.best
    assert history.best_epoch == int(np.nanargmin(
        (history.val_energy_rmse_meV_per_atom / 1000) ** 2 + 0.3 * history.val_force_rmse**2))
    now = evaluate(pot, val)
    assert now["energy_rmse_meV_per_atom"] == pytest.approx(best["val_energy_rmse_meV_per_atom"], rel=1e-9)
    assert now["force_rmse"] == pytest.approx(best["val_force_rmse"], rel=1e-9)
    if history.stopped == "early stopping":
        assert len(history) == history.best_epoch + 4
    assert "best epoch" in repr(history)


def test_lbfgs_lowers_the_loss(data):
    pot = new_potential()
    nt.train(pot, data, epochs=1, lr=1e-9, lr_final=1e-9, progress=False)
    before = evaluate(pot, data)["force_rmse"]
    history = nt.train(pot, data, epochs=3, optimizer="lbfgs", progress=False)
    assert evaluate(pot, data)["force_rmse"] < 0.7 * before
    assert len(history) == 3


def test_time_budget_and_threads_restored(data):
    threads = torch.get_num_threads()
    pot = new_potential()
    history = nt.train(pot, data, max_time_s=1.0, progress=False, n_threads=1)
    assert history.stopped == "time budget"
    assert history.lr[-1] == pytest.approx(1e-4, rel=0.5)  # decayed over the budget
    assert torch.get_num_threads() == threads


def test_energy_only_training_and_images_input():
    images = cu_images(4, seed=3)
    pot = new_potential()
    history = nt.train(pot, images, epochs=2, force_weight=0.0, progress=False)
    assert np.isnan(history.train_force_rmse).all()
    assert np.isfinite(history.train_energy_rmse_meV_per_atom).all()


def test_pair_centred_descriptor_trains_with_the_same_code():
    d = nt.PairACSF(["Cu"], 4.0, p1=False, p2=False, p4=[(0.05, 1.0, 1.0), (0.05, 2.0, -1.0)],
                    p6=[(1.0, 2.5), (0.5, 3.5)])
    pot = Potential(d, nt.BPNN(d.type_labels, d.n_features, hidden=(8,)))
    data = featurize(d, cu_images(6), progress=False)
    nt.train(pot, data, epochs=1, lr=1e-9, lr_final=1e-9, progress=False)
    before = evaluate(pot, data)
    nt.train(pot, data, epochs=15, progress=False)
    after = evaluate(pot, data)
    assert after["force_rmse"] < before["force_rmse"]
    atoms = cu_images(6)[0]
    assert pot.predict(atoms)["energy"] / len(atoms) == pytest.approx(
        after["energy_per_atom_pred"][0], abs=1e-9)


def test_history_plot(data):
    import matplotlib

    matplotlib.use("Agg")
    train, val = data.split(0.5)
    history = nt.train(new_potential(), train, val, epochs=2, progress=False)
    axes = history.plot()
    assert len(axes) == 2 and len(axes[0].lines) == 2


def test_bad_input(data):
    pot = new_potential()
    with pytest.raises(ValueError, match="optimizer"):
        nt.train(pot, data, optimizer="sgd", progress=False)
    with pytest.raises(ValueError, match="dtype"):
        nt.train(pot, data, dtype="float16", progress=False)
    for bad in (dict(epochs=0), dict(batch_size=2.5), dict(lr=-1.0), dict(force_weight=-0.1),
                dict(max_time_s=float("nan")), dict(patience=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            nt.train(pot, data, progress=False, **bad)
    with pytest.raises(TypeError, match="learning_rate"):
        nt.train(pot, data, learning_rate=1e-3)
    other = ACSF(["Cu"], r_cut=4.0, g2=[(0.5, 0.0)], method="reference")
    with pytest.raises(ValueError, match="different descriptor"):
        nt.train(Potential(other, nt.BPNN(["Cu"], other.n_features)), data, progress=False)
    unlabelled = bulk("Cu", "fcc", a=3.6, cubic=True)
    with pytest.raises(ValueError, match="structure 0 has no reference energy"):
        featurize(descriptor(), [unlabelled], progress=False)
    gold = cu_images(1)[0]
    gold.numbers[0] = 79
    with pytest.raises(ValueError, match="structure 0: .*Au"):
        featurize(descriptor(), [gold], progress=False)
    assert isinstance(data[[0, 2]], FeaturizedSet) and len(data[[0, 2]]) == 2

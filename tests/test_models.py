"""BPNN and SingleNN: gradients (gradcheck), architecture, reproducibility, bad input."""
import numpy as np
import pytest
import torch

from nnptutor.models import BPNN, SingleNN

MODELS = [BPNN, SingleNN]


def _inputs(n_centers=7, n_features=5, n_types=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_centers, n_features, dtype=torch.float64, generator=g)
    types = torch.arange(n_centers) % n_types
    return x, types


@pytest.mark.parametrize("cls", MODELS)
def test_gradcheck_features_and_parameters(cls):
    model = cls(["Cu", "Ni"], n_features=5, hidden=(6, 4), activation="tanh")
    assert model.dtype == torch.float64  # float64 by default
    x, types = _inputs()
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: model(x, types), (x,))
    # second derivatives are what force training differentiates through
    assert torch.autograd.gradgradcheck(lambda x: model(x, types).sum(), (x,))
    params = list(model.parameters())

    def of_params(*p):
        return torch.func.functional_call(model, dict(zip(dict(model.named_parameters()), p)),
                                          (x.detach(), types))

    assert torch.autograd.gradcheck(of_params, tuple(p.detach().requires_grad_() for p in params))


def test_bpnn_uses_the_network_of_each_centers_type():
    model = BPNN(["Cu", "Ni"], n_features=5, hidden=(8,))
    x, types = _inputs()
    before = model(x, types).detach()
    with torch.no_grad():
        for p in model.networks["Ni"].parameters():
            p.add_(1.0)
    after = model(x, types).detach()
    assert model.type_labels == ("Ni", "Cu")  # sorted by atomic number: 28 < 29
    ni = types == 0
    assert torch.equal(before[~ni], after[~ni])
    assert (before[ni] != after[ni]).all()


def test_singlenn_reads_the_output_of_its_own_type():
    model = SingleNN(["Cu", "Ni"], n_features=5, hidden=(8, 8))
    x, types = _inputs()
    full = model.network(x)  # (n_centers, n_types)
    assert torch.equal(model(x, types), full[torch.arange(len(x)), types])


def test_parameter_counts_follow_the_formulas():
    d, h1, h2, k = 14, 20, 20, 6
    elements = ["Li", "Si", "Ni", "Cu", "Ge", "Mo"]
    assert SingleNN(elements, d, hidden=(h1, h2)).n_parameters == (d + 1) * h1 + (h1 + 1) * h2 + (h2 + 1) * k == 846
    assert BPNN(elements, d, hidden=(h1, h2)).n_parameters == k * ((d + 1) * h1 + (h1 + 1) * h2 + h2 + 1) == 4446


@pytest.mark.parametrize("cls", MODELS)
def test_energies_follow_a_permutation_of_centers(cls):
    model = cls(["H", "O"], n_features=5, hidden=(8, 8))
    x, types = _inputs(9)
    perm = torch.from_numpy(np.random.default_rng(1).permutation(9))
    assert torch.allclose(model(x[perm], types[perm]), model(x, types)[perm], rtol=0, atol=1e-14)


@pytest.mark.parametrize("cls", MODELS)
def test_seeded_initialisation_leaves_global_rng_alone(cls):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = cls(["Cu"], 4, seed=5)
    b = cls(["Cu"], 4, seed=5)
    c = cls(["Cu"], 4, seed=6)
    assert torch.equal(torch.rand(3), expected)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_element_order_is_normalised_and_pair_labels_kept():
    assert BPNN(["O", "H"], 3).type_labels == ("H", "O")
    assert BPNN(["Cu-Cu", "Cu-Ni", "Ni-Ni"], 3).type_labels == ("Cu-Cu", "Cu-Ni", "Ni-Ni")


def test_float32_option_and_repr():
    model = SingleNN(["Cu"], 4, hidden=(3,), dtype="float32")
    assert model.dtype == torch.float32
    assert "SingleNN(elements=['Cu'], n_features=4" in repr(model)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(elements=["Cu", "Cu"], n_features=3), "duplicates"),
        (dict(elements=[], n_features=3), "at least one"),
        (dict(elements=["Cu"], n_features=0), "n_features"),
        (dict(elements=["Cu"], n_features=3, hidden=(0,)), "hidden"),
        (dict(elements=["Cu"], n_features=3, activation="relu6"), "activation"),
        (dict(elements=["Cu"], n_features=3, dtype="float16"), "dtype"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BPNN(**kwargs)


@pytest.mark.parametrize("cls", MODELS)
def test_bad_feature_shapes(cls):
    model = cls(["Cu"], 4)
    with pytest.raises(ValueError, match="features must have shape"):
        model(torch.zeros(3, 5, dtype=torch.float64), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="types must have shape"):
        model(torch.zeros(3, 4, dtype=torch.float64), torch.zeros(2, dtype=torch.long))

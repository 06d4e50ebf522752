r"""Atomic neural networks: features of each centre -> its energy contribution.

Two architectures share one interface, ``model(features, types) -> energies``:

* :class:`BPNN` (Behler & Parrinello 2007): one network per centre type (element),
  held in a ``torch.nn.ModuleDict`` as in TorchANI.
* :class:`SingleNN` (Liu & Kitchin 2020): hidden layers shared by every centre, one output
  node per type; a centre reads the node of its own type.

.. math:: E = \sum_i E_i, \qquad E_i = \mathrm{NN}_{t_i}(\tilde G_i)

Models know nothing about atoms: they see scaled features and an integer type per centre
(an element for atom-centred descriptors, an element pair for :class:`PairACSF`).
Parameters are float64 by default; :func:`nnptutor.train` may train a float32 copy.

Taught in notebooks/04_behler_parrinello.ipynb and notebooks/05_singlenn.ipynb.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from nnptutor.structures import normalize_elements

#: activation name -> torch module class
ACTIVATIONS = {
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "celu": nn.CELU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _type_labels(elements) -> tuple[str, ...]:
    """Chemical symbols are sorted by atomic number (as descriptors do); other labels
    (element pairs such as ``"Cu-Cu"``) are kept in the order given."""
    if isinstance(elements, str):
        elements = [elements]
    labels = [str(label) for label in elements]
    if not labels:
        raise ValueError("elements must name at least one centre type")
    if len(set(labels)) != len(labels):
        raise ValueError(f"elements contains duplicates: {labels}")
    try:
        return normalize_elements(labels)
    except ValueError:
        for label in labels:
            if not label or "." in label:
                raise ValueError(f"invalid type label {label!r} (empty or containing '.')")
        return tuple(labels)


def _mlp(n_in: int, hidden: Sequence[int], n_out: int, activation: str) -> nn.Sequential:
    layers, width = [], n_in
    for h in hidden:
        layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


class AtomicModel(nn.Module):
    """Shared validation, construction arguments and helpers of :class:`BPNN` and :class:`SingleNN`.

    Parameters
    ----------
    elements : sequence of str
        Centre types, one network (BPNN) or output (SingleNN) each. Chemical symbols are
        sorted by atomic number, as in the descriptors.
    n_features : int
        Length of each centre's feature vector.
    hidden : sequence of int
        Widths of the hidden layers.
    activation : str
        One of :data:`ACTIVATIONS`.
    seed : int
        Seed of the weight initialisation (the global torch RNG is left untouched).
    dtype : {"float64", "float32"}
        Parameter precision.
    """

    def __init__(self, elements, n_features, hidden=(64, 64), activation="silu",
                 seed=0, dtype="float64"):
        super().__init__()
        self.type_labels = _type_labels(elements)
        if int(n_features) != n_features or n_features < 1:
            raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
        hidden = tuple(int(h) for h in hidden)
        if any(h < 1 for h in hidden):
            raise ValueError(f"hidden layer widths must be positive, got {hidden}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        if str(dtype).replace("torch.", "") not in _DTYPES:
            raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
        self.n_features = int(n_features)
        self.hidden = hidden
        self.activation = activation
        self.seed = int(seed)
        # fork_rng: a reproducible initialisation that leaves the caller's RNG state alone
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self._build()
        self.to(_DTYPES[str(dtype).replace("torch.", "")])

    def _build(self):
        raise NotImplementedError

    @property
    def elements(self) -> tuple[str, ...]:
        return self.type_labels

    @property
    def n_types(self) -> int:
        return len(self.type_labels)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters())

    def config(self) -> dict:
        """Constructor arguments as JSON-able values (stored in model files)."""
        return {
            "elements": list(self.type_labels),
            "n_features": self.n_features,
            "hidden": list(self.hidden),
            "activation": self.activation,
            "seed": self.seed,
        }

    def _check_input(self, features: torch.Tensor, types: torch.Tensor):
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise ValueError(
                f"features must have shape (n_centers, {self.n_features}), "
                f"got {tuple(features.shape)}"
            )
        if types.shape != features.shape[:1]:
            raise ValueError(
                f"types must have shape ({features.shape[0]},), got {tuple(types.shape)}"
            )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(elements={list(self.type_labels)}, "
            f"n_features={self.n_features}, hidden={self.hidden}, "
            f"activation={self.activation!r}, n_parameters={self.n_parameters}, "
            f"dtype={str(self.dtype).replace('torch.', '')})"
        )


class BPNN(AtomicModel):
    r"""Behler–Parrinello network: one multilayer perceptron per centre type.

    :math:`E_i = \mathrm{NN}_{t_i}(\tilde G_i)` with a separate network for each type.
    Parameters: ``K [(D+1) H_1 + (H_1+1) H_2 + (H_2+1)]`` for K types and D features.
    See :class:`AtomicModel` for the arguments.

    Examples
    --------
    >>> model = BPNN(["Cu"], n_features=17, hidden=(64, 64))
    >>> model(torch.zeros(5, 17, dtype=torch.float64), torch.zeros(5, dtype=torch.long)).shape
    torch.Size([5])
    """

    def _build(self):
        self.networks = nn.ModuleDict({
            label: _mlp(self.n_features, self.hidden, 1, self.activation)
            for label in self.type_labels
        })

    def forward(self, features: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """Energy of every centre.

        Parameters
        ----------
        features : Tensor, shape (n_centers, n_features)
            Scaled features.
        types : Tensor of int, shape (n_centers,)
            Index into ``type_labels`` of every centre.

        Returns
        -------
        Tensor, shape (n_centers,)
            Centre energies [eV] (before reference energies are added).
        """
        self._check_input(features, types)
        if self.n_types == 1:
            return self.networks[self.type_labels[0]](features).squeeze(1)
        energies = features.new_zeros(features.shape[0])
        for t, label in enumerate(self.type_labels):
            index = torch.nonzero(types == t).squeeze(1)  # (n_centers_of_type,)
            if index.numel():
                out = self.networks[label](features[index]).squeeze(1)
                energies = energies.index_put((index,), out)
        return energies


class SingleNN(AtomicModel):
    r"""SingleNN (Liu & Kitchin, J. Phys. Chem. C 124, 17811, 2020): shared hidden layers,
    one output node per type; centre i reads node :math:`t_i`.

    :math:`E_i = [W_{out} h(\tilde G_i) + b_{out}]_{t_i}`.
    Parameters: ``(D+1) H_1 + (H_1+1) H_2 + (H_2+1) K``. Every centre must share one
    feature layout. See :class:`AtomicModel` for the arguments.
    """

    def _build(self):
        self.network = _mlp(self.n_features, self.hidden, self.n_types, self.activation)

    def forward(self, features: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """Energy of every centre; arguments and return value as in :meth:`BPNN.forward`."""
        self._check_input(features, types)
        out = self.network(features)  # (n_centers, n_types)
        return out.gather(1, types.long().unsqueeze(1)).squeeze(1)  # (n_centers,)


#: model class name -> class; model files may only name these
MODELS = {"BPNN": BPNN, "SingleNN": SingleNN}

"""nnptutor: a course on neural-network interatomic potentials, and the library behind it.

Data flow, one direction::

    ase.Atoms -> neighbors -> descriptors -> models -> Potential -> NNPCalculator -> ASE MD

Names are loaded on first use, so ``import nnptutor`` is quick and changes no global state
(torch is imported only when a model is needed).
"""
from importlib import import_module

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "set_seed": "nnptutor._random",
    "check_environment": "nnptutor.environment",
    "ExtrapolationWarning": "nnptutor.exceptions",
    "CoulombMatrix": "nnptutor.descriptors",
    "ACSF": "nnptutor.descriptors",
    "GMP": "nnptutor.descriptors",
    "PairACSF": "nnptutor.descriptors",
    "BPNN": "nnptutor.models",
    "SingleNN": "nnptutor.models",
    "Potential": "nnptutor.potential",
    "train": "nnptutor.training",
    "TrainingHistory": "nnptutor.training",
    "NNPCalculator": "nnptutor.calculator",
    "Committee": "nnptutor.committee",
    "active_learning": "nnptutor.active_learning",
    "ActiveLearningSettings": "nnptutor.active_learning",
    "ActiveLearningHistory": "nnptutor.active_learning",
    "PairPotential": "nnptutor.pair_model",
}
_SUBMODULES = {
    "data", "structures", "neighbors", "cutoffs", "descriptors", "models", "potential",
    "training", "calculator", "committee", "plotting", "widgets", "checks", "environment",
    "pair_model", "exceptions", "active_learning", "exploration", "export", "featurize",
}

__all__ = sorted(set(_LAZY) | _SUBMODULES)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = import_module(f"nnptutor.{name}")
    else:
        raise AttributeError(f"module 'nnptutor' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return __all__

"""Descriptors: structure -> per-atom feature vectors (and their position derivatives).

One descriptor per module behind the small base class in :mod:`.base`.
"""
from importlib import import_module

from nnptutor.descriptors.base import _REGISTRY, Descriptor, SparseDerivatives

_LAZY = {
    "CoulombMatrix": "nnptutor.descriptors.coulomb",
    "ACSF": "nnptutor.descriptors.acsf",
    "GMP": "nnptutor.descriptors.gmp",
    "PairACSF": "nnptutor.descriptors.pcsf",
}

__all__ = ["Descriptor", "SparseDerivatives", "descriptor_from_dict", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nnptutor.descriptors' has no attribute {name!r}")


def descriptor_from_dict(data: dict):
    """Rebuild a descriptor from :meth:`Descriptor.to_dict` output.

    Only the descriptors of this package can be built, by name, from plain JSON-able
    values: loading a model file never imports or executes code named in the file. Only
    the named descriptor's module is imported.
    """
    name = data.get("name") if isinstance(data, dict) else None
    if name not in _LAZY:
        raise ValueError(f"unknown descriptor {name!r} in saved data; known: {sorted(_LAZY)}")
    __getattr__(name)  # imports its module, which registers the class
    return _REGISTRY[name].from_dict(data)

"""Descriptors: structure -> per-atom feature vectors (and their position derivatives).

One descriptor per module behind the small base class in :mod:`.base`.
"""
from importlib import import_module

from nnptutor.descriptors.base import (
    Descriptor,
    SparseDerivatives,
    descriptor_from_dict,
)

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


def _load_all():
    """Import every descriptor module so each registers itself for descriptor_from_dict."""
    for name in _LAZY:
        try:
            __getattr__(name)
        except ImportError:
            pass

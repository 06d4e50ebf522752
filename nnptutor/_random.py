"""Reproducible randomness: one call seeds Python, NumPy and PyTorch."""
import random

import numpy as np


def set_seed(seed: int = 0) -> np.random.Generator:
    """Seed ``random``, NumPy's legacy global state and PyTorch; return a fresh Generator.

    Library functions never draw from global state: they take ``seed`` or ``rng``.
    This function exists for notebooks and scripts, so that a student's own code
    (and third-party code such as ASE's velocity initialisation) is reproducible.

    Parameters
    ----------
    seed : int
        Non-negative integer seed.

    Returns
    -------
    numpy.random.Generator
        ``np.random.default_rng(seed)``, for the caller's own draws.
    """
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:  # torch is a hard dependency, but set_seed should not need it
        pass
    else:
        torch.manual_seed(seed)
    return np.random.default_rng(seed)

"""Warnings and errors specific to nnptutor."""


class ExtrapolationWarning(UserWarning):
    """A structure has fingerprints outside the range seen in training.

    A neural network interpolates well inside the range of its training fingerprints and
    can be arbitrarily wrong outside it (docs/acsf.md, "Choosing parameters").
    """

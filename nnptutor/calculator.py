"""ASE calculator for a trained :class:`Potential` (or a committee of them).

Follows ASE's Calculator contract (``implemented_properties``, ``calculate``,
``self.results``), so the potential drives ASE's MD integrators and optimisers.
Forces come from one vector–Jacobian product through the descriptor per step
(:meth:`Descriptor.compute_with_vjp`); no derivative array is stored.

Stress is not implemented: the sparse derivatives fold periodic images onto real atoms,
which loses the image vectors a virial needs.

Taught in notebooks/04_behler_parrinello.ipynb, "MD with the model".
"""
from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from nnptutor.potential import warn_extrapolation


class NNPCalculator(Calculator):
    """Energy, per-atom energies and forces from a :class:`Potential` or a committee.

    Parameters
    ----------
    potential : Potential or Committee
        Anything with ``predict(atoms, forces=True, warn=False) -> dict`` holding
        ``energy`` [eV], ``forces`` (n_atoms, 3) [eV/Å], ``energies`` (n_atoms,) [eV] and
        ``extrapolating`` (n_atoms,) bool. Extra float or array entries (a committee's
        ``energy_std``, ``forces_std``) are copied into ``results`` too.
    warn : bool
        Issue :class:`nnptutor.ExtrapolationWarning` naming the atoms whose features leave
        the training range. The per-atom flag is always in ``results["extrapolating"]``.

    Examples
    --------
    >>> atoms.calc = NNPCalculator(pot)                       # doctest: +SKIP
    >>> atoms.get_potential_energy(), atoms.get_forces()      # doctest: +SKIP
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces"]

    def __init__(self, potential, warn: bool = True, **kwargs):
        if not callable(getattr(potential, "predict", None)):
            raise ValueError(
                f"NNPCalculator needs a Potential or Committee, got {type(potential).__name__}"
            )
        super().__init__(**kwargs)
        self.potential = potential
        self.warn = warn
        extra = getattr(potential, "extra_properties", ())
        self.implemented_properties = list(type(self).implemented_properties) + list(extra)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        need_forces = "forces" in properties or "forces_std" in properties
        out = self.potential.predict(self.atoms, forces=need_forces, warn=False)
        self.results = {}
        for key, value in out.items():
            if value is None:
                continue
            self.results[key] = float(value) if np.ndim(value) == 0 and key != "extrapolating" else value
        self.results["free_energy"] = self.results["energy"]
        flags = np.asarray(out.get("extrapolating", np.zeros(len(self.atoms), bool)))
        self.results["extrapolating"] = flags
        if self.warn and flags.any():
            warn_extrapolation(flags, stacklevel=4)

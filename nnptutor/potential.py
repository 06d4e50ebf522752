r"""A trained potential: descriptor + feature scaling + model + reference energies + range.

.. math::

    E = \sum_{c} \mathrm{NN}_{t_c}\big((G_c - \mu_{t_c}) / \sigma_{t_c}\big)
        + \sum_{i \in \text{atoms}} \varepsilon_{Z_i},
    \qquad
    \mathbf F_k = -\sum_c \frac{\partial E}{\partial G_c} \cdot \frac{\partial G_c}{\partial \mathbf R_k}

c runs over the descriptor's centres (atoms, or atom pairs for :class:`PairACSF`) and
t_c is the centre's type; ε_Z are per-element reference energies fitted by least squares on
the training compositions, so that the network only learns what the composition does not
explain. Forces use the descriptor's vector–Jacobian product
(:meth:`Descriptor.compute_with_vjp`), which never builds a dense derivative array.

Model files are one ``torch.save`` file holding tensors and one JSON string, read back with
``torch.load(weights_only=True)``: loading never unpickles objects or runs code.

Taught in notebooks/04_behler_parrinello.ipynb.
"""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import torch
from ase import Atoms

from nnptutor.descriptors.base import descriptor_from_dict
from nnptutor.exceptions import ExtrapolationWarning
from nnptutor.models import MODELS, AtomicModel

FORMAT = "nnptutor-potential"
FORMAT_VERSION = 1


def scaled_center_energies(model, shift, scale, features, types):
    """Centre energies of features scaled per type: ``model((G − μ[t]) / σ[t], t)``.

    Parameters
    ----------
    model : AtomicModel
    shift, scale : Tensor, shape (n_types, n_features)
        μ and σ per type [feature units].
    features : Tensor, shape (n_centers, n_features)
        Raw features (gradients with respect to these are what the chain rule needs).
    types : Tensor of int, shape (n_centers,)

    Returns
    -------
    Tensor, shape (n_centers,)
        [eV], without reference energies.

    Notes
    -----
    If ``model.vanishing_features`` is set (pair-centred descriptors, see
    :meth:`Descriptor.features_at_cutoff`), the energy of a centre with those features is
    subtracted, so that a pair crossing the cutoff changes E continuously.
    """
    energies = model((features - shift[types]) / scale[types], types)
    null = getattr(model, "vanishing_features", None)
    if null is not None:
        null = null.to(features.dtype).expand(len(types), -1)  # (n_centers, n_features)
        energies = energies - model((null - shift[types]) / scale[types], types)
    return energies


class Potential:
    """Descriptor + per-type feature scaling + model + reference energies + feature range.

    Parameters
    ----------
    descriptor : Descriptor
        Any nnptutor descriptor; its ``type_labels`` must equal the model's.
    model : BPNN or SingleNN
        With ``n_features == descriptor.n_features``.
    reference_energies : dict, optional
        Element symbol -> energy per atom [eV]; default 0 for every element.
        :func:`nnptutor.train` fits them (:meth:`fit_reference_energies`).

    Attributes
    ----------
    feature_shift, feature_scale : Tensor, shape (n_types, n_features)
        Per-type mean and standard deviation of the training features (float64).
    feature_range : FeatureRange or None
        Per-type min/max of the training features; outside it a prediction warns.
    """

    def __init__(self, descriptor, model: AtomicModel, reference_energies: dict | None = None):
        if not isinstance(model, AtomicModel):
            raise ValueError(f"model must be a BPNN or SingleNN, got {type(model).__name__}")
        if tuple(model.type_labels) != tuple(descriptor.type_labels):
            raise ValueError(
                f"model types {list(model.type_labels)} differ from descriptor types "
                f"{list(descriptor.type_labels)}"
            )
        if model.n_features != descriptor.n_features:
            raise ValueError(
                f"model expects {model.n_features} features, descriptor gives "
                f"{descriptor.n_features}"
            )
        self.descriptor = descriptor
        self.model = model
        self.reference_energies = {e: 0.0 for e in descriptor.elements}
        if reference_energies is not None:
            self.set_reference_energies(reference_energies)
        shape = (model.n_types, model.n_features)
        self.feature_shift = torch.zeros(shape, dtype=torch.float64)
        self.feature_scale = torch.ones(shape, dtype=torch.float64)
        self.feature_range = None
        # derived from the descriptor, never saved: see scaled_center_energies
        at_cutoff = descriptor.features_at_cutoff()
        model.vanishing_features = None if at_cutoff is None else torch.as_tensor(
            at_cutoff, dtype=torch.float64)

    # --- fitting the non-network parts (called by nnptutor.train) ------------------------
    def set_reference_energies(self, reference_energies: dict):
        unknown = set(reference_energies) - set(self.descriptor.elements)
        if unknown:
            raise ValueError(f"reference energies for unknown elements {sorted(unknown)}")
        self.reference_energies.update({e: float(v) for e, v in reference_energies.items()})

    def composition(self, atoms: Atoms) -> np.ndarray:
        """Number of atoms of each descriptor element, shape (n_elements,)."""
        return np.bincount(self.descriptor.element_indices(atoms.numbers), minlength=len(self.descriptor.elements))

    def fit_reference_energies(self, compositions, energies):
        """Least-squares ε_Z from ``E ≈ Σ_Z n_Z ε_Z`` (minimum-norm if compositions are collinear).

        Parameters
        ----------
        compositions : array, shape (n_structures, n_elements)
            Atom counts per element (:meth:`composition`).
        energies : array, shape (n_structures,)
            Total energies [eV].
        """
        counts = np.asarray(compositions, dtype=float)
        eps, *_ = np.linalg.lstsq(counts, np.asarray(energies, dtype=float), rcond=None)
        self.set_reference_energies(dict(zip(self.descriptor.elements, eps.tolist())))

    def fit_scaling(self, values, types):
        """Per-type mean and standard deviation of the features (σ = 1 for constant ones).

        Parameters
        ----------
        values : ndarray, shape (n_centers_total, n_features)
            Features of every training centre.
        types : ndarray of int, shape (n_centers_total,)
        """
        values = np.asarray(values, dtype=np.float64)
        for t in range(self.model.n_types):
            sel = values[types == t]
            if len(sel) == 0:
                continue
            std = sel.std(axis=0)
            self.feature_shift[t] = torch.from_numpy(sel.mean(axis=0))
            self.feature_scale[t] = torch.from_numpy(np.where(std > 1e-12 * (1 + np.abs(sel.mean(axis=0))), std, 1.0))

    def fit_range(self, values_list, types_list):
        """Per-type min/max of the training features (:class:`FeatureRange`)."""
        from nnptutor.descriptors.ranges import FeatureRange

        self.feature_range = FeatureRange.fit(values_list, types_list, self.model.n_types)

    # --- prediction --------------------------------------------------------------------
    def center_energies(self, features: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """Network energy of every centre, shape (n_centers,) [eV] (no reference energies)."""
        return scaled_center_energies(self.model, self.feature_shift, self.feature_scale,
                                      features, types)

    def _center_atoms(self, atoms: Atoms, n_centers: int):
        """Atoms of each centre, shape (n_centers, k) (:meth:`Descriptor.center_atoms`)."""
        members = np.asarray(self.descriptor.center_atoms(atoms))
        if len(members) != n_centers:
            raise RuntimeError(f"descriptor gave {len(members)} centre memberships for {n_centers} centres")
        return members

    def predict(self, atoms: Atoms, forces: bool = True, warn: bool = True) -> dict:
        """Energy, per-atom energies and forces of one structure.

        Parameters
        ----------
        atoms : ase.Atoms
            Positions in Å; only the descriptor's elements.
        forces : bool
            Also compute forces (by a vector–Jacobian product through the descriptor).
        warn : bool
            Issue :class:`ExtrapolationWarning` when features leave the training range.

        Returns
        -------
        dict
            ``energy`` float [eV]; ``energies`` ndarray (n_atoms,) [eV] (centre energies
            split equally between a centre's atoms); ``forces`` ndarray (n_atoms, 3) [eV/Å] if
            requested; ``extrapolating`` bool ndarray (n_atoms,), True for atoms whose
            centres have features outside the training range (all False before training).
        """
        if forces:  # the descriptor validates atoms (check_atoms) before featurising
            values, vjp = self.descriptor.compute_with_vjp(atoms)
        else:
            values, vjp = self.descriptor.compute(atoms), None
        types = self.descriptor.center_types(atoms)
        return self.predict_from_features(atoms, values, types, vjp, warn=warn)

    def predict_from_features(self, atoms: Atoms, values, types, vjp=None, warn: bool = True) -> dict:
        """:meth:`predict` on features already computed (a committee featurises once).

        Parameters
        ----------
        atoms : ase.Atoms
        values : ndarray, shape (n_centers, n_features)
            ``descriptor.compute(atoms)``.
        types : ndarray of int, shape (n_centers,)
            ``descriptor.center_types(atoms)``.
        vjp : callable, optional
            From ``descriptor.compute_with_vjp(atoms)``: dE/dG -> dE/dR. Without it, no forces.
        warn : bool

        Returns
        -------
        dict
            As :meth:`predict`.
        """
        forces = vjp is not None
        x = torch.from_numpy(np.asarray(values)).to(self.model.dtype).requires_grad_(forces)
        types_t = torch.from_numpy(np.asarray(types, dtype=np.int64))
        with torch.enable_grad() if forces else torch.no_grad():
            e_centers = self.center_energies(x, types_t)  # (n_centers,)
            total = e_centers.sum()
            grad = torch.autograd.grad(total, x)[0].to(torch.float64).numpy() if forces else None
        ref = np.array([self.reference_energies[e] for e in self.descriptor.elements])
        ref_atoms = ref[self.descriptor.element_indices(atoms.numbers)]  # (n_atoms,)
        result = {"energy": float(total.detach()) + float(ref_atoms.sum())}

        e_centers = e_centers.detach().to(torch.float64).numpy()
        members = self._center_atoms(atoms, len(e_centers))  # (n_centers, k)
        if members.shape[1] == 1 and (members[:, 0] == np.arange(len(atoms))).all():
            result["energies"] = ref_atoms + e_centers  # atom-centred: centre k is atom k
        else:  # split each centre's energy equally between its atoms
            share = np.repeat(e_centers / members.shape[1], members.shape[1])
            result["energies"] = ref_atoms + np.bincount(members.ravel(), share, len(atoms))
        if forces:
            result["forces"] = -np.asarray(vjp(grad))
        result["extrapolating"] = self._extrapolating(atoms, values, types, members)
        if warn and result["extrapolating"].any():
            warn_extrapolation(result["extrapolating"])
        return result

    def _extrapolating(self, atoms, values, types, members) -> np.ndarray:
        flags = np.zeros(len(atoms), dtype=bool)
        if self.feature_range is None:
            return flags
        outside = np.asarray(self.feature_range.outside(values, types), dtype=bool)
        flags[members[outside].ravel()] = True
        return flags

    # --- files -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Everything :meth:`save` writes: tensors plus one JSON string of metadata."""
        from nnptutor import __version__

        metadata = {
            "descriptor": self.descriptor.to_dict(),
            "model": {"class": type(self.model).__name__, "config": self.model.config()},
            "reference_energies": self.reference_energies,
            "feature_range": None if self.feature_range is None else self.feature_range.to_dict(),
            "nnptutor_version": __version__,
        }
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "metadata": json.dumps(metadata, default=_json_default),
            "model_state": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "feature_shift": self.feature_shift.clone(),
            "feature_scale": self.feature_scale.clone(),
        }

    def save(self, path):
        """Write the potential to one file (read it with :meth:`Potential.load`)."""
        torch.save(self.to_dict(), path)

    @classmethod
    def load(cls, path, descriptor=None) -> "Potential":
        """Read a file written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
        descriptor : Descriptor, optional
            If given, must equal the descriptor stored in the file.

        Raises
        ------
        ValueError
            Not an nnptutor potential file (including files holding pickled objects, which
            ``weights_only=True`` refuses to build), an unknown format version, descriptor
            or model class, a descriptor that differs from ``descriptor``, or weights that
            do not fit the model.
        """
        if not os.path.isfile(path):
            raise ValueError(f"no potential file at {os.fspath(path)!r}")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # UnpicklingError, RuntimeError (zip), EOFError, ...
            raise ValueError(
                f"{os.path.basename(os.fspath(path))} is not a readable nnptutor potential file "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
        return cls.from_dict(data, descriptor=descriptor)

    @classmethod
    def from_dict(cls, data, descriptor=None) -> "Potential":
        """Inverse of :meth:`to_dict`; validates everything (see :meth:`load`)."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not an nnptutor potential file (no format field {FORMAT!r})")
        version = data.get("format_version")
        if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
            raise ValueError(
                f"unsupported potential file format version {version!r} "
                f"(this nnptutor reads 1..{FORMAT_VERSION})"
            )
        try:
            meta = json.loads(data["metadata"])
            stored = descriptor_from_dict(meta["descriptor"])
            model_class, config = meta["model"]["class"], dict(meta["model"]["config"])
            state = data["model_state"]
            shift, scale = data["feature_shift"], data["feature_scale"]
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"potential file is incomplete or corrupt ({exc!r})") from None
        if descriptor is not None and descriptor != stored:
            raise ValueError(
                f"the file's descriptor {stored.to_dict()} differs from the given descriptor "
                f"{descriptor.to_dict()}"
            )
        if model_class not in MODELS:
            raise ValueError(f"unknown model class {model_class!r}; known: {sorted(MODELS)}")
        allowed = {"elements", "n_features", "hidden", "activation", "seed"}
        if not set(config) <= allowed:
            raise ValueError(f"unexpected model arguments {sorted(set(config) - allowed)}")
        model = MODELS[model_class](**config)
        try:
            model.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise ValueError(f"weights do not fit {model!r}: {str(exc).splitlines()[0]}") from None
        pot = cls(descriptor if descriptor is not None else stored, model,
                  meta["reference_energies"])
        expected = tuple(pot.feature_shift.shape)
        for name, tensor in (("feature_shift", shift), ("feature_scale", scale)):
            if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != expected:
                raise ValueError(f"{name} must be a tensor of shape {expected}")
        pot.feature_shift = shift.to(torch.float64).clone()
        pot.feature_scale = scale.to(torch.float64).clone()
        if meta.get("feature_range") is not None:
            from nnptutor.descriptors.ranges import FeatureRange

            pot.feature_range = FeatureRange.from_dict(meta["feature_range"])
        return pot

    def __repr__(self) -> str:
        ref = ", ".join(f"{e}: {v:.4f}" for e, v in self.reference_energies.items())
        return (
            f"Potential(descriptor={self.descriptor!r}, model={self.model!r}, "
            f"reference_energies={{{ref}}} eV, "
            f"feature_range={'fitted' if self.feature_range is not None else 'none'})"
        )


def warn_extrapolation(flags: np.ndarray, stacklevel: int = 3):
    """Issue :class:`ExtrapolationWarning` naming the flagged atoms."""
    atoms = np.flatnonzero(flags)
    shown = atoms[:20].tolist()
    more = f" and {len(atoms) - 20} more" if len(atoms) > 20 else ""
    warnings.warn(
        f"features of atoms {shown}{more} lie outside the training range: the prediction "
        "is an extrapolation",
        ExtrapolationWarning,
        stacklevel=stacklevel,
    )


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} in a model file")

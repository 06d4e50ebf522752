r"""Export a trained Behler–Parrinello potential to n2p2, the library behind LAMMPS' ``pair_style hdnnp``.

n2p2 (Singraber, Behler & Dellago, JCTC 15, 1827, 2019; Singraber et al., JCTC 15, 3075,
2019) reads a potential from one folder:

* ``input.nn``: elements, reference atomic energies, cutoff type, feature scaling, network
  topology and one ``symfunction_short`` line per symmetry function;
* ``scaling.data``: per element and symmetry function the min, max, mean and standard
  deviation over the training set (n2p2 and LAMMPS issue an extrapolation warning for a
  feature outside [min, max]; nnptutor's own warning allows 1e-3 of the width beyond it);
* ``weights.NNN.data``: the network of the element with atomic number NNN, one number a line.

How the course's :class:`~nnptutor.Potential` maps onto these files:

==========================  ==================================================================
course                      n2p2
==========================  ==================================================================
G1                          radial type 2 with η = 0, R_s = 0 (e⁰ f_c = f_c)
G2(η, R_s)                  radial type 2, same η [Å⁻²] and R_s [Å]
G4(η, ζ, λ)                 narrow angular type 3 (R_s = 0)
G5(η, ζ, λ)                 wide angular type 9 (R_s = 0)
cosine cutoff               ``cutoff_type 1 0.0`` (CT_COS with inner cutoff α = 0)
tanh³ cutoff                ``cutoff_type 2`` (CT_TANHU; n2p2's type 3 is normalised to f(0) = 1)
(G − μ) / σ per element     ``scale_symmetry_functions_sigma``, S_min = 0, S_max = 1:
                            G̃ = S_min + (S_max − S_min)(G − mean) / sigma
ε_Z                         ``atom_energy``
tanh, softplus, sigmoid     activations ``t``, ``p``, ``s``; the output layer is ``l`` (linear)
==========================  ==================================================================

Both codes sum G4 and G5 over unordered neighbour pairs j < k with the prefactor 2^(1−ζ),
and both order an element pair by atomic number, so the values agree term by term.
The network output is E_i in eV (the course has no output scaling to fold in), and n2p2
runs without its normalisation keywords, in the course's eV and Å: LAMMPS then uses
``units metal`` with ``cflength 1.0 cfenergy 1.0``.

**Feature order.** n2p2 sorts each element's symmetry functions (by type, cutoff, η, R_s,
ζ, λ, then neighbour elements: the ``operator<`` of its ``SymFnc`` classes) and its
network reads them in that order, as does ``scaling.data``. The export sorts our features
the same way and permutes the first-layer weights and the scaling rows to match.

Numbers are written with 17 significant digits, so n2p2 reads back the same float64. Two
activations differ only far out: above x = 20 torch's softplus returns x where n2p2 computes
log(1 + eˣ) up to x = 35 (a difference below 3e-9), and n2p2's logistic is exactly 0 or 1
beyond |x| = 35 (below 7e-16).
What n2p2 cannot express (G3, SingleNN, GMP, pair-centred descriptors, SiLU, …) is refused
with a ``ValueError`` before any file is written.

Taught in notebooks/09_production_md.ipynb.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers

from nnptutor.descriptors import ACSF
from nnptutor.models import ACTIVATIONS, BPNN

#: nnptutor activation -> n2p2's activation code (``global_activation_short``)
ACTIVATION_CODES = {"tanh": "t", "softplus": "p", "sigmoid": "s"}
#: nnptutor cutoff -> n2p2's ``cutoff_type`` (enum ``CutoffFunction::CutoffType``)
CUTOFF_TYPES = {"cosine": 1, "tanh3": 2}

_RADIAL, _NARROW_ANGULAR, _WIDE_ANGULAR = 2, 3, 9


def _num(x) -> str:
    """Shortest decimal that reads back as the same float64 (C's atof included)."""
    return repr(float(x))


@dataclass(frozen=True)
class SymmetryFunction:
    """One n2p2 symmetry function and the descriptor column it reproduces."""

    kind: int                    # n2p2 type: 2 radial, 3 narrow angular, 9 wide angular
    neighbors: tuple[int, ...]   # neighbour element indices (angular: ascending)
    eta: float                   # [Å⁻²]
    r_s: float = 0.0             # [Å]
    zeta: float = 0.0
    lambda_: float = 0.0
    column: int = 0              # column in the descriptor's feature vector

    def sort_key(self) -> tuple:
        """n2p2's ``SymFnc::operator<`` within one centre element, cutoff type and r_c."""
        return (self.kind, self.eta, self.r_s, self.zeta, self.lambda_) + self.neighbors

    def line(self, center: str, elements: Sequence[str], r_cut: float) -> str:
        """The ``symfunction_short`` line of this function for centre element ``center``."""
        names = " ".join(elements[e] for e in self.neighbors)
        if self.kind == _RADIAL:
            params = f"{_num(self.eta)} {_num(self.r_s)} {_num(r_cut)}"
        else:  # angular: eta lambda zeta r_c (R_s = 0 is n2p2's default)
            params = f"{_num(self.eta)} {_num(self.lambda_)} {_num(self.zeta)} {_num(r_cut)}"
        return f"symfunction_short {center} {self.kind} {names} {params}"


def symmetry_functions(descriptor: ACSF) -> list[SymmetryFunction]:
    """The descriptor's features as n2p2 symmetry functions, in n2p2's sorted order.

    Parameters
    ----------
    descriptor : ACSF
        Without G3 (n2p2 has none: ValueError).

    Returns
    -------
    list
        One entry per feature; entry k is n2p2's input k and its ``column`` is the
        descriptor column it equals. Features follow the layout of
        :attr:`ACSF.feature_labels`: per neighbour element G1 then every G2; then per
        element pair (b, a), b ≤ a, every G4 then every G5.
    """
    if descriptor.g3:
        raise ValueError(
            "n2p2 has no G3 symmetry function (cos(κ R_ij) f_c): build the ACSF without g3 "
            "and resolve distances with several G2 (different η or R_s) instead."
        )
    n_elements = len(descriptor.elements)
    functions = []
    for s in range(n_elements):
        functions.append(SymmetryFunction(_RADIAL, (s,), 0.0, column=len(functions)))  # G1
        for eta, r_s in descriptor.g2:
            functions.append(SymmetryFunction(_RADIAL, (s,), eta, r_s, column=len(functions)))
    for a in range(n_elements):
        for b in range(a + 1):
            for kind, params in ((_NARROW_ANGULAR, descriptor.g4), (_WIDE_ANGULAR, descriptor.g5)):
                for eta, zeta, lambda_ in params:
                    functions.append(SymmetryFunction(kind, (b, a), eta, 0.0, zeta, lambda_,
                                                       column=len(functions)))
    if len(functions) != descriptor.n_features:
        raise RuntimeError(f"mapped {len(functions)} of {descriptor.n_features} features")
    return sorted(functions, key=SymmetryFunction.sort_key)


# --------------------------------------------------------------------------------------
# validation: everything is checked before anything is written
# --------------------------------------------------------------------------------------
def _exportable_parts(potential):
    """n2p2's symmetry functions and each element's dense layers, after checking that n2p2
    can express the potential (ValueError naming the reason and the alternative if not)."""
    descriptor = getattr(potential, "descriptor", None)
    model = getattr(potential, "model", None)
    if descriptor is None or model is None:
        raise ValueError(f"expected an nnptutor.Potential, got {type(potential).__name__}")
    name = type(descriptor).__name__
    if not isinstance(descriptor, ACSF):
        raise ValueError(
            f"n2p2 cannot express the {name} descriptor: its networks read atom-centred "
            "symmetry functions (G1, G2, G4, G5). Train a BPNN on nt.ACSF(...) to export it."
        )
    functions = symmetry_functions(descriptor)
    if descriptor.cutoff not in CUTOFF_TYPES:
        raise ValueError(f"no n2p2 cutoff type for {descriptor.cutoff!r}; use one of {sorted(CUTOFF_TYPES)}")
    if not isinstance(model, BPNN):
        raise ValueError(
            f"n2p2 cannot express a {type(model).__name__}: it evaluates one separate network "
            "per element (Behler–Parrinello). Train an nt.BPNN to export it."
        )
    if model.activation not in ACTIVATION_CODES:
        raise ValueError(
            f"n2p2 has no {model.activation!r} activation: train with one it has, "
            f"{sorted(ACTIVATION_CODES)} (sigmoid is n2p2's logistic)."
        )
    if potential.feature_range is None:
        raise ValueError(
            "the potential has no training feature range, which scaling.data needs for "
            "n2p2's extrapolation warnings: train it first (nt.train)."
        )
    for what, values in (("feature shift", potential.feature_shift),
                         ("feature scale", potential.feature_scale),
                         ("reference energies", list(potential.reference_energies.values()))):
        if not np.isfinite(np.asarray(values, dtype=float)).all():
            raise ValueError(f"the potential's {what} contain NaN or infinite values")
    if (np.asarray(potential.feature_scale) <= 0).any():
        raise ValueError("the potential's feature scale must be positive")
    layers = {label: _dense_layers(model.networks[label], model.activation)
              for label in model.type_labels}
    return functions, layers


def _dense_layers(network, activation: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight (n_out, n_in), bias (n_out,)) of every layer of ``Linear, act, …, Linear``."""
    modules = list(network)
    linear = modules[0::2]
    acts = modules[1::2]
    ok = (len(modules) % 2 == 1 and all(isinstance(m, torch.nn.Linear) for m in linear)
          and all(type(m) is ACTIVATIONS[activation] for m in acts))
    if not ok:
        raise ValueError(
            f"cannot export network {network}: n2p2 expects dense layers with one "
            "activation each and a linear output"
        )
    return [(m.weight.detach().to(torch.float64).numpy(),
             m.bias.detach().to(torch.float64).numpy()) for m in linear]


# --------------------------------------------------------------------------------------
# the three kinds of files
# --------------------------------------------------------------------------------------
def _input_nn(potential, functions) -> str:
    from nnptutor import __version__

    descriptor, model = potential.descriptor, potential.model
    elements = descriptor.elements
    act = ACTIVATION_CODES[model.activation]
    lines = [
        f"# n2p2 settings written by nnptutor {__version__}: a Behler-Parrinello potential",
        "# (one network per element) on atom-centred symmetry functions; units eV and Angstrom.",
        f"number_of_elements {len(elements)}",
        f"elements {' '.join(elements)}",
    ]
    lines += [f"atom_energy {e} {_num(potential.reference_energies[e])}" for e in elements]
    cutoff = CUTOFF_TYPES[descriptor.cutoff]
    lines += [
        f"cutoff_type {cutoff} 0.0" if cutoff == 1 else f"cutoff_type {cutoff}",
        "# features scaled as (G - mean) / sigma with mean and sigma from scaling.data",
        "scale_symmetry_functions_sigma",
        "scale_min_short 0.0",
        "scale_max_short 1.0",
        f"global_hidden_layers_short {len(model.hidden)}",
        f"global_nodes_short {' '.join(str(h) for h in model.hidden)}",
        f"global_activation_short {' '.join([act] * len(model.hidden) + ['l'])}",
        "# symmetry functions: element type neighbour(s) eta [lambda zeta | r_s] r_c",
    ]
    for center in elements:
        lines += [f.line(center, elements, descriptor.r_cut) for f in functions]
    return "\n".join(lines) + "\n"


def _scaling_data(potential, functions) -> str:
    rng = potential.feature_range
    columns = [f.column for f in functions]
    lines = ["# symmetry function scaling written by nnptutor, in n2p2's order:",
             "# element_index function_index min max mean sigma (training set)"]
    for t in range(len(potential.descriptor.elements)):
        mean = potential.feature_shift[t].to(torch.float64).numpy()[columns]
        sigma = potential.feature_scale[t].to(torch.float64).numpy()[columns]
        low, high = rng.minimum[t][columns], rng.maximum[t][columns]
        unseen = ~(np.isfinite(low) & np.isfinite(high))  # element absent from training
        low, high = np.where(unseen, mean, low), np.where(unseen, mean, high)
        for k in range(len(columns)):
            lines.append(f"{t + 1} {k + 1} {_num(low[k])} {_num(high[k])} "
                         f"{_num(mean[k])} {_num(sigma[k])}")
    return "\n".join(lines) + "\n"


def _weights_data(layers, columns, element: str) -> str:
    """n2p2's ``NeuralNetwork::setConnections`` order: per layer, the weights a(j→k)
    with the source neuron j outer and the target k inner, then the biases."""
    lines = [f"# weights of the {element} network written by nnptutor, n2p2's order:",
             "# value  a  count  layer_from  neuron_from  layer_to  neuron_to  (weight)",
             "# value  b  count  layer  neuron  (bias)"]
    count = 0
    for layer, (weight, bias) in enumerate(layers, start=1):
        if layer == 1:
            weight = weight[:, columns]  # inputs in n2p2's symmetry-function order
        n_out, n_in = weight.shape
        for j in range(n_in):
            for k in range(n_out):
                count += 1
                lines.append(f"{_num(weight[k, j])} a {count} {layer - 1} {j + 1} {layer} {k + 1}")
        for k in range(n_out):
            count += 1
            lines.append(f"{_num(bias[k])} b {count} {layer} {k + 1}")
    return "\n".join(lines) + "\n"


def n2p2_files(potential) -> dict[str, str]:
    """The n2p2 files of a potential as texts, without writing anything.

    Parameters
    ----------
    potential : Potential
        A trained BPNN on ACSF (see :func:`write_n2p2`).

    Returns
    -------
    dict
        File name (``input.nn``, ``scaling.data``, ``weights.NNN.data``) -> content.

    Raises
    ------
    ValueError
        The potential uses something n2p2 cannot express (see :func:`write_n2p2`).
    """
    functions, layers = _exportable_parts(potential)
    columns = [f.column for f in functions]
    files = {"input.nn": _input_nn(potential, functions),
             "scaling.data": _scaling_data(potential, functions)}
    for element, element_layers in layers.items():
        z = atomic_numbers[element]
        files[f"weights.{z:03d}.data"] = _weights_data(element_layers, columns, element)
    return files


def write_n2p2(potential, folder, overwrite: bool = False) -> list[Path]:
    """Write a trained potential as n2p2 files that ``nnp-predict`` and LAMMPS read.

    Parameters
    ----------
    potential : Potential
        A :class:`~nnptutor.BPNN` on :class:`~nnptutor.ACSF` (G1, G2, G4, G5; cosine or
        tanh³ cutoff) with activation tanh, softplus or sigmoid, trained (so that its
        feature scaling and range are fitted).
    folder : str or path-like
        Created if missing.
    overwrite : bool
        Replace files of an earlier export in ``folder``.

    Returns
    -------
    list of Path
        The files written: ``input.nn``, ``scaling.data`` and one ``weights.NNN.data``
        per element (NNN = atomic number).

    Raises
    ------
    ValueError
        What n2p2 cannot express (G3, SingleNN, GMP, pair-centred or other descriptors, an
        activation such as SiLU) or an untrained potential, named with the alternative.
        Raised before anything is written.
    FileExistsError
        ``folder`` holds one of these files and ``overwrite`` is False.

    Notes
    -----
    The files are written into a temporary folder inside ``folder`` and then moved, so a
    failure leaves no half-written potential. :func:`lammps_input` gives the LAMMPS
    commands that use it.

    Examples
    --------
    >>> write_n2p2(pot, "cu_n2p2")  # doctest: +SKIP
    [PosixPath('cu_n2p2/input.nn'), PosixPath('cu_n2p2/scaling.data'),
     PosixPath('cu_n2p2/weights.029.data')]
    """
    files = n2p2_files(potential)
    folder = Path(folder)
    existing = sorted(name for name in files if (folder / name).exists())
    if existing and not overwrite:
        raise FileExistsError(
            f"{folder} already holds {', '.join(existing)}: pass overwrite=True to replace them"
        )
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".n2p2-export-", dir=folder))
    try:
        for name, text in files.items():
            (staging / name).write_text(text, encoding="ascii")
        for name in files:
            os.replace(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [folder / name for name in files]


# --------------------------------------------------------------------------------------
# data sets and LAMMPS
# --------------------------------------------------------------------------------------
def _label(atoms: Atoms, name: str):
    """A stored result of the attached calculator (no calculation is triggered)."""
    if atoms.calc is None:
        return None
    try:
        return atoms.calc.get_property(name, atoms, allow_calculation=False)
    except Exception:  # PropertyNotImplementedError and friends: no such label
        return None


def _vacuum_gaps(atoms: Atoms) -> np.ndarray:
    """Empty space between the atoms and their periodic image along each cell axis [Å]."""
    cell = np.asarray(atoms.cell)
    gaps = np.zeros(3)
    for axis in range(3):
        normal = np.cross(cell[axis - 2], cell[axis - 1])  # normal to the other two axes
        normal /= np.linalg.norm(normal)
        heights = atoms.positions @ normal  # (n_atoms,)
        gaps[axis] = abs(cell[axis] @ normal) - np.ptp(heights)
    return gaps


def _periodic(atoms: Atoms, index: int, r_cut: float | None) -> bool:
    """Whether to write ``atoms`` with lattice vectors (n2p2 knows all or no periodicity)."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any() and abs(atoms.cell.volume) < 1e-6:
        raise ValueError(f"images[{index}] is periodic but its cell has no volume: give every axis a cell vector")
    if not pbc.any() or pbc.all():
        return bool(pbc.all())
    open_axes = np.flatnonzero(~pbc)
    if r_cut is not None and (_vacuum_gaps(atoms)[open_axes] > r_cut).all():
        return True  # images along the open axes lie beyond the cutoff: same features
    raise ValueError(
        f"images[{index}] is periodic along some axes only (pbc={pbc.tolist()}): n2p2 reads "
        "fully periodic or non-periodic structures. Pass r_cut to write it fully periodic "
        "when its cell leaves more than r_cut of vacuum along the open axes (or add vacuum)."
    )


def _frame(atoms: Atoms, index: int, require_labels: bool, r_cut: float | None) -> list[str]:
    if not isinstance(atoms, Atoms):
        raise ValueError(f"images[{index}] is a {type(atoms).__name__}, not an ase.Atoms")
    if len(atoms) == 0:
        raise ValueError(f"images[{index}] has no atoms")
    periodic = _periodic(atoms, index, r_cut)
    energy, forces = _label(atoms, "energy"), _label(atoms, "forces")
    if require_labels and (energy is None or forces is None):
        raise ValueError(f"images[{index}] has no stored energy and forces (attach a "
                         "calculator with results, e.g. from nt.data.load or nt.data.label)")
    forces = np.zeros((len(atoms), 3)) if forces is None else np.asarray(forces, dtype=float)
    lines = ["begin", f"comment {atoms.get_chemical_formula()} (image {index}) written by nnptutor"
             + ("" if energy is not None else ", no reference energy")]
    if periodic:
        lines += ["lattice " + " ".join(f"{x: .16e}" for x in vector) for vector in atoms.cell]
    for position, symbol, force in zip(atoms.positions, atoms.get_chemical_symbols(), forces):
        xyz = " ".join(f"{x: .16e}" for x in position)
        fxyz = " ".join(f"{x: .16e}" for x in force)
        lines.append(f"atom {xyz} {symbol:2s} {0.0: .16e} {0.0: .16e} {fxyz}")
    lines += [f"energy {0.0 if energy is None else float(energy): .16e}", f"charge {0.0: .16e}", "end"]
    return lines


def write_input_data(images, path, require_labels: bool = False,
                     r_cut: float | None = None) -> Path:
    """Write structures in n2p2's ``input.data`` format (eV, Å).

    Parameters
    ----------
    images : ase.Atoms or sequence of ase.Atoms
        Fully periodic (``lattice`` lines are written) or non-periodic structures.
        Energies and forces are those stored with the attached calculator (as
        :func:`nnptutor.data.load` provides); structures without them get zeros.
    path : str or path-like
        The file, replaced if it exists (as ``ase.io.write`` does).
    require_labels : bool
        Refuse structures without stored energy and forces (for a training set).
    r_cut : float, optional
        The potential's cutoff [Å]. With it, a structure periodic along some axes only (a
        slab) is written fully periodic when its cell leaves more than ``r_cut`` of vacuum
        along the open axes, so that no atom sees the extra images; without it such a
        structure is refused.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        A structure periodic along some axes only (unless ``r_cut`` allows it, see above),
        or (with ``require_labels``) one without stored energy and forces. Raised before
        the file is opened.

    Notes
    -----
    Each structure is one ``begin … end`` block: a comment, three ``lattice`` vectors
    (periodic only), one ``atom x y z element charge energy fx fy fz`` line per atom
    (charge and atomic energy 0), the total ``energy`` and ``charge`` (0). ASE's
    ``runnerdata`` writer is not used because it converts to Bohr and Hartree and writes
    RuNNer 2's extended header, which n2p2 does not read. ``nnp-predict`` reads the first
    structure of the file; n2p2's training tools read all of them.

    In a cell so small that an atom sees its own periodic images within the cutoff,
    ``nnp-predict`` (n2p2 of 2024-11) gets the energy right but leaves out those images'
    angular terms in the forces (``Mode::calculateForces`` skips the centre atom's own
    neighbour entries); repeat such a cell (``atoms.repeat``) before comparing forces.
    """
    if isinstance(images, Atoms):
        images = [images]
    lines = []
    for index, atoms in enumerate(images):
        lines += _frame(atoms, index, require_labels, r_cut)
    if not lines:
        raise ValueError("images is empty: nothing to write")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def lammps_input(potential_folder, elements: Sequence[str], r_cut: float,
                 data_file: str = "structure.data") -> str:
    """LAMMPS commands that run MD with a potential written by :func:`write_n2p2`.

    Parameters
    ----------
    potential_folder : str or path-like
        The folder of :func:`write_n2p2`, as LAMMPS will see it (relative to where LAMMPS
        runs, or absolute on the cluster).
    elements : sequence of str
        Element of each LAMMPS atom type, in type order (type 1 first), as in the data
        file (``ase.io.write(data_file, atoms, format="lammps-data", specorder=elements)``).
    r_cut : float
        The symmetry functions' cutoff radius [Å] (``descriptor.r_cut``): LAMMPS needs
        at least this.
    data_file : str
        The structure read by ``read_data``.

    Returns
    -------
    str
        ``units metal`` (eV, Å, ps), ``atom_style atomic``, ``read_data``, masses,
        ``pair_style hdnnp <r_cut> dir <folder> showew no showewsum 0 resetew no maxew 100
        cflength 1.0 cfenergy 1.0`` (the potential is in eV and Å already; more than 100
        extrapolation warnings stop the run) and ``pair_coeff * * <elements>``. Needs a
        LAMMPS built with the ML-HDNNP package.
    """
    elements = [str(e) for e in elements]
    unknown = [e for e in elements if e not in atomic_numbers]
    if not elements or unknown:
        raise ValueError(f"elements must be chemical symbols, one per atom type; got {elements}")
    r_cut = float(r_cut)
    if not np.isfinite(r_cut) or r_cut <= 0:
        raise ValueError(f"r_cut must be a positive length in Å, got {r_cut}")
    folder = os.fspath(potential_folder)
    if any(c.isspace() or c == '"' for c in folder):
        raise ValueError(f"the potential folder {folder!r} must not contain spaces or quotes")
    lines = [
        "# MD with an nnptutor potential exported to n2p2 (LAMMPS with package ML-HDNNP)",
        "units           metal",
        "atom_style      atomic",
        f"read_data       {data_file}",
    ]
    lines += [f"mass            {t} {_num(atomic_masses[atomic_numbers[e]])}"
              for t, e in enumerate(elements, start=1)]
    lines += [
        f"pair_style      hdnnp {_num(r_cut)} dir {folder} showew no showewsum 0 "
        "resetew no maxew 100 cflength 1.0 cfenergy 1.0",
        f"pair_coeff      * * {' '.join(elements)}",
    ]
    return "\n".join(lines) + "\n"

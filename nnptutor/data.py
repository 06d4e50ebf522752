"""Reference data of the course: a registry of the data files, ``load`` and ``label``.

Every data set is one extended-XYZ file (gzipped) in ``nnptutor/datasets/``, installed with
the package (so a wheel or a non-editable install has them too), made by a script
``data/make_<name>.py`` of the repository from a fixed seed. The registry below records for each file its sha256, how it was made
(method, code and version), units, count and licence; ``load`` checks the sha256 before it
reads, so a changed file fails loudly instead of silently changing a lesson's numbers.

Units: energies eV (total energies as the calculator gives them), forces eV/Å, positions Å.

Taught in notebooks/00_start_here.ipynb, "Every data set at a glance".
"""
from __future__ import annotations

import gzip
import hashlib
import io
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

#: Folder with the data files, inside the installed package (``densities/`` holds fitted
#: electron densities for GMP).
DATA_DIR = Path(__file__).resolve().parent / "datasets"

_CC0 = "CC0-1.0 (public domain dedication)"
_UNITS = "energy eV (total), forces eV/Å, positions Å"

# name -> provenance. "sha256" is of the file as stored (gzip bytes); "count" structures.
_REGISTRY: dict[str, dict] = {
    "cu_emt": dict(
        file="cu_emt.extxyz.gz",
        sha256="c32541d9ea9922047493f4bc7cebb6d3a369994664b8d786658302a8e3daef06",
        count=990,
        elements=("Cu",),
        description="Periodic fcc Cu: MD 300-1200 K, strained cells, vacancies, (111)/(100) slabs",
        method="EMT (effective-medium theory; energies relative to EMT's own reference, "
        "about 0 eV/atom for perfect fcc Cu)",
        code="ASE 3.29.0, ase.calculators.emt.EMT",
        info_keys=("kind", "temperature_K", "facet", "strain"),
    ),
    "benzene_xtb": dict(
        file="benzene_xtb.extxyz.gz",
        sha256="490309f3edf8a970d76a0a4b0e0655958efd2fbef38434d4dfcadfd699b81a39",
        count=1000,
        elements=("H", "C"),
        description="Benzene from Langevin MD at 300-1000 K (20 runs of 50 snapshots)",
        method="GFN2-xTB (semi-empirical tight binding), geometries from GFN2-xTB MD",
        code="tblite 0.8.0 (tblite.ase.TBLite), ASE 3.29.0",
        info_keys=("kind", "temperature_K", "run"),
    ),
    "ethanol_xtb": dict(
        file="ethanol_xtb.extxyz.gz",
        sha256="b04a5fc82890968003492127aafff5b271dae858c8de5d6cb7bb179640825439",
        count=1000,
        elements=("H", "C", "O"),
        description="Ethanol from Langevin MD at 300-1000 K (20 runs of 50 snapshots)",
        method="GFN2-xTB (semi-empirical tight binding), geometries from GFN2-xTB MD",
        code="tblite 0.8.0 (tblite.ase.TBLite), ASE 3.29.0",
        info_keys=("kind", "temperature_K", "run"),
    ),
    "water_clusters_xtb": dict(
        file="water_clusters_xtb.extxyz.gz",
        sha256="7a8dd49f0435ec47b3d2a43232dd484ed9c1db6fab9be55f8b77fad23a98323c",
        count=336,
        elements=("H", "O"),
        description="(H2O)n clusters, n = 2-8, Langevin MD at 150 and 300 K (48 per size)",
        method="GFN2-xTB (semi-empirical tight binding), geometries from GFN2-xTB MD",
        code="tblite 0.8.0 (tblite.ase.TBLite), ASE 3.29.0",
        info_keys=("kind", "n_molecules", "isomer", "temperature_K"),
    ),
    "cu_pt_co_emt": dict(
        file="cu_pt_co_emt.extxyz.gz",
        sha256="efc2760568cb7515552379f0700093e11ba92192796e7d65080c0f50c7e270bf",
        count=372,
        elements=("C", "O", "Cu", "Pt"),
        description="CO on Cu(111)/Pt(111) at four sites (EMT lets most CO dissociate into "
        "C and O adatoms), and random CuPt alloys, from MD",
        method="EMT (effective-medium theory, with its rough C and O parameters; energies "
        "relative to EMT's own reference)",
        code="ASE 3.29.0, ase.calculators.emt.EMT",
        info_keys=("kind", "temperature_K", "metal", "site", "x_Pt"),
    ),
    "water_dft": dict(
        file="water_dft.extxyz.gz",
        sha256="3c277b72fe0ef24e1d91b319b23d23699e528d8c8ad4cbc51dc7f8571b3eba53",
        count=164,
        elements=("H", "O"),
        description="Water monomers, dimers and trimers, geometries from GFN2-xTB MD",
        method="DFT, restricted Kohn-Sham B3LYP (PySCF's 'b3lyp', VWN1-RPA) / def2-SVP, "
        "grid level 2, analytic gradients",
        code="PySCF 2.14.0 (pyscf.dft.RKS), geometries with tblite 0.8.0 and ASE 3.29.0",
        info_keys=("kind", "n_molecules", "temperature_K", "xc", "basis", "grid_level"),
    ),
}


def available() -> list[str]:
    """Names of the registered data sets, sorted.

    Returns
    -------
    list of str
        Names accepted by :func:`load` and :func:`describe`.
    """
    return sorted(_REGISTRY)


def _entry(name: str) -> dict:
    if name not in _REGISTRY:
        raise ValueError(f"unknown data set {name!r}; available data sets: {', '.join(available())}")
    return _REGISTRY[name]


def describe(name: str) -> dict:
    """Provenance of one data set.

    Parameters
    ----------
    name : str
        A name from :func:`available`.

    Returns
    -------
    dict
        Keys ``name, file, path, sha256, count, elements, description, method, code,
        units, licence, script, info_keys`` (a copy: changing it changes nothing).
    """
    entry = dict(_entry(name))
    entry.setdefault("units", _UNITS)
    entry.setdefault("licence", _CC0)
    entry["name"] = name
    entry["path"] = str(DATA_DIR / entry["file"])
    entry["script"] = f"data/make_{name}.py"
    return entry


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, as hexadecimal text (what ``sha256sum`` prints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(name: str) -> str:
    """Check that a data file exists and has the registered sha256.

    Parameters
    ----------
    name : str
        A name from :func:`available`.

    Returns
    -------
    str
        The sha256 (equal to the registered one).

    Raises
    ------
    FileNotFoundError
        If the file is missing (the message says which script makes it).
    ValueError
        If the file's sha256 differs from the registry (the file was changed).
    """
    info = describe(name)
    path = Path(info["path"])
    if not path.is_file():
        raise FileNotFoundError(
            f"data file for {name!r} not found at {path}; "
            f"regenerate it with: python {info['script']}")
    actual = file_sha256(path)
    if actual != info["sha256"]:
        raise ValueError(
            f"data file nnptutor/datasets/{info['file']} was changed: sha256 {actual} differs from the "
            f"registered {info['sha256']}; restore it (git checkout) or regenerate it with "
            f"python {info['script']} and update the registry in nnptutor/data.py")
    return actual


def _plain(value):
    """numpy scalars (as ASE's extxyz reader returns them) -> Python scalars."""
    return value.item() if isinstance(value, np.generic) else value


def _with_labels(atoms: Atoms, energy: float, forces: np.ndarray) -> Atoms:
    """A copy of ``atoms`` with ``energy`` [eV] and ``forces`` [eV/Å] as its calculator."""
    copy = atoms.copy()
    copy.calc = SinglePointCalculator(copy, energy=float(energy), forces=np.array(forces, dtype=float))
    return copy


@lru_cache(maxsize=8)
def _read(name: str, sha256: str) -> tuple[tuple[Atoms, float, np.ndarray], ...]:
    # (atoms without calculator, energy, forces) per structure, cached per (name, sha256);
    # callers get fresh copies, never these objects
    import ase.io

    raw = (DATA_DIR / _REGISTRY[name]["file"]).read_bytes()
    if _REGISTRY[name]["file"].endswith(".gz"):
        # decompress in memory: ASE's extxyz reader seeks back and forth, which on a gzip
        # stream means decompressing from the start again each time (minutes, not seconds)
        raw = gzip.decompress(raw)
    images = ase.io.read(io.StringIO(raw.decode()), index=":", format="extxyz")
    out = []
    for atoms in images:
        results = atoms.calc.results  # energy and forces, as the reader attached them
        atoms.calc = None
        atoms.info = {key: _plain(value) for key, value in atoms.info.items()}
        out.append((atoms, float(results["energy"]), np.asarray(results["forces"], dtype=float)))
    return tuple(out)


def load(name: str, verify_sha256: bool = True) -> list[Atoms]:
    """Load a data set as a list of structures with reference energies and forces.

    Parameters
    ----------
    name : str
        One of :func:`available`, e.g. ``"cu_emt"``.
    verify_sha256 : bool
        Check the file against the registry before reading (a few milliseconds).

    Returns
    -------
    list of ase.Atoms
        ``describe(name)["count"]`` structures. Each has a ``SinglePointCalculator`` with
        ``energy`` [eV] and ``forces`` [eV/Å], shape (n_atoms, 3), so
        ``atoms.get_potential_energy()`` and ``atoms.get_forces()`` work; ``atoms.info``
        holds the keys listed in ``describe(name)["info_keys"]`` (e.g. ``kind``,
        ``temperature_K``). Fresh copies: changing them does not change later loads.

    Raises
    ------
    ValueError
        Unknown name (the message lists the available ones) or a changed file.
    """
    entry = _entry(name)
    if verify_sha256:
        verify(name)
    elif not (DATA_DIR / entry["file"]).is_file():
        verify(name)  # raises FileNotFoundError with the regeneration hint
    return [_with_labels(atoms, energy, forces) for atoms, energy, forces in _read(name, entry["sha256"])]


def label(images: Sequence[Atoms], calculator, progress: bool = True) -> list[Atoms]:
    """Reference labels: copies of ``images`` with energy and forces from ``calculator``.

    Parameters
    ----------
    images : sequence of ase.Atoms
        Structures to label; they are not changed.
    calculator : ase.calculators.calculator.Calculator
        Any ASE calculator (EMT, TBLite, a trained ``NNPCalculator``, ...).
    progress : bool
        Show a ``tqdm.auto`` progress bar.

    Returns
    -------
    list of ase.Atoms
        Copies (same order) with a ``SinglePointCalculator`` holding ``energy`` [eV] and
        ``forces`` [eV/Å], shape (n_atoms, 3).

    Raises
    ------
    ValueError
        If ``images`` is not a sequence of ``ase.Atoms``. Errors of the calculator
        propagate unchanged, with a note naming the image that failed.
    """
    if isinstance(images, Atoms) or not isinstance(images, Iterable):
        raise ValueError("images must be a list of ase.Atoms (wrap a single structure in a list)")
    images = list(images)
    for index, atoms in enumerate(images):
        if not isinstance(atoms, Atoms):
            raise ValueError(f"images[{index}] is a {type(atoms).__name__}, not an ase.Atoms")
    from tqdm.auto import tqdm

    labelled = []
    for index, atoms in enumerate(tqdm(images, desc="labelling", disable=not progress)):
        work = atoms.copy()  # copies positions, cell, info; the input keeps its calculator
        work.calc = calculator
        try:
            energy, forces = work.get_potential_energy(), work.get_forces()
        except Exception as exc:
            _add_note(exc, f"nnptutor.data.label: failed on images[{index}] "
                           f"({atoms.get_chemical_formula()})")
            raise
        work.calc = None
        labelled.append(_with_labels(work, energy, forces))
    return labelled


def _add_note(exc: BaseException, note: str) -> None:
    """Attach ``note`` to ``exc`` (shown under its traceback), as Python 3.11's
    ``exc.add_note`` does; on Python 3.10 it is stored where 3.11 would keep it."""
    notes = getattr(exc, "__notes__", None)
    try:
        if notes is None:
            exc.__notes__ = notes = []
        notes.append(note)
    except (AttributeError, TypeError):  # an exception type that refuses new attributes
        pass


# --- writing (used by the data/make_*.py scripts) -------------------------------------------

def stored_positions(atoms: Atoms) -> Atoms:
    """A copy whose positions are exactly what extended XYZ stores (8 decimals, in Å).

    Labelling this copy (rather than the unrounded structure) makes the stored energy
    reproducible from the stored positions to machine precision.
    """
    copy = atoms.copy()
    copy.positions = np.array([[float(f"{x:.8f}") for x in row] for row in atoms.positions])
    return copy


def save(images: Sequence[Atoms], path: str | Path) -> str:
    """Write labelled structures to extended XYZ (gzipped if ``path`` ends in ``.gz``).

    Only energy [eV], forces [eV/Å] and ``atoms.info`` are written; the gzip header has
    no time stamp, so identical structures give identical bytes.

    Parameters
    ----------
    images : sequence of ase.Atoms
        Each with a calculator that has ``energy`` and ``forces``.
    path : str or Path
        Output file.

    Returns
    -------
    str
        sha256 of the written file.
    """
    import ase.io

    plain = [_with_labels(a, a.get_potential_energy(), a.get_forces()) for a in images]
    buffer = io.StringIO()
    ase.io.write(buffer, plain, format="extxyz")
    data = buffer.getvalue().encode()
    if str(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)
    Path(path).write_bytes(data)
    return file_sha256(path)


# --- looking at a data set --------------------------------------------------------------------

def summary(images: str | Sequence[Atoms], by: str = "kind") -> list[dict]:
    """Counts and label statistics of a data set, one row per value of ``info[by]``.

    Parameters
    ----------
    images : str or sequence of ase.Atoms
        A data-set name (loaded with :func:`load`) or labelled structures.
    by : str
        ``atoms.info`` key to group by (structures without it go to group ``"all"``).

    Returns
    -------
    list of dict
        Rows sorted by group with keys ``group``, ``count``, ``n_atoms_min``,
        ``n_atoms_max``, ``energy_per_atom_mean`` and ``energy_per_atom_std`` [eV/atom],
        ``force_rms`` and ``force_max`` [eV/Å] (over all force components / atoms).
    """
    if isinstance(images, str):
        images = load(images)
    groups: dict = {}
    for atoms in images:
        groups.setdefault(atoms.info.get(by, "all"), []).append(atoms)
    rows = []
    for group in sorted(groups, key=lambda g: (isinstance(g, str), g if not isinstance(g, str) else 0, str(g))):
        members = groups[group]
        e_per_atom = np.array([a.get_potential_energy() / len(a) for a in members])
        forces = np.concatenate([a.get_forces() for a in members])  # (n_atoms_total, 3)
        rows.append(dict(
            group=group, count=len(members),
            n_atoms_min=min(len(a) for a in members), n_atoms_max=max(len(a) for a in members),
            energy_per_atom_mean=float(e_per_atom.mean()), energy_per_atom_std=float(e_per_atom.std()),
            force_rms=float(np.sqrt(np.mean(forces**2))),
            force_max=float(np.linalg.norm(forces, axis=1).max()),
        ))
    return rows


def format_summary(rows: list[dict]) -> str:
    """:func:`summary` rows as a fixed-width text table (rounded, stable for notebooks)."""
    lines = [f"{'group':>10} {'count':>6} {'atoms':>9} {'E/atom [eV]':>18} {'F rms':>7} {'|F| max':>8}"]
    for r in rows:
        atoms = f"{r['n_atoms_min']}-{r['n_atoms_max']}" if r["n_atoms_min"] != r["n_atoms_max"] else str(r["n_atoms_min"])
        lines.append(
            f"{str(r['group']):>10} {r['count']:>6d} {atoms:>9} "
            f"{r['energy_per_atom_mean']:>10.3f} ± {r['energy_per_atom_std']:<5.3f} "
            f"{r['force_rms']:>7.3f} {r['force_max']:>8.3f}")
    return "\n".join(lines)

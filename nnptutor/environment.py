"""``check_environment()``: versions and a few-second self-test, one OK line per check."""
from __future__ import annotations

import importlib
import platform

# package -> what it is for (shown when it is missing)
REQUIRED = {
    "numpy": "arrays",
    "scipy": "linear algebra",
    "matplotlib": "plots",
    "ase": "structures, calculators and MD",
    "vesin": "neighbour lists",
    "torch": "neural networks",
    "sklearn": "kernel ridge regression (notebook 01)",
    "ipywidgets": "interactive sliders",
    "tqdm": "progress bars",
}
INSTALL_HINT = 'pip install torch==2.13.0 && pip install -e ".[test]"   (from the course folder)'


def _version(module) -> str:
    return getattr(module, "__version__", "unknown")


def _self_test_emt() -> str:
    from ase.build import bulk
    from ase.calculators.emt import EMT

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.calc = EMT()
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    if not abs(forces).max() < 1e-8:
        raise RuntimeError(f"perfect fcc Cu should feel no force, got {abs(forces).max():.2e} eV/Å")
    return f"EMT labels a 4-atom Cu cell: E = {energy:.4f} eV, max |F| < 1e-8 eV/Å"


def _self_test_torch() -> str:
    import torch

    generator = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    x = torch.randn(5, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    ok = torch.autograd.gradcheck(lambda t: model(t).sum(), (x,))
    if not ok:
        raise RuntimeError("autograd gradient check failed")
    return "torch runs a tiny network and its gradients pass gradcheck"


def check_environment(verbose: bool = True) -> bool:
    """Print package versions and run a short self-test.

    Prints one ``OK`` line per check, or a ``FAIL`` line that says what to install.

    Returns
    -------
    bool
        True if every check passed.
    """
    lines, ok = [], True
    lines.append(f"OK   python {platform.python_version()}")
    for name, purpose in REQUIRED.items():
        try:
            module = importlib.import_module(name)
        except ImportError:
            ok = False
            lines.append(f"FAIL {name} is missing ({purpose}); install with: {INSTALL_HINT}")
        else:
            lines.append(f"OK   {name} {_version(module)}")
    for test in (_self_test_emt, _self_test_torch):
        try:
            message = test()
        except Exception as exc:  # report every failure, do not stop at the first
            ok = False
            lines.append(f"FAIL {test.__name__[1:]}: {exc}")
        else:
            lines.append(f"OK   {message}")
    if verbose:
        print("\n".join(lines))
        print("All checks passed." if ok else f"Some checks failed. {INSTALL_HINT}")
    return ok

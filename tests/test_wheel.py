"""The built wheel carries the data sets: installed in a fresh environment, every one loads.

Builds the wheel from a copy of this checkout's package sources (``pip wheel . --no-deps
--no-build-isolation``, in a temporary folder, so no ``build/`` is left in the checkout),
installs it into a new virtual environment that sees this interpreter's packages (numpy,
ASE, ...) but not the editable checkout, and loads each data set from a folder outside the
repository, where ``nnptutor/datasets/`` of the source tree cannot be found by accident.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import nnptutor as nt

ROOT = Path(__file__).resolve().parents[1]

LOAD_ALL = """
import json, sys
import nnptutor
from nnptutor import data
from nnptutor.descriptors.densities import read_density_file
counts = {name: len(data.load(name)) for name in data.available()}
fitted = read_density_file(data.DATA_DIR / "densities" / "fitted_HCNO.gdens")
print(json.dumps({"package": nnptutor.__file__, "counts": counts, "densities": sorted(fitted)}))
"""


def run(command, **kwargs):
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Python of a fresh venv with the wheel of this checkout installed."""
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools")
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT / "nnptutor", source / "nnptutor",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp / "dist")], cwd=tmp)
    wheels = list((tmp / "dist").glob("nnptutor-*.whl"))
    assert len(wheels) == 1, wheels
    run([sys.executable, "-m", "venv", "--system-site-packages", str(tmp / "venv")])
    python = tmp / "venv" / ("Scripts" if os.name == "nt" else "bin") / "python"
    run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheels[0])])
    return python, tmp


def test_every_data_set_loads_from_the_installed_wheel(installed):
    python, tmp = installed
    outside = tmp / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    report = json.loads(run([str(python), "-c", LOAD_ALL], cwd=outside, env=env))
    package = Path(report["package"]).resolve()
    assert ROOT not in package.parents, f"imported the checkout, not the wheel: {package}"
    expected = {name: nt.data.describe(name)["count"] for name in nt.data.available()}
    assert report["counts"] == expected
    assert report["densities"] == ["C", "H", "N", "O"]

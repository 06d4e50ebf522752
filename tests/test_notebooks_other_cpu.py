"""Every notebook passes strict nbval a second time with torch's CPU kernels on another
instruction set (``ATEN_CPU_CAPABILITY=default``: no AVX2/AVX-512 vector kernels).

A trained model's last digits change with the kernels, so this pass fails wherever a checked
output prints a rounded float of a trained model instead of a conclusion against a threshold:
it is how the course shows that its checked outputs hold on any student's CPU.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_passes_nbval_with_default_cpu_kernels(notebook):
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", "-q", "-p", "no:cacheprovider",
         str(notebook.relative_to(REPO))],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, (
        f"{notebook.name} fails nbval with ATEN_CPU_CAPABILITY=default:\n{run.stdout[-6000:]}"
    )

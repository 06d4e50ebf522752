"""One matplotlib backend per notebook: mixing inline and ipympl in one kernel makes figures
jump backends. Static (no browser needed), so it runs everywhere."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")) + sorted(
    (Path(__file__).parent / "fixtures").glob("*.ipynb"))
MAGIC = re.compile(r"^\s*%matplotlib\s+(\S+)", re.M)
USE = re.compile(r"""matplotlib\.use\(\s*["']([^"']+)["']""")
ALIASES = {"ipympl": "widget", "module://ipympl.backend_nbagg": "widget",
           "module://matplotlib_inline.backend_inline": "inline"}


def backends(source: str) -> set[str]:
    """Matplotlib backends a cell's source selects, ipympl spelt as ``widget``."""
    found = MAGIC.findall(source) + USE.findall(source)
    return {ALIASES.get(name, name) for name in found}


def test_backends_are_recognised():
    assert backends("%matplotlib inline\nimport numpy") == {"inline"}
    assert backends("%matplotlib ipympl\n") == {"widget"}
    assert backends("import matplotlib\nmatplotlib.use('module://ipympl.backend_nbagg')") == {"widget"}
    assert backends("plt.plot(x)  # %matplotlib widget in a comment is not at line start") == set()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_matplotlib_backend_per_notebook(path):
    nb = nbformat.read(path, as_version=4)
    chosen = set().union(*(backends(c.source) for c in nb.cells if c.cell_type == "code"))
    assert len(chosen) <= 1, f"{path.name} switches matplotlib backends: {sorted(chosen)}"

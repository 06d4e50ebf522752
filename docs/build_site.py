"""Build the course website from the committed, executed notebooks (nothing is re-executed).

    python docs/build_site.py [OUTPUT_DIR]        # default: docs/_build/html

The pages are assembled in ``OUTPUT_DIR/../site-source`` (the repository is never written to):
the landing page is README.md with links to the lectures, one page per notebook, the data and
benchmark READMEs, the notes in docs/ and an API reference from the library's docstrings.
Sphinx with MyST-NB renders them (docs/conf.py; docs/site.md says why this tool). Interactive
widgets cannot run on a static page: their output is replaced by a note, and the figure drawn
by the same code at the default values (the widget's static twin) stays on the page.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = (
    "*An interactive widget is here when you run this notebook in JupyterLab. "
    "On this page the figure drawn by the same code at its default values stands for it.*"
)


def lecture_notebooks() -> list[Path]:
    """The course notebooks in lecture order, appendices after their lecture."""
    return sorted((REPO / "notebooks").glob("[0-9][0-9]*.ipynb"))


def static_notebook(path: Path) -> dict:
    """A copy of a notebook for a static page: widget views replaced by a note, solutions
    (cells whose source is hidden in JupyterLab) collapsed, widget state dropped."""
    nb = json.loads(path.read_text())
    nb["metadata"].pop("widgets", None)
    for cell in nb["cells"]:
        jupyter = cell.get("metadata", {}).get("jupyter", {})
        if jupyter.get("source_hidden"):
            tags = cell["metadata"].setdefault("tags", [])
            tags += [t for t in ("hide-input", "hide-output") if t not in tags]
        for output in cell.get("outputs", []):
            if WIDGET_MIME in output.get("data", {}):
                output["data"] = {"text/markdown": WIDGET_NOTE}
    return nb


def landing_page(notebooks: list[Path]) -> str:
    """README.md with each lecture's name linked to its page, and the site's table of contents."""
    text = (REPO / "README.md").read_text()
    for path in notebooks:
        text = text.replace(f"`{path.stem}`", f"[`{path.stem}`](notebooks/{path.name})")
    lectures = "\n".join(f"notebooks/{p.stem}" for p in notebooks)
    notes = sorted(p.stem for p in DOCS.glob("*.md") if p.stem not in ("site", "api"))
    reference = "\n".join(["api", "data/README", "benchmarks/README", *notes, "site"])
    return (
        text
        + f"\n\n```{{toctree}}\n:hidden:\n:caption: Lectures\n\n{lectures}\n```\n"
        + f"\n```{{toctree}}\n:hidden:\n:caption: Reference\n\n{reference}\n```\n"
    )


def assemble(source: Path) -> None:
    """Write every page of the site into ``source`` (emptied first)."""
    shutil.rmtree(source, ignore_errors=True)
    (source / "notebooks").mkdir(parents=True)
    notebooks = lecture_notebooks()
    for path in notebooks:
        (source / "notebooks" / path.name).write_text(json.dumps(static_notebook(path)))
    for folder in ("data", "benchmarks"):  # README plus the scripts it links to (downloads)
        shutil.copytree(REPO / folder, source / folder,
                        ignore=shutil.ignore_patterns("*.gz", "results", "densities", "__pycache__"))
    shutil.copytree(REPO / "figures", source / "figures", ignore=shutil.ignore_patterns("*.py"))
    for page in DOCS.glob("*.md"):
        shutil.copy(page, source / page.name)
    (source / "index.md").write_text(landing_page(notebooks))


def build(output: Path) -> int:
    """Assemble the pages and run Sphinx; returns Sphinx's exit status (0: no warnings)."""
    from sphinx.cmd.build import build_main

    source = output.parent / "site-source"
    assemble(source)
    args = ["-b", "html", "-c", str(DOCS), "-W", "--keep-going", "-q", str(source), str(output)]
    return build_main(args)


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS / "_build" / "html"
    sys.exit(build(out.resolve()))

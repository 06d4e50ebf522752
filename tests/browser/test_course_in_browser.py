"""The course as students meet it: JupyterLab in a real (headless) browser.

Every notebook is opened, run with Run > Run All Cells and checked for errors and for its
last output; in notebooks with widgets each slider is found by its label, moved with the
keyboard, and the figure it drives must change while the kernel receives the new value.
Each notebook runs once: widget notebooks in ``test_widgets``, the others in ``test_smoke``.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from lab_driver import LabPage, NotebookTab, canonical_label, last_output, readout_matches, uses_widgets
from processes import descendants, inet_sockets, off_loopback

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FIXTURES = sorted((HERE / "fixtures").glob("*.ipynb"))
WIDGET_NOTEBOOKS = [p for p in NOTEBOOKS + FIXTURES if uses_widgets(p)]
PLAIN_NOTEBOOKS = [p for p in NOTEBOOKS if not uses_widgets(p)]
# Sliders each notebook promises (design.md: widgets for eta, Rs, kappa, zeta, lambda).
EXPECTED_SLIDERS = {
    "03_symmetry_functions": {"η", "R_s", "κ", "ζ", "λ"},
    "widget_demo": {"η", "R_s", "λ"},
}

pytestmark = pytest.mark.browser


def _relpath(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _run_to_the_end(lab: LabPage, path: Path) -> NotebookTab:
    """Open ``path``, run all cells, assert no errors and the last output as committed."""
    tab = NotebookTab(lab, _relpath(path))
    cells = tab.run_all()
    tab.wait_for_widgets()
    failed = [k for k, c in enumerate(cells) if "error" in c["outputs"]]
    assert not failed, f"{path.name}: cells {failed} raised:\n" + "\n".join(tab.errors_shown())
    assert tab.errors_shown() == [], f"{path.name} shows errors: {tab.errors_shown()}"
    counts = [c["count"] for c in cells if c["type"] == "code" and c["source"].strip()]
    assert counts == sorted(counts), f"{path.name}: cells ran out of order {counts}"
    index, text = last_output(path)
    if index is None:  # committed without outputs: the last cell that printed anything
        index = max((k for k, c in enumerate(cells) if c["outputs"]), default=None)
        assert index is not None, f"{path.name}: no cell shows any output after Run All"
    shown = tab.output_text(index)
    assert shown, f"{path.name}: cell {index} shows no output after Run All"
    if text is not None:
        assert shown == text, f"{path.name}: last output {shown!r}, committed {text!r}"
    assert tab.console_errors == [], f"{path.name}: JavaScript errors {tab.console_errors}"
    server_and_kernels = [lab.server.pid] + descendants(lab.server.pid)
    assert len(server_and_kernels) > 1 and inet_sockets(server_and_kernels), "no sockets seen"
    assert off_loopback(server_and_kernels) == [], "server or kernel reached beyond loopback"
    return tab


@pytest.mark.parametrize("path", PLAIN_NOTEBOOKS, ids=lambda p: p.stem)
def test_smoke(lab_page, path):
    tab = _run_to_the_end(lab_page, path)
    tab.close()


@pytest.mark.parametrize("path", WIDGET_NOTEBOOKS, ids=lambda p: p.stem)
def test_widgets(lab_page, screenshots, path):
    tab = _run_to_the_end(lab_page, path)
    sliders = tab.sliders()
    missing = EXPECTED_SLIDERS.get(path.stem, set()) - set(sliders)
    assert not missing, f"{path.name}: no slider labelled {sorted(missing)} (found {sorted(sliders)})"
    kernel = tab.kernel_sliders()
    for label, instances in sliders.items():
        for slider in instances:
            move = tab.move(slider, kernel)
            kernel = move.kernel_after
            where = f"{path.name}, slider {label}"
            assert move.readout_after != move.readout_before, f"{where}: readout did not move"
            assert move.figure_changed, f"{where}: the figure did not change"
            assert len(move.kernel_change) == 1, f"{where}: kernel saw {move.kernel_change}"
            (description, _, value), = move.kernel_change.values()
            assert canonical_label(description) == label, f"{where}: kernel moved {description}"
            assert readout_matches(move.readout_after, value), (
                f"{where}: readout {move.readout_after!r} but the kernel has {value!r}")
    widget_cells = tab.root.locator(".jp-Cell")
    for index in range(widget_cells.count()):
        if widget_cells.nth(index).locator(".widget-slider").count():
            shown = tab.screenshot(index, screenshots / f"{path.stem}-cell{index:02d}.png")
            assert shown, f"{path.name}: cell {index} shows no figure next to its sliders"
    assert tab.errors_shown() == [], f"{path.name} shows errors after moving sliders"
    tab.close()

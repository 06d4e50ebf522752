"""The course as students meet it: JupyterLab in a real (headless) browser.

Every notebook is opened, run with Run > Run All Cells and checked for errors and for its
last output; in notebooks with widgets each slider is found by its label, moved with the
keyboard, and the figure it drives must change while the kernel receives the new value.
Each notebook runs once: widget notebooks in ``test_widgets``, the others in ``test_smoke``.
The notebooks run side by side in tabs of one JupyterLab page (``course`` fixture, longest
first); each test waits for its own notebook's Run All and then checks it in the front tab.
"""
from __future__ import annotations

from pathlib import Path

import pytest

import time

from lab_driver import CourseRunner, NotebookTab, canonical_label, last_output, readout_matches, uses_widgets
from processes import descendants, inet_sockets, off_loopback

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FIXTURES = [HERE / "fixtures" / "widget_demo.ipynb"]
# sliders whose figure vanishes or turns blank after a move: the checks must catch both
MISSING_FIGURE = HERE / "fixtures" / "figure_goes_missing.ipynb"
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


def _run_to_the_end(course: CourseRunner, path: Path) -> NotebookTab:
    """Run all cells of ``path``; assert no errors and the last output as committed."""
    tab = course.finished(_relpath(path))
    tab.checks_started = time.monotonic()
    cells = tab.cells
    status = tab.kernel_status()
    assert status not in ("dead", "unknown", None), f"{path.name}: kernel {status} after Run All"
    tab.wait_for_widgets()
    failed = [k for k, c in enumerate(cells) if "error" in c["outputs"]]
    assert not failed, f"{path.name}: cells {failed} raised:\n" + "\n".join(tab.errors_shown())
    assert tab.errors_shown() == [], f"{path.name} shows errors: {tab.errors_shown()}"
    counts = [c["count"] for c in cells if c["type"] == "code" and c["source"].strip()]
    assert counts == sorted(counts), f"{path.name}: cells ran out of order {counts}"
    index, text = last_output(tab.server.root / _relpath(path))  # the copy the browser ran
    if index is None:  # committed without outputs: the last cell that printed anything
        index = max((k for k, c in enumerate(cells) if c["outputs"]), default=None)
        assert index is not None, f"{path.name}: no cell shows any output after Run All"
    shown = tab.output_text(index)
    assert shown, f"{path.name}: cell {index} shows no output after Run All"
    if text is not None:
        assert shown == text, f"{path.name}: last output {shown!r}, committed {text!r}"
    assert tab.console_errors == [], f"JavaScript errors while {path.name} was open: {tab.console_errors}"
    server_and_kernels = [tab.server.pid] + descendants(tab.server.pid)
    assert len(server_and_kernels) > 1 and inet_sockets(server_and_kernels), "no sockets seen"
    assert off_loopback(server_and_kernels) == [], "server or kernel reached beyond loopback"
    return tab


@pytest.mark.parametrize("path", PLAIN_NOTEBOOKS, ids=lambda p: p.stem)
def test_smoke(course, path):
    tab = _run_to_the_end(course, path)
    course.close(tab, tab.checks_started)


@pytest.mark.parametrize("path", WIDGET_NOTEBOOKS, ids=lambda p: p.stem)
def test_widgets(course, screenshots, path):
    tab = _run_to_the_end(course, path)
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
    course.close(tab, tab.checks_started)


@pytest.mark.parametrize("path", [MISSING_FIGURE], ids=lambda p: p.stem)
def test_checks_catch_missing_and_blank_figures(course, tmp_path, path):
    """The figure checks of ``test_widgets`` fail where a slider leaves no figure (η) or a
    blank one (R_s); both figures show before the move, so the checks are not always False."""
    tab = _run_to_the_end(course, path)
    sliders = tab.sliders()
    for label, index, text in (("η", 2, "kernel received eta=0.60"),
                               ("R_s", 3, "kernel received r_s=2.75")):
        slider, = sliders[label]
        before = tab.images_near(slider)
        assert len(before) == 1 and tab.screenshot(index, tmp_path / f"{label}-before.png"), (
            f"{label}: the first figure should show")
        tab.press(slider)
        tab.cell(index).get_by_text(text).wait_for()  # the kernel ran the callback
        after = tab.wait_for_images_near(slider, before)
        assert len(after) == (0 if label == "η" else 1), f"{label}: images {after}"
        assert not tab.screenshot(index, tmp_path / f"{label}-after.png"), (
            f"{label}: the screenshot check passed without a figure")
    course.close(tab, tab.checks_started)

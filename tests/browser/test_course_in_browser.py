"""The course as students meet it: JupyterLab in a real (headless) browser.

Every notebook is opened, run with Run > Run All Cells and checked for errors and for its
last output. In notebooks with widgets every control (slider, dropdown, toggle and radio
buttons, checkbox, button) is found by its kind and description and operated with the
keyboard; the figure in its cell must change (pixels) and the kernel must receive the value
the page shows (README.md: "Contract for widget authors").
Each notebook runs once: widget notebooks in ``test_widgets``, the others in ``test_smoke``.
The notebooks run side by side in tabs of one JupyterLab page (``course`` fixture, longest
first); each test waits for its own notebook's Run All and then checks it in the front tab.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from controls import find_controls, kernel_controls, operate, press, cell_images, shown_matches
from lab_driver import CourseRunner, NotebookTab, last_output, uses_widgets
from processes import descendants, inet_sockets, off_loopback

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]*.ipynb"))
FIXTURES = [HERE / "fixtures" / "widget_demo.ipynb"]
# controls whose figure vanishes or turns blank after a move: the checks must catch both
MISSING_FIGURE = HERE / "fixtures" / "figure_goes_missing.ipynb"
# Controls each lecture's widget promises (issue 14), by notebook name prefix: (kinds or None
# for any kind, pattern its description must match). Patterns, not exact labels, so that a
# widget author may word a description freely around the quantity's course symbol.
SLIDER, SELECTION, BUTTON = {"slider"}, {"dropdown", "toggle_buttons", "radio", "slider"}, {"button"}
EXPECTED_CONTROLS = {
    "01_": [(SELECTION, r"(?i)molecule"), (None, r"(?i)rotat|angle|permut")],
    "02_": [(None, r"(?i)\br_?c\b|cutoff radius"), (SELECTION, r"(?i)cutoff|f_c")],
    "03_": [(SLIDER, r"η.*\[Å⁻²\]"), (SLIDER, r"R_s \[Å\]"), (SLIDER, r"κ \[Å⁻¹\]"),
            (SLIDER, r"G4.*η.*\[Å⁻²\]"), (SLIDER, r"ζ"), (SLIDER, r"λ"), (SLIDER, r"R_c \[Å\]"),
            (SELECTION, r"(?i)cutoff"), (SELECTION, r"(?i)atom")],
    "04_": [(BUTTON, r"(?i)train")],
    "06_": [(None, r"(?i)order|\bn\b"), (None, r"σ|(?i:sigma)")],
    "07_": [(None, r"(?i)threshold|σ|spread"), (None, r"(?i)top|\bk\b")],
    "widget_demo": [(SLIDER, r"η"), (SLIDER, r"R_s"), (SLIDER, r"λ"), ({"dropdown"}, r"shape"),
                    ({"toggle_buttons"}, r"colour"), ({"radio"}, r"line"),
                    ({"checkbox"}, r"grid"), (BUTTON, r"redraw")],
}
WIDGET_NOTEBOOKS = [p for p in NOTEBOOKS + FIXTURES
                    if uses_widgets(p) or any(p.stem.startswith(k) for k in EXPECTED_CONTROLS)]
PLAIN_NOTEBOOKS = [p for p in NOTEBOOKS if p not in WIDGET_NOTEBOOKS]

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
    assert tab.kernel_errors() == [], f"{path.name}: the kernel reported {tab.kernel_errors()}"
    server_and_kernels = [tab.server.pid] + descendants(tab.server.pid)
    assert len(server_and_kernels) > 1 and inet_sockets(server_and_kernels), "no sockets seen"
    assert off_loopback(server_and_kernels) == [], "server or kernel reached beyond loopback"
    return tab


@pytest.mark.parametrize("path", PLAIN_NOTEBOOKS, ids=lambda p: p.stem)
def test_smoke(course, path):
    tab = _run_to_the_end(course, path)
    course.close(tab, tab.checks_started)


def _expected(path: Path) -> list:
    return [rule for prefix, rules in EXPECTED_CONTROLS.items() if path.stem.startswith(prefix)
            for rule in rules]


@pytest.mark.parametrize("path", WIDGET_NOTEBOOKS, ids=lambda p: p.stem)
def test_widgets(course, screenshots, path):
    tab = _run_to_the_end(course, path)
    controls = find_controls(tab)
    # a lecture that promises a widget must show one (others may only show progress bars)
    assert controls or not _expected(path), f"{path.name}: no widget control shows after Run All"
    found = sorted(f"{c.kind} {c.label!r}" for c in controls)
    for kinds, pattern in _expected(path):
        assert any((kinds is None or c.kind in kinds) and re.search(pattern, c.label) for c in controls), (
            f"{path.name}: no {'/'.join(sorted(kinds or ['control']))} whose description matches "
            f"{pattern!r} (found {found})")
    unnamed = [c.kind for c in controls if not c.label]
    assert not unnamed, f"{path.name}: controls without a description: {unnamed}"
    kernel = kernel_controls(tab)
    for control in controls:
        where = f"{path.name}, cell {control.cell}, {control.kind} {control.label!r}"
        move = operate(tab, control, kernel, timeout=120.0 if control.kind == "button" else 60.0)
        kernel = move.kernel_after
        if control.kind != "button":
            assert move.shown_after != move.shown_before, f"{where}: the keyboard did not move it"
        assert move.figures_after is not None, f"{where}: no new figure after the move"
        assert move.figure_changed, f"{where}: the figure did not change"
        if control.kind != "button":
            value = move.kernel_value()
            assert value is not None, f"{where}: the kernel saw no change of it ({move.kernel_change})"
            assert shown_matches(move.shown_after, value), (
                f"{where}: the page shows {move.shown_after!r} but the kernel has {value!r}")
        assert tab.errors_shown() == [], f"{where}: errors after the move: {tab.errors_shown()}"
        assert tab.kernel_errors() == [], f"{where}: the kernel reported {tab.kernel_errors()}"
    for index in sorted({c.cell for c in controls}):
        shown = tab.screenshot(index, screenshots / f"{path.stem}-cell{index:02d}.png")
        assert shown, f"{path.name}: cell {index} shows no figure next to its controls"
    assert tab.console_errors == [], f"JavaScript errors in {path.name}: {tab.console_errors}"
    assert tab.kernel_errors() == [], f"{path.name}: the kernel reported {tab.kernel_errors()}"
    course.close(tab, tab.checks_started)


@pytest.mark.parametrize("path", [MISSING_FIGURE], ids=lambda p: p.stem)
def test_checks_catch_missing_and_blank_figures(course, tmp_path, path):
    """The figure checks of ``test_widgets`` fail where a control leaves no figure (η) or a
    blank one (R_s); both figures show before the move, so the checks are not always False."""
    tab = _run_to_the_end(course, path)
    controls = {c.label: c for c in find_controls(tab)}
    for label, text in (("η", "kernel received eta=0.60"), ("R_s", "kernel received r_s=2.75")):
        control = controls[label]
        before = cell_images(tab, control.cell)
        assert len(before) == 1 and tab.screenshot(control.cell, tmp_path / f"{label}-before.png"), (
            f"{label}: the first figure should show")
        press(tab, control)
        tab.cell(control.cell).get_by_text(text).wait_for()  # the kernel ran the callback
        tab.page.wait_for_function(
            "([cell, before]) => JSON.stringify(Array.from(cell.querySelectorAll("
            "'.jp-OutputArea-output img')).map(i => i.src)) !== JSON.stringify(before)",
            arg=[tab.cell(control.cell).element_handle(), before], polling=100)
        after = cell_images(tab, control.cell)
        assert len(after) == (0 if label == "η" else 1), f"{label}: images {after}"
        assert not tab.screenshot(control.cell, tmp_path / f"{label}-after.png"), (
            f"{label}: the screenshot check passed without a figure")
    # an exception in a callback that the page shows only in JupyterLab's log console
    assert tab.kernel_errors() == [] and tab.errors_shown() == []
    press(tab, controls["fail"])
    tab.page.wait_for_function(
        "(path) => window.__kernelErrors[path].some(text => text.includes('callback failed'))",
        arg=tab.relpath)
    assert tab.errors_shown() == [], "the failing callback's error should not show in the notebook"
    assert any("a widget callback failed" in text for text in tab.kernel_errors()), tab.kernel_errors()
    course.close(tab, tab.checks_started)

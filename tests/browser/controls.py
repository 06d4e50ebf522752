"""Every ipywidgets control of a notebook, found in the page and operated with the keyboard.

A control is found by its kind (the CSS class ipywidgets 8 gives its view) and its
description (the text the student reads next to it), never by a test hook in the notebook.
:func:`operate` moves one control one keyboard step, waits until the kernel has redrawn the
figure(s) of the control's cell, and reports what changed: the value shown in the page, the
figure's pixels, and the control's value in the kernel (asked through JupyterLab).
See README.md, "Contract for widget authors".
"""
from __future__ import annotations

import base64
import io
import json
import math
import re
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # without playwright the browser tests skip (or fail under CI) in conftest
    PlaywrightTimeout = TimeoutError

from lab_driver import _STATUS_JS

#: ipywidgets 8 view classes of the controls the tests drive, by kind.
KINDS = {
    "slider": "widget-slider",  # FloatSlider, FloatLogSlider, IntSlider, SelectionSlider
    "dropdown": "widget-dropdown",
    "toggle_buttons": "widget-toggle-buttons",
    "radio": "widget-radio",
    "checkbox": "widget-checkbox",
    "button": "widget-button",
}
SELECTOR = ", ".join(f".jp-OutputArea-output .{css}" for css in KINDS.values())

# Kind, description and the value the page shows of one control element.
_DESCRIBE = """(el) => {
  const kinds = %s;
  const kind = Object.keys(kinds).find(k => el.classList.contains(kinds[k])) || 'unknown';
  const text = node => node ? node.textContent.replace(/\\u200b/g, '').trim() : '';
  const description = el.querySelector(':scope > .widget-label');
  if (kind === 'checkbox') {
    const box = el.querySelector('input[type=checkbox]');
    return {kind, label: text(el.querySelector('.widget-label-basic')), shown: String(box.checked)};
  }
  if (kind === 'button') return {kind, label: text(el), shown: null};
  let shown = '';
  if (kind === 'slider') shown = text(el.querySelector('.widget-readout'));
  if (kind === 'dropdown') {
    const select = el.querySelector('select');
    shown = select.selectedIndex >= 0 ? select.options[select.selectedIndex].text.trim() : '';
  }
  if (kind === 'toggle_buttons') shown = text(el.querySelector('button.mod-active'));
  if (kind === 'radio') {
    const checked = el.querySelector('input[type=radio]:checked');
    shown = checked ? text(checked.closest('label')) : '';
  }
  return {kind, label: text(description), shown};
}""" % json.dumps(KINDS)
# Index of the selected option of a ToggleButtons or RadioButtons element, and their number.
_SELECTED = """(el) => {
  const items = Array.from(el.querySelectorAll('button, input[type=radio]'));
  return [items.findIndex(item => item.classList.contains('mod-active') || item.checked), items.length];
}"""
# Sources of the decoded images in a cell's outputs (figures), or null while one is loading.
_CELL_IMAGES = """(cell) => {
  const images = Array.from(cell.querySelectorAll('.jp-OutputArea-output img'));
  if (images.some(img => !img.complete)) return null;
  return images.map(img => img.src);
}"""
# Every control in the kernel: model id -> [class, description, value shown to the student].
KERNEL_CONTROLS = """
import json as _json, warnings as _warnings
from ipywidgets.widgets.widget import _instances as _widget_instances
_kinds = ("Dropdown", "ToggleButtons", "RadioButtons", "Checkbox")
with _warnings.catch_warnings():
    _warnings.simplefilter("ignore")
    print(_json.dumps({key: [type(m).__name__, m.description,
                             str(m.label) if hasattr(m, "label") else m.value]
                       for key, m in list(_widget_instances.items())
                       if type(m).__name__.endswith("Slider") or type(m).__name__ in _kinds},
                      default=str))
"""


@dataclass
class Control:
    """One control on the page: its kind, description, the cell it is in, and its locator."""
    kind: str
    label: str
    cell: int
    locator: object

    def shown(self) -> str | None:
        """The value the page shows (readout, selected option, checked state)."""
        return self.locator.evaluate(_DESCRIBE)["shown"]


@dataclass
class ControlMove:
    control: Control
    shown_before: str | None
    shown_after: str | None
    figures_before: list
    figures_after: list | None  # None: no new figure appeared before the timeout
    kernel_change: dict  # model id -> (description, before, after) of every control that moved
    kernel_after: dict  # model id -> [class, description, value] after the move

    @property
    def figure_changed(self) -> bool:
        """Whether a figure shows after the move and its pixels differ from before."""
        return bool(self.figures_after) and figures_differ(self.figures_before, self.figures_after)

    def kernel_value(self):
        """The kernel's new value of a control with this description, else None."""
        for description, _, value in self.kernel_change.values():
            if description.strip() == self.control.label:
                return value
        return None


def find_controls(tab) -> list[Control]:
    """Every control in the outputs of ``tab``'s cells, in page order."""
    found = []
    cells = tab.root.locator(".jp-Cell")
    for index in range(cells.count()):
        elements = cells.nth(index).locator(SELECTOR)
        for k in range(elements.count()):
            element = elements.nth(k)
            described = element.evaluate(_DESCRIBE)
            found.append(Control(described["kind"], described["label"], index, element))
    return found


def kernel_controls(tab) -> dict:
    return json.loads(tab.execute(KERNEL_CONTROLS))


def press(tab, control: Control) -> tuple[str | None, str | None]:
    """Move ``control`` one step with the keyboard (see the README's contract); return the
    value shown (before, after)."""
    element, before = control.locator, control.shown()
    element.scroll_into_view_if_needed()
    if control.kind == "slider":
        handle = element.locator(".noUi-handle").first
        handle.focus()
        for key in ("ArrowRight", "ArrowLeft"):
            handle.press(key)
            if control.shown() != before:
                break
    elif control.kind == "dropdown":
        # JupyterLab takes a bare ArrowDown (next cell); Alt+ArrowDown opens the list as a
        # student would, then the next option (the previous one at the end) and Enter
        select = element.locator("select")
        selected, count = select.evaluate("(s) => [s.selectedIndex, s.options.length]")
        select.focus()
        for key in ("Alt+ArrowDown", "ArrowDown" if selected + 1 < count else "ArrowUp", "Enter"):
            select.press(key)
    elif control.kind in ("toggle_buttons", "radio"):
        selected, count = element.evaluate(_SELECTED)
        target = selected + 1 if selected + 1 < count else selected - 1
        item = element.locator("button, input[type=radio]").nth(target)
        item.focus()
        item.press("Enter" if control.kind == "toggle_buttons" else "Space")
    elif control.kind == "checkbox":
        box = element.locator("input[type=checkbox]")
        box.focus()
        box.press("Space")
    else:  # button
        element.focus()
        element.press("Enter")
    return before, control.shown()


def cell_images(tab, index: int) -> list[str]:
    """Sources of the images in the outputs of cell ``index`` (data URLs of PNG figures)."""
    return tab.cell(index).evaluate(_CELL_IMAGES) or []


def operate(tab, control: Control, kernel_before: dict | None = None,
            timeout: float = 60.0) -> ControlMove:
    """Move ``control`` one step, wait for the kernel to redraw, and report what changed.

    The redraw is over when the images of the control's cell differ from before the move, are
    all loaded, the notebook's kernel is idle, and a round trip to the kernel leaves them as
    they are (a callback may display more than once)."""
    cell = tab.cell(control.cell)
    before = cell_images(tab, control.cell)
    if kernel_before is None:
        kernel_before = kernel_controls(tab)
    shown_before, shown_after = press(tab, control)
    condition = f"""([cell, before, path]) => {{
      const images = ({_CELL_IMAGES})(cell);
      return images !== null && JSON.stringify(images) !== JSON.stringify(before)
             && ({_STATUS_JS})(path) === 'idle';
    }}"""
    handle, deadline, after = cell.element_handle(), time.monotonic() + timeout, None
    while after is None and time.monotonic() < deadline:
        try:
            tab.page.wait_for_function(condition, arg=[handle, before, tab.relpath], polling=100,
                                       timeout=max(deadline - time.monotonic(), 0.001) * 1000)
        except PlaywrightTimeout:
            break
        now = cell_images(tab, control.cell)
        kernel_controls(tab)  # a round trip to the kernel
        if cell_images(tab, control.cell) == now:
            after = now
    kernel_after = kernel_controls(tab)
    change = {key: (description, kernel_before.get(key, [None, None, None])[2], value)
              for key, (_, description, value) in kernel_after.items()
              if kernel_before.get(key, [None, None, None])[2] != value}
    return ControlMove(control, shown_before, shown_after, before, after, change, kernel_after)


def _pixels(source: str):
    """RGB pixels of an image given as a data URL (None for any other source)."""
    match = re.match(r"data:image/[a-z+]+;base64,(.*)$", source, re.S)
    if not match:
        return None
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(match.group(1)))).convert("RGB"))


def figures_differ(before: list[str], after: list[str]) -> bool:
    """Whether the figures ``after`` differ from ``before`` in number, size or any pixel."""
    if len(before) != len(after):
        return True
    for old, new in zip(before, after):
        a, b = _pixels(old), _pixels(new)
        if a is None or b is None:
            if old != new:
                return True
        elif a.shape != b.shape or np.any(a != b):
            return True
    return False


def shown_matches(shown: str | None, value) -> bool:
    """Whether the value the page shows is the value the kernel holds."""
    if isinstance(value, bool):
        return shown == str(value).lower()
    if isinstance(value, str):  # ipywidgets shows spaces in option labels as no-break spaces
        return " ".join((shown or "").split()) == " ".join(value.split())
    try:
        number = float((shown or "").replace("−", "-"))
    except ValueError:
        return False
    return math.isclose(number, value, rel_tol=5e-3, abs_tol=5e-3)

"""Drive one notebook in JupyterLab the way a student does: open, run all, move sliders.

One JupyterLab page serves the whole session (loading JupyterLab costs more than most checks);
notebooks are opened in it one at a time and closed with their kernels. The page is a real
JupyterLab (``--LabApp.expose_app_in_browser``), so besides the DOM the helpers may ask the
app for the notebook model and send code to the notebook's own kernel.
"""
from __future__ import annotations

import io
import json
import math
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np
from PIL import Image

# JavaScript run in the page; the panel is the notebook tab under test.
_PANEL = "window.__notebookUnderTest"
_OPEN = f"""async (path) => {{
  const app = window.jupyterapp;
  const panel = await app.commands.execute('docmanager:open', {{path, factory: 'Notebook'}});
  app.shell.activateById(panel.id);
  {_PANEL} = panel;
  return panel.id;
}}"""
_CLOSE = f"""async () => {{
  const panel = {_PANEL};
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const id = kernel ? kernel.id : null;
  await panel.sessionContext.shutdown();
  panel.dispose();  // without the save dialog: the test never saves
  {_PANEL} = null;
  return id;
}}"""
_KERNEL_STATUS = f"""() => {{
  const panel = {_PANEL};
  const kernel = panel && panel.sessionContext && panel.sessionContext.session
                 && panel.sessionContext.session.kernel;
  return kernel ? kernel.status : null;
}}"""
_CELL_STATES = f"""() => {{
  const panel = {_PANEL};
  return panel.content.widgets.map(cell => ({{
    type: cell.model.type,
    source: cell.model.sharedModel.getSource(),
    count: cell.model.type === 'code' ? cell.model.executionCount : null,
    outputs: cell.model.type === 'code'
      ? Array.from({{length: cell.model.outputs.length}}, (_, k) => cell.model.outputs.get(k).type)
      : [],
  }}));
}}"""
_EXECUTE = f"""async (code) => {{
  const kernel = ({_PANEL}).sessionContext.session.kernel;
  const future = kernel.requestExecute({{code, silent: false, store_history: false}});
  let text = '';
  future.onIOPub = msg => {{
    if (msg.header.msg_type === 'stream') text += msg.content.text;
    if (msg.header.msg_type === 'error') text += 'ERROR ' + msg.content.ename + ': ' + msg.content.evalue;
  }};
  await future.done;
  return text;
}}"""
# Images a slider drives: those in the nearest enclosing element (inside its cell) that has any.
_IMAGES_NEAR = """(slider) => {
  for (let node = slider.parentElement; node; node = node.parentElement) {
    const images = Array.from(node.querySelectorAll('img')).map(img => img.src);
    if (images.length || node.classList.contains('jp-Cell')) return images;
  }
  return [];
}"""
# Boxes of a cell's images relative to the cell, once decoded and two frames painted.
_DECODED_IMAGE_BOXES = """async (cell) => {
  const images = Array.from(cell.querySelectorAll('img'));
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  await new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
  const origin = cell.getBoundingClientRect();
  return images.filter(img => img.naturalWidth > 0).map(img => {
    const box = img.getBoundingClientRect();
    return [box.left - origin.left, box.top - origin.top, box.width, box.height];
  });
}"""
# Force layout and paint of a cell's images again (a captured frame may have skipped them).
_REPAINT_IMAGES = """(cell) => cell.querySelectorAll('img').forEach(img => {
  img.style.display = 'none'; void img.offsetHeight; img.style.display = '';
})"""
# Every slider widget in the kernel: model id -> [description, value shown to the student].
_KERNEL_SLIDERS = """
import json as _json, warnings as _warnings
from ipywidgets.widgets.widget import _instances as _widget_instances
with _warnings.catch_warnings():
    _warnings.simplefilter("ignore")
    print(_json.dumps({key: [m.description, str(m.label) if hasattr(m, "label") else m.value]
                       for key, m in list(_widget_instances.items())
                       if type(m).__name__.endswith("Slider")}))
"""
ERROR_SELECTORS = [
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]',
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]',
]
# Slider labels the course promises, with the spellings a notebook may use.
SLIDER_NAMES = {
    "η": {"η", "eta", "$\\eta$"}, "R_s": {"R_s", "r_s", "Rs", "$R_s$"},
    "κ": {"κ", "kappa", "$\\kappa$"}, "ζ": {"ζ", "zeta", "$\\zeta$"},
    "λ": {"λ", "lambda", "lambda_", "$\\lambda$"},
}


def canonical_label(text: str) -> str:
    """The course's name for a slider label (``eta`` -> ``η``), else the label itself."""
    text = text.strip().rstrip(":").strip()
    for name, spellings in SLIDER_NAMES.items():
        if text in spellings:
            return name
    return text


def uses_widgets(path: Path) -> bool:
    """Whether a notebook displays ipywidgets (by its source or its committed outputs)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if re.search(r"ipywidgets|\binteract(ive)?\b|_explorer\(|nt\.widgets", cell.source):
            return True
        if any("application/vnd.jupyter.widget-view+json" in out.get("data", {}) for out in cell.outputs):
            return True
    return False


def last_output(path: Path):
    """(index of the last code cell with committed outputs, its text or None).

    The text is given only where the browser shows exactly the committed text: stream and
    plain-text outputs of a cell whose output nbval checks. (None, None) for a notebook
    committed without outputs.
    """
    nb = nbformat.read(path, as_version=4)
    for index in range(len(nb.cells) - 1, -1, -1):
        cell = nb.cells[index]
        if cell.cell_type != "code" or not cell.outputs:
            continue
        tags = cell.metadata.get("tags", [])
        plain = all(out.output_type == "stream" or set(out.get("data", {})) == {"text/plain"}
                    for out in cell.outputs)
        if not plain or "nbval-ignore-output" in tags or "nbval-skip" in tags:
            return index, None
        texts = [out.get("text", "") if out.output_type == "stream"
                 else out["data"]["text/plain"] for out in cell.outputs]
        return index, "".join(texts).strip() or None
    return None, None


@dataclass
class SliderMove:
    label: str
    readout_before: str
    readout_after: str
    figure_changed: bool
    kernel_change: dict  # model id -> (description, before, after) for every slider that moved
    kernel_after: dict  # model id -> [description, value] of every slider after the move


class LabPage:
    """The session's JupyterLab page; ``console_errors`` collects uncaught JavaScript errors."""

    def __init__(self, browser, server, timeout: float = 120.0):
        self.server = server
        self.page = browser.context.new_page()
        self.console_errors: list[str] = []
        self.page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        workspace = f"test-{uuid.uuid4().hex[:8]}"  # a fresh workspace: no tabs restored
        self.page.goto(f"{server.url}/lab/workspaces/{workspace}?reset&token={server.token}")
        self.page.wait_for_function("() => window.jupyterapp && window.jupyterapp.started",
                                    timeout=timeout * 1000)
        self.page.evaluate("() => window.jupyterapp.started")  # resolves once the shell is up

    def close(self):
        self.page.close()


class NotebookTab:
    """One notebook opened in the session's JupyterLab page, with its own kernel."""

    def __init__(self, lab: LabPage, relpath: str):
        self.lab, self.server, self.relpath, self.page = lab, lab.server, relpath, lab.page
        self.errors_before = len(lab.console_errors)
        panel_id = self.page.evaluate(_OPEN, relpath)
        self.root = self.page.locator(f'[id="{panel_id}"]')
        self.wait_for_kernel()

    @property
    def console_errors(self) -> list[str]:
        """JavaScript errors since this notebook was opened."""
        return self.lab.console_errors[self.errors_before:]

    # --- kernel and cells -------------------------------------------------------------------
    def kernel_status(self):
        return self.page.evaluate(_KERNEL_STATUS)

    def wait_for_kernel(self, timeout: float = 60.0):
        """Wait until the notebook is shown and its kernel is idle (accepting a kernel dialog)."""
        deadline = time.monotonic() + timeout
        while self.kernel_status() != "idle":
            dialog = self.page.locator(".jp-Dialog .jp-mod-accept")
            if dialog.count():
                dialog.first.click()
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.relpath}: kernel not idle after {timeout} s "
                                     f"(status {self.kernel_status()!r})")
            time.sleep(0.2)

    def menu(self, menu: str, command: str):
        """Click a menu-bar entry, then the item bound to ``command`` (as a student would)."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
        self.page.locator(f'.lm-Menu-item[data-command="{command}"]').click()

    def run_all(self, timeout: float = 300.0) -> list[dict]:
        """Clear all outputs, Run > Run All Cells, wait until every code cell has run.

        Returns the cell states (type, source, execution count, output types).
        """
        self.menu("Edit", "editmenu:clear-all")
        self.menu("Run", "runmenu:run-all")
        deadline = time.monotonic() + timeout
        while True:
            cells = self.page.evaluate(_CELL_STATES)
            pending = [k for k, c in enumerate(cells)
                       if c["type"] == "code" and c["source"].strip() and c["count"] is None]
            if not pending and self.kernel_status() == "idle":
                break
            if any("error" in c["outputs"] for c in cells):
                break  # JupyterLab stops at the first error; report it below
            if self.kernel_status() in ("dead", "unknown"):
                raise AssertionError(f"{self.relpath}: the kernel died while running cells")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.relpath}: cells {pending} not run after {timeout} s")
            time.sleep(0.25)
        return cells

    def wait_for_widgets(self, timeout: float = 30.0):
        """Wait until no widget placeholder ("Loading widget...") is left on the notebook."""
        deadline = time.monotonic() + timeout
        while self.root.get_by_text("Loading widget...").count() and time.monotonic() < deadline:
            time.sleep(0.2)

    def errors_shown(self) -> list[str]:
        """Texts of error or warning outputs and broken widgets the student would see."""
        shown = []
        for selector in ERROR_SELECTORS:
            for text in self.root.locator(selector).all_inner_texts():
                if re.search(r"Traceback|Error|Warning:", text):
                    shown.append(text[:2000])
        for text in ("Error displaying widget", "Loading widget..."):
            if self.root.get_by_text(text).count():
                shown.append(text)
        return shown

    def execute(self, code: str) -> str:
        """Run ``code`` in the notebook's kernel (not in a cell); return what it printed."""
        return self.page.evaluate(_EXECUTE, code)

    def kernel_sliders(self) -> dict:
        return json.loads(self.execute(_KERNEL_SLIDERS))

    def cell(self, index: int):
        return self.root.locator(".jp-Cell").nth(index)

    def output_text(self, index: int) -> str:
        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        return "\n".join(cell.locator(".jp-OutputArea-output").all_inner_texts()).strip()

    # --- sliders ----------------------------------------------------------------------------
    def sliders(self):
        """{canonical label: [slider locators]} for every ipywidgets slider on the page."""
        found = {}
        boxes = self.root.locator(".widget-slider")
        for k in range(boxes.count()):
            box = boxes.nth(k)
            label = canonical_label(box.locator(".widget-label").first.inner_text())
            found.setdefault(label, []).append(box)
        return found

    def move(self, slider, before_kernel: dict | None = None, timeout: float = 30.0) -> SliderMove:
        """Move a slider one step with the keyboard, wait for the kernel to redraw, and report
        what changed. ``before_kernel``: :meth:`kernel_sliders` now, if the caller knows it."""
        label = canonical_label(slider.locator(".widget-label").first.inner_text())
        readout = slider.locator(".widget-readout")
        images = lambda: slider.evaluate(_IMAGES_NEAR)  # noqa: E731
        before_images, before_readout = images(), readout.inner_text()
        if before_kernel is None:
            before_kernel = self.kernel_sliders()
        handle = slider.locator(".noUi-handle").first
        handle.scroll_into_view_if_needed()
        handle.focus()
        for key in ("ArrowRight", "ArrowLeft"):  # right, or left when already at the maximum
            handle.press(key)
            if readout.inner_text() != before_readout:
                break
        # each key press may trigger a redraw, which first clears the output and then shows a
        # new PNG: wait for a new figure that stays put while the kernel is idle
        deadline, after_images = time.monotonic() + timeout, None
        while time.monotonic() < deadline and after_images is None:
            now = images()
            if now and now != before_images and self.kernel_status() == "idle":
                time.sleep(0.5)
                if images() == now and self.kernel_status() == "idle":
                    after_images = now
            time.sleep(0.1)
        after_kernel = self.kernel_sliders()
        change = {key: (description, before_kernel.get(key, [None, None])[1], value)
                  for key, (description, value) in after_kernel.items()
                  if before_kernel.get(key, [None, None])[1] != value}
        return SliderMove(label, before_readout, readout.inner_text(), after_images is not None,
                          change, after_kernel)

    def screenshot(self, index: int, path: Path, attempts: int = 4) -> bool:
        """Save a PNG of cell ``index``; return whether every figure in it shows on the PNG.

        A busy headless Chromium may capture a freshly decoded image before painting it, so
        the capture is checked (ink inside each image's box) and retried.
        """
        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        for _ in range(attempts):
            boxes = cell.evaluate(_DECODED_IMAGE_BOXES)
            png = cell.screenshot(path=str(path))
            if boxes and all(_ink(png, box) > 0.01 for box in boxes):
                return True
            cell.evaluate(_REPAINT_IMAGES)
            time.sleep(0.5)
        return False

    def close(self):
        """Shut the notebook's kernel down and close its tab (unsaved)."""
        kernel = self.page.evaluate(_CLOSE)
        if kernel and any(k["id"] == kernel for k in self.server.api("/api/kernels")):
            self.server.delete(f"/api/kernels/{kernel}")


def _ink(png: bytes, box) -> float:
    """Fraction of clearly non-white pixels of a PNG inside ``box`` (left, top, width, height)."""
    gray = np.asarray(Image.open(io.BytesIO(png)).convert("L"))  # (height, width)
    left, top, width, height = (int(round(v)) for v in box)
    region = gray[max(top, 0):top + height, max(left, 0):left + width]
    return float((region < 200).mean()) if region.size else 0.0


def readout_matches(readout: str, value) -> bool:
    """Whether the readout a student reads shows the value the kernel holds."""
    if isinstance(value, str):
        return readout.strip() == value.strip()
    try:
        shown = float(readout.replace("−", "-"))
    except ValueError:
        return False
    return math.isclose(shown, value, rel_tol=5e-3, abs_tol=5e-3)

"""Drive the course in JupyterLab the way a student does: open a notebook, run all, check it.

One JupyterLab page serves the whole session (loading JupyterLab costs more than most checks).
Notebooks are opened in tabs of it, a few at a time so that their kernels run side by side
(:class:`CourseRunner`), checked one at a time in the front tab, and closed with their kernels. The page is a real
JupyterLab (``--LabApp.expose_app_in_browser``), so besides the DOM the helpers may ask the
app for the notebook model and send code to the notebook's own kernel. Widget controls are
found and operated in ``controls.py``.
"""
from __future__ import annotations

import io
import json
import re
import time
import uuid
from datetime import datetime
from pathlib import Path

import nbformat
import numpy as np
from PIL import Image

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # without playwright the browser tests skip (or fail under CI) in conftest
    PlaywrightTimeout = TimeoutError

# JavaScript run in the page. Open notebooks are kept by path in window.__panels, so that
# several notebooks can run at once in tabs of the one JupyterLab page.
_PANELS = "(window.__panels = window.__panels || {})"
_OPEN = f"""async (path) => {{
  const app = window.jupyterapp;
  const panel = await app.commands.execute('docmanager:open', {{path, factory: 'Notebook'}});
  app.shell.activateById(panel.id);
  {_PANELS}[path] = panel;
  // every error and stderr text the kernel sends, also those JupyterLab shows only in its log
  // console (an exception in a widget callback that no Output captures)
  const heard = (window.__kernelErrors = window.__kernelErrors || {{}})[path] = [];
  panel.sessionContext.iopubMessage.connect((_, msg) => {{
    const type = msg.header.msg_type;
    if (type === 'error') heard.push(msg.content.ename + ': ' + msg.content.evalue);
    if (type === 'stream' && msg.content.name === 'stderr') heard.push(msg.content.text);
  }});
  return panel.id;
}}"""
_ACTIVATE = f"""(path) => window.jupyterapp.shell.activateById({_PANELS}[path].id)"""
_CLOSE = f"""async (path) => {{
  const panel = {_PANELS}[path];
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const id = kernel ? kernel.id : null;
  await panel.sessionContext.shutdown();
  panel.dispose();  // without the save dialog: the test never saves
  delete {_PANELS}[path];
  return id;
}}"""
# Kernel status of an open notebook (null before its kernel exists).
_STATUS_JS = f"""(path) => {{
  const panel = {_PANELS}[path];
  const kernel = panel && panel.sessionContext && panel.sessionContext.session
                 && panel.sessionContext.session.kernel;
  return kernel ? kernel.status : null;
}}"""
_KERNEL_STATUS = f"(path) => ({_STATUS_JS})(path)"
# Kernel idle, or a dialog (e.g. kernel selection) waiting for an answer.
_KERNEL_READY = f"""(path) => ({_STATUS_JS})(path) === 'idle' || !!document.querySelector('.jp-Dialog')"""
_CELL_STATES = f"""(path) => {{
  const panel = {_PANELS}[path];
  return panel.content.widgets.map(cell => ({{
    type: cell.model.type,
    source: cell.model.sharedModel.getSource(),
    count: cell.model.type === 'code' ? cell.model.executionCount : null,
    outputs: cell.model.type === 'code'
      ? Array.from({{length: cell.model.outputs.length}}, (_, k) => cell.model.outputs.get(k).type)
      : [],
  }}));
}}"""
# The first of ``paths`` whose Run All is over: every code cell ran (and the kernel is idle),
# or a cell raised (JupyterLab stops there), or the kernel died. False while all still run.
_FIRST_FINISHED = f"""(paths) => {{
  for (const path of paths) {{
    const status = ({_STATUS_JS})(path);
    if (status === 'dead' || status === 'unknown') return path;
    const cells = {_PANELS}[path].content.widgets.filter(cell => cell.model.type === 'code');
    const failed = cells.some(cell => Array.from({{length: cell.model.outputs.length}},
      (_, k) => cell.model.outputs.get(k).type).includes('error'));
    const pending = cells.some(cell => cell.model.executionCount === null
                                       && cell.model.sharedModel.getSource().trim());
    if (failed || (!pending && status === 'idle')) return path;
  }}
  return false;
}}"""
_EXECUTE = f"""async ([path, code]) => {{
  const kernel = {_PANELS}[path].sessionContext.session.kernel;
  const future = kernel.requestExecute({{code, silent: false, store_history: false}});
  let text = '';
  future.onIOPub = msg => {{
    if (msg.header.msg_type === 'stream') text += msg.content.text;
    if (msg.header.msg_type === 'error') text += 'ERROR ' + msg.content.ename + ': ' + msg.content.evalue;
  }};
  await future.done;
  return text;
}}"""
_WIDGETS_RENDERED = f"""(path) => !{_PANELS}[path].node.textContent.includes('Loading widget...')"""
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
ERROR_SELECTORS = [
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]',
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]',
]
def expected_seconds(path: Path) -> float:
    """How long the notebook took when it was last executed (its cells' ``execution``
    timestamps, written by nbconvert/nbclient), 0 where none are recorded.

    Only a hint for the order the notebooks run in (longest first); never checked."""
    nb = nbformat.read(path, as_version=4)
    total = 0.0
    for cell in nb.cells:
        stamps = cell.get("metadata", {}).get("execution", {})
        start, end = stamps.get("iopub.execute_input"), stamps.get("shell.execute_reply")
        if start and end:
            total += (datetime.fromisoformat(end.replace("Z", "+00:00"))
                      - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()
    return total


def uses_widgets(path: Path) -> bool:
    """Whether a notebook displays ipywidgets (by its source or its committed outputs)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if re.search(r"ipywidgets|\binteract(ive)?\b|_explorer\(|nt\.widgets|nnptutor\.widgets", cell.source):
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
    """One notebook opened in a tab of the session's JupyterLab page, with its own kernel.

    Several tabs may be open at once (their kernels run side by side); whatever a test checks
    in the page it checks after :meth:`activate`, as a student looks at one tab at a time.
    """

    def __init__(self, lab: LabPage, relpath: str, timeout: float = 60.0):
        self.lab, self.server, self.relpath, self.page = lab, lab.server, relpath, lab.page
        self.errors_before = len(lab.console_errors)
        self.cells: list[dict] = []  # cell states once Run All is over (set by CourseRunner)
        self.seconds: dict[str, float] = {}  # phase -> wall-clock seconds (for the summary)
        start = time.monotonic()
        panel_id = self.page.evaluate(_OPEN, relpath)
        self.root = self.page.locator(f'[id="{panel_id}"]')
        self.wait_for_kernel(timeout)
        self.seconds["open"] = time.monotonic() - start

    @property
    def console_errors(self) -> list[str]:
        """JavaScript errors in the page since this notebook was opened."""
        return self.lab.console_errors[self.errors_before:]

    def activate(self):
        """Bring this notebook's tab to the front."""
        self.page.evaluate(_ACTIVATE, self.relpath)

    # --- kernel and cells -------------------------------------------------------------------
    def kernel_status(self):
        return self.page.evaluate(_KERNEL_STATUS, self.relpath)

    def wait_for_kernel(self, timeout: float = 60.0):
        """Wait until the notebook's kernel is idle, accepting any dialog (kernel choice)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                self.page.wait_for_function(_KERNEL_READY, arg=self.relpath,
                                            timeout=max(remaining, 0.001) * 1000)
            except PlaywrightTimeout:
                raise AssertionError(f"{self.relpath}: kernel not idle after {timeout} s "
                                     f"(status {self.kernel_status()!r})") from None
            dialog = self.page.locator(".jp-Dialog .jp-mod-accept")
            if not dialog.count():
                return
            dialog.first.click()

    def menu(self, menu: str, command: str):
        """Click a menu-bar entry, then the item bound to ``command`` (as a student would)."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
        self.page.locator(f'.lm-Menu-item[data-command="{command}"]').click()

    def start_run_all(self):
        """Edit > Clear All Outputs, then Run > Run All Cells; returns at once."""
        self.activate()
        self.menu("Edit", "editmenu:clear-all")
        self.menu("Run", "runmenu:run-all")
        self.started = time.monotonic()

    def cell_states(self) -> list[dict]:
        """Type, source, execution count and output types of every cell."""
        return self.page.evaluate(_CELL_STATES, self.relpath)

    def wait_for_widgets(self, timeout: float = 30.0):
        """Wait until no widget placeholder ("Loading widget...") is left on the notebook."""
        try:
            self.page.wait_for_function(_WIDGETS_RENDERED, arg=self.relpath, timeout=timeout * 1000)
        except PlaywrightTimeout:
            pass  # errors_shown() reports the placeholder

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

    def kernel_errors(self) -> list[str]:
        """Errors and warnings the kernel sent since the notebook was opened, wherever
        JupyterLab shows them (a cell, a widget's Output, or only the log console)."""
        heard = self.page.evaluate("(path) => window.__kernelErrors[path]", self.relpath)
        return [text[:2000] for text in heard if re.search(r"Traceback|Error|Warning", text)]

    def execute(self, code: str) -> str:
        """Run ``code`` in the notebook's kernel (not in a cell); return what it printed."""
        return self.page.evaluate(_EXECUTE, [self.relpath, code])

    def cell(self, index: int):
        return self.root.locator(".jp-Cell").nth(index)

    def output_text(self, index: int) -> str:
        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        return "\n".join(cell.locator(".jp-OutputArea-output").all_inner_texts()).strip()

    def screenshot(self, index: int, path: Path) -> bool:
        """Save a PNG of cell ``index``; return whether every figure in it shows on the PNG
        (clearly non-white pixels inside each decoded image's box; False without images)."""
        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        boxes = cell.evaluate(_DECODED_IMAGE_BOXES)
        png = cell.screenshot(path=str(path))
        return bool(boxes) and all(_ink(png, box) > 0.01 for box in boxes)

    def close(self):
        """Shut the notebook's kernel down and close its tab (unsaved)."""
        kernel = self.page.evaluate(_CLOSE, self.relpath)
        if kernel and any(k["id"] == kernel for k in self.server.api("/api/kernels")):
            self.server.delete(f"/api/kernels/{kernel}")


class CourseRunner:
    """Runs the session's notebooks, ``parallel`` at a time, each in its own tab and kernel.

    Notebooks start in ``order`` (the tests are sorted the same way, longest first); a test
    asks for its notebook with :meth:`finished`, which waits for that notebook's Run All to be
    over while starting the next ones as kernels free up. Waiting is on page conditions only.
    """

    def __init__(self, lab: LabPage, order: list[str], parallel: int = 2, timeout: float = 600.0):
        self.lab, self.parallel, self.timeout = lab, max(1, parallel), timeout
        self.queue = list(order)
        self.running: dict[str, NotebookTab] = {}
        self.done: dict[str, NotebookTab] = {}
        self.summary: list[tuple[str, dict]] = []  # (path, phase seconds) of checked notebooks

    def _fill(self, wanted: str):
        if wanted in self.queue and len(self.running) >= self.parallel:
            self.queue.remove(wanted)
            self.queue.insert(0, wanted)  # next free kernel is for the notebook a test waits on
        elif wanted in self.queue:
            self.queue.remove(wanted)
            self._start(wanted)
        while len(self.running) < self.parallel and self.queue:
            self._start(self.queue.pop(0))

    def _start(self, relpath: str):
        tab = NotebookTab(self.lab, relpath)
        tab.start_run_all()
        self.running[relpath] = tab

    def finished(self, relpath: str) -> NotebookTab:
        """The notebook's tab once Run All is over, brought to the front; ``tab.cells`` holds
        the cell states."""
        if relpath not in self.done and relpath not in self.running and relpath not in self.queue:
            self.queue.append(relpath)  # not announced (a test run on its own)
        self._fill(relpath)
        while relpath not in self.done:
            try:
                handle = self.lab.page.wait_for_function(
                    _FIRST_FINISHED, arg=list(self.running), polling=250, timeout=self.timeout * 1000)
            except PlaywrightTimeout:
                pending = {p: [k for k, c in enumerate(t.cell_states())
                               if c["type"] == "code" and c["count"] is None]
                           for p, t in self.running.items()}
                raise AssertionError(f"Run All not over after {self.timeout} s; cells not run: "
                                     f"{pending}") from None
            path = handle.json_value()
            tab = self.running.pop(path)
            tab.seconds["run"] = time.monotonic() - tab.started
            tab.cells = tab.cell_states()
            self.done[path] = tab
            self._fill(relpath)
        tab = self.done.pop(relpath)
        tab.activate()
        return tab

    def close(self, tab: NotebookTab, checked_since: float):
        """Close a checked notebook and record its phases for the summary."""
        tab.seconds["checks"] = time.monotonic() - checked_since
        tab.close()
        self.summary.append((tab.relpath, tab.seconds))

    def close_all(self):
        for tab in list(self.running.values()) + list(self.done.values()):
            tab.close()
        self.running.clear()
        self.done.clear()


def _ink(png: bytes, box) -> float:
    """Fraction of clearly non-white pixels of a PNG inside ``box`` (left, top, width, height)."""
    gray = np.asarray(Image.open(io.BytesIO(png)).convert("L"))  # (height, width)
    left, top, width, height = (int(round(v)) for v in box)
    region = gray[max(top, 0):top + height, max(left, 0):left + width]
    return float((region < 200).mean()) if region.size else 0.0

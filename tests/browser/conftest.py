"""Browser tests: JupyterLab on loopback, driven by Debian's headless Chromium via Playwright.

Session fixtures start one JupyterLab server and one Chromium and stop both by the process ids
they hold. The server listens on 127.0.0.1 only, with a random token, throw-away config, data,
runtime, settings and workspace folders, no update check, no news and a read-only extension
manager. It serves a mirror of the repository whose notebooks are copies, and autosave is
off: running the course in the browser writes nothing into the repository.

Without Chromium or Playwright the browser tests skip with an install hint, except when the
environment variable ``CI`` is set: there a missing browser is a failure.

They run in the course's one test command (``python -m pytest --nbval``); ``-m "not browser"``
leaves them out.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from processes import alive, descendants, processes_mentioning, stop

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CHROMIUM = Path(os.environ.get("NNPTUTOR_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = HERE / "screenshots"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server",
    "--disable-checker-imaging",  # paint images in the frame that shows them (screenshots)
]
INSTALL_HINT = (
    "browser tests need Debian's Chromium and Playwright's Python package: "
    "`apt-get install chromium` and `pip install playwright` "
    "(never `playwright install`; set NNPTUTOR_CHROMIUM to use another Chromium binary)"
)
# JupyterLab user settings for the test server: no autosave (the tests run the repository's
# notebooks and must not write their outputs back), every cell in the DOM, no news.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"checkForUpdates": False, "fetchNews": "false"},
}
DISABLED_LAB_EXTENSIONS = {
    "@jupyterlab/extensionmanager-extension": True,
    "@jupyterlab/apputils-extension:announcements": True,
}

collect_ignore_glob = ["fixtures/*", "screenshots/*"]  # fixture notebooks are not nbval tests


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "browser: drives JupyterLab in headless Chromium (needs chromium, playwright)")


def _notebook_of(item):
    """The notebook a browser test runs (its ``path`` parameter), else None."""
    callspec = getattr(item, "callspec", None)
    path = callspec.params.get("path") if callspec else None
    return path if isinstance(path, Path) and path.suffix == ".ipynb" else None


def pytest_collection_modifyitems(config, items):
    # notebook tests in the order the course runner starts them: longest first (so that the
    # long ones overlap the rest), by the run times nbconvert recorded in the notebooks
    from lab_driver import expected_seconds

    slots = [k for k, item in enumerate(items) if item.get_closest_marker("browser") and _notebook_of(item)]
    ordered = sorted((items[k] for k in slots), key=lambda item: -expected_seconds(_notebook_of(item)))
    for k, item in zip(slots, ordered):
        items[k] = item


_screenshots_used = []
_course_summary = []  # (relative path, {phase: seconds}) of every notebook checked


def pytest_terminal_summary(terminalreporter):
    if _course_summary:
        terminalreporter.write_line("browser notebooks (seconds: open, Run All, checks):")
        for relpath, seconds in _course_summary:
            phases = ", ".join(f"{name} {seconds.get(name, 0):.1f}" for name in ("open", "run", "checks"))
            terminalreporter.write_line(f"  {relpath}: {phases}")
    if _screenshots_used and any(SCREENSHOTS.glob("*.png")):
        terminalreporter.write_line(f"browser test screenshots: {SCREENSHOTS}")


def _browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.is_file():
        return f"no Chromium at {CHROMIUM}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed"
    return None


@pytest.fixture(scope="session")
def browser_available():
    """Skip (or fail under CI) when Chromium or Playwright is missing."""
    reason = _browser_missing()
    if reason is not None:
        message = f"{reason}; {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {message}", pytrace=False)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> bytes:
    # no proxy: the server is on loopback, and the tests make no other calls
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        return response.read()


def _mirror_course(root: Path) -> Path:
    """A throw-away view of the repository for the server to open.

    Notebook folders hold copies of the notebooks (JupyterLab writes checkpoints next to what
    it opens, and kernels write files into their folder); everything else is a symlink.
    """
    copied = ("notebooks", "tests/browser/fixtures")
    for entry in REPO.iterdir():
        if entry.name not in (".git", "notebooks", "tests"):
            (root / entry.name).symlink_to(entry)
    for folder in copied:
        source, target = REPO / folder, root / folder
        target.mkdir(parents=True)
        if not source.is_dir():
            continue
        for item in source.iterdir():
            if item.suffix == ".ipynb":
                shutil.copy2(item, target / item.name)
            elif item.name != ".ipynb_checkpoints":
                (target / item.name).symlink_to(item)
    return root


class LabServer:
    """A running JupyterLab: ``url``, ``token``, ``pid``, ``log`` and ``api(path)``."""

    def __init__(self, process, port, token, log):
        self.process, self.pid, self.port, self.token, self.log = process, process.pid, port, token, log
        self.url = f"http://127.0.0.1:{port}"

    def api(self, path: str):
        sep = "&" if "?" in path else "?"
        return json.loads(_get(f"{self.url}{path}{sep}token={self.token}"))

    def delete(self, path: str):
        request = urllib.request.Request(f"{self.url}{path}?token={self.token}", method="DELETE")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        opener.open(request, timeout=10).close()

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


@pytest.fixture(scope="session")
def lab_server(browser_available, tmp_path_factory):
    """One JupyterLab server for the session, on a mirror of the repository, stopped by pid."""
    home = tmp_path_factory.mktemp("jupyter")
    root = _mirror_course(tmp_path_factory.mktemp("course"))
    dirs = {name: home / name for name in ("config", "data", "runtime", "settings", "workspaces")}
    for path in dirs.values():
        path.mkdir()
    (dirs["config"] / "labconfig").mkdir()
    (dirs["config"] / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": DISABLED_LAB_EXTENSIONS}))
    for plugin, values in LAB_SETTINGS.items():
        package, name = plugin.rsplit("/", 1)
        target = dirs["settings"] / package / f"{name}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "MPLBACKEND"))}
    env.update(
        JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]), JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
        PYTHONUNBUFFERED="1", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
    )
    port, token = _free_port(), secrets.token_hex(24)
    env["JUPYTER_TOKEN"] = token  # the random token, by environment: ps shows arguments to all
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
        "--LabApp.expose_app_in_browser=True",  # lets the tests ask the kernel through the app
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI runners often run as root
    log = home / "server.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log_file,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = LabServer(process, port, token, log)
    server.root = root  # the mirror it serves: the notebooks as they were when the session began
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with {process.returncode}:\n{server.log_tail()}")
            try:
                server.api("/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer in 60 s:\n{server.log_tail()}")
                time.sleep(0.2)
        yield server
    finally:
        for kernel in _safe(lambda: server.api("/api/kernels"), []):
            _safe(lambda k=kernel: server.delete(f"/api/kernels/{k['id']}"), None)
        children = descendants(process.pid)  # kernels
        stop([process.pid])
        process.wait(timeout=5)
        stop([p for p in children if alive(p)], timeout=5)


def _safe(function, default):
    try:
        return function()
    except Exception:  # best effort during teardown; the pids are stopped regardless
        return default


class Browser:
    """Headless Chromium with a fresh profile; records every request that leaves loopback."""

    def __init__(self, context, profile: Path, server: LabServer):
        self.context, self.profile, self.server = context, profile, server
        self.outside_requests: list[str] = []
        allowed = (f"http://127.0.0.1:{server.port}/", f"ws://127.0.0.1:{server.port}/")

        def guard(route):
            url = route.request.url
            if url.startswith(allowed) or url.startswith(("data:", "blob:")):
                route.continue_()
            else:
                self.outside_requests.append(url)
                route.abort()

        context.route("**/*", guard)



@pytest.fixture(scope="session")
def browser(lab_server, tmp_path_factory):
    """One headless Chromium for the session (Debian's binary, never a download)."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    playwright = sync_playwright().start()
    context = None
    try:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000}, service_workers="block")
        context.set_default_timeout(30_000)
        session = Browser(context, profile, lab_server)
        yield session
        assert not session.outside_requests, f"requests left loopback: {session.outside_requests}"
    finally:
        pids = processes_mentioning(str(profile))
        if context is not None:
            _safe(context.close, None)
        playwright.stop()
        stop([p for p in pids if alive(p)], timeout=5)


@pytest.fixture(scope="session")
def lab_page(browser, lab_server):
    """JupyterLab loaded once in the session's browser; tests open notebooks in it."""
    from lab_driver import LabPage

    lab = LabPage(browser, lab_server)
    yield lab
    lab.close()


def _parallel() -> int:
    """How many notebooks run at once: NNPTUTOR_BROWSER_PARALLEL, else the CPU count (at most 4)."""
    value = os.environ.get("NNPTUTOR_BROWSER_PARALLEL")
    return max(1, int(value)) if value else max(1, min(4, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def course(request, lab_page):
    """Runs the session's notebooks side by side in tabs of the one JupyterLab page, in the
    order the tests ask for them (see ``lab_driver.CourseRunner``)."""
    from lab_driver import CourseRunner

    order = []
    for item in request.session.items:
        path = _notebook_of(item)
        if path is not None and item.get_closest_marker("browser"):
            relpath = path.relative_to(REPO).as_posix()
            if relpath not in order:
                order.append(relpath)
    runner = CourseRunner(lab_page, order, parallel=_parallel())
    yield runner
    _course_summary.extend(runner.summary)
    runner.close_all()


@pytest.fixture(scope="session")
def screenshots():
    """Folder for the widget screenshots (gitignored); printed at the end of the run."""
    SCREENSHOTS.mkdir(exist_ok=True)
    _screenshots_used.append(SCREENSHOTS)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    return SCREENSHOTS

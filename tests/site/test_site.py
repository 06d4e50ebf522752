"""The course website: built from the committed notebooks, every page opened in Chromium.

The build (``docs/build_site.py``, Sphinx with warnings as errors) must succeed; then every page
is opened in headless Chromium served from 127.0.0.1 and must show no console error, load every
image, typeset every formula (no raw ``$…$`` left) and link only to pages and anchors that
exist. Requests that leave loopback are refused and reported.
"""
from __future__ import annotations

import functools
import os
import re
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("NNPTUTOR_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server",
]
# JavaScript that waits for MathJax, then reports what a reader would see broken
PAGE_REPORT = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  for (const img of document.images) img.loading = 'eager';
  await Promise.all(Array.from(document.images).map(img => img.complete ? null :
      new Promise(done => { img.onload = img.onerror = done; })));
  const broken = Array.from(document.images)
      .filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src);
  const formulas = document.querySelectorAll('.math');
  const untypeset = Array.from(formulas).filter(el => !el.querySelector('mjx-container'))
      .map(el => el.textContent.slice(0, 60));
  const article = document.querySelector('article') || document.body;
  const copy = article.cloneNode(true);
  copy.querySelectorAll('pre, code, .cell_output, script, style, mjx-container').forEach(el => el.remove());
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.href);
  return {broken, n_formulas: formulas.length, untypeset, text: copy.textContent, links};
}"""
RAW_MATH = re.compile(r"\$\$.+?\$\$|(?<![\w\\])\$[^$\s][^$\n]*?\$(?!\w)", re.S)


def _chromium_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not CHROMIUM.exists():
        message = "needs Debian's chromium (/usr/bin/chromium) and playwright (the test extra)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return sync_playwright


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The website built from the committed notebooks into a temporary folder."""
    pytest.importorskip("myst_nb", reason="the site extra: pip install -e '.[site]'")
    sys.path.insert(0, str(REPO / "docs"))
    try:
        from build_site import build
    finally:
        sys.path.remove(str(REPO / "docs"))
    output = tmp_path_factory.mktemp("site") / "html"
    with warnings.catch_warnings():  # Sphinx extensions' notices of their own future API changes
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        status = build(output)
    assert status == 0, "the site build printed warnings (they are errors): see above"
    return output


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _pages(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html") if not p.relative_to(site).parts[0].startswith("_"))


def _anchors(page: Path) -> set[str]:
    return set(re.findall(r'\sid="([^"]+)"', page.read_text()))


def test_site_has_a_page_per_notebook_and_reference(site):
    pages = {p.relative_to(site).as_posix() for p in _pages(site)}
    for notebook in sorted((REPO / "notebooks").glob("[0-9][0-9]*.ipynb")):
        assert f"notebooks/{notebook.stem}.html" in pages
        assert (site / "_sources" / "notebooks" / notebook.name).exists(), "no notebook to download"
    assert {"index.html", "api.html", "data/README.html", "benchmarks/README.html",
            "search.html"} <= pages


def test_every_page_renders_in_chromium(site, server, tmp_path_factory):
    sync_playwright = _chromium_or_skip()
    screenshots = tmp_path_factory.mktemp("site-screenshots")
    # Playwright's sync API allows one instance per thread, and the JupyterLab browser tests
    # may hold theirs for the whole session: this one runs in a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as thread:
        problems, left_loopback = thread.submit(
            _check_pages, sync_playwright, site, server, screenshots).result()
    print(f"\nsite screenshots: {screenshots}")
    assert not left_loopback, f"requests left loopback: {sorted(set(left_loopback))[:5]}"
    assert not problems, "\n".join(problems[:40])


def _check_pages(sync_playwright, site: Path, server: str, screenshots: Path):
    """Open every page; return what a reader would see broken, and requests off loopback."""
    problems, left_loopback = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})

        def guard(route):
            if route.request.url.startswith(server):
                route.continue_()
            else:
                left_loopback.append(route.request.url)
                route.abort()

        page.route("**/*", guard)
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        for path in _pages(site):
            name = path.relative_to(site).as_posix()
            errors.clear()
            page.goto(f"{server}/{name}", wait_until="load")
            report = page.evaluate(PAGE_REPORT)
            problems += [f"{name}: console error: {e}" for e in errors]
            problems += [f"{name}: image not loaded: {src}" for src in report["broken"]]
            problems += [f"{name}: formula not typeset: {t!r}" for t in report["untypeset"]]
            problems += [f"{name}: raw maths in the text: {m.group(0)[:60]!r}"
                         for m in RAW_MATH.finditer(report["text"])]
            problems += [f"{name}: {link}" for link in _dead_links(site, server, report["links"])]
            if name.startswith("notebooks/") or name == "index.html":
                page.screenshot(path=str(screenshots / (name.replace("/", "_") + ".png")))
        # the search page finds a word every lecture uses
        page.goto(f"{server}/search.html?q=cutoff", wait_until="load")
        page.wait_for_selector("#search-results li", timeout=60_000)
        browser.close()
    return problems, left_loopback


def _dead_links(site: Path, server: str, links: list[str]) -> list[str]:
    """Internal links whose page, or whose anchor on that page, does not exist."""
    dead = []
    for link in links:
        if not link.startswith(server):
            continue
        parts = urlsplit(link)
        target = site / unquote(parts.path).lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            dead.append(f"link to a missing file: {parts.path}")
        elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in _anchors(target):
            dead.append(f"link to a missing anchor: {parts.path}#{parts.fragment}")
    return sorted(set(dead))

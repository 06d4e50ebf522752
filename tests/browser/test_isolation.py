"""The test server stays on loopback and phones nobody: checked from outside and inside."""
from __future__ import annotations

import json
import re
import urllib.request

import pytest

from processes import descendants, inet_sockets, off_loopback, processes_mentioning

pytestmark = pytest.mark.browser


def _page_config(lab_server) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{lab_server.url}/lab?token={lab_server.token}", timeout=10) as response:
        html = response.read().decode()
    match = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                      html, re.S)
    assert match, "no page config in /lab"
    return json.loads(match.group(1))


def test_server_listens_on_loopback_only(lab_server):
    sockets = inet_sockets([lab_server.pid] + descendants(lab_server.pid))
    listening = [s for s in sockets if s[3] == "LISTEN"]
    assert f"127.0.0.1:{lab_server.port}" in [s[1] for s in listening], sockets
    assert off_loopback([lab_server.pid] + descendants(lab_server.pid)) == []


def test_no_update_check_news_or_extension_manager(lab_server):
    config = _page_config(lab_server)
    assert config["news"] == {"disabled": True}
    assert config["extensionManager"]["name"] == "read-only"
    assert config["extensionManager"]["can_install"] is False
    assert "@jupyterlab/extensionmanager-extension" in config["disabledExtensions"]
    assert "@jupyterlab/apputils-extension:announcements" in config["disabledExtensions"]
    assert lab_server.api("/lab/api/update")["notification"] is None
    assert lab_server.api("/lab/api/news")["news"] == []


def test_browser_made_no_request_beyond_loopback(browser, lab_server):
    # the guard works: a request to the outside is recorded and refused ...
    page = browser.context.new_page()  # about:blank: no content security policy in the way
    refused = page.evaluate("() => fetch('https://example.org/').then(() => false, () => true)")
    page.close()
    assert refused and browser.outside_requests == ["https://example.org/"]
    browser.outside_requests.clear()
    # ... so an empty record after the course has run means it made none (checked again at
    # the end of the session, after every test)
    assert browser.outside_requests == []


def test_chromium_holds_loopback_sockets_only(browser, lab_page):
    pids = processes_mentioning(str(browser.profile))
    assert len(pids) > 1, "no Chromium processes found for this session's profile"
    assert off_loopback(pids) == [], "Chromium holds a socket beyond loopback"

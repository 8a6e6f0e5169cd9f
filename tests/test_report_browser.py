"""The report site in a real headless browser (Debian's chromium).

The site is served from a local http.server thread and driven through the Chrome
DevTools protocol over ``--remote-debugging-pipe`` (file descriptors 3 and 4), so no
driver binary, port or extra Python package is needed. Every page of the site is
opened; the test fails on any console error, uncaught exception, failed request or
JavaScript dialog, on an image that did not render, on a link that does not resolve,
and if the injected ``<script>`` model name does not show as text. A screenshot of
the index (and of one run page) is kept under results/ci-artifacts/ (or
$BENCHBASE_ARTIFACTS) as a CI artefact.
"""
from __future__ import annotations

import base64
import fcntl
import functools
import http.server
import json
import os
import select
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import pytest
from support.published_results import INJECTED, REPO, quickstart_results
from test_report import SUITE, failing_seed_1, value

from benchbase.leaderboard import build_tables
from benchbase.plugins import PluginPolicy, build_registry
from benchbase.report import build_report
from benchbase.resultset import ResultSet

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--remote-debugging-pipe")
INSTALL_HINT = "apt-get install -y chromium (CI installs it)"


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def artifacts_dir() -> Path:
    path = Path(os.environ.get("BENCHBASE_ARTIFACTS") or REPO / "results" / "ci-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


_TRAMPOLINE = ("import os, sys; r, w = int(sys.argv[1]), int(sys.argv[2]); os.dup2(r, 3); os.dup2(w, 4); "
               "os.close(r); os.close(w); os.execv(sys.argv[3], sys.argv[3:])")


def _high_fds(pair: tuple[int, int]) -> tuple[int, int]:
    """The pipe ends moved to descriptors >= 10, so moving them to 3 and 4 cannot clash."""
    out = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in pair)
    for fd in pair:
        os.close(fd)
    return out


class DevTools:
    """A minimal Chrome DevTools protocol client over the debugging pipe."""

    def __init__(self, binary: str, user_data_dir: Path):
        to_chrome_r, self._to_chrome = _high_fds(os.pipe())
        self._from_chrome, from_chrome_w = _high_fds(os.pipe())
        # chromium reads commands on fd 3 and writes replies on fd 4: a tiny Python
        # trampoline moves the pipe ends there and execs it (no preexec_fn, which is
        # unsafe once threads run; dash cannot name descriptors above 9)
        self.proc = subprocess.Popen([sys.executable, "-c", _TRAMPOLINE, str(to_chrome_r), str(from_chrome_w),
                                      binary, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
                                     pass_fds=(to_chrome_r, from_chrome_w), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the debugging pipe: "
                                   + self.proc.stderr.read().decode(errors="replace")[-2000:])
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self.events.pop(i)
            self.events.append(self._read_message(deadline))

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        self.proc.stderr.close()


class Tab:
    """One page target with the Page, Runtime, Log and Network domains enabled."""

    def __init__(self, browser: DevTools):
        self.browser = browser
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, self.session)

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> list[str]:
        """Load ``url``; return every problem the browser reported while loading it."""
        self.browser.events = [e for e in self.browser.events if e.get("sessionId") != self.session]
        self.send("Page.navigate", {"url": url})
        self.browser.wait_for("Page.loadEventFired", self.session)
        self.evaluate("new Promise(r => setTimeout(r, 50))")  # let late console messages arrive
        problems = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                problems.append(f"console {params['type']}: {[a.get('value') for a in params.get('args', [])]}")
            elif method == "Runtime.exceptionThrown":
                problems.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                problems.append(f"log {params['entry']['level']}: {params['entry']['text']} "
                                f"({params['entry'].get('url', '')})")
            elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
                problems.append(f"HTTP {params['response']['status']}: {params['response']['url']}")
            elif method == "Network.loadingFailed":
                problems.append(f"request failed: {params.get('errorText')}")
            elif method == "Page.javascriptDialogOpening":
                problems.append(f"a script opened a dialog: {params.get('message')}")
        return problems

    def screenshot(self, path: Path) -> None:
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000), "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))


@contextmanager
def serve(directory: Path):
    """A local HTTP server for ``directory`` in a thread (quiet); yields its base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def chromium(tmp_path: Path):
    binary = find_chromium()
    if binary is None:
        pytest.skip(f"chromium not found, so the report is not checked in a browser: {INSTALL_HINT}")
    browser = DevTools(binary, tmp_path / "chromium-profile")
    try:
        yield browser
    finally:
        browser.close()


PAGE_FACTS = """(() => ({
  text: document.body.innerText,
  tables: document.querySelectorAll('table').length,
  scripts: document.querySelectorAll('script').length,
  images: Array.from(document.images, i => ({src: i.src, complete: i.complete, width: i.naturalWidth})),
  links: Array.from(document.querySelectorAll('a[href]'), a => a.href),
  ids: Array.from(document.querySelectorAll('[id]'), e => e.id),
  stylesheets: document.styleSheets.length,
}))()"""


def check_in_browser(site: Path, tmp_path: Path, name: str | None) -> dict:
    """Open every page of ``site``; assert it renders cleanly. Returns facts for more checks.
    Screenshots are kept as ``report-*-<name>.png`` unless ``name`` is None."""
    with serve(site) as base, chromium(tmp_path) as browser:
        tab = Tab(browser)
        problems = tab.open(base + "index.html")
        index = tab.evaluate(PAGE_FACTS)
        if name:
            tab.screenshot(artifacts_dir() / f"report-index-{name}.png")
        pages = {base + "index.html": index}
        queue = [u for u in index["links"] if u.startswith(base) and urlsplit(u).path.endswith(".html")]
        for url in dict.fromkeys(urldefrag(u)[0] for u in queue):
            if url in pages or url.endswith("/leaderboard.html"):
                continue
            problems += [f"{url}: {p}" for p in tab.open(url)]
            pages[url] = tab.evaluate(PAGE_FACTS)
        run_pages = [u for u in pages if "/runs/" in u]
        if run_pages and name:
            tab.open(run_pages[0])
            tab.screenshot(artifacts_dir() / f"report-run-{name}.png")
    if problems:  # raised, not asserted: pytest would shorten the list in the message
        raise AssertionError("the browser reported:\n" + "\n".join(problems))
    for url, facts in pages.items():
        assert facts["scripts"] == 0, url
        assert facts["stylesheets"] == 1, url
        bad = [i["src"] for i in facts["images"] if not i["complete"] or i["width"] == 0]
        assert not bad, (url, bad)
    # every link resolves: pages and files answer 200, fragments name an element
    with serve(site) as check_base:
        for url, facts in pages.items():
            for link in facts["links"]:
                target, fragment = urldefrag(link)
                if not target.startswith(base):
                    continue
                local = check_base + target[len(base):]
                try:
                    with urllib.request.urlopen(local, timeout=10) as response:
                        assert response.status == 200, link
                except urllib.error.HTTPError as exc:
                    pytest.fail(f"{url} links to {link}: HTTP {exc.code}")
                if fragment and target in pages:
                    assert fragment in pages[target]["ids"], f"{url} links to missing #{fragment}"
    return {"index": index, "pages": pages}


def test_report_site_renders_in_headless_chromium(tmp_path):
    registry = build_registry(PluginPolicy(entry_points=False, strict=True))
    small = {**SUITE, "seeds": [0, 1]}
    from support.published_results import fake_results

    fake_results(tmp_path / "r", registry, small, value, status=failing_seed_1)
    with ResultSet([tmp_path / "r"]) as rs:
        build_report(rs, build_tables(rs), tmp_path / "site", registry, curve_formats=("png", "svg"))
    facts = check_in_browser(tmp_path / "site", tmp_path, "synthetic")
    index = facts["index"]
    assert INJECTED in index["text"]  # the injected label shows as text, it did not run
    assert index["tables"] == 2 + 1 and len(index["images"]) == 2  # each leaderboard over training
    run_pages = [f for u, f in facts["pages"].items() if "/runs/" in u]
    assert len(run_pages) == 8
    # trained runs: curves and samples; copy_train (evaluated once): samples only
    assert sorted(len(f["images"]) for f in run_pages) == [1] * 4 + [2] * 4


@pytest.mark.slow
def test_quickstart_report_renders_in_headless_chromium(tmp_path_factory, tmp_path):
    registry = build_registry(PluginPolicy(entry_points=False, strict=True))
    with ResultSet([quickstart_results(tmp_path_factory)]) as rs:
        build_report(rs, build_tables(rs), tmp_path / "site", registry)
    facts = check_in_browser(tmp_path / "site", tmp_path, "quickstart")
    assert INJECTED in facts["index"]["text"]
    assert len([u for u in facts["pages"] if "/runs/" in u]) == 16


def test_the_browser_check_catches_broken_pages(tmp_path):
    """The check itself can fail: a console error, a missing image and a dead link are caught."""
    site = tmp_path / "broken"
    site.mkdir()
    (site / "index.html").write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
                                     '<img src="missing.png"><a href="nowhere.html">x</a>'
                                     '<script>console.error("deliberate")</script></body></html>')
    with pytest.raises(AssertionError) as failure:
        check_in_browser(site, tmp_path, None)
    message = str(failure.value)
    assert "deliberate" in message and "missing.png" in message and "nowhere.html" in message

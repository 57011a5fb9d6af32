"""JavaScript rendering in the system's headless Chromium, against a real server on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tostrack.fetch import FetchConfig, fetch_source
from tostrack.models import Failure, Snapshot, Source

CHROMIUM = "/usr/bin/chromium"
needs_browser = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) or importlib.util.find_spec("playwright") is None,
    reason="needs Debian's chromium and the playwright package (pip install 'tostrack[browser]')",
)

CLAUSES = "".join(
    f"<p>{n}. The member shall observe rule {n} of the scripted terms.</p>" for n in range(1, 6)
)
# The text only exists once the script has run.
JS_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Scripted Terms</title>
</head><body><noscript>You need to enable JavaScript to run this app.</noscript>
<main id="root"></main>
<script>
const root = document.getElementById("root");
for (let n = 1; n <= 5; n++) {
  const p = document.createElement("p");
  p.textContent = n + ". The member shall observe rule " + n + " of the scripted terms.";
  root.appendChild(p);
}
root.appendChild(document.createElement("p")).textContent = "Caf\u00e9 rules apply.";
</script></body></html>"""

# A bot challenge in the style of the big CDNs: 503, then a cookie set by script and a reload.
CHALLENGE = """<!doctype html><html><head><title>Just a moment...</title></head><body>
<h1>Checking your browser before accessing the site.</h1>
<script>document.cookie = "passed=yes; path=/"; setTimeout(() => location.reload(), 200);</script>
</body></html>"""
REAL = f"<!doctype html><html><head><title>Real Terms</title></head><body><main>{CLAUSES}</main>"


def config(**kw: object) -> FetchConfig:
    base = {
        "retries": 1,
        "backoff": 0.01,
        "delay": 0.0,
        "read_timeout": 10.0,
        "chromium": CHROMIUM,
        "browser": "auto",
    }
    return FetchConfig(**{**base, **kw})


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    srv = HTTPServer(host="127.0.0.1", threaded=True)
    srv.start()
    yield srv
    srv.stop()


def only(result: object) -> Snapshot:
    assert isinstance(result, tuple), result
    (snapshot,) = result
    return snapshot


@needs_browser
def test_browser_source_is_rendered(server: HTTPServer) -> None:
    server.expect_request("/terms").respond_with_data(JS_PAGE, content_type="text/html")
    src = Source("scripted/terms", (server.url_for("/terms"),), browser=True)
    snap = only(fetch_source(src, config()))
    text = snap.body.decode(snap.encoding or "utf-8")
    assert "rule 3 of the scripted terms" in text and "Café rules apply." in text
    assert (snap.content_type, snap.encoding, snap.status) == ("text/html", "utf-8", 200)
    assert snap.url == server.url_for("/terms")


@needs_browser
def test_auto_falls_back_to_the_browser_for_a_javascript_shell(server: HTTPServer) -> None:
    server.expect_request("/terms").respond_with_data(JS_PAGE, content_type="text/html")
    src = Source("scripted/terms", (server.url_for("/terms"),))
    rendered = only(fetch_source(src, config()))
    assert b"rule 5 of the scripted terms" in rendered.body
    plain = only(fetch_source(src, config(browser="never")))
    assert b"rule 5 of the scripted terms" not in plain.body  # the script never ran
    assert plain.body == JS_PAGE.encode()


@needs_browser
def test_challenge_is_passed_by_the_browser_not_by_retrying(server: HTTPServer) -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        if request.cookies.get("passed") == "yes":
            return Response(REAL, content_type="text/html")
        return Response(CHALLENGE, status=503, content_type="text/html")

    server.expect_request("/terms").respond_with_handler(handler)
    src = Source("guarded/terms", (server.url_for("/terms"),))
    blocked = fetch_source(src, config(browser="never", retries=3))
    assert isinstance(blocked, Failure) and blocked.reason == "http-503"
    assert len(seen) == 1  # a challenge does not go away by asking again
    snap = only(fetch_source(src, config()))
    assert b"rule 4 of the scripted terms" in snap.body and snap.status == 200
    assert b"Just a moment" not in snap.body


def test_missing_chromium_is_browser_unavailable(server: HTTPServer) -> None:
    server.expect_request("/terms").respond_with_data(JS_PAGE, content_type="text/html")
    src = Source("scripted/terms", (server.url_for("/terms"),), browser=True)
    result = fetch_source(src, config(chromium="/nonexistent/chromium"))
    assert isinstance(result, Failure) and result.reason == "browser-unavailable"
    assert "apt install chromium" in result.detail and "[fetch] chromium" in result.detail


def test_missing_playwright_is_browser_unavailable(
    server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.expect_request("/terms").respond_with_data(JS_PAGE, content_type="text/html")
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)  # import now fails
    src = Source("scripted/terms", (server.url_for("/terms"),), browser=True)
    result = fetch_source(src, config())
    assert isinstance(result, Failure) and result.reason == "browser-unavailable"
    assert "pip install 'tostrack[browser]'" in result.detail


def test_blocked_page_without_a_browser_is_a_challenge_failure(server: HTTPServer) -> None:
    # Status 200, but a challenge: never a Snapshot, and the detail says what was tried.
    server.expect_request("/terms").respond_with_data(CHALLENGE, content_type="text/html")
    src = Source("guarded/terms", (server.url_for("/terms"),))
    result = fetch_source(src, config(chromium="/nonexistent/chromium"))
    assert isinstance(result, Failure) and result.reason == "challenge"
    assert "browser-unavailable" in result.detail


def test_javascript_shell_without_a_browser_says_what_to_install(server: HTTPServer) -> None:
    server.expect_request("/terms").respond_with_data(JS_PAGE, content_type="text/html")
    src = Source("scripted/terms", (server.url_for("/terms"),))
    result = fetch_source(src, config(chromium="/nonexistent/chromium"))
    assert isinstance(result, Failure) and result.reason == "browser-unavailable"
    assert "only with JavaScript" in result.detail and "apt install chromium" in result.detail


@needs_browser
def test_browser_uses_the_proxy_from_the_environment(
    server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return Response(JS_PAGE, content_type="text/html")

    server.expect_request("/via-proxy").respond_with_handler(handler)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.url_for("/"))
    monkeypatch.setenv("http_proxy", server.url_for("/"))
    src = Source("scripted/terms", ("http://terms.example.invalid/via-proxy",), browser=True)
    snap = only(fetch_source(src, config()))
    assert b"rule 2 of the scripted terms" in snap.body
    assert seen and seen[0].headers["Host"] == "terms.example.invalid"

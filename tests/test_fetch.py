"""The fetcher against a real HTTP server on 127.0.0.1, scripted to misbehave."""

from __future__ import annotations

import gzip
import itertools
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tostrack.errors import ConfigError
from tostrack.fetch import (
    DEFAULT_USER_AGENT,
    NOT_MODIFIED,
    FetchConfig,
    NotModified,
    detect_encoding,
    fetch_source,
    throttle_for,
)
from tostrack.models import Failure, Snapshot, Source
from tostrack.workspace import Settings, load_settings

PAGE = (
    "<!DOCTYPE html><html><head><title>Example Service Terms</title></head><body><main>"
    "<h1>Example Service Terms</h1>"
    + "".join(f"<p>{n}. The customer agrees to clause {n} of this test.</p>" for n in range(8))
    + "</main></body></html>"
)

# Tiny waits so the whole file runs in a few seconds; browser rendering off unless asked.
FAST = FetchConfig(
    retries=2, backoff=0.01, delay=0.0, connect_timeout=2, read_timeout=2, browser="never"
)


@pytest.fixture(scope="module")
def _threaded_server() -> Iterator[HTTPServer]:
    # Threaded, so a handler that stalls does not hold up the next request.
    srv = HTTPServer(host="127.0.0.1", threaded=True)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def server(_threaded_server: HTTPServer) -> Iterator[HTTPServer]:
    _threaded_server.clear()
    yield _threaded_server
    _threaded_server.clear()


def source(*urls: str, **kw: object) -> Source:
    return Source(id="example/terms", urls=tuple(urls), title="Example terms", **kw)


def html(body: str = PAGE, status: int = 200, **headers: str) -> Response:
    return Response(body, status=status, headers=headers, content_type="text/html; charset=utf-8")


def scripted(*responses: Response) -> tuple[list[Request], object]:
    """A handler that plays the responses in order (the last one forever) and logs requests."""
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        return responses[min(len(seen), len(responses)) - 1]

    return seen, handler


def only(result: object) -> Snapshot:
    assert isinstance(result, tuple), result
    (snapshot,) = result
    return snapshot


# -- retries ----------------------------------------------------------------------------------


def test_503_then_200_succeeds_after_retries(server: HTTPServer) -> None:
    seen, handler = scripted(html("busy", 503), html("busy", 503), html())
    server.expect_request("/terms").respond_with_handler(handler)
    snap = only(fetch_source(source(server.url_for("/terms")), FAST))
    assert len(seen) == 3
    assert snap.status == 200 and snap.body == PAGE.encode()
    assert snap.content_type == "text/html" and snap.encoding == "utf-8"
    assert snap.url == server.url_for("/terms") and snap.fetched_at.endswith("Z")
    assert len(snap.sha256) == 64


def test_503_forever_is_a_failure_after_the_configured_retries(server: HTTPServer) -> None:
    seen, handler = scripted(html("Service Unavailable", 503))
    server.expect_request("/terms").respond_with_handler(handler)
    result = fetch_source(source(server.url_for("/terms")), FAST)
    assert isinstance(result, Failure)
    assert result.reason == "http-503" and "503" in result.detail
    assert len(seen) == FAST.retries + 1


def test_404_is_not_retried(server: HTTPServer) -> None:
    seen, handler = scripted(html("gone", 404))
    server.expect_request("/terms").respond_with_handler(handler)
    result = fetch_source(source(server.url_for("/terms")), FAST)
    assert isinstance(result, Failure) and result.reason == "http-404"
    assert len(seen) == 1


def test_429_honours_retry_after_seconds(server: HTTPServer) -> None:
    seen, handler = scripted(html("slow down", 429, **{"Retry-After": "1"}), html())
    server.expect_request("/terms").respond_with_handler(handler)
    started = time.monotonic()
    only(fetch_source(source(server.url_for("/terms")), FAST))
    assert len(seen) == 2
    assert time.monotonic() - started >= 0.95  # waited for Retry-After, not the 0.01 s backoff


def test_retry_after_beyond_the_cap_is_left_to_a_later_run(server: HTTPServer) -> None:
    far = "Wed, 21 Oct 2099 07:28:00 GMT"
    seen, handler = scripted(html("slow down", 429, **{"Retry-After": far}), html())
    server.expect_request("/terms").respond_with_handler(handler)
    config = FetchConfig(**{**FAST.__dict__, "max_retry_after": 0.3})
    started = time.monotonic()
    result = fetch_source(source(server.url_for("/terms")), config)
    assert isinstance(result, Failure) and result.reason == "http-429", result
    assert "max_retry_after" in result.detail
    assert len(seen) == 1 and time.monotonic() - started < 0.3  # no impolite early retry


def test_read_timeout_is_a_timeout_failure(server: HTTPServer) -> None:
    def stall(request: Request) -> Response:
        time.sleep(1.0)
        return html()

    server.expect_request("/terms").respond_with_handler(stall)
    config = FetchConfig(**{**FAST.__dict__, "read_timeout": 0.2, "retries": 0})
    started = time.monotonic()
    result = fetch_source(source(server.url_for("/terms")), config)
    assert isinstance(result, Failure) and result.reason == "timeout", result
    assert time.monotonic() - started < 0.9


def test_server_that_stalls_mid_body_is_a_timeout(server: HTTPServer) -> None:
    def drip(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            yield b"<html><body><p>first part</p>"
            time.sleep(1.0)
            yield b"</body></html>"

        return Response(body(), content_type="text/html")

    server.expect_request("/terms").respond_with_handler(drip)
    config = FetchConfig(**{**FAST.__dict__, "read_timeout": 0.2, "retries": 0})
    result = fetch_source(source(server.url_for("/terms")), config)
    assert isinstance(result, Failure) and result.reason == "timeout", result


def test_connection_refused_is_a_connection_failure() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/terms"
    config = FetchConfig(**{**FAST.__dict__, "retries": 1})
    result = fetch_source(source(url), config)
    assert isinstance(result, Failure) and result.reason == "connection"


# -- size, redirects, types --------------------------------------------------------------------


def _huge(total: int, with_length: bool) -> Response:
    chunk = b"<p>" + b"x" * 65_530 + b"</p>\n"

    def body() -> Iterator[bytes]:
        sent = 0
        while sent < total:
            yield chunk
            sent += len(chunk)

    headers = {"Content-Length": str(total)} if with_length else {}
    return Response(body(), content_type="text/html", headers=headers)


def test_30_mb_body_stops_at_the_limit_with_bounded_memory(server: HTTPServer) -> None:
    # No Content-Length: the size is only known by reading, so the stream must be cut off.
    server.expect_request("/big").respond_with_handler(lambda r: _huge(30 * 2**20, False))
    config = FetchConfig(**{**FAST.__dict__, "max_bytes": 2 * 2**20, "retries": 0})
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = fetch_source(source(server.url_for("/big")), config)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(result, Failure) and result.reason == "too-large", result
    assert time.monotonic() - started < 5
    assert peak < 12 * 2**20  # a few times the 2 MB limit, far below the 30 MB served


def test_default_limit_refuses_30_mb(server: HTTPServer) -> None:
    server.expect_request("/big").respond_with_handler(lambda r: _huge(30 * 2**20, False))
    config = FetchConfig(**{**FAST.__dict__, "retries": 0})
    result = fetch_source(source(server.url_for("/big")), config)
    assert isinstance(result, Failure) and result.reason == "too-large"
    assert "20,971,520" in result.detail


def test_declared_content_length_over_the_limit_is_refused_before_reading(
    server: HTTPServer,
) -> None:
    served: list[int] = []

    def handler(request: Request) -> Response:
        served.append(1)
        return _huge(30 * 2**20, True)

    server.expect_request("/big").respond_with_handler(handler)
    started = time.monotonic()
    result = fetch_source(source(server.url_for("/big")), FAST)
    assert isinstance(result, Failure) and result.reason == "too-large"
    assert "31,457,280 bytes" in result.detail
    assert time.monotonic() - started < 2 and served == [1]


def test_redirect_loop_is_too_many_redirects(server: HTTPServer) -> None:
    seen, handler = scripted(Response("", status=302, headers={"Location": "/a"}))
    server.expect_request("/a").respond_with_handler(handler)
    result = fetch_source(source(server.url_for("/a")), FAST)
    assert isinstance(result, Failure) and result.reason == "too-many-redirects"
    assert len(seen) == FAST.max_redirects + 1  # the limit, then give up; no retries


def test_redirects_are_followed_and_the_final_url_recorded(server: HTTPServer) -> None:
    server.expect_request("/old").respond_with_data("", status=301, headers={"Location": "/mid"})
    server.expect_request("/mid").respond_with_data(
        "", status=302, headers={"Location": server.url_for("/new")}
    )
    server.expect_request("/new").respond_with_handler(lambda r: html())
    snap = only(fetch_source(source(server.url_for("/old")), FAST))
    assert snap.url == server.url_for("/new") and snap.body == PAGE.encode()


def test_image_is_unsupported_type(server: HTTPServer) -> None:
    server.expect_request("/logo").respond_with_data(b"\x89PNG\r\n", content_type="image/png")
    result = fetch_source(source(server.url_for("/logo")), FAST)
    assert isinstance(result, Failure) and result.reason == "unsupported-type"
    assert "image/png" in result.detail


def test_empty_body_is_a_failure(server: HTTPServer) -> None:
    server.expect_request("/terms").respond_with_data("  \n", content_type="text/html")
    result = fetch_source(source(server.url_for("/terms")), FAST)
    assert isinstance(result, Failure) and result.reason == "empty-body"


def test_pdf_plain_text_and_markdown_are_kept_as_they_came(server: HTTPServer) -> None:
    pdf = b"%PDF-1.4\n% test\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
    server.expect_request("/t.pdf").respond_with_data(pdf, content_type="application/pdf")
    server.expect_request("/bin").respond_with_data(pdf, content_type="application/octet-stream")
    server.expect_request("/t.md").respond_with_data(
        "# Terms\n\nSome text.\n", content_type="text/markdown; charset=UTF-8"
    )
    server.expect_request("/t.txt").respond_with_data("Terms\n", content_type="text/plain")
    snap = only(fetch_source(source(server.url_for("/t.pdf")), FAST))
    assert (snap.content_type, snap.encoding, snap.body) == ("application/pdf", None, pdf)
    sniffed = only(fetch_source(source(server.url_for("/bin")), FAST))
    assert sniffed.content_type == "application/pdf"
    md = only(fetch_source(source(server.url_for("/t.md")), FAST))
    assert (md.content_type, md.encoding) == ("text/markdown", "utf-8")
    txt = only(fetch_source(source(server.url_for("/t.txt")), FAST))
    assert txt.content_type == "text/plain"


def test_gzip_is_decoded(server: HTTPServer) -> None:
    server.expect_request("/terms").respond_with_data(
        gzip.compress(PAGE.encode()),
        headers={"Content-Encoding": "gzip"},
        content_type="text/html; charset=utf-8",
    )
    snap = only(fetch_source(source(server.url_for("/terms")), FAST))
    assert snap.body == PAGE.encode()


# -- charset ---------------------------------------------------------------------------------


def test_charset_from_header(server: HTTPServer) -> None:
    body = "<html><body><p>Conditions générales</p></body></html>".encode("iso-8859-1")
    server.expect_request("/fr").respond_with_data(
        body, content_type='text/html; charset="ISO-8859-1"'
    )
    snap = only(fetch_source(source(server.url_for("/fr")), FAST))
    assert snap.encoding == "iso-8859-1" and snap.body == body
    assert snap.content_type == "text/html"


def test_charset_from_meta_when_header_has_none(server: HTTPServer) -> None:
    body = (
        '<html><head><meta charset="windows-1252"></head><body><p>Datenschutz für Kunden</p>'
        "</body></html>"
    ).encode("cp1252")
    server.expect_request("/de").respond_with_data(body, content_type="text/html")
    snap = only(fetch_source(source(server.url_for("/de")), FAST))
    assert snap.encoding == "windows-1252"
    assert "für" in snap.body.decode(snap.encoding)


def test_wrong_latin1_header_on_utf8_body_is_corrected(server: HTTPServer) -> None:
    body = "<html><body><p>Conditions générales d’utilisation</p></body></html>".encode()
    server.expect_request("/fr").respond_with_data(
        body, content_type="text/html; charset=iso-8859-1"
    )
    snap = only(fetch_source(source(server.url_for("/fr")), FAST))
    assert snap.encoding == "utf-8"
    assert "générales" in snap.body.decode(snap.encoding)


def test_encoding_detection_rules() -> None:
    utf8 = "Préambule".encode()
    assert detect_encoding(b"\xef\xbb\xbf" + utf8, "text/html", "iso-8859-1") == "utf-8"
    assert detect_encoding(b"plain ascii", "text/html", None) is None
    assert detect_encoding(b"plain ascii", "text/plain", "us-ascii") == "us-ascii"
    assert detect_encoding(utf8, "text/plain", None) == "utf-8"
    # labelled UTF-8 but not: the legacy charset, so "é" is not lost
    assert detect_encoding("Préambule".encode("cp1252"), "text/html", "utf-8") == "windows-1252"
    assert detect_encoding(b"%PDF-1.7", "application/pdf", "utf-8") is None
    assert detect_encoding(b"<p>x</p>", "text/html", "no-such-charset") is None
    meta = b'<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS"><p>x</p>'
    assert detect_encoding(meta, "text/html", None) == "shift_jis"


# -- conditional GET ------------------------------------------------------------------------


def test_conditional_get_returns_not_modified(server: HTTPServer) -> None:
    etag, modified = '"v1"', "Tue, 10 Nov 2026 08:00:00 GMT"
    seen: list[Request] = []

    def handler(request: Request) -> Response:
        seen.append(request)
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return html(ETag=etag, **{"Last-Modified": modified})

    server.expect_request("/terms").respond_with_handler(handler)
    src = source(server.url_for("/terms"))
    first = only(fetch_source(src, FAST))
    headers = {k.lower(): v for k, v in first.headers}
    assert headers["etag"] == etag and headers["last-modified"] == modified
    previous = {"etag": etag, "last_modified": modified, "last_snapshot_sha256": first.sha256}
    second = fetch_source(src, FAST, previous=previous)
    assert second is NOT_MODIFIED and isinstance(second, NotModified)
    assert not isinstance(second, (tuple, Failure))
    assert seen[1].headers["If-Modified-Since"] == modified
    # No state (or a combined source): an ordinary GET.
    assert isinstance(fetch_source(src, FAST, previous={}), tuple)
    assert "If-None-Match" not in seen[2].headers


def test_a_304_nobody_asked_for_is_a_failure(server: HTTPServer) -> None:
    server.expect_request("/terms").respond_with_data("", status=304)
    result = fetch_source(source(server.url_for("/terms")), FAST)
    assert isinstance(result, Failure) and result.reason == "http-304"


# -- combined sources, headers, politeness ---------------------------------------------------


def test_combined_source_gives_one_snapshot_per_url(server: HTTPServer) -> None:
    one, two = PAGE.replace("Example", "One"), PAGE.replace("Example", "Two")
    server.expect_request("/part1").respond_with_handler(lambda r: html(one))
    server.expect_request("/part2").respond_with_handler(lambda r: html(two))
    src = source(server.url_for("/part1"), server.url_for("/part2"))
    result = fetch_source(src, FAST, previous={"etag": '"x"'})  # no conditional GET: combined
    assert isinstance(result, tuple) and len(result) == 2
    assert [s.url for s in result] == [server.url_for("/part1"), server.url_for("/part2")]
    assert result[0].body != result[1].body


def test_combined_source_fails_whole_when_one_page_fails(server: HTTPServer) -> None:
    server.expect_request("/part1").respond_with_handler(lambda r: html())
    server.expect_request("/part2").respond_with_data("gone", status=410)
    result = fetch_source(source(server.url_for("/part1"), server.url_for("/part2")), FAST)
    assert isinstance(result, Failure) and result.reason == "http-410"
    assert "/part2" in result.detail


def test_user_agent_and_source_headers_are_sent(server: HTTPServer) -> None:
    seen, handler = scripted(html())
    server.expect_request("/terms").respond_with_handler(handler)
    src = source(server.url_for("/terms"), headers=(("Accept-Language", "fr-FR"),))
    only(fetch_source(src, FAST))
    assert seen[0].headers["User-Agent"] == DEFAULT_USER_AGENT
    assert DEFAULT_USER_AGENT.startswith("tostrack/0.")
    assert seen[0].headers["Accept-Language"] == "fr-FR"
    assert "gzip" in seen[0].headers["Accept-Encoding"]


def test_polite_delay_between_requests_to_one_host(server: HTTPServer) -> None:
    times: list[float] = []

    def handler(request: Request) -> Response:
        times.append(time.monotonic())
        return html()

    server.expect_request("/terms").respond_with_handler(handler)
    config = FetchConfig(**{**FAST.__dict__, "delay": 0.4})
    src = source(server.url_for("/terms"), server.url_for("/terms"))
    with requests.Session() as session:
        assert isinstance(fetch_source(src, config, session=session), tuple)
        again = fetch_source(source(server.url_for("/terms")), config, session=session)
        assert isinstance(again, tuple)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 3 and min(gaps) >= 0.38, gaps


def test_requests_to_one_host_are_serialised_across_threads(server: HTTPServer) -> None:
    active, peak = [0], [0]
    lock = threading.Lock()

    def handler(request: Request) -> Response:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.1)
        with lock:
            active[0] -= 1
        return html()

    server.expect_request("/terms").respond_with_handler(handler)
    with requests.Session() as session:
        workers = [
            threading.Thread(
                target=fetch_source,
                args=(source(server.url_for("/terms")), FAST),
                kwargs={"session": session},
            )
            for _ in range(4)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert throttle_for(session) is throttle_for(session)
    assert peak[0] == 1


def test_proxy_from_the_environment_is_used(
    server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen, handler = scripted(html())
    server.expect_request("/via-proxy").respond_with_handler(handler)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.url_for("/"))
    monkeypatch.setenv("http_proxy", server.url_for("/"))
    snap = only(fetch_source(source("http://terms.example.invalid/via-proxy"), FAST))
    assert snap.url == "http://terms.example.invalid/via-proxy"
    assert seen[0].headers["Host"] == "terms.example.invalid"


# -- configuration --------------------------------------------------------------------------


def _settings(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "tostrack.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path)


def test_config_defaults_and_values(tmp_path: Path) -> None:
    default = FetchConfig.from_settings(Settings())
    assert (default.retries, default.delay, default.confirm_delay) == (2, 1.0, 60.0)
    assert default.max_bytes == 20 * 2**20 and default.browser == "auto"
    assert default.chromium.endswith("chromium")
    config = FetchConfig.from_settings(
        _settings(
            tmp_path,
            '[fetch]\nretries = 0\nconfirm_delay = "2m"\ndelay = 0\nmax_bytes = "5MB"\n'
            'user_agent = "lawbot/1"\nbrowser = "never"\nread_timeout = 12.5\n',
        )
    )
    assert config.retries == 0 and config.confirm_delay == 120.0 and config.delay == 0.0
    assert config.max_bytes == 5 * 2**20 and config.user_agent == "lawbot/1"
    assert config.browser == "never" and config.read_timeout == 12.5


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("retrys = 1", "retrys"),
        ('retries = "two"', "retries"),
        ("retries = 1.5", "retries"),
        ("retries = -1", "retries"),
        ("delay = true", "delay"),
        ('browser = "sometimes"', "browser"),
        ("max_bytes = 0", "max_bytes"),
        ("user_agent = 3", "user_agent"),
    ],
)
def test_bad_fetch_settings_name_the_key(tmp_path: Path, line: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        FetchConfig.from_settings(_settings(tmp_path, f"[fetch]\n{line}\n"))


def test_redirect_to_another_host_drops_credentials(server: HTTPServer) -> None:
    seen: list[Request] = []

    def target(request: Request) -> Response:
        seen.append(request)
        return html()

    server.expect_request("/target").respond_with_handler(target)
    other_host = server.url_for("/target").replace("127.0.0.1", "localhost")
    server.expect_request("/start").respond_with_data(
        "", status=302, headers={"Location": other_host}
    )
    src = source(
        server.url_for("/start"),
        headers=(("Authorization", "Bearer secret"), ("Accept-Language", "de")),
    )
    snap = only(fetch_source(src, FAST))
    assert snap.url == other_host
    assert "Authorization" not in seen[0].headers
    assert seen[0].headers["Accept-Language"] == "de"  # harmless headers still go along


def test_validators_of_another_url_are_not_sent(server: HTTPServer) -> None:
    seen, handler = scripted(html())
    server.expect_request("/terms").respond_with_handler(handler)
    src = source(server.url_for("/terms"))
    moved = {"etag": '"v1"', "url": "https://old.example.test/terms"}
    only(fetch_source(src, FAST, previous=moved))
    assert "If-None-Match" not in seen[0].headers
    only(fetch_source(src, FAST, previous={**moved, "url": src.url}))
    assert seen[1].headers["If-None-Match"] == '"v1"'


def test_source_without_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no url"):
        fetch_source(Source(id="example/none", urls=()), FAST)


def test_meta_refresh_stub_is_followed_like_a_redirect(server: HTTPServer) -> None:
    stub = (
        '<html><head><meta http-equiv="refresh" content="0; url=/legal/terms"></head>'
        "<body>Redirecting to the legal site</body></html>"
    )
    server.expect_request("/terms").respond_with_data(stub, content_type="text/html")
    server.expect_request("/legal/terms").respond_with_handler(lambda r: html())
    snap = only(fetch_source(source(server.url_for("/terms")), FAST))
    assert snap.url == server.url_for("/legal/terms") and snap.body == PAGE.encode()
    # A page that reloads itself now and then (or a challenge with no URL) is kept as is.
    slow = PAGE.replace("<head>", '<head><meta http-equiv="refresh" content="600; url=/x">')
    server.expect_request("/slow").respond_with_data(slow, content_type="text/html")
    assert only(fetch_source(source(server.url_for("/slow")), FAST)).body == slow.encode()
    loop = '<meta http-equiv="refresh" content="0;url=/loop">'
    server.expect_request("/loop").respond_with_data(loop, content_type="text/html")
    result = fetch_source(source(server.url_for("/loop")), FAST)
    assert isinstance(result, Failure) and result.reason == "too-many-redirects"


def test_challenge_with_a_refresh_is_not_followed(server: HTTPServer) -> None:
    page = (
        "<html><head><title>Just a moment...</title><noscript>"
        '<meta http-equiv="refresh" content="0; url=/terms?__cf_chl_tk=abc"></noscript></head>'
        "<body>Checking your browser before accessing the site.</body></html>"
    )
    seen, handler = scripted(Response(page, content_type="text/html"))
    server.expect_request("/terms").respond_with_handler(handler)
    snap = only(fetch_source(source(server.url_for("/terms")), FAST))  # browser = "never"
    assert snap.body == page.encode() and len(seen) == 1  # kept, for health to call it


def test_every_fetch_key_of_the_init_template_is_valid(tmp_path: Path) -> None:
    import re

    from tostrack.config_template import CONFIG_TEMPLATE

    section = CONFIG_TEMPLATE.split("[fetch]", 1)[1].split("\n[", 1)[0]
    lines = [re.sub(r"^#\s?", "", line) for line in section.splitlines() if "=" in line]
    assert len(lines) >= 5
    config = FetchConfig.from_settings(_settings(tmp_path, "[fetch]\n" + "\n".join(lines)))
    assert config.max_bytes >= 1 and config.retries >= 0


def test_download_cut_short_is_retried(server: HTTPServer) -> None:
    def cut() -> Response:
        # Promises more bytes than it sends, then hangs up.
        return Response(
            [PAGE.encode()[:100]],
            content_type="text/html",
            headers={"Content-Length": str(len(PAGE) + 500)},
        )

    seen, handler = scripted(cut(), html())
    server.expect_request("/terms").respond_with_handler(handler)
    snap = only(fetch_source(source(server.url_for("/terms")), FAST))
    assert snap.body == PAGE.encode() and len(seen) == 2
    seen2, handler2 = scripted(cut())
    server.expect_request("/always-cut").respond_with_handler(handler2)
    config = FetchConfig(**{**FAST.__dict__, "retries": 1})
    result = fetch_source(source(server.url_for("/always-cut")), config)
    assert isinstance(result, Failure) and result.reason == "connection", result
    assert len(seen2) == 2

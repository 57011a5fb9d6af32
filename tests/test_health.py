"""Failure detection: pages that are not the document, with status 200, and legit pages that
merely mention "access", "login", "JavaScript" or "error"."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import source_config, write_config
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tostrack.fetch.health import check_document, document_problem, looks_blocked, page_problem
from tostrack.models import Block, Document, Snapshot
from tostrack.pipeline import run
from tostrack.store import Store
from tostrack.workspace import Workspace

# -- pages written for these tests (modelled on the shape of real interstitials) ---------------

CLOUDFLARE = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="refresh" content="390">
<script src="/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray=8f1a2b3c"></script>
</head><body><div class="main-wrapper"><h1>www.example-ai.test</h1>
<h2 id="cf-chl-widget">Verifying you are human. This may take a few seconds.</h2>
<p>www.example-ai.test needs to review the security of your connection before proceeding.</p>
</div><div class="footer">Ray ID: 8f1a2b3c4d5e6f70 Performance &amp; security by Cloudflare</div>
<noscript>Enable JavaScript and cookies to continue</noscript></body></html>"""

CLOUDFLARE_BLOCK = """<html><head><title>Attention Required! | Cloudflare</title></head><body>
<h1>Sorry, you have been blocked</h1><h2>You are unable to access example-ai.test</h2>
<p>Why have I been blocked?</p><p>Cloudflare Ray ID: 7a7b7c7d7e7f</p></body></html>"""

IMPERVA = """<html><head><META NAME="robots" CONTENT="noindex,nofollow">
<script src="/_Incapsula_Resource?SWJIYLWA=5074a744e2e3d891814e9a2dace20bd4"></script></head>
<body><iframe src="/_Incapsula_Resource?CWUDNSAI=9" frameborder=0 width="100%" height="100%">
Request unsuccessful. Incapsula incident ID: 1234000560049283746-12345678901234567</iframe>
</body></html>"""

DATADOME = """<html><head><title>example-ai.test</title></head><body style="margin:0">
<p id="cmsg">Please enable JS and disable any ad blocker</p>
<script>var dd={'rt':'c','cid':'AHrlqAAAAAMA','hsh':'2211F5',
'host':'geo.captcha-delivery.com'}</script>
<script src="https://ct.captcha-delivery.com/c.js"></script></body></html>"""

AKAMAI = """<HTML><HEAD><TITLE>Access Denied</TITLE></HEAD><BODY>
<H1>Access Denied</H1>You don't have permission to access
"http&#58;&#47;&#47;www&#46;example-ai&#46;test&#47;legal&#47;terms" on this server.<P>
Reference&#32;&#35;18&#46;4f2c1502&#46;1764221040&#46;9c3e1a2
</BODY></HTML>"""

JS_SHELL = """<!doctype html><html><head><title>Example AI</title>
<script defer src="/static/js/main.4f2c15.js"></script></head>
<body><noscript>You need to enable JavaScript to run this app.</noscript><div id="root"></div>
</body></html>"""

LOGIN = """<!doctype html><html><head><title>Sign in - Example AI</title></head><body>
<form action="/session" method="post"><h1>Welcome back</h1>
<label>Email <input type="email" name="email"></label>
<label>Password <input type="password" name="password"></label>
<button>Continue</button><a href="/reset">Forgot password?</a></form></body></html>"""

LOGIN_NEUTRAL_TITLE = """<!doctype html><html><head><title>Example AI</title></head><body>
<main><p>Please sign in to continue.</p><form><input name="user">
<input type="password" name="pw"><button>Go</button></form></main></body></html>"""

NOT_FOUND = """<!doctype html><html><head><title>Example AI</title></head><body>
<header><a href="/">Home</a> <a href="/pricing">Pricing</a></header>
<main><h1>This page isn't available</h1><p>The link may be broken, or the page may have been
removed. Check to see if the link you're trying to open is correct.</p></main></body></html>"""


def legit_terms(title: str = "Terms of Service | Example AI") -> str:
    """A long, real-looking terms page that uses every word the patterns look for."""
    sections = [
        (
            "Accounts and access",
            (
                "You need an account to access some features. You must keep your "
                "login credentials confidential and notify us of any unauthorised access to your "
                "account. If you forgot your password, use the reset link on the sign in page."
            ),
        ),
        (
            "Security",
            (
                "You may not bypass any captcha, security check or rate limit, probe for "
                "vulnerabilities, or access the services through automated means except our API. "
                "Access denied to one feature does not terminate these terms."
            ),
        ),
        (
            "Browsers and JavaScript",
            (
                "Some features require JavaScript and cookies to be "
                "enabled in your browser. Checking your browser settings is your responsibility."
            ),
        ),
        (
            "Errors",
            (
                "The services may contain errors. If a page is not found or something went "
                "wrong, contact support. We are not liable for any error, 404 page or outage, and "
                "the service may be temporarily unavailable for maintenance."
            ),
        ),
        (
            "Cloudflare and providers",
            (
                "We use providers such as content delivery networks to "
                "deliver the services; a security service may protect the site from attacks."
            ),
        ),
    ]
    body = "".join(
        f"<h2>{n}. {head}</h2>"
        + "".join(f"<p>{n}.{k} {text} Clause {n}.{k} applies worldwide.</p>" for k in range(1, 5))
        for n, (head, text) in enumerate(sections, start=1)
    )
    return (
        f"<!doctype html><html><head><title>{title}</title>"
        '<script src="/cdn-cgi/challenge-platform/scripts/jsd/main.js"></script></head>'
        f"<body><nav>Sign in | Log in | Pricing</nav><main><h1>Terms of Service</h1>{body}"
        "</main></body></html>"
    )


def snap(body: str, status: int = 200, content_type: str = "text/html") -> Snapshot:
    return Snapshot(
        "example/terms",
        "https://example-ai.test/terms",
        "2026-11-27T05:00:00Z",
        status,
        content_type,
        body.encode("utf-8"),
    )


def doc(*paragraphs: str, title: str = "Terms of Service", metadata: tuple = ()) -> Document:
    return Document(
        blocks=(Block("heading", title, 1),) + tuple(Block("paragraph", p) for p in paragraphs),
        title=title,
        metadata=metadata,
    )


GOOD_DOC = doc(
    *(
        f"{n}. The customer shall comply with obligation number {n} of these terms at all times."
        for n in range(12)
    )
)


# -- raw pages --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (CLOUDFLARE, "challenge"),
        (CLOUDFLARE_BLOCK, "challenge"),
        (IMPERVA, "challenge"),
        (DATADOME, "challenge"),
        (AKAMAI, "challenge"),
        (LOGIN, "login-wall"),
        (LOGIN_NEUTRAL_TITLE, "login-wall"),
        (NOT_FOUND, "error-page"),
        (JS_SHELL, "needs-javascript"),
        (legit_terms(), None),
        (legit_terms("Example AI"), None),
        (legit_terms("Usage Policy: Access, Login and Security"), None),
    ],
)
def test_page_problem(page: str, expected: str | None) -> None:
    assert page_problem(page.encode(), "text/html") == expected


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=2000), st.text(max_size=2000).map(str.encode)))
def test_page_problem_never_raises(body: bytes) -> None:
    assert page_problem(body, "text/html") in (
        None,
        "challenge",
        "login-wall",
        "error-page",
        "needs-javascript",
    )
    assert page_problem(b"<html>" + body, "application/xhtml+xml") in (
        None,
        "challenge",
        "login-wall",
        "error-page",
        "needs-javascript",
    )


def test_looks_blocked_only_for_challenges_and_javascript_shells() -> None:
    assert looks_blocked(CLOUDFLARE.encode(), "text/html")
    assert looks_blocked(JS_SHELL.encode(), "text/html")
    assert not looks_blocked(LOGIN.encode(), "text/html")  # a browser would not get past it
    assert not looks_blocked(legit_terms().encode(), "text/html")
    assert not looks_blocked(b"%PDF-1.4 Just a moment", "application/pdf")
    assert not looks_blocked(b"Just a moment...", "text/plain")


# -- check_document -------------------------------------------------------------------------


def test_challenge_with_status_200_is_a_challenge() -> None:
    # Extraction of a challenge finds almost nothing; the raw page says why.
    extracted = doc("Verifying you are human.", title="Just a moment...")
    assert check_document([snap(CLOUDFLARE)], extracted, 1, 40) == "challenge"
    assert check_document([snap(IMPERVA)], doc("", title=""), 0, None) == "challenge"


def test_challenge_in_one_page_of_a_combined_source() -> None:
    pages = [snap(legit_terms()), snap(AKAMAI)]
    assert check_document(pages, GOOD_DOC, 12, 12) == "challenge"


def test_login_wall_and_error_page() -> None:
    assert check_document([snap(LOGIN)], doc("Welcome back"), 1, 12) == "login-wall"
    assert check_document([snap(NOT_FOUND)], doc("This page isn't available"), 1, 12) == (
        "error-page"
    )


def test_error_page_seen_only_after_extraction() -> None:
    # The raw page is long (a big footer), the selected part is the error message.
    page = legit_terms("Example AI")
    extracted = doc("Sorry, the page you were looking for could not be found.", title="Example AI")
    assert check_document([snap(page)], extracted, 1, 12) == "error-page"
    assert document_problem(doc("Please sign in to continue.", title="Example AI")) == (
        "login-wall"
    )


def test_redirect_to_a_sign_in_page_is_a_login_wall() -> None:
    page = Snapshot(
        "example/terms",
        "https://example-ai.test/login?next=/terms",
        "2026-11-27T05:00:00Z",
        200,
        "text/html",
        legit_terms("Example AI").encode(),
    )
    assert check_document([page], GOOD_DOC, 12, 12) == "login-wall"
    moved = Snapshot(
        "example/terms",
        "https://example-ai.test/legal/terms-of-use",
        "2026-11-27T05:00:00Z",
        200,
        "text/html",
        legit_terms("Example AI").encode(),
    )
    assert check_document([moved], GOOD_DOC, 12, 12) is None


def test_error_status_is_reported() -> None:
    assert check_document([snap(legit_terms(), status=503)], GOOD_DOC, 12, 12) == "http-503"


def test_near_empty_extraction() -> None:
    assert check_document([snap(legit_terms())], doc("Loading…", title=""), 1, None) == "empty"
    two = doc("1. Short clause one of these terms applies.", "2. Short clause two applies.")
    assert check_document([snap(legit_terms())], two, 2, None) == "empty"
    assert check_document([snap(legit_terms())], GOOD_DOC, 2, None) == "empty"  # 2 clauses


def test_selector_missed_reported_by_extract() -> None:
    missed = Document(GOOD_DOC.blocks, GOOD_DOC.title, metadata=(("selector", "missed"),))
    assert check_document([snap(legit_terms())], missed, 12, 12) == "selector-missed"


def test_collapse() -> None:
    page = [snap(legit_terms())]
    assert check_document(page, GOOD_DOC, 12, 40) == "collapsed"  # 12 < 40 % of 40
    assert check_document(page, GOOD_DOC, 16, 40) is None  # 40 %: a big edit, not a collapse
    assert check_document(page, GOOD_DOC, 4, 9) is None  # too small a document to judge
    assert check_document(page, GOOD_DOC, 12, None) is None  # first version
    # Knowing the previous text: fewer clauses over as much text is a new layout, not a collapse.
    longer = doc(*(b.text for b in GOOD_DOC.blocks[1:]), "One more clause of the same terms.")
    assert check_document(page, GOOD_DOC, 12, 40, previous_document=longer) is None
    doubled = doc(*(b.text for b in GOOD_DOC.blocks[1:] * 3))
    assert check_document(page, GOOD_DOC, 12, 40, previous_document=doubled) == "collapsed"
    # Given as the function that makes it: the same answers, and made only when the clause
    # count fell far enough for a collapse to be judged.
    made: list[int] = []

    def making(document: Document, clauses: int) -> Callable[[], Document]:
        def make() -> Document:
            made.append(clauses)
            return document

        return make

    assert check_document(page, GOOD_DOC, 12, 40, previous_document=making(longer, 12)) is None
    assert check_document(page, GOOD_DOC, 12, 40, previous_document=making(doubled, 12)) == (
        "collapsed"
    )
    assert check_document(page, GOOD_DOC, 16, 40, previous_document=making(doubled, 16)) is None
    assert made == [12, 12]


def test_long_legit_terms_page_passes() -> None:
    page = legit_terms()
    words = doc(
        *(
            f"{n}. You must keep your login credentials safe; access denied to one feature, an "
            "error, or a page not found is not a breach. Some features require JavaScript and "
            "cookies, and you may not bypass any captcha or security check."
            for n in range(10)
        ),
        title="Terms of Service",
    )
    assert check_document([snap(page)], words, 10, 11) is None
    # A title without a document word, long body: judged by size only.
    neutral = Document(words.blocks, title="Example AI")
    assert check_document([snap(legit_terms("Example AI"))], neutral, 10, 11) is None


def test_plain_text_and_pdf_are_judged_by_extraction_only() -> None:
    text = snap("Just a moment... " * 3, content_type="text/plain")
    assert check_document([text], GOOD_DOC, 12, 12) is None
    pdf = snap("%PDF-1.4", content_type="application/pdf")
    assert check_document([pdf], GOOD_DOC, 12, 12) is None


# -- end to end: what is stored and what is reported ------------------------------------------

LONG_TERMS = (
    "<!doctype html><html><head><title>Acme Terms of Use</title></head><body><main>"
    "<h1>Acme Terms of Use</h1>"
    + "".join(
        f"<h2>{n}. Part {n}</h2><p>{n}.1 The user shall respect obligation {n} of the Acme "
        f"service at all times.</p><p>{n}.2 Acme may suspend access if obligation {n} is "
        "not respected.</p>"
        for n in range(1, 7)
    )
    + "</main></body></html>"
)
COLLAPSED = LONG_TERMS.split("<h2>3.")[0] + "</main></body></html>"  # 4 of 12 clauses left


def _workspace(tmp_path: Path, url: str) -> Workspace:
    # browser = "never": these pages must be judged as served, without a Chromium detour.
    config = source_config(url).replace("confirm_delay = 0", 'confirm_delay = 0\nbrowser = "never"')
    write_config(tmp_path / "ws", config)
    return Workspace.open(tmp_path / "ws")


def _serve(httpserver: HTTPServer, body: str | bytes, **kw: object) -> None:
    httpserver.clear()
    kw.setdefault("content_type", "text/html; charset=utf-8")
    httpserver.expect_request("/terms").respond_with_data(body, **kw)


@pytest.mark.parametrize(
    ("served", "reason"),
    [
        ({"body": CLOUDFLARE}, "challenge"),  # status 200
        ({"body": CLOUDFLARE, "status": 403}, "http-403"),
        ({"body": LOGIN}, "login-wall"),
        ({"body": NOT_FOUND}, "error-page"),
        ({"body": COLLAPSED}, "collapsed"),
        ({"body": LONG_TERMS.replace("main>", "div>")}, "selector-missed"),
        ({"body": ""}, "empty-body"),
        ({"body": b"\x89PNG\r\n\x1a\n", "content_type": "image/png"}, "unsupported-type"),
    ],
)
def test_failure_is_recorded_never_a_version(
    httpserver: HTTPServer, tmp_path: Path, served: dict, reason: str
) -> None:
    ws = _workspace(tmp_path, httpserver.url_for("/terms"))
    _serve(httpserver, LONG_TERMS)
    assert [r.status for r in run(ws, force=True, send=False).results] == ["first"]
    _serve(httpserver, served.pop("body"), **served)
    (result,) = run(ws, force=True, send=False).results
    assert result.status == "failed" and result.failure is not None
    assert result.failure.reason == reason
    with Store(ws.root) as store:
        (version,) = store.versions("acme/terms")  # the first version stays current
        assert store.current_version("acme/terms").id == version.id
        assert store.diffs("acme/terms") == []
        state = store.source_state("acme/terms")
        assert state["consecutive_failures"] == 1 and state["last_failure_reason"] == reason
    # Recovery: the real page again is "unchanged", not a change back.
    _serve(httpserver, LONG_TERMS)
    (again,) = run(ws, force=True, send=False).results
    assert again.status == "unchanged"


def test_challenge_on_first_fetch_stores_nothing(httpserver: HTTPServer, tmp_path: Path) -> None:
    ws = _workspace(tmp_path, httpserver.url_for("/terms"))
    _serve(httpserver, IMPERVA)
    (result,) = run(ws, force=True, send=False).results
    assert result.status == "failed" and result.failure.reason == "challenge"
    with Store(ws.root) as store:
        assert store.versions("acme/terms") == []


def test_wrong_charset_and_gzip_still_give_the_right_text(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    page = LONG_TERMS.replace("obligation 2 ", "obligation 2 (données à caractère personnel) ")
    ws = _workspace(tmp_path, httpserver.url_for("/terms"))
    _serve(
        httpserver,
        gzip.compress(page.encode("utf-8")),
        content_type="text/html; charset=iso-8859-1",  # wrong: the bytes are UTF-8
        headers={"Content-Encoding": "gzip"},
    )
    (result,) = run(ws, force=True, send=False).results
    assert result.status == "first"
    _, clauses = result.version.load()
    text = " ".join(c.text for c in clauses)
    assert "données à caractère personnel" in text and "Ã" not in text


def test_not_modified_is_unchanged(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tostrack.pipeline

    # Not on the source's weekly day of unconditional fetches, whatever today is.
    monkeypatch.setattr(tostrack.pipeline, "full_fetch_day", lambda source_id, now: False)
    ws = _workspace(tmp_path, httpserver.url_for("/terms"))
    seen: list[str | None] = []

    def handler(request: Request) -> Response:
        seen.append(request.headers.get("If-None-Match"))
        if request.headers.get("If-None-Match") == '"abc"':
            return Response(status=304)
        return Response(LONG_TERMS, content_type="text/html", headers={"ETag": '"abc"'})

    httpserver.expect_request("/terms").respond_with_handler(handler)
    assert run(ws, force=True, send=False).results[0].status == "first"
    assert run(ws, force=True, send=False).results[0].status == "unchanged"
    assert seen == [None, '"abc"']


def make_pdf(lines: list[str]) -> bytes:
    """A small one-page PDF with the given lines of text (Helvetica), built by hand."""

    def esc(t: str) -> str:
        return t.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    ops = ["BT", "/F1 11 Tf", "14 TL", "50 780 Td"]
    for line in lines:
        ops.append(f"({esc(line)}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>"
        ),
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    size = len(objects) + 1
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)


def test_pdf_source_is_tracked(httpserver: HTTPServer, tmp_path: Path) -> None:
    lines = (
        ["Acme Terms of Use", "1. Scope"]
        + [f"1.{n} The user shall respect obligation {n} of the Acme service." for n in range(1, 6)]
        + ["2. Law", "2.1 These terms are governed by the laws of Ireland."]
    )
    ws = _workspace(tmp_path, httpserver.url_for("/terms"))
    ws.config_path.write_text(ws.config_path.read_text().replace('select = ["main"]', ""))
    ws = Workspace.open(ws.root)
    _serve(httpserver, make_pdf(lines), content_type="application/pdf")
    (result,) = run(ws, force=True, send=False).results
    assert result.status == "first", result.failure
    _, clauses = result.version.load()
    assert any("laws of Ireland" in c.text for c in clauses)
    assert result.version.snapshot_meta()[0]["content_type"] == "application/pdf"


def test_on_the_weekly_full_fetch_day_validators_are_not_sent(
    httpserver: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tostrack.pipeline

    ws = _workspace(tmp_path, httpserver.url_for("/terms"))
    seen: list[str | None] = []

    def handler(request: Request) -> Response:
        seen.append(request.headers.get("If-None-Match"))
        return Response(LONG_TERMS, content_type="text/html", headers={"ETag": '"abc"'})

    httpserver.expect_request("/terms").respond_with_handler(handler)
    monkeypatch.setattr(tostrack.pipeline, "full_fetch_day", lambda source_id, now: False)
    run(ws, force=True, send=False)
    monkeypatch.setattr(tostrack.pipeline, "full_fetch_day", lambda source_id, now: True)
    assert run(ws, force=True, send=False).results[0].status == "unchanged"
    assert seen == [None, None]


def test_error_page_padded_with_whitespace_is_still_read() -> None:
    # Long in raw characters (a template's indentation), short once its spaces are single.
    padded = ("Sorry," + " " * 3000 + "the page you were looking for could not be found.\n") * 3
    assert document_problem(doc(padded, title="Example AI")) == "error-page"


def test_long_document_is_judged_by_size_not_phrases() -> None:
    long_text = "Sorry, the page you were looking for could not be found. " + "We may. " * 400
    assert document_problem(doc(long_text, title="Example AI")) is None


@given(
    st.lists(
        st.tuples(
            st.text("ab ", min_size=1, max_size=40), st.sampled_from([" ", "\n", "  \t", ""])
        ),
        max_size=300,
    )
)
def test_short_text_is_the_respaced_text_when_short(parts: list[tuple[str, str]]) -> None:
    from tostrack.fetch.health import SHORT_DOCUMENT, _short_text

    text = "".join(word + gap for word, gap in parts)
    spaced = " ".join(text.split())
    assert _short_text(text) == (spaced if len(spaced) < SHORT_DOCUMENT else None)

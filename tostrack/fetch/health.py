"""Is what we fetched the document, or something standing in its way?

A bot challenge, a login wall or an error page can be served with status 200; an extraction can
come back near-empty or with most of its clauses gone. Each is a failure with a reason, never a
new version. Terms of service legitimately talk about "access", "login", "JavaScript" and
"errors", so the phrase patterns below are only applied to a page's title and to short pages;
a long page is judged by its size, never by its words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from tostrack.media import HTML_TYPES
from tostrack.models import Document, Failure, Snapshot

# Thresholds, in characters of visible text and in clauses.
SHORT_PAGE = 2500  # a whole raw page (navigation and footer included) this short may be a wall
SHORT_DOCUMENT = 1500  # an extracted document this short is checked for wall/error phrases
MIN_CHARS = 200  # below this the extraction is near-empty
MIN_CLAUSES = 3
COLLAPSE_FLOOR = 10  # a collapse is only judged against a document of at least this many clauses
COLLAPSE_RATIO = 0.4  # fewer than 40 % of the previous clauses left at once is a collapse
COLLAPSE_TEXT_RATIO = 0.5  # ... and, when the previous text is known, under half of its length


# Words that name a legal document: a title with one of them is the document, not a wall.
_DOCUMENT_WORDS = re.compile(
    r"\b(terms|policy|policies|agreement|licen[cs]e|conditions|privacy|notice|rules|"
    r"guidelines|addendum|eula)\b",
    re.IGNORECASE,
)


def _rx(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


_APOS = "['\u2019]"
CHALLENGE_TITLE = _rx(
    r"just a moment",
    r"attention required",
    r"access denied",
    r"checking (?:your|the) browser",
    r"security check",
    r"are you (?:a )?(?:robot|human)",
    r"human verification",
    r"\bcaptcha\b",
    r"pardon our interruption",
    r"request (?:rejected|unsuccessful|blocked)",
    rf"you{_APOS}?(?:ve| have) been blocked",
    r"ddos protection",
    r"one more step",
    r"please wait\W*(?:\.\.\.|…)?\s*$",
    r"bot (?:check|verification|protection)",
)
# Phrases a challenge page shows a reader.
CHALLENGE_TEXT = _rx(
    r"checking (?:if the site connection is secure|your browser before accessing)",
    r"verify(?:ing)? (?:that )?you are (?:a )?human",
    r"enable javascript and cookies to continue",
    r"please (?:turn|switch) javascript on and reload",
    r"incapsula incident id",
    r"request unsuccessful\. incapsula",
    r"performance (?:&|and) security by cloudflare",
    r"cloudflare ray id",
    r"ddos protection by",
    r"you don" + _APOS + r"t have permission to access .{0,300} on this server",
    r"\breference #\s?\d+\.[0-9a-f]+\.\d+",
    r"pardon our interruption",
    r"press (?:&|and) hold to confirm you are",
    r"sucuri website firewall",
    r"access to this page has been denied",
    r"why have i been blocked",
    r"this website is using a security service to protect itself",
    r"complete the security check to access",
    r"enable js and disable any ad ?blocker",
)
# Markers in a challenge page's markup (scripts, form ids, vendor hosts).
CHALLENGE_MARKUP = _rx(
    r"cf-chl",
    r"cf_chl_",
    r"/cdn-cgi/challenge-platform/h/",
    r"cf-browser-verification",
    r"_incapsula_resource",
    r"captcha-delivery\.com",  # DataDome
    r"geo\.captcha-delivery",
    r"px-captcha",  # PerimeterX / HUMAN
    r"/_sec/cp_challenge",  # Akamai bot manager
    r"awswafintegration|aws-waf-token|challenge\.js\?awswaf",
    r"sucuri_cloudproxy",
)

LOGIN_TITLE = _rx(
    r"^\W*(?:sign|log)[ -]?in\b",
    r"\b(?:sign|log)[ -]?in\W*$",
    r"\b(?:sign|log)[ -]?in (?:to|with|[-|–—:])",
    r"^\W*login\b",
    r"\blogin\W*$",
    r"\bauthentication required\b",
)
LOGIN_TEXT = _rx(
    r"\b(?:sign|log)[ -]?in to (?:continue|view|access|see|read)",
    r"\byou (?:must|need to) (?:be )?(?:signed|logged|sign|log)[ -]?in\b",
    r"\bplease (?:sign|log)[ -]?in\b",
    r"\bforgot (?:your )?password\b",
    r"\bsession (?:has )?expired\b",
)

ERROR_TITLE = _rx(
    r"\b(?:404|410)\b",
    r"\bnot found\b",
    r"\bpage (?:isn" + _APOS + r"t|is not|not|no longer) available\b",
    r"\bsomething went wrong\b",
    r"^\W*(?:error|oops)\b",
    r"\bservice unavailable\b",
    r"\binternal server error\b",
    r"\bbad gateway\b",
)
ERROR_TEXT = _rx(
    r"\b(?:page|file|document) (?:was )?not found\b",
    r"\b(?:error )?404\b.{0,40}\b(?:not found|error|page)\b",
    r"\b(?:error|page) 404\b",
    r"\bthis (?:page|content) (?:isn" + _APOS + r"t|is not|is no longer) available\b",
    r"\bsomething went wrong\b",
    r"\bthe page you (?:are|were|" + _APOS + r"re) looking for\b",
    r"\bwe (?:can" + _APOS + r"t|cannot|couldn" + _APOS + r"t|could not) find "
    r"(?:the|that|this) page\b",
    r"\bservice (?:is )?(?:temporarily )?unavailable\b",
    r"\binternal server error\b",
    r"\ban error (?:has )?occurred\b",
)
# A page that shows nothing without JavaScript (an application shell).
NEEDS_JS_TEXT = _rx(
    r"\b(?:you need to|please|you must) enable javascript\b",
    r"\bjavascript (?:is )?(?:required|disabled)\b",
    r"\bthis (?:app|application|site|page) (?:requires|needs) javascript\b",
)


@dataclass(frozen=True)
class PageView:
    """What a reader without JavaScript would see of a raw page: its title and visible text."""

    title: str
    text: str
    markup: str  # the first part of the raw markup, lowercased, for vendor markers
    scripts: int
    script_text: str  # the visible text less <noscript>: what a browser shows


def view_page(body: bytes, content_type: str) -> PageView | None:
    """Parse a raw HTML body; None for other types or when it cannot be parsed."""
    if content_type not in HTML_TYPES or not body.strip():
        return None
    import lxml.html
    from lxml import etree

    try:
        root = lxml.html.document_fromstring(body)
    except (etree.LxmlError, ValueError):
        return None
    title_el = root.find(".//title")
    title = " ".join((title_el.text_content() if title_el is not None else "").split())
    scripts = len(root.findall(".//script"))
    for bad in root.xpath("//script|//style|//template|//head|//svg"):
        if bad.getparent() is not None:
            bad.drop_tree()
    text = " ".join(" ".join(root.itertext()).split())  # blocks must not run together
    for bad in root.xpath("//noscript"):
        if bad.getparent() is not None:
            bad.drop_tree()
    script_text = " ".join(" ".join(root.itertext()).split())
    markup = body[:200_000].decode("utf-8", "replace").lower()
    return PageView(title, text, markup, scripts, script_text)


def page_problem(body: bytes, content_type: str) -> str | None:
    """Classify a raw page: "challenge", "login-wall", "error-page", "needs-javascript" or None.

    Phrase patterns are only applied to the title and to short pages.
    """
    view = view_page(body, content_type)
    if view is None:
        return None
    legal_title = bool(_DOCUMENT_WORDS.search(view.title))
    short = len(view.text) < SHORT_PAGE
    if not legal_title and CHALLENGE_TITLE.search(view.title):
        return "challenge"
    if short and (CHALLENGE_TEXT.search(view.text) or CHALLENGE_MARKUP.search(view.markup)):
        return "challenge"
    if not legal_title and LOGIN_TITLE.search(view.title):
        return "login-wall"
    if short and _has_password_form(view.markup) and LOGIN_TEXT.search(view.text):
        return "login-wall"
    if not legal_title and ERROR_TITLE.search(view.title):
        return "error-page"
    if len(view.text) < 800 and ERROR_TEXT.search(view.text):
        return "error-page"
    if view.scripts and (
        len(view.script_text) < MIN_CHARS
        or (len(view.script_text) < SHORT_PAGE and NEEDS_JS_TEXT.search(view.script_text))
    ):
        return "needs-javascript"
    return None


def looks_blocked(body: bytes, content_type: str) -> bool:
    """True when a plain fetch got a bot challenge or an empty JavaScript shell instead of the
    page: the cases where rendering in a real browser may help."""
    return page_problem(body, content_type) in ("challenge", "needs-javascript")


def _has_password_form(markup: str) -> bool:
    return bool(re.search(r"<input[^>]+type\s*=\s*[\"']?password", markup))


def check_document(
    snapshots: Sequence[Snapshot],
    document: Document,
    clause_count: int,
    previous_clause_count: int | None,
    *,
    previous_document: Document | Callable[[], Document] | None = None,
) -> str | None:
    """A failure reason when the fetched pages are not the document, else None.

    Reasons: http-<status>, challenge, login-wall, error-page, selector-missed, empty,
    collapsed. With previous_document, a collapse must also show in the text (fewer clauses
    over about the same text is a change of layout, not a document gone); it may be given as
    the function that makes it, called only when the clauses fell that far.
    """
    for snapshot in snapshots:
        if not 200 <= snapshot.status < 300:
            return f"http-{snapshot.status}"
    for snapshot in snapshots:
        problem = page_problem(snapshot.body, snapshot.content_type)
        if problem in ("challenge", "login-wall", "error-page"):
            return problem
        if redirected_to_login(snapshot.url):
            return "login-wall"
    problem = document_problem(document)
    if problem:
        return problem
    if ("selector", "missed") in document.metadata:
        return "selector-missed"
    text = document.text.strip()
    if len(text) < MIN_CHARS or clause_count < MIN_CLAUSES:
        return "empty"
    if (
        previous_clause_count is not None
        and previous_clause_count >= COLLAPSE_FLOOR
        and clause_count < COLLAPSE_RATIO * previous_clause_count
        and (
            previous_document is None
            or len(text) < COLLAPSE_TEXT_RATIO * len(_made(previous_document).text.strip())
        )
    ):
        return "collapsed"
    return None


_LOGIN_SEGMENTS = frozenset(
    {"login", "log-in", "signin", "sign-in", "sign_in", "servicelogin", "sso", "oauth", "authorize"}
)


def redirected_to_login(url: str) -> bool:
    """The final URL (after redirects) is a sign-in page: /login, /signin, login.example.com."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    segments = {s.lower() for s in parts.path.split("/") if s}
    return bool(segments & _LOGIN_SEGMENTS) or host.startswith(("login.", "signin.", "sso."))


def _made(document: Document | Callable[[], Document]) -> Document:
    return document if isinstance(document, Document) else document()


def document_problem(document: Document) -> str | None:
    """Wall or error phrases in the extracted document: its title, or all of it when short."""
    title = document.title or ""
    if title and not _DOCUMENT_WORDS.search(title):
        if CHALLENGE_TITLE.search(title):
            return "challenge"
        if LOGIN_TITLE.search(title):
            return "login-wall"
        if ERROR_TITLE.search(title):
            return "error-page"
    text = _short_text(document.text)
    if text is None:
        return None
    if CHALLENGE_TEXT.search(text):
        return "challenge"
    if LOGIN_TEXT.search(text) and len(text) < 800:
        return "login-wall"
    if ERROR_TEXT.search(text) and len(text) < 800:
        return "error-page"
    return None


def _short_text(text: str) -> str | None:
    """The text with its whitespace runs as single spaces when that is under SHORT_DOCUMENT
    characters, else None. A prefix's words are the text's first words (the last one perhaps
    cut), so when a prefix alone reaches the length the whole text does: a long document (all
    of them but walls and error pages) is not respaced whole for every version an import or a
    run checks."""
    head = " ".join(text[:_SHORT_TEXT_PREFIX].split())
    if len(head) >= SHORT_DOCUMENT:
        return None
    if len(text) <= _SHORT_TEXT_PREFIX:
        return head  # the prefix was all of it
    spaced = " ".join(text.split())
    return spaced if len(spaced) < SHORT_DOCUMENT else None


_SHORT_TEXT_PREFIX = 4 * SHORT_DOCUMENT  # characters: most documents reach the length in fewer


# -- when every source failed ----------------------------------------------------------------

_DNS = re.compile(
    r"name or service not known|failed to resolve|nameresolution|name resolution|"
    r"nodename nor servname|getaddrinfo|no address associated|could not resolve",
    re.IGNORECASE,
)
_NO_NETWORK = re.compile(r"network is unreachable|no route to host", re.IGNORECASE)
_REFUSED = re.compile(r"connection refused", re.IGNORECASE)
_TLS = re.compile(r"tls|ssl|certificate", re.IGNORECASE)


def likely_cause(failures: Sequence[Failure]) -> str:
    """What a run in which every source failed most likely ran into, and what to check."""
    from collections import Counter

    if not failures:
        return "nothing was fetched"
    details = " ".join(f.detail for f in failures)
    reasons = Counter(f.reason for f in failures)
    if _DNS.search(details):
        return (
            "DNS lookups failed: no network, or no DNS server reachable from this machine "
            "(check the network and /etc/resolv.conf, then run again)"
        )
    if _NO_NETWORK.search(details):
        return (
            "no network: the hosts are unreachable from this machine "
            "(check the network, then run again)"
        )
    if set(reasons) == {"timeout"}:
        return (
            "every fetch timed out: the network is down or very slow, "
            "or a firewall drops the traffic"
        )
    if reasons["connection"] == len(failures) and _REFUSED.search(details):
        return "every connection was refused: a proxy or firewall in the way? (check HTTPS_PROXY)"
    if reasons["connection"] == len(failures) and _TLS.search(details):
        return (
            "TLS failed everywhere: a proxy intercepting HTTPS, missing CA certificates "
            "or a wrong clock"
        )
    if set(reasons) <= {"challenge", "http-403", "http-429", "http-401", "login-wall"}:
        return (
            "every host refused the crawler (bot challenges, 403/429): "
            "this machine's address may be blocked"
        )
    if set(reasons) == {"evidence-missing"}:
        return (
            "the stored captures cannot be read: restore snapshots/ from a backup, "
            "or run `tostrack rebuild --force`"
        )
    reason, count = reasons.most_common(1)[0]
    return f"most often {reason} ({count} of {len(failures)}); see the lines above"

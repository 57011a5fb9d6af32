"""Fetch a source's pages politely and robustly: one Snapshot per URL, or a Failure saying why.

What can go wrong on the way is turned into a short reason code (see FAILURE_REASONS), never
into a Snapshot: a failed fetch must not become a "change" further down the pipeline.

- timeouts: connect, read, and `total_timeout`, a wall-clock deadline for one page that shuts
  the connection down when it passes (a server trickling bytes resets read_timeout with each
  one, so only the wall clock stops it); retries with exponential
  backoff on timeouts, connection errors, 429 (Retry-After honoured, capped) and 5xx;
- a streamed download that stops at `max_bytes`, so a huge page never sits in memory;
- redirects followed by hand, so the limit holds without changing the caller's session;
- conditional GET (ETag / Last-Modified) for single-page sources: 304 -> NOT_MODIFIED;
- one request at a time per host and a polite delay between them (tostrack.fetch.throttle);
- a JavaScript-rendering fallback (tostrack.fetch.browser) for pages that look blocked.

One Fetcher per run holds the session, its throttle and the settings; fetch_source is the
one-off form.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

import requests
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from tostrack import clock
from tostrack.config import FetchConfig
from tostrack.errors import ConfigError
from tostrack.fetch import browser
from tostrack.fetch.content import detect_encoding, meta_refresh, parse_content_type, sniff_type
from tostrack.fetch.health import page_problem
from tostrack.fetch.throttle import HostThrottle, host_key, throttle_for
from tostrack.media import SUPPORTED_TYPES
from tostrack.models import Failure, Snapshot, Source

# Types that say nothing useful: the body decides (a PDF served as octet-stream, say).
_SNIFFED_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})

FAILURE_REASONS = (
    "timeout",
    "connection",
    "http-<status>",
    "too-large",
    "too-many-redirects",
    "unsupported-type",
    "empty-body",
    "challenge",
    "browser-unavailable",
    "browser-error",
)

_CHALLENGE_STATUSES = frozenset({"http-403", "http-429", "http-503", "http-401"})
_PRIVATE_HEADERS = frozenset(
    {"authorization", "cookie", "proxy-authorization", "if-none-match", "if-modified-since"}
)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024


class NotModified:
    """The server answered 304: the page is the one already stored."""

    def __repr__(self) -> str:
        return "NOT_MODIFIED"


NOT_MODIFIED = NotModified()


# -- the wall-clock deadline --------------------------------------------------------------------

_LOCAL = threading.local()


class _Deadline:
    """`total_timeout` for one page, on the wall clock, whatever the server does.

    read_timeout bounds each wait for a byte, so a server trickling one byte a second never trips
    it; nor can a check between chunks fire while a read is blocked. So a watcher thread shuts
    down, when the deadline passes, every connection this thread took from the session's pools
    (headers, body, redirects and retries alike): the blocked read returns at once.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self.connections: list[Any] = []
        self._done = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="tostrack-deadline", daemon=True)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def _watch(self) -> None:
        if self._done.wait(max(0.0, self.remaining())):
            return
        self.expired = True
        while True:  # a connection opened just after the deadline is shut down too
            for conn in list(self.connections):
                sock = getattr(conn, "sock", None)
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            if self._done.wait(0.05):
                return

    def failure(self, url: str) -> _Fail:
        return _Fail(
            "timeout",
            f"{url}: no complete answer within {self.seconds:g} s "
            "([fetch] total_timeout); the server was too slow or kept trickling bytes",
        )


@contextmanager
def _deadline(session: requests.Session, seconds: float) -> Iterator[_Deadline]:
    _watch_pools(session)
    deadline = _Deadline(seconds)
    outer = getattr(_LOCAL, "deadline", None)
    _LOCAL.deadline = deadline
    deadline._watcher.start()
    try:
        yield deadline
    finally:
        deadline._done.set()
        _LOCAL.deadline = outer


def _watch_pools(session: requests.Session) -> None:
    """Make the session's adapters tell the current deadline which connections it uses."""
    for adapter in list(session.adapters.values()):
        getter = getattr(adapter, "get_connection_with_tls_context", None)
        if getter is None or getattr(adapter, "_tostrack_watched", False):
            continue

        def watched(*args: Any, _getter: Any = getter, **kwargs: Any) -> Any:
            pool = _getter(*args, **kwargs)
            _watch_pool(pool)
            return pool

        adapter.get_connection_with_tls_context = watched  # type: ignore[method-assign]
        adapter._tostrack_watched = True  # type: ignore[attr-defined]


def _watch_pool(pool: Any) -> None:
    if getattr(pool, "_tostrack_watched", False) or not hasattr(pool, "_get_conn"):
        return
    take = pool._get_conn

    def get_conn(*args: Any, **kwargs: Any) -> Any:
        conn = take(*args, **kwargs)
        deadline = getattr(_LOCAL, "deadline", None)
        if deadline is not None:
            deadline.connections.append(conn)
        return conn

    pool._get_conn = get_conn
    pool._tostrack_watched = True


# -- fetching -----------------------------------------------------------------------------------


class Fetcher:
    """One run's fetching: its settings, one HTTP session with its per-host throttle, and the
    browser fallback. Create one per run and fetch every source through it:

        with Fetcher(config) as fetcher:
            result = fetcher.fetch(source, previous=store.source_state(source.id))

    Given a session, the fetcher uses it (and leaves it open); otherwise it opens its own.
    """

    def __init__(self, config: FetchConfig, *, session: requests.Session | None = None) -> None:
        self.config = config
        self._own_session = session is None
        self.session = session or requests.Session()
        self.throttle = throttle_for(self.session)
        # A run fetches several hosts at once (tostrack.fetch.pool); one Chromium at a time.
        self._browser_lock = threading.Lock()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def fetch(
        self, source: Source, *, previous: Mapping[str, Any] | None = None
    ) -> tuple[Snapshot, ...] | Failure | NotModified:
        """Fetch every URL of a source. Any URL failing fails the whole source (never half a
        combined document). `previous` is the store's state of the source: its etag and
        last_modified make a conditional GET for single-page sources, answered by NOT_MODIFIED."""
        if not source.urls:
            raise ConfigError(f'source {source.id} has no url: give it url = "https://..."')
        conditional: dict[str, str] = {}
        # The validators belong to the URL they came from: a moved source starts afresh.
        same_url = previous and previous.get("url") in (None, "", source.url)
        if previous and same_url and not source.combine:
            if previous.get("etag"):
                conditional["If-None-Match"] = str(previous["etag"])
            if previous.get("last_modified"):
                conditional["If-Modified-Since"] = str(previous["last_modified"])
        snapshots: list[Snapshot] = []
        for url in source.urls:
            got = self._fetch_one(source, url, conditional)
            if isinstance(got, (Failure, NotModified)):
                return got
            snapshots.append(got)
        return tuple(snapshots)

    def _fetch_one(
        self, source: Source, url: str, conditional: Mapping[str, str]
    ) -> Snapshot | Failure | NotModified:
        config = self.config
        if config.browser == "always" or (source.browser and config.browser != "never"):
            return self._render(source, url)
        got = _http_get(self.session, self.throttle, source, url, config, conditional)
        if config.browser != "auto" or got.body is None:
            return got.result
        problem = page_problem(got.body, got.content_type)
        if isinstance(got.result, Failure):
            # An error status is worth a browser only when it carries a bot challenge.
            if got.result.reason not in _CHALLENGE_STATUSES or problem != "challenge":
                return got.result
        elif problem not in ("challenge", "needs-javascript"):
            return got.result
        # A bot challenge or an empty JavaScript shell: let a real browser try.
        rendered = self._render(source, got.url)
        if isinstance(rendered, Snapshot):
            if page_problem(rendered.body, rendered.content_type) != "challenge":
                return rendered  # the document (or a near-empty page, which health calls "empty")
            why = "still a bot challenge after rendering in Chromium"
        else:
            why = f"the browser fallback failed ({rendered.reason}: {rendered.detail})"
        if isinstance(got.result, Failure):
            return Failure(
                source.id, got.result.at, got.result.reason, f"{got.result.detail}; {why}"
            )
        if problem == "needs-javascript" and isinstance(rendered, Failure):
            return Failure(
                source.id,
                rendered.at,
                rendered.reason,
                f"{got.url} shows its text only with JavaScript; {why}",
            )
        return Failure(
            source.id, clock.now_iso(), "challenge", f"{got.url} is a bot challenge; {why}"
        )

    def _render(self, source: Source, url: str) -> Snapshot | Failure:
        with self._browser_lock, self.throttle.hold(url, self.config.delay):
            return browser.render(source, url, self.config)


def fetch_source(
    source: Source,
    config: FetchConfig,
    *,
    session: requests.Session | None = None,
    previous: Mapping[str, Any] | None = None,
) -> tuple[Snapshot, ...] | Failure | NotModified:
    """Fetch one source with a Fetcher of its own (sharing `session` and its throttle, if given).
    A run fetches many sources through one Fetcher instead."""
    with Fetcher(config, session=session) as fetcher:
        return fetcher.fetch(source, previous=previous)


@dataclass(frozen=True)
class _Got:
    """The outcome of a plain GET, with the body kept for the blocked-page check."""

    result: Snapshot | Failure | NotModified
    url: str = ""
    content_type: str = ""
    body: bytes | None = None


class _Fail(Exception):
    def __init__(
        self,
        reason: str,
        detail: str,
        retry: bool = False,
        wait: float = 0.0,
        body: bytes | None = None,
        content_type: str = "",
        url: str = "",
    ) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.retry, self.wait = reason, detail, retry, wait
        self.body, self.content_type, self.url = body, content_type, url


def _http_get(
    session: requests.Session,
    throttle: HostThrottle,
    source: Source,
    url: str,
    config: FetchConfig,
    conditional: Mapping[str, str],
) -> _Got:
    attempt = 0
    with _deadline(session, config.total_timeout) as deadline:
        while True:
            try:
                got = _attempt(session, throttle, source, url, config, conditional)
                if deadline.expired:  # a body cut short by the deadline is no document
                    raise deadline.failure(url)
                return got
            except _Fail as caught:
                fail = deadline.failure(url) if deadline.expired else caught
                # A challenge page served with 403/429/503 will not go away by asking again.
                challenged = fail.body is not None and (
                    page_problem(fail.body, fail.content_type) == "challenge"
                )
                pause = max(config.backoff * (2**attempt), fail.wait)
                if (
                    not fail.retry
                    or attempt >= config.retries
                    or challenged
                    or pause >= deadline.remaining()
                ):
                    failure = Failure(source.id, clock.now_iso(), fail.reason, fail.detail)
                    return _Got(failure, fail.url or url, fail.content_type, fail.body)
                attempt += 1
                time.sleep(pause)


def _attempt(
    session: requests.Session,
    throttle: HostThrottle,
    source: Source,
    url: str,
    config: FetchConfig,
    conditional: Mapping[str, str],
) -> _Got:
    headers = {"User-Agent": config.user_agent, **dict(source.headers), **conditional}
    current = url
    for _hop in range(config.max_redirects + 1):
        if host_key(current) != host_key(url):
            # Never hand a source's credentials or validators to another host.
            headers = {k: v for k, v in headers.items() if k.lower() not in _PRIVATE_HEADERS}
        with throttle.hold(current, config.delay):
            response = _request(session, current, headers, config)
            try:
                outcome = _handle(response, source, current, config, bool(conditional))
            finally:
                response.close()
        if isinstance(outcome, str):  # a redirect: follow it
            current = outcome
            continue
        return outcome
    raise _Fail(
        "too-many-redirects",
        f"{url} redirected more than {config.max_redirects} times (last to {current})",
    )


def _request(
    session: requests.Session, url: str, headers: Mapping[str, str], config: FetchConfig
) -> requests.Response:
    deadline = getattr(_LOCAL, "deadline", None)
    left = deadline.remaining() if deadline is not None else config.read_timeout
    try:
        return session.get(
            url,
            headers=dict(headers),
            timeout=(
                max(0.001, min(config.connect_timeout, left)),
                max(0.001, min(config.read_timeout, left)),
            ),
            stream=True,
            allow_redirects=False,
        )
    except requests.exceptions.ConnectTimeout:
        raise _Fail(
            "timeout", f"{url}: no connection within {config.connect_timeout:g} s", retry=True
        ) from None
    except requests.exceptions.Timeout:
        raise _Fail(
            "timeout", f"{url}: no answer within {config.read_timeout:g} s", retry=True
        ) from None
    except requests.exceptions.TooManyRedirects:  # pragma: no cover - redirects are ours
        raise _Fail("too-many-redirects", f"{url}: too many redirects") from None
    except (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
    ) as exc:
        raise _Fail("connection", f"{url}: not a URL tostrack can fetch ({exc})") from None
    except requests.exceptions.SSLError as exc:  # asking again will not fix a certificate
        raise _Fail("connection", f"{url}: TLS/certificate problem ({_short(exc)})") from None
    except requests.exceptions.ConnectionError as exc:
        raise _Fail("connection", f"{url}: cannot connect ({_short(exc)})", retry=True) from None
    except requests.exceptions.RequestException as exc:
        raise _Fail("connection", f"{url}: {_short(exc)}", retry=True) from None


def _handle(
    response: requests.Response,
    source: Source,
    url: str,
    config: FetchConfig,
    conditional: bool,
) -> _Got | str:
    status = response.status_code
    if status in _REDIRECTS:
        location = response.headers.get("Location")
        if location:
            return urljoin(url, location)
    if status == 304 and conditional:
        return _Got(NOT_MODIFIED, url)
    content_type, charset = parse_content_type(response.headers.get("Content-Type", ""))
    if not 200 <= status < 300:
        retry = status == 429 or status >= 500
        asked = _retry_after(response.headers.get("Retry-After")) if retry else 0.0
        detail = f"{url} answered {status} {response.reason or ''}".strip()
        if asked > config.max_retry_after:
            # Waiting less than the server asked is impolite and wasted: leave it to a later run.
            retry = False
            detail += (
                f"; it asked to wait {asked:.0f} s, longer than [fetch] max_retry_after, "
                "so a later run will try again"
            )
        # Keep a little of the body: a challenge page says what it is.
        body = _read(response, url, min(config.max_bytes, 512 * 1024), config, truncate=True)
        raise _Fail(
            f"http-{status}",
            detail,
            retry=retry,
            wait=asked,
            body=body,
            content_type=content_type,
            url=url,
        )
    if content_type not in SUPPORTED_TYPES and content_type not in _SNIFFED_TYPES:
        raise _Fail("unsupported-type", f"{url} is {content_type}, not HTML, text or PDF")
    length = response.headers.get("Content-Length", "")
    if (
        length.isdigit()
        and int(length) > config.max_bytes
        and not response.headers.get("Content-Encoding")
    ):
        raise _Fail(
            "too-large",
            f"{url} is {int(length):,} bytes; the limit is "
            f"{config.max_bytes:,} ([fetch] max_bytes)",
        )
    body = _read(response, url, config.max_bytes, config)
    if content_type in _SNIFFED_TYPES:
        content_type = sniff_type(body)
        if content_type not in SUPPORTED_TYPES:
            raise _Fail(
                "unsupported-type",
                f"{url} has no usable Content-Type and does not look like HTML, text or PDF",
            )
    if not body.strip() or status == 204:
        raise _Fail("empty-body", f"{url} answered {status} with an empty body", retry=True)
    target = meta_refresh(body, content_type)
    if target and page_problem(body, content_type) != "challenge":
        return urljoin(url, target)  # a "Redirecting to ..." page: follow it like a redirect
    return _Got(
        Snapshot(
            source_id=source.id,
            url=url,
            fetched_at=clock.now_iso(),
            status=status,
            content_type=content_type,
            body=body,
            headers=tuple((k, v) for k, v in response.headers.items()),
            encoding=detect_encoding(body, content_type, charset),
        ),
        url,
        content_type,
        body,
    )


def _read(
    response: requests.Response, url: str, limit: int, config: FetchConfig, truncate: bool = False
) -> bytes:
    """Stream the (decompressed) body; stop past `limit` bytes or the total deadline."""
    watched = getattr(_LOCAL, "deadline", None)
    deadline = watched.at if watched is not None else time.monotonic() + config.total_timeout
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(_CHUNK):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                if truncate:
                    break
                raise _Fail(
                    "too-large",
                    f"{url} is larger than {limit:,} bytes ([fetch] max_bytes); download stopped",
                )
            if time.monotonic() > deadline:
                raise _Fail(
                    "timeout",
                    f"{url}: download took longer than {config.total_timeout:g} s",
                    retry=True,
                )
    except requests.exceptions.RequestException as exc:
        if truncate:
            return b"".join(chunks)
        if _is_read_timeout(exc):
            raise _Fail(
                "timeout",
                f"{url}: the server stopped sending for {config.read_timeout:g} s",
                retry=True,
            ) from None
        raise _Fail(
            "connection", f"{url}: the download broke off ({_short(exc)})", retry=True
        ) from None
    body = b"".join(chunks)
    return body[:limit] if truncate else body


def _is_read_timeout(exc: BaseException) -> bool:
    seen: set[int] = set()
    stack: list[BaseException | object] = [exc]
    while stack:  # requests wraps urllib3's ReadTimeoutError in a ConnectionError
        item = stack.pop()
        if id(item) in seen or not isinstance(item, BaseException):
            continue
        seen.add(id(item))
        if isinstance(item, (ReadTimeoutError, requests.exceptions.Timeout, TimeoutError)):
            return True
        stack.extend([*item.args, item.__cause__, item.__context__])
        if isinstance(item, ProtocolError):
            stack.extend(item.args)
    return False


def _retry_after(value: str | None) -> float:
    """Seconds a Retry-After header asks for (seconds or HTTP date); 0 when absent or unreadable."""
    if not value:
        return 0.0
    value = value.strip()
    seconds: float
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return 0.0
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - clock.now()).total_seconds()
    return max(0.0, seconds)


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:197] + "..."

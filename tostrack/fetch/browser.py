"""Render a page in the system's Chromium (via Playwright) for pages built by JavaScript.

Used for sources declared with `browser = true` and, with `[fetch] browser = "auto"`, as the
fallback when a plain fetch looks blocked. Playwright is optional (`pip install
'tostrack[browser]'`) and imported only here, only when needed. tostrack never downloads a
browser: it launches the Chromium at `[fetch] chromium` (Debian: `apt install chromium`).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from tostrack.clock import now_iso
from tostrack.fetch.health import page_problem
from tostrack.models import Failure, Snapshot, Source

if TYPE_CHECKING:  # pragma: no cover
    from tostrack.config import FetchConfig

INSTALL_PLAYWRIGHT = (
    "Playwright is not installed: pip install 'tostrack[browser]' "
    "(it drives the system Chromium; no browser download is needed)"
)
# How long a bot challenge may take to let the page through before we give up (seconds),
# and how long to wait for text that scripts add after the page went quiet.
CHALLENGE_WAIT = 8.0
LATE_SCRIPT_WAIT = 2.0
_SKIPPED_RESOURCES = frozenset({"image", "media", "font"})


def chromium_problem(path: str) -> str | None:
    """Why the Chromium at path cannot be used, or None."""
    if not path or not os.path.isfile(path):
        return (
            f"Chromium not found at {path or '(empty path)'}: install it (Debian: apt install "
            "chromium) or set [fetch] chromium to its path"
        )
    if not os.access(path, os.X_OK):
        return f"{path} is not executable: set [fetch] chromium to a Chromium binary"
    return None


def available(config: FetchConfig) -> str | None:
    """None when rendering can work, else what to install."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return INSTALL_PLAYWRIGHT
    return chromium_problem(config.chromium)


def render(source: Source, url: str, config: FetchConfig) -> Snapshot | Failure:
    """Load url in headless Chromium and return the rendered HTML as a Snapshot."""

    def fail(reason: str, detail: str) -> Failure:
        return Failure(source.id, now_iso(), reason, detail)

    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import TimeoutError as PlaywrightTimeout
        from playwright.sync_api import sync_playwright
    except ImportError:
        return fail("browser-unavailable", INSTALL_PLAYWRIGHT)
    problem = chromium_problem(config.chromium)
    if problem:
        return fail("browser-unavailable", problem)

    timeout_ms = (config.connect_timeout + config.read_timeout) * 1000
    headers = {k: v for k, v in source.headers}
    user_agent = next((v for k, v in headers.items() if k.lower() == "user-agent"), None)
    headers = {k: v for k, v in headers.items() if k.lower() != "user-agent"}
    try:
        with sync_playwright() as playwright:
            try:
                browser = playwright.chromium.launch(
                    executable_path=config.chromium,
                    headless=True,
                    timeout=timeout_ms,
                    proxy=proxy_for(url),
                )
            except PlaywrightError as exc:
                return fail(
                    "browser-unavailable", f"cannot start {config.chromium}: {_first_line(exc)}"
                )
            try:
                return _load(source, url, config, browser, headers, user_agent, timeout_ms, fail)
            finally:
                browser.close()
    except PlaywrightTimeout:
        return fail(
            "timeout", f"{url}: Chromium did not finish loading within {timeout_ms / 1000:g} s"
        )
    except PlaywrightError as exc:
        message = _first_line(exc)
        if "net::ERR_" in message:
            return fail("connection", f"{url}: {message}")
        if "Download is starting" in message:
            return fail(
                "browser-error",
                f"{url} is a download (a PDF?), not a page: remove browser = true from this source",
            )
        return fail("browser-error", f"{url}: {message}")
    except Exception as exc:  # noqa: BLE001 - a separate program; report it, never crash a run
        return fail("browser-error", f"{url}: {type(exc).__name__}: {str(exc)[:300]}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else repr(exc))[:300]


def proxy_for(url: str) -> dict[str, str] | None:
    """The proxy requests would use for url (HTTP(S)_PROXY, NO_PROXY), in Playwright's form."""
    import requests.utils

    proxies = requests.utils.get_environ_proxies(url)
    scheme = urlsplit(url).scheme
    server = proxies.get(scheme) or proxies.get("all")
    if not server:
        return None
    parts = urlsplit(server if "://" in server else f"http://{server}")
    port = f":{parts.port}" if parts.port else ""
    proxy = {"server": f"{parts.scheme}://{parts.hostname}{port}"}
    if parts.username:
        proxy["username"] = unquote(parts.username)
        proxy["password"] = unquote(parts.password or "")
    bypass = os.environ.get("NO_PROXY") or os.environ.get("no_proxy")
    if bypass:
        proxy["bypass"] = bypass
    return proxy


def _load(
    source: Source,
    url: str,
    config: FetchConfig,
    browser: Any,
    headers: dict[str, str],
    user_agent: str | None,
    timeout_ms: float,
    fail: Any,
) -> Snapshot | Failure:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    context = browser.new_context(user_agent=user_agent, extra_http_headers=headers or None)
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    # Text is all we keep: skip images, media and fonts (faster, and lighter on the site).
    page.route(
        "**/*",
        lambda route: (
            route.abort()
            if route.request.resource_type in _SKIPPED_RESOURCES
            else route.continue_()
        ),
    )
    # The status that counts is the last main-frame document: a challenge that lets us
    # through navigates again.
    last: dict[str, Any] = {}

    def on_response(response: Any) -> None:
        request = response.request
        if request.is_navigation_request() and request.frame == page.main_frame:
            last["response"] = response

    page.on("response", on_response)
    first = page.goto(url, wait_until="load")
    if first is not None:
        last.setdefault("response", first)
    try:
        page.wait_for_load_state("networkidle", timeout=min(10_000, timeout_ms))
    except PlaywrightTimeout:
        pass  # pages that poll forever never go idle; "load" has happened
    html = page.content()
    # A challenge takes a few seconds to let us through; late scripts a little less.
    started = time.monotonic()
    while True:
        problem = page_problem(html.encode("utf-8"), "text/html")
        patience = {"challenge": CHALLENGE_WAIT, "needs-javascript": LATE_SCRIPT_WAIT}
        if time.monotonic() - started >= min(patience.get(problem or "", 0), config.read_timeout):
            break
        page.wait_for_timeout(500)
        html = page.content()
    response = last.get("response")
    status = response.status if response is not None else 200
    if not 200 <= status < 300:  # an error page stays an error page, however it renders
        return fail(f"http-{status}", f"{page.url} answered {status} in Chromium")
    body = html.encode("utf-8")
    if len(body) > config.max_bytes:
        return fail(
            "too-large",
            f"{page.url} rendered to {len(body):,} bytes; the limit is "
            f"{config.max_bytes:,} ([fetch] max_bytes)",
        )
    response_headers = tuple(response.headers.items()) if response is not None else ()
    return Snapshot(
        source_id=source.id,
        url=page.url,
        fetched_at=now_iso(),
        status=status,
        content_type="text/html",
        body=body,
        headers=response_headers,
        encoding="utf-8",
    )

"""Fetching: a source declaration in, raw Snapshots or a Failure out (the pipeline's I/O edge).

http.py      Fetcher (one per run: session, per-host throttle, browser fallback), fetch_source
browser.py   rendering in Debian's Chromium through Playwright, for pages that need JavaScript
content.py   media type and charset of a body, meta refresh
throttle.py  one request at a time per host, and a polite delay between them
pool.py      a run's fetches: up to max_hosts hosts at once, each host's jobs in turn
health.py    is this the document, or an error page, a bot challenge, a login wall, empty?

Import from here; the modules of this package import each other directly, never this __init__.
"""

from tostrack.config import BROWSER_MODES, DEFAULT_USER_AGENT, FetchConfig
from tostrack.fetch.content import detect_encoding, parse_content_type, sniff_type
from tostrack.fetch.http import FAILURE_REASONS, NOT_MODIFIED, Fetcher, NotModified, fetch_source
from tostrack.fetch.throttle import HostThrottle, throttle_for

__all__ = [
    "BROWSER_MODES",
    "DEFAULT_USER_AGENT",
    "FAILURE_REASONS",
    "NOT_MODIFIED",
    "FetchConfig",
    "Fetcher",
    "HostThrottle",
    "NotModified",
    "detect_encoding",
    "fetch_source",
    "parse_content_type",
    "sniff_type",
    "throttle_for",
]

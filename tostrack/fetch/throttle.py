"""Politeness: one request at a time per host, and a delay between the end of one and the next."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import requests


class HostThrottle:
    """One request at a time per host, and `delay` seconds between the end of one and the next.

    Tied to a requests.Session (see throttle_for), so two sessions never slow each other down.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._last: dict[str, float] = {}

    def _lock(self, host: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(host, threading.Lock())

    def hold(self, url: str, delay: float) -> _Held:
        return _Held(self, host_key(url), delay)


class _Held:
    def __init__(self, throttle: HostThrottle, host: str, delay: float) -> None:
        self.throttle, self.host, self.delay = throttle, host, delay
        self.lock = throttle._lock(host)

    def __enter__(self) -> None:
        self.lock.acquire()
        last = self.throttle._last.get(self.host)
        if last is not None and self.delay > 0:
            wait = last + self.delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)

    def __exit__(self, *exc: object) -> None:
        self.throttle._last[self.host] = time.monotonic()
        self.lock.release()


_ATTRIBUTE = "_tostrack_throttle"


def throttle_for(session: requests.Session) -> HostThrottle:
    """The per-host politeness state of a session, kept on the session itself (created on first
    use, gone with it): two fetchers sharing a session share its politeness, and no state lives
    in this module. dict.setdefault is atomic, so threads racing here get the same throttle."""
    return vars(session).setdefault(_ATTRIBUTE, HostThrottle())


def host_key(url: str) -> str:
    """host[:port]: what one throttle slot stands for."""
    parts = urlsplit(url)
    return (parts.hostname or "").lower() + (f":{parts.port}" if parts.port else "")

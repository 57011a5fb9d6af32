"""Runs scale with hosts: several hosts fetched at once, each host one request at a time and
`delay` apart, and a confirmation that waits without holding anything else. Real HTTP servers on
127.0.0.1 (one port, one host)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tostrack.config import FetchConfig
from tostrack.fetch import Fetcher
from tostrack.fetch.pool import HostPool
from tostrack.fetch.throttle import host_key
from tostrack.models import Snapshot, Source
from tostrack.pipeline import run
from tostrack.store import Store
from tostrack.workspace import Workspace

PAGE = (
    "<html><head><title>Terms</title></head><body><main><h1>Terms of use</h1>"
    + "".join(
        f"<p>{n}. Clause {n}: you may use the service for lawful purposes and must keep your "
        "account details accurate and up to date.</p>"
        for n in range(1, 9)
    )
    + "</main></body></html>"
)


class Host:
    """One HTTP server: it answers after `answer_after` seconds and notes when each request
    started and ended (monotonic clock)."""

    def __init__(self, answer_after: float = 0.2) -> None:
        self.calls: list[tuple[str, float, float]] = []
        self.bodies: dict[str, str] = {}  # path -> page; PAGE for any other
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                started = time.monotonic()
                time.sleep(answer_after)
                data = host.bodies.get(self.path, PAGE).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                host.calls.append((self.path, started, time.monotonic()))

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hosts() -> Iterator[list[Host]]:
    made = [Host(), Host()]
    yield made
    for host in made:
        host.close()


def _source(url: str, n: int) -> Source:
    return Source(id=f"acme/doc-{n}", urls=(url,), title=f"Doc {n}")


def _overlap(a: tuple[str, float, float], b: tuple[str, float, float]) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def test_two_hosts_at_once_one_host_serial_and_spaced(hosts: list[Host]) -> None:
    delay = 0.3
    config = replace(FetchConfig(), retries=0, delay=delay, browser="never")
    sources = [_source(host.url(f"/doc-{n}"), n) for n in range(3) for host in hosts]
    with Fetcher(config) as fetcher, HostPool(max_hosts=2) as pool:
        started = time.monotonic()
        futures = [
            pool.submit(host_key(s.url), lambda s=s: fetcher.fetch(s), not_before=0.0)
            for s in sources
        ]
        results = [f.result(timeout=30) for f in futures]
        wall = time.monotonic() - started
    assert all(isinstance(r, tuple) and isinstance(r[0], Snapshot) for r in results)
    first, second = hosts
    assert len(first.calls) == len(second.calls) == 3
    # The two hosts were fetched at the same time ...
    assert any(_overlap(a, b) for a in first.calls for b in second.calls)
    # ... while each host saw one request at a time, `delay` apart, in the order given.
    for host in hosts:
        calls = sorted(host.calls, key=lambda c: c[1])
        assert [c[0] for c in calls] == ["/doc-0", "/doc-1", "/doc-2"]
        for before, after in zip(calls, calls[1:], strict=False):
            assert after[1] - before[2] >= delay - 0.05
    one_host = 3 * 0.2 + 2 * delay
    assert wall < 2 * one_host  # not the two hosts one after the other


def test_a_job_waiting_for_its_time_holds_no_one(hosts: list[Host]) -> None:
    config = replace(FetchConfig(), retries=0, delay=0.0, browser="never")
    first, second = hosts
    with Fetcher(config) as fetcher, HostPool(max_hosts=1) as pool:
        started = time.monotonic()
        later = pool.submit(
            host_key(first.url("/")),
            lambda: fetcher.fetch(_source(first.url("/confirm"), 0)),
            not_before=started + 1.5,
        )
        now = [
            pool.submit(
                host_key(h.url("/")), lambda h=h, n=n: fetcher.fetch(_source(h.url(f"/{n}"), n))
            )
            for n, h in enumerate([first, second, first])
        ]
        for future in now:
            future.result(timeout=30)
        done_now = time.monotonic() - started
        later.result(timeout=30)
        done_later = time.monotonic() - started
    # One worker, and a job of the first host waiting: the others (its own host's too) went by.
    assert done_now < 1.5 <= done_later
    confirm = next(c for c in first.calls if c[0] == "/confirm")
    assert confirm[1] - started >= 1.5 - 0.01


def test_pool_errors_reach_the_caller_and_close_cancels_the_rest() -> None:
    def boom() -> None:
        raise OSError("no route")

    with HostPool(max_hosts=1) as pool:
        failed = pool.submit("a", boom)
        with pytest.raises(OSError, match="no route"):
            failed.result(timeout=5)
        waiting = pool.submit("a", lambda: 1, not_before=time.monotonic() + 60)
    assert waiting.cancelled()
    with pytest.raises(ValueError):
        HostPool(max_hosts=0)


CHANGED = PAGE.replace(
    "<p>3. Clause 3: you may use the service for lawful purposes",
    "<p>3. Clause 3: you may not use output of the service to develop models that compete with "
    "us, and you may use the service for lawful purposes",
)


def _workspace(root: Path, sources: list[tuple[str, str]], confirm_delay: float) -> Workspace:
    lines = [
        "[fetch]",
        "retries = 0",
        "delay = 0",
        f"confirm_delay = {confirm_delay}",
        'browser = "never"',
        "",
    ]
    for source_id, url in sources:
        lines += ["[[sources]]", f'id = "{source_id}"', f'url = "{url}"', 'select = ["main"]', ""]
    root.mkdir(parents=True, exist_ok=True)
    (root / "tostrack.toml").write_text("\n".join(lines), encoding="utf-8")
    return Workspace.open(root)


def test_a_confirmation_waits_without_holding_other_sources(tmp_path: Path) -> None:
    made = [Host(answer_after=0.05) for _ in range(3)]
    try:
        a, b, c = made
        sources = [
            ("acme/one", a.url("/one")),
            ("acme/two", a.url("/two")),
            ("beta/terms", b.url("/terms")),
            ("gamma/terms", c.url("/terms")),
        ]
        run(_workspace(tmp_path, sources, 0), force=True, send=False)
        a.bodies["/one"] = b.bodies["/terms"] = CHANGED
        for host in made:
            host.calls.clear()
        delay = 1.5
        started = time.monotonic()
        result = run(_workspace(tmp_path, sources, delay), force=True, send=False)
    finally:
        for host in made:
            host.close()
    statuses = {r.source.id: r.status for r in result.results}
    assert statuses == {
        "acme/one": "changed",
        "acme/two": "unchanged",
        "beta/terms": "changed",
        "gamma/terms": "unchanged",
    }
    assert [r.source.id for r in result.results] == [s for s, _ in sources]  # as declared
    first_one, again_one = sorted((c for c in a.calls if c[0] == "/one"), key=lambda c: c[1])
    first_b, again_b = sorted(b.calls, key=lambda c: c[1])
    (two,) = [call for call in a.calls if call[0] == "/two"]
    (gamma,) = c.calls
    # Each change was fetched again confirm_delay after its first fetch ...
    assert again_one[1] - first_one[2] >= delay - 0.05
    assert again_b[1] - first_b[2] >= delay - 0.05
    # ... the two waits ran side by side, not one after the other ...
    assert abs(again_one[1] - again_b[1]) < delay
    # ... and the other sources, on the same host or another, did not wait for them.
    assert two[2] < again_one[1] and gamma[2] < again_one[1]
    assert two[1] - started < delay and gamma[1] - started < delay


def test_records_follow_the_list_not_the_timing(tmp_path: Path) -> None:
    slow, fast = Host(answer_after=0.6), Host(answer_after=0.0)
    try:
        sources = [
            ("slow/one", slow.url("/one")),
            ("slow/two", slow.url("/two")),
            ("fast/one", fast.url("/one")),
        ]
        run(_workspace(tmp_path, sources, 0), force=True, send=False)
    finally:
        slow.close()
        fast.close()
    with Store(tmp_path) as store:
        ids = {s: store.current_version(s).id for s, _ in sources}  # type: ignore[union-attr]
    # Fast's page came in first, but records go in turns over the hosts in the declared order:
    # each host's first source, then each host's second.
    assert ids == {"slow/one": 1, "fast/one": 2, "slow/two": 3}

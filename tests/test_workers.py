"""Several `tostrack run` processes sharing one real PostgreSQL (tests/postgres_cluster.py).

One local site of 60 documents served on six host:port addresses (six hosts, as the fetcher's
per-host throttle counts them), a real SMTP server, and three workers started at once, each
taking one host at a time ([fetch] max_hosts = 1: with more, the first worker up would claim
every host before the others start). Skips, saying why, when no cluster can be started.
"""

from __future__ import annotations

import asyncio
import email
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from conftest import TERMS_V1, TERMS_V2, write_config
from pytest_httpserver import HTTPServer
from test_notify import Recorder, free_port
from werkzeug import Request, Response

from tostrack import clock, faults, notify
from tostrack.config import StoreConfig
from tostrack.store import OutgoingMessage, Store
from tostrack.workspace import Workspace

SITES = 6  # hosts
DOCUMENTS = 10  # on each: 60 sources


@pytest.fixture
def sites() -> Iterator[list[HTTPServer]]:
    servers = [HTTPServer(host="127.0.0.1", port=0) for _ in range(SITES)]
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.clear()
        server.stop()


def _changed(s: int, n: int) -> bool:
    """Twenty of the sixty documents (one in three) change between rounds."""
    return (s * DOCUMENTS + n) % 3 == 0


def _serve(servers: list[HTTPServer], changed: str = TERMS_V1, pause: float = 0) -> None:
    """Every document, the changing ones as `changed`, each answer after `pause` seconds (a
    slow site, for a kill to land mid-host)."""
    for s, server in enumerate(servers):
        server.clear()
        for n in range(DOCUMENTS):
            body = changed if _changed(s, n) else TERMS_V1

            def answer(request: Request, body: str = body) -> Response:
                time.sleep(pause)
                return Response(body, content_type="text/html")

            server.expect_request(f"/doc-{n}").respond_with_handler(answer)


def _config(
    servers: list[HTTPServer],
    url: str,
    lease: str = "10m",
    documents: int = DOCUMENTS,
    delay: float = 0.5,
    extra: str = "",
) -> str:
    sources = "".join(
        f'[[sources]]\nid = "site{s}/doc-{n}"\ntitle = "Doc {n}"\n'
        f'url = "{server.url_for(f"/doc-{n}")}"\nselect = ["main"]\n\n'
        for s, server in enumerate(servers)
        for n in range(documents)
    )
    return (
        f'[store]\nurl = "{url}"\nlease = "{lease}"\n\n'
        f"[fetch]\nretries = 0\nconfirm_delay = 0\ndelay = {delay}\nmax_hosts = 1\n\n"
        f'{sources}[[recipients]]\nemail = "legal@example.com"\n\n{extra}'
    )


RUN = [sys.executable, "-m", "tostrack", "--workspace"]


def _start(root: Path, count: int) -> list[subprocess.Popen[str]]:
    command = [*RUN, str(root), "run"]
    return [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]


def _finish(started: list[subprocess.Popen[str]]) -> list[subprocess.CompletedProcess[str]]:
    done = []
    for worker in started:
        out, err = worker.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(worker.args, worker.returncode, out, err))
    return done


def _workers(root: Path, count: int) -> list[subprocess.CompletedProcess[str]]:
    return _finish(_start(root, count))


def _requests(servers: list[HTTPServer]) -> list[str]:
    return sorted(f"{server.port}{request.path}" for server in servers for request, _ in server.log)


def _all_due_again(root: Path, url: str) -> None:
    """Half a day later: every source is due again."""
    with Store(root, database=StoreConfig(url)) as store, store.transaction() as db:
        db.execute("UPDATE sources SET last_checked_at = '2000-01-01T00:00:00Z'")


def _check_notifications(store: Store, recorder: Recorder) -> None:
    """One notification per change: every substantive diff is in exactly one change message
    (a provider's changes of one run go out as one, keyed diff:<ids>:<recipient>), every such
    message was sent, and the SMTP server got each of them once."""
    changes = store.diffs(substantive_only=True)
    outbox = [m for m in store.outbox_listing() if m["kind"] == "change"]
    covered = [int(i) for m in outbox for i in m["key"].split(":")[1].split(",")]
    assert sorted(covered) == sorted(d.id for d in changes)
    assert {m["state"] for m in outbox} == {"sent"}
    received = _message_ids(recorder)
    assert sorted(received) == sorted(m["message_id"] for m in outbox)


def test_three_workers_on_sixty_sources_each_change_once_and_a_kill_is_covered(
    tmp_path: Path, sites: list[HTTPServer], postgres_url: str, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    root = tmp_path / "ws"
    write_config(root, _config(sites, postgres_url, delay=0.1, extra=_smtp_table(port)))
    everything = SITES * DOCUMENTS
    changing = sum(_changed(s, n) for s in range(SITES) for n in range(DOCUMENTS))
    assert (everything, changing) == (60, 20)

    _serve(sites)  # round 1: the first versions
    first = _workers(root, 3)
    assert [w.returncode for w in first] == [0, 0, 0], [w.stderr for w in first]  # no 75
    fetched = _requests(sites)
    assert len(fetched) == everything and len(set(fetched)) == everything  # each once
    tracked = [w.stdout.count("tracking ") for w in first]
    assert sum(tracked) == everything and sorted(tracked)[-2] > 0, tracked  # shared out

    # Round 2: twenty documents change, on a slower site, and one worker is killed mid-host;
    # a short lease, so that the test need not wait ten minutes for the others to take over.
    lease = 4
    write_config(
        root, _config(sites, postgres_url, f"{lease}s", delay=0.1, extra=_smtp_table(port))
    )
    _serve(sites, TERMS_V2, pause=0.05)
    _all_due_again(root, postgres_url)
    started = _start(root, 3)
    doomed, survivors = started[0], started[1:]
    deadline = time.monotonic() + 120
    with Store(root, database=StoreConfig(postgres_url)) as store:
        held: list[str] = []
        while not held and time.monotonic() < deadline:
            # a host it is halfway through: some of its documents asked for, some not yet
            held = [
                row[0]
                for row in store.db.execute(
                    "SELECT name FROM leases WHERE name LIKE 'host:%' AND holder LIKE ?",
                    (f"%:{doomed.pid}:%",),
                )
                for server in sites
                if row[0] == f"host:127.0.0.1:{server.port}" and 0 < len(server.log) < DOCUMENTS - 1
            ]
            time.sleep(0.02)
        assert held, "the worker to kill never got into a host"
        os.kill(doomed.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        doomed.communicate()
        (host,) = held
        done_then = [s["id"] for s in store.all_source_states() if s["last_checked_at"] > "2001"]
    rest = _finish(survivors)
    elapsed = time.monotonic() - killed_at
    assert [w.returncode for w in rest] == [0, 0], [w.stderr for w in rest]
    # Its host was taken over when its lease ran out, by the workers of the same round: the
    # time left of its lease, then the rest of the round (generous: two cores, three workers).
    assert elapsed < lease + 20, elapsed
    # each source fetched once, but for the one the killed worker was fetching
    fetched = _requests(sites)
    again = [path for path in set(fetched) if fetched.count(path) > 1]
    assert len(set(fetched)) == everything and len(fetched) <= everything + 1
    assert all(path.startswith(host.rsplit(":", 1)[1] + "/") for path in again), (again, host)
    with Store(root, database=StoreConfig(postgres_url)) as store:
        states = store.all_source_states()
        assert len(states) == everything
        assert all(s["last_checked_at"] > "2001" for s in states)  # every source this round
        assert len(done_then) < everything  # the kill came mid-run
        assert len(store.diffs(substantive_only=True)) == changing  # every change once
        for s in range(SITES):
            for n in range(DOCUMENTS):
                assert len(store.versions(f"site{s}/doc-{n}")) == 1 + _changed(s, n)
        _check_notifications(store, recorder)  # the killed worker's changes too
        live = "SELECT name FROM leases WHERE holder IS NOT NULL AND expires_at >= ?"
        assert store.db.execute(live, (clock.now_iso(),)).fetchall() == []  # all given back


class SlowRecorder(Recorder):
    """A real SMTP server that takes a moment over each message, as a remote one does."""

    pause = 0.05  # seconds

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201
        reply = await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(self.pause)  # kept before answering: a sender killed now was heard
        return reply


@pytest.fixture
def smtp() -> Iterator[tuple[Recorder, int]]:
    handler = SlowRecorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def _smtp_table(port: int) -> str:
    return f'[smtp]\nhost = "127.0.0.1"\nport = {port}\ntls = "none"\nfrom = "t@tostrack.test"\n\n'


def _message_ids(recorder: Recorder) -> list[str]:
    with recorder.lock:
        return [email.message_from_bytes(data)["Message-ID"] for _, _, data in recorder.messages]


def _queue(store: Store, count: int) -> None:
    with store.transaction():
        store.insert_messages(
            OutgoingMessage(
                f"m{n}",
                "change",
                "legal@example.com",
                f"change {n}",
                f"<m{n}@tostrack.test>",
                f"Message-ID: <m{n}@tostrack.test>\r\nSubject: change {n}\r\n\r\nbody\r\n".encode(),
            )
            for n in range(count)
        )


def test_senders_share_the_outbox_each_message_sent_once(
    tmp_path: Path, postgres_url: str, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    recorder.pause = 0.2  # 24 messages: time enough for both senders to be up before the end
    root = tmp_path / "ws"
    write_config(root, f'[store]\nurl = "{postgres_url}"\n\n' + _smtp_table(port))
    with Store(root, database=StoreConfig(postgres_url)) as store:
        _queue(store, 24)
    command = [sys.executable, "-m", "tostrack", "--workspace", str(root), "notify"]
    senders = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for sender in senders:
        out, err = sender.communicate(timeout=120)
        assert sender.returncode == 0 and "Traceback" not in err, err
    ids = _message_ids(recorder)
    assert sorted(ids) == sorted(f"<m{n}@tostrack.test>" for n in range(24))  # each once
    with Store(root, database=StoreConfig(postgres_url)) as store:
        sent = store.messages_in_state("sent")
        assert len(sent) == 24
        assert len({row["claimed_by"] for row in sent}) == 2  # both sent, different messages


def test_a_killed_senders_message_is_claimed_again_after_its_lease_never_sent_twice(
    tmp_path: Path, postgres_url: str, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    root = tmp_path / "ws"
    write_config(root, f'[store]\nurl = "{postgres_url}"\nlease = "2s"\n\n' + _smtp_table(port))
    command = [sys.executable, "-m", "tostrack", "--workspace", str(root), "notify"]

    def sender(crash_at: str) -> None:
        env = {**os.environ, faults.CRASH_ENV: crash_at}
        done = subprocess.run(command, env=env, capture_output=True, timeout=120, check=False)
        assert done.returncode == -signal.SIGKILL

    def state() -> str:
        (row,) = store.outbox_listing()
        return row["state"]

    def wait_for_the_claim_to_expire() -> None:
        (row,) = store.db.execute("SELECT claimed_until FROM outbox").fetchall()
        while clock.now_iso() <= row[0]:
            time.sleep(0.1)

    ws = Workspace.open(root)
    with Store(root, database=StoreConfig(postgres_url)) as store:
        _queue(store, 1)
        sender("before-final-dot")  # killed mid-DATA: the server throws the message away
        assert state() == "queued" and recorder.count() == 0
        alive = notify.send_pending(ws, store, worker="another", ignore_backoff=True)
        assert alive.outcomes == [] and state() == "queued"  # the dead worker's claim stands
        wait_for_the_claim_to_expire()
        sender("after-final-dot")  # claimed again; killed once the server had it
        assert recorder.wait_for(1) == 1 and state() == "in-flight"
        alive = notify.send_pending(ws, store, worker="another", ignore_backoff=True)
        assert alive.outcomes == [] and alive.errors == []  # its sender may be alive: left be
        wait_for_the_claim_to_expire()
        later = notify.send_pending(ws, store, worker="another", ignore_backoff=True)
        assert [o.state for o in later.outcomes] == ["uncertain"] and state() == "uncertain"
        again = notify.send_pending(ws, store, worker="a-third", ignore_backoff=True)
        assert again.outcomes == [] and again.errors == []  # reported once
    assert recorder.count() == 1  # never sent twice

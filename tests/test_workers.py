"""Several `tostrack run` processes sharing one real PostgreSQL (tests/postgres_cluster.py).

Three local sites (three hosts, as the fetcher's per-host throttle counts them), four documents
each; three workers started at once, each taking one host at a time ([fetch] max_hosts = 1: with
more, the first worker up would claim all three hosts before the others start). Skips, saying
why, when no cluster can be started.
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

SITES = 3
DOCUMENTS = 4


@pytest.fixture
def sites() -> Iterator[list[HTTPServer]]:
    servers = [HTTPServer(host="127.0.0.1", port=0) for _ in range(SITES)]
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.clear()
        server.stop()


def _serve(servers: list[HTTPServer], changed: int = 0) -> None:
    """Every document; the first `changed` of each site with the second version."""
    for server in servers:
        server.clear()
        for n in range(DOCUMENTS):
            body = TERMS_V2 if n < changed else TERMS_V1
            server.expect_request(f"/doc-{n}").respond_with_data(body, content_type="text/html")


def _config(servers: list[HTTPServer], url: str, lease: str = "10m") -> str:
    sources = "".join(
        f'[[sources]]\nid = "site{s}/doc-{n}"\ntitle = "Doc {n}"\n'
        f'url = "{server.url_for(f"/doc-{n}")}"\nselect = ["main"]\n\n'
        for s, server in enumerate(servers)
        for n in range(DOCUMENTS)
    )
    return (
        f'[store]\nurl = "{url}"\nlease = "{lease}"\n\n'
        "[fetch]\nretries = 0\nconfirm_delay = 0\ndelay = 0.5\nmax_hosts = 1\n\n"
        f'{sources}[[recipients]]\nemail = "legal@example.com"\n'
    )


def _workers(root: Path, count: int) -> list[subprocess.CompletedProcess[str]]:
    command = [sys.executable, "-m", "tostrack", "--workspace", str(root), "run"]
    started = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    done = []
    for worker in started:
        out, err = worker.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(worker.args, worker.returncode, out, err))
    return done


def _requests(servers: list[HTTPServer]) -> list[str]:
    return sorted(f"{server.port}{request.path}" for server in servers for request, _ in server.log)


def test_three_workers_share_the_sources_each_fetched_once(
    tmp_path: Path, sites: list[HTTPServer], postgres_url: str
) -> None:
    root = tmp_path / "ws"
    write_config(root, _config(sites, postgres_url))
    _serve(sites)
    first = _workers(root, 3)
    assert [w.returncode for w in first] == [0, 0, 0], [w.stderr for w in first]
    fetched = _requests(sites)
    assert len(fetched) == SITES * DOCUMENTS and len(set(fetched)) == len(fetched)
    tracked = [w.stdout.count("tracking ") for w in first]
    assert sum(tracked) == SITES * DOCUMENTS
    assert sorted(tracked)[-2] > 0, tracked  # the work was shared, not done by one worker

    _serve(sites, changed=2)  # two documents of each site change
    with Store(root, database=StoreConfig(postgres_url)) as store:
        with store.transaction() as db:  # half a day later: every source is due again
            db.execute("UPDATE sources SET last_checked_at = '2000-01-01T00:00:00Z'")
    second = _workers(root, 3)
    assert [w.returncode for w in second] == [0, 0, 0], [w.stderr for w in second]
    fetched = _requests(sites)  # this round's (the servers were cleared)
    assert len(fetched) == SITES * DOCUMENTS and len(set(fetched)) == len(fetched)

    with Store(root, database=StoreConfig(postgres_url)) as store:
        assert store.version_count() == SITES * DOCUMENTS + SITES * 2
        changes = store.diffs(substantive_only=True)
        assert len(changes) == SITES * 2  # every change recorded once
        outbox = [m for m in store.outbox_listing() if m["kind"] == "change"]
        assert sorted(m["key"] for m in outbox) == sorted({m["key"] for m in outbox})
        # one notification per change: a provider's changes of one run go out as one message
        # (diff:<ids>:<recipient>), so every changed diff is in exactly one message
        covered = [int(i) for m in outbox for i in m["key"].split(":")[1].split(",")]
        assert sorted(covered) == sorted(d.id for d in changes)
        assert store.lease_holder("outbox") is None  # released by whoever sent


def test_a_killed_workers_host_is_done_by_another_after_its_lease(
    tmp_path: Path, sites: list[HTTPServer], postgres_url: str
) -> None:
    root = tmp_path / "ws"
    write_config(root, _config(sites[:1], postgres_url, lease="4s"))

    def slow(request: Request) -> Response:
        time.sleep(0.5)
        return Response(TERMS_V1, content_type="text/html")

    for n in range(DOCUMENTS):
        sites[0].expect_request(f"/doc-{n}").respond_with_handler(slow)
    command = [sys.executable, "-m", "tostrack", "--workspace", str(root), "run"]
    doomed = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not sites[0].log and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(doomed.pid, signal.SIGKILL)  # mid-host: its lease on the host is left behind
    doomed.wait()
    killed_at = time.monotonic()
    host = f"host:127.0.0.1:{sites[0].port}"
    with Store(root, database=StoreConfig(postgres_url)) as store:
        assert store.version_count() < DOCUMENTS
        holder = store.lease_holder(host)
        assert holder is not None and f":{doomed.pid}:" in holder
        assert store.claim_lease([host], "another-worker", 60) is None  # not free yet
        while store.claim_lease([host], "another-worker", 60) is None:
            assert time.monotonic() - killed_at < 4 + 2, "the lease outlived its 4 s"
            time.sleep(0.2)
        store.release_lease(host, "another-worker")
    later = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert later.returncode == 0, later.stderr
    with Store(root, database=StoreConfig(postgres_url)) as store:
        for n in range(DOCUMENTS):
            assert len(store.versions(f"site0/doc-{n}")) == 1  # each recorded once


class SlowRecorder(Recorder):
    """A real SMTP server that takes a moment over each message, as a remote one does."""

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201
        reply = await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(0.05)  # kept before answering: a sender killed now was heard
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

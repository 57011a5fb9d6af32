"""The store on both backends: embedded SQLite and a real PostgreSQL (tests/postgres_cluster.py).

Every test taking `store` or `backend` runs twice; the PostgreSQL cases skip, saying why, when no
cluster can be started on this machine. Nothing here is a stand-in: the same Store methods run the
same SQL against each database.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TERMS_V1, TERMS_V2, source_config, write_config
from postgres_cluster import free_port

from tostrack import config
from tostrack.config import StoreConfig
from tostrack.errors import ConfigError, StorageError
from tostrack.models import Clause, Document, Failure, Snapshot
from tostrack.pipeline import compare_clauses
from tostrack.store import SCHEMA_VERSION, OutgoingMessage, Store
from tostrack.store.connection import postgres_sql

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> StoreConfig | None:
    """None for the embedded SQLite; a [store] table's value for a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return None
    return StoreConfig(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(tmp_path: Path, backend: StoreConfig | None) -> Iterator[Store]:
    with Store(tmp_path / "ws", database=backend) as opened:
        yield opened


OLD = (
    Clause("c-1", "1 Use", ("1 Use",), "You may use the service for lawful purposes."),
    Clause("c-2", "2 Law", ("2 Law",), "The laws of England govern these terms."),
)
NEW = (
    OLD[0],
    Clause("c-2", "2 Law", ("2 Law",), "The laws of Ireland govern these terms."),
    Clause("c-3", "3 Output", ("3 Output",), "You may not use output to build competing models."),
)


def _snapshot(source_id: str, at: str, body: bytes) -> Snapshot:
    return Snapshot(source_id, "https://acme.test/terms", at, 200, "text/html", body)


def _two_versions(store: Store, source_id: str = "acme/terms") -> int:
    first, none = store.save_version(
        [_snapshot(source_id, "2026-05-01T08:00:00Z", b"<p>one</p>")],
        Document((), title="Acme Terms"),
        OLD,
        title="Acme Terms",
        url="https://acme.test/terms",
    )
    assert none is None
    _, diff_id = store.save_version(
        [_snapshot(source_id, "2026-06-09T08:00:00Z", b"<p>two \x00\xff</p>")],
        Document((), title="Acme Terms", effective_date="2026-06-09"),
        NEW,
        title="Acme Terms",
        diff=compare_clauses(OLD, NEW),
        previous=first,
    )
    assert diff_id is not None
    return diff_id


# -- versions, diffs, failures, sources ------------------------------------------------------


def test_versions_and_their_diff_read_back_the_same_on_both(store: Store) -> None:
    diff_id = _two_versions(store)
    stored = store.diff(diff_id)
    assert stored.substantive and stored.kind == "clauses"
    assert {c.kind for c in stored.changes} >= {"modified", "added"}
    assert [v.clause_count for v in store.versions("acme/terms")] == [2, 3]
    current = store.current_version("acme/terms")
    assert current is not None and current.effective_date == "2026-06-09"
    assert current.load()[1] == NEW
    assert current.snapshots()[0].body == b"<p>two \x00\xff</p>"  # raw bytes, as fetched
    assert [d.id for d in store.diffs(substantive_only=True, limit=5)] == [diff_id]
    assert store.last_diff_at("acme/terms", "clauses") == "2026-06-09T08:00:00Z"
    assert store.tracked_source_ids() == ["acme/terms"] and store.has_versions()
    assert store.version_count() == 2 and store.pending_captures() == []
    assert store.unindexed_captures() == []


def test_source_state_failures_and_checks(store: Store) -> None:
    seen: list[int] = []
    for n in (1, 2):
        failure = Failure("acme/terms", f"2026-05-0{n}T08:00:00Z", "http-error", f"503 #{n}")
        count = store.record_failure(failure, title="Acme", also=lambda db, c: seen.append(c))
        assert count == n
    assert seen == [1, 2]
    state = store.source_state("acme/terms")
    assert state is not None and state["consecutive_failures"] == 2
    assert state["broken_since"] == "2026-05-01T08:00:00Z"
    assert [f.detail for f in store.failures("acme/terms")] == ["503 #2", "503 #1"]
    store.record_check("acme/terms", "2026-05-03T08:00:00Z", title="Acme", etag='"v1"')
    state = store.source_state("acme/terms")
    assert state is not None and state["consecutive_failures"] == 0 and state["etag"] == '"v1"'
    assert [s["id"] for s in store.all_source_states()] == ["acme/terms"]


def test_text_orders_by_bytes_as_sqlite_does(store: Store) -> None:
    # PostgreSQL's default collations ignore punctuation; the store's TEXT columns use "C"
    for source_id in ("acme/terms-b", "acme/terms", "acme-x/terms", "acme/Terms"):
        store.record_check(source_id, "2026-05-01T08:00:00Z")
    assert [s["id"] for s in store.all_source_states()] == sorted(
        ["acme/terms-b", "acme/terms", "acme-x/terms", "acme/Terms"]
    )


def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError):
        with store.transaction() as db:
            db.execute("INSERT INTO sources (id) VALUES (?)", ("acme/terms",))
            raise RuntimeError("killed halfway")
    assert store.all_source_states() == []


# -- the outbox -------------------------------------------------------------------------------


def _message(key: str, body: bytes = b"Subject: x\r\n\r\nbody %s ?") -> OutgoingMessage:
    return OutgoingMessage(key, "change", "legal@example.com", "x", f"<{key}@t>", body)


def test_outbox_queues_once_and_keeps_the_bytes(store: Store) -> None:
    diff_id = _two_versions(store)
    assert store.unnotified_diff_ids() == [diff_id]
    added = store.record_diff_messages(
        diff_id, [_message("m1"), _message("m1")], [(diff_id, "legal@example.com", "daily", "r")]
    )
    assert added == 2  # the message once, the digest item once
    assert store.record_diff_messages(diff_id, [_message("m1")]) == 0
    assert store.unnotified_diff_ids() == [] and store.has_message("m1")
    (row,) = store.due_messages("9999")
    assert bytes(row["message"]) == b"Subject: x\r\n\r\nbody %s ?"
    store.mark_message(row["id"], "failed", attempts=1, last_error="refused")
    assert store.queued_count() == 0
    assert store.outbox_listing()[0]["last_error"] == "refused"
    store.requeue_message(row["id"])
    assert [r["key"] for r in store.messages_in_state("queued")] == ["m1"]
    assert store.digest_groups() == [("legal@example.com", "daily")]
    items = store.digest_items("legal@example.com", "daily", "9999")
    assert store.queue_digest(_message("digest-1"), [i["id"] for i in items]) == 1
    assert store.digest_groups() == []


def test_operator_alert_flag(store: Store) -> None:
    assert store.operator_alert_state("acme/terms") == (False, 0)
    with store.transaction():
        store.set_operator_alert("acme/terms", True, 1)
    with store.transaction():
        store.set_operator_alert("acme/terms", True, 2)
    assert store.operator_alert_state("acme/terms") == (True, 2)


# -- one schema, one set of migrations -------------------------------------------------------


def test_reopening_migrates_nothing_and_keeps_records(
    tmp_path: Path, backend: StoreConfig | None
) -> None:
    with Store(tmp_path / "ws", database=backend) as first:
        _two_versions(first)
        assert first.db.columns("outbox") >= {"key", "state", "message"}
    with Store(tmp_path / "ws", database=backend) as again:
        assert again.version_count() == 2
        (value,) = again.db.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'"
        ).fetchone()
        assert value == str(SCHEMA_VERSION)
    with Store(tmp_path / "ws", database=backend, read_only=True) as reader:
        assert reader.version_count() == 2 and reader.outbox_listing() == []


def test_a_database_from_a_newer_tostrack_is_refused(
    tmp_path: Path, backend: StoreConfig | None
) -> None:
    with Store(tmp_path / "ws", database=backend) as first:
        with first.transaction() as db:
            db.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
            )
    with pytest.raises(StorageError, match="newer tostrack"):
        Store(tmp_path / "ws", database=backend)


def test_workers_opening_a_new_database_together_make_the_tables_once(postgres_url: str) -> None:
    code = (
        "import sys; from tostrack.config import StoreConfig; from tostrack.store import Store\n"
        "Store(sys.argv[1], database=StoreConfig(sys.argv[2])).close()\n"
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", code, f"/tmp/unused-{n}", postgres_url])
        for n in range(4)
    ]
    assert [w.wait(timeout=120) for w in workers] == [0, 0, 0, 0]
    with Store(Path("/tmp/unused"), database=StoreConfig(postgres_url)) as store:
        assert store.version_count() == 0


def test_the_postgres_translation_of_the_store_sql() -> None:
    assert postgres_sql("BEGIN IMMEDIATE", False) == "BEGIN"
    assert postgres_sql("SELECT * FROM t WHERE a = ? AND b LIKE 'x%?'", True) == (
        "SELECT * FROM t WHERE a = %s AND b LIKE 'x%%?'"
    )
    assert postgres_sql("INSERT OR IGNORE INTO t (a) VALUES (?)", True) == (
        "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING"
    )
    ddl = postgres_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, m BLOB, n TEXT)", False)
    assert "GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY" in ddl and "BYTEA" in ddl
    assert 'TEXT COLLATE "C"' in ddl
    with pytest.raises(StorageError, match="ON CONFLICT"):
        postgres_sql("INSERT OR REPLACE INTO t VALUES (?)", True)


# -- [store] in tostrack.toml, and what goes wrong, said clearly -----------------------------


def _parse(table: str) -> config.Config:
    import tomllib

    return config.parse(tomllib.loads(table))


def test_no_store_table_is_the_embedded_database() -> None:
    assert _parse("").store is None


def test_store_url_and_password_env() -> None:
    cfg = _parse(
        '[store]\nurl = "postgresql://tostrack@db.example:5433/terms"\n'
        'password_env = "TOSTRACK_DB_PASSWORD"\n'
    )
    assert cfg.store == StoreConfig(
        "postgresql://tostrack@db.example:5433/terms", "TOSTRACK_DB_PASSWORD"
    )
    assert cfg.store.shown == "postgresql://db.example:5433/terms"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[store]\nurl = "postgresql://u:hunter2@db/x"\n', "holds a password"),
        ('[store]\nurl = "postgresql://db/x?password=hunter2"\n', "holds a password"),
        ('[store]\nurl = "mysql://db/x"\n', "use a PostgreSQL URL"),
        ('[store]\nurl = "postgresql://db:99999/x"\n', "port"),
        ('[store]\nurl = "postgresql://db/x"\npasword_env = "X"\n', "Did you mean 'password_env'"),
        ('[store]\nurl = "postgresql://db/x"\npassword = "x"\n', "Do not put the password"),
        ('[store]\npassword_env = "X"\n', "url is required"),
        ('[store]\nurl = "postgresql://db/x"\npassword_env = "not a name"\n', "environment"),
    ],
)
def test_store_table_mistakes(table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        _parse(table)
    assert "hunter2" not in str(caught.value)


def test_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "psycopg_installed", lambda: False)
    with pytest.raises(ConfigError, match=r"tostrack\[postgres\]"):
        _parse('[store]\nurl = "postgresql://db/x"\n')


def test_missing_password_variable_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOSTRACK_TEST_NO_SUCH_VAR", raising=False)
    database = StoreConfig("postgresql://tostrack@127.0.0.1/x", "TOSTRACK_TEST_NO_SUCH_VAR")
    with pytest.raises(ConfigError, match=r"\$TOSTRACK_TEST_NO_SUCH_VAR, which is not set"):
        Store(tmp_path, database=database)


def test_server_down_is_one_clear_line(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    database = StoreConfig(f"postgresql://tostrack@127.0.0.1:{free_port()}/x")
    with pytest.raises(StorageError, match=r"cannot connect to the database postgresql://127"):
        Store(tmp_path, database=database)


# -- the whole CLI on a shared PostgreSQL ------------------------------------------------------


def test_run_and_status_through_a_postgres_store(
    tmp_path: Path, httpserver, postgres_url: str
) -> None:
    httpserver.expect_request("/terms").respond_with_data(TERMS_V1, content_type="text/html")
    root = tmp_path / "ws"
    extra_table = f'\n[store]\nurl = "{postgres_url}"\n'
    write_config(root, source_config(httpserver.url_for("/terms")) + extra_table)

    def tostrack(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tostrack", "--workspace", str(root), *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    first = tostrack("run", "--force")
    assert first.returncode == 0, first.stderr
    httpserver.clear()
    httpserver.expect_request("/terms").respond_with_data(TERMS_V2, content_type="text/html")
    second = tostrack("run", "--force")
    assert second.returncode == 0, second.stderr
    assert not (root / "tostrack.db").exists()  # the records went to PostgreSQL
    with Store(root, database=StoreConfig(postgres_url)) as store:
        assert store.version_count() == 2 and len(store.diffs(substantive_only=True)) == 1
        assert (
            store.queued_count()
            + len(store.messages_in_state("sent"))
            + len(store.messages_in_state("written"))
            >= 1
        )
    status = tostrack("status")
    assert status.returncode == 0 and "acme/terms" in status.stdout


def test_cli_says_the_server_is_down_without_a_traceback(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    root = tmp_path / "ws"
    write_config(root, f'[store]\nurl = "postgresql://tostrack@127.0.0.1:{free_port()}/x"\n')
    done = subprocess.run(
        [sys.executable, "-m", "tostrack", "--workspace", str(root), "status"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "cannot connect to the database" in done.stderr and "Traceback" not in done.stderr


# -- leases (workers sharing a PostgreSQL) ---------------------------------------------------


def test_a_lease_is_held_renewed_released_and_taken_over_when_expired(store: Store) -> None:
    names = ["host:a.test", "host:b.test"]
    assert store.claim_lease(names, "w1", 60) == "host:a.test"
    assert store.claim_lease(names, "w2", 60) == "host:b.test"
    assert store.claim_lease(names, "w3", 60) is None  # both held by live workers
    assert store.claim_lease(names, "w1", 60) == "host:a.test"  # its own: a renewal
    assert store.renew_lease("host:a.test", "w1", 60)
    assert not store.renew_lease("host:a.test", "w2", 60)
    assert store.lease_holder("host:a.test") == "w1"
    store.release_lease("host:a.test", "w1")
    assert store.lease_holder("host:a.test") is None
    assert store.claim_lease(names, "w3", -5) == "host:a.test"  # claimed, already expired
    assert store.claim_lease(names, "w4", 60) == "host:a.test"  # as after a kill -9
    assert not store.renew_lease("host:a.test", "w3", 60)
    with store.holding("outbox", "w1", 60) as first, store.holding("outbox", "w2", 60) as second:
        assert first and not second
    assert store.lease_holder("outbox") is None
    # a run's own lease: renewed with its hosts, seen by the others, dropped at its end
    assert store.claim_lease(["run:w4"], "w4", -5) == "run:w4"
    assert not store.others_hold("run:", "w5")  # expired: w4 is dead
    store.renew_leases("w4", 60)  # its host and its run at once
    assert store.others_hold("run:", "w5") and not store.others_hold("run:", "w4")
    assert store.lease_holder("host:a.test") == "w4"
    store.claim_lease(["run:w6"], "w6", -5)
    store.drop_expired_leases("run:")
    store.drop_lease("run:w4", "w4")
    names = [r[0] for r in store.db.execute("SELECT name FROM leases WHERE name LIKE 'run:%'")]
    assert names == []


def test_claiming_skips_a_row_another_worker_has_locked(postgres_url: str, tmp_path: Path) -> None:
    import psycopg

    with Store(tmp_path, database=StoreConfig(postgres_url)) as store:
        store.claim_lease(["host:a.test", "host:b.test"], "nobody-yet", -1)
        with psycopg.connect(postgres_url) as other:  # a worker in the middle of its claim
            other.execute("SELECT * FROM leases WHERE name = 'host:a.test' FOR UPDATE")
            # passed over at once, not waited for
            assert store.claim_lease(["host:a.test", "host:b.test"], "w2", 60) == "host:b.test"
            assert store.claim_lease(["host:a.test"], "w2", 60) is None


def test_an_outbox_message_goes_in_flight_only_for_its_live_claimant(store: Store) -> None:
    with store.transaction():
        store.insert_messages([_message("m1"), _message("m2"), _message("m3")])
    one = store.claim_message("w1", 60, "9999", chat=False)
    assert one is not None and one["key"] == "m1" and one["claimed_by"] == "w1"
    assert store.claim_message("w1", 60, "9999", chat=True) is None  # no chat message queued
    two = store.claim_message("w2", 60, "9999", chat=False)
    if store.database is None:
        # embedded: the workspace lock is held, so any claim found is a dead run's
        assert two is not None and two["key"] == "m1"
        assert not store.start_sending(one["id"], "w1", 1)  # w1's claim went to w2
        assert store.abandoned_in_flight() == []
        assert store.start_sending(one["id"], "w2", 1)
        assert [r["key"] for r in store.abandoned_in_flight()] == ["m1"]
        return
    assert two is not None and two["key"] == "m2"  # m1's claim is live: passed over
    assert not store.start_sending(one["id"], "w2", 1)  # only the claimant hands it over
    assert store.start_sending(one["id"], "w1", 1)
    assert not store.start_sending(one["id"], "w1", 2)  # once: it is no longer queued
    assert store.abandoned_in_flight() == []  # w1 is alive and sending it
    # a sender killed holding m3: its claim runs out (-5 s) and another worker takes it
    dead = store.claim_message("dead", -5, "9999", chat=False, after=two["id"])
    assert dead is not None and dead["key"] == "m3"
    taken = store.claim_message("w2", 60, "9999", chat=False, after=two["id"])
    assert taken is not None and taken["key"] == "m3"
    assert not store.mark_message(taken["id"], "sent", "dead", sent_at="x")
    assert store.mark_message(taken["id"], "sent", "w2", sent_at="x")
    # requeued after a failure, m2 is free for anyone; sent, m1 keeps who sent it
    assert store.mark_message(two["id"], "queued", "w2", last_error="421")
    again = store.claim_message("w3", 60, "9999", chat=False)
    assert again is not None and again["key"] == "m2"
    assert store.mark_message(one["id"], "sent", "w1", sent_at="x")
    sent = {r["key"]: r for r in store.messages_in_state("sent")}
    assert sent["m1"]["claimed_by"] == "w1" and sent["m1"]["claimed_until"] is None


def test_an_outbox_claim_skips_a_row_another_sender_has_locked(
    postgres_url: str, tmp_path: Path
) -> None:
    import psycopg

    with Store(tmp_path, database=StoreConfig(postgres_url)) as store:
        with store.transaction():
            store.insert_messages([_message("m1"), _message("m2")])
        with psycopg.connect(postgres_url) as other:  # a sender in the middle of its claim
            other.execute("SELECT * FROM outbox WHERE key = 'm1' FOR UPDATE")
            row = store.claim_message("w2", 60, "9999", chat=False)
            assert row is not None and row["key"] == "m2"  # passed over at once, not waited for

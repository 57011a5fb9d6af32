"""`tostrack store migrate` and `tostrack store check`, through the real CLI, on real SQLite
files and a real PostgreSQL (tests/postgres_cluster.py; those cases skip, saying why, when no
cluster can be started here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import TERMS_V1, TERMS_V2, source_config, write_config
from postgres_cluster import free_port
from pytest_httpserver import HTTPServer

from tostrack.cli import cli
from tostrack.config import StoreConfig
from tostrack.models import Clause, Document, Failure, Snapshot
from tostrack.pipeline import compare_clauses
from tostrack.store import OutgoingMessage, Store
from tostrack.store.transfer import compare_records

OLD = (
    Clause("c-1", "1 Use", ("1 Use",), "You may use the service for lawful purposes."),
    Clause("c-2", "2 Law", ("2 Law",), "The laws of England govern these terms."),
)
NEW = (
    OLD[0],
    Clause("c-2", "2 Law", ("2 Law",), "The laws of Ireland govern these terms."),
    Clause("c-3", "3 Output", ("3 Output",), "You may not use output to build rival models."),
)


def _snapshot(at: str, body: bytes, source_id: str = "acme/terms") -> Snapshot:
    return Snapshot(source_id, "https://acme.test/terms", at, 200, "text/html", body)


def fill(store: Store, source_id: str = "acme/terms") -> None:
    """Two versions and their diff, a failure, a queued message with bytes that are not text."""
    first, _ = store.save_version(
        [_snapshot("2026-05-01T08:00:00Z", b"<p>one</p>", source_id)],
        Document((), title="Acme Terms"),
        OLD,
        title="Acme Terms",
        url="https://acme.test/terms",
    )
    store.save_version(
        [_snapshot("2026-06-09T08:00:00Z", b"<p>two \xff\xfe</p>", source_id)],
        Document((), title="Acme Terms", effective_date="2026-06-09"),
        NEW,
        title="Acme Terms",
        diff=compare_clauses(OLD, NEW),
        previous=first,
    )
    store.record_failure(Failure(source_id, "2026-06-10T08:00:00Z", "timeout", "50% lost?"))
    (diff_id,) = store.unnotified_diff_ids()
    message = OutgoingMessage(
        "change:1", "change", "legal@example.com", "x", "<1@t>", b"Subject: x\r\n\r\n\x00\xff"
    )
    store.record_diff_messages(diff_id, [message], [(diff_id, "legal@example.com", "daily", "r")])


def tostrack(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--workspace", str(root), *args])


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_config(root, '[[recipients]]\nemail = "legal@example.com"\n')
    with Store(root) as store:
        fill(store)
    return root


# -- store migrate --------------------------------------------------------------------------


def test_migrate_copies_every_table_and_reports_the_same_tallies(
    workspace: Path, postgres_url: str
) -> None:
    result = tostrack(workspace, "store", "migrate", "--to", postgres_url)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split() for line in result.output.splitlines() if line}
    for table, rows in (("versions", "2"), ("diffs", "1"), ("failures", "1"), ("outbox", "1")):
        _, source_rows, source_sum, target_rows, target_sum = lines[table]
        assert (source_rows, source_sum) == (rows, target_sum) and target_rows == rows
    assert "leases" not in lines  # who holds what is not copied
    assert "All 10 tables agree" in result.output

    shared = StoreConfig(postgres_url)
    with Store(workspace) as embedded, Store(workspace, database=shared) as copy:
        assert all(t.agrees for t in compare_records(embedded, copy))
        (diff,) = copy.diffs()
        assert diff.changes == embedded.diffs()[0].changes
        (row,) = copy.due_messages("9999")
        assert bytes(row["message"]) == b"Subject: x\r\n\r\n\x00\xff"
        # the ids were copied as they were: the next row gets a new one, never a taken one
        version, _ = copy.save_version(
            [_snapshot("2026-07-01T08:00:00Z", b"<p>three</p>")],
            Document((), title="Acme Terms"),
            NEW,
            previous=copy.current_version("acme/terms"),
        )
        assert version.id == 3
        # and a difference, however small, shows in the tallies
        copy.db.execute("UPDATE failures SET detail = 'changed'")
        differing = {t.table for t in compare_records(embedded, copy) if not t.agrees}
        assert differing == {"failures", "versions", "sources"}


def test_migrate_refuses_a_target_with_records_unless_replace(
    workspace: Path, postgres_url: str, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    with Store(other, database=StoreConfig(postgres_url)) as store:
        fill(store, "nimbus/terms")
    refused = tostrack(workspace, "store", "migrate", "--to", postgres_url)
    assert refused.exit_code == 2
    assert "already holds records (" in refused.output and "--replace" in refused.output
    assert "Traceback" not in refused.output
    with Store(other, database=StoreConfig(postgres_url)) as store:
        assert store.tracked_source_ids() == ["nimbus/terms"]  # untouched

    replaced = tostrack(workspace, "store", "migrate", "--to", postgres_url, "--replace")
    assert replaced.exit_code == 0, replaced.output
    assert "after deleting the" in replaced.output
    with Store(other, database=StoreConfig(postgres_url)) as store:
        assert store.tracked_source_ids() == ["acme/terms"]


def test_a_killed_migration_leaves_the_target_empty_and_runs_again(
    workspace: Path, postgres_url: str
) -> None:
    command = [sys.executable, "-m", "tostrack", "-w", str(workspace), "store", "migrate"]
    env = {**os.environ, "TOSTRACK_CRASH_AT": "before-copy-commit"}
    killed = subprocess.run(
        [*command, "--to", postgres_url], env=env, capture_output=True, text=True, timeout=60
    )
    assert killed.returncode == -9
    with Store(workspace, database=StoreConfig(postgres_url)) as store:
        assert not store.has_versions() and store.all_source_states() == []
    again = tostrack(workspace, "store", "migrate", "--to", postgres_url)
    assert again.exit_code == 0, again.output


def test_migrate_without_a_database_a_target_or_a_server_says_so(
    workspace: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    write_config(empty, "")
    down = f"postgresql://tostrack@127.0.0.1:{free_port()}/tostrack"
    for root, args, message in (
        (empty, ["--to", down], "has no SQLite database to copy"),
        (workspace, [], "no PostgreSQL to copy into: give --to"),
        (workspace, ["--to", "mysql://db/x"], "use a PostgreSQL URL"),
        (workspace, ["--to", "postgresql://u:hunter2@db/x"], "password"),
    ):
        result = tostrack(root, "store", "migrate", *args)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert "hunter2" not in result.output
    assert not (empty / "tostrack.db").exists()  # nothing made where nothing was


def test_migrate_to_a_server_that_is_down(workspace: Path) -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    down = f"postgresql://tostrack@127.0.0.1:{free_port()}/tostrack"
    result = tostrack(workspace, "store", "migrate", "--to", down)
    assert result.exit_code == 2
    assert "cannot connect to the database postgresql://127.0.0.1:" in result.output


# -- store check, on both backends ------------------------------------------------------------

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """ "" for the embedded SQLite; a [store] url naming a fresh PostgreSQL schema."""
    return request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""


def _workspace(root: Path, url: str, evidence: str = "") -> Path:
    table = f'[store]\nurl = "{url}"\n' if url else ""
    if evidence:
        table = (table or "[store]\n") + f'evidence = "{evidence}"\n'
    write_config(root, table + '[[recipients]]\nemail = "legal@example.com"\n')
    return root


def _open(root: Path) -> Store:
    from tostrack.workspace import Workspace

    return Workspace.open(root).open_store()


def test_check_finds_missing_corrupt_and_unreferenced_files(tmp_path: Path, backend: str) -> None:
    root = _workspace(tmp_path / "ws", backend)
    with _open(root) as store:
        fill(store)
        first, second = store.versions("acme/terms")
        # raw bytes that extract to the stored version: evidence too, never "unreferenced"
        store.save_snapshot_only([_snapshot("2026-06-10T08:00:00Z", b"<p>two, again</p>")], second)
    clean = tostrack(root, "store", "check")
    assert clean.exit_code == 0, clean.output
    assert "2 version(s) of 1 source(s)" in clean.output and "3 raw file(s)" in clean.output
    assert "OK: the database and the evidence agree" in clean.output

    (gone,) = first.raw_files()
    gone.unlink()
    (damaged,) = second.raw_files()
    damaged.chmod(0o600)
    damaged.write_bytes(b"<p>two, edited</p>")
    stray = root / "snapshots" / "acme" / "terms" / "notes.txt"
    stray.write_text("not evidence")
    result = tostrack(root, "store", "check")
    assert result.exit_code == 1, result.output
    lines = [line.split()[:2] for line in result.output.splitlines()[1:-1]]
    evidence = root / "snapshots"
    assert lines == [
        ["missing", gone.relative_to(evidence).as_posix()],
        ["corrupt", damaged.relative_to(evidence).as_posix()],
        ["unreferenced", "acme/terms/notes.txt"],
    ]
    assert f"version {first.id} of acme/terms, 2026-05-01T08:00:00Z" in result.output
    assert "1 corrupt, 1 missing, 1 unreferenced" in result.output


def test_check_lists_a_capture_no_version_records_and_a_mismatched_index(
    tmp_path: Path, backend: str
) -> None:
    root = _workspace(tmp_path / "ws", backend)
    with _open(root) as store:
        fill(store)
        version = store.current_version("acme/terms")
        assert version is not None
        store.db.execute("UPDATE versions SET snapshot_sha256 = 'f00d' WHERE id = ?", (version.id,))
        orphan = store.relative(version.path).removeprefix("snapshots/") + ".2"
    shutil.copytree(version.path, root / "snapshots" / orphan)
    result = tostrack(root, "store", "check")
    assert result.exit_code == 1
    assert f"unreferenced {orphan}  (a capture no version records)" in result.output
    assert "mismatch" in result.output and "not the ones the database recorded" in result.output


def test_check_reads_captures_of_the_old_layout(tmp_path: Path) -> None:
    root = tmp_path / "old"
    shutil.copytree(Path(__file__).parent / "data" / "workspace-v2", root)
    result = tostrack(root, "store", "check")
    assert result.exit_code == 0, result.output
    assert "4 version(s) of 2 source(s)" in result.output and "4 raw file(s)" in result.output
    (raw,) = root.glob("snapshots/nimbus/terms-of-use/*54Z/raw-0.html")
    raw.unlink()
    assert tostrack(root, "store", "check").exit_code == 1


def test_check_says_what_is_missing_without_a_traceback(tmp_path: Path) -> None:
    nothing = _workspace(tmp_path / "nothing", "")
    result = tostrack(nothing, "store", "check")
    assert result.exit_code == 2 and "nothing is recorded here to check" in result.output

    root = _workspace(tmp_path / "ws", "")
    with _open(root) as store:
        fill(store)
    (root / "tostrack.db").unlink()
    result = tostrack(root, "store", "check")
    assert result.exit_code == 2 and "`tostrack rebuild` recreates it from the 2" in result.output

    shared = _workspace(tmp_path / "shared", "", evidence=str(tmp_path / "unmounted"))
    result = tostrack(shared, "store", "check")
    assert result.exit_code == 2 and "nothing is recorded" in result.output
    with Store(shared) as store:  # records whose evidence folder is not there
        fill(store)
    for args in (["store", "check"], ["run", "--force"]):
        result = tostrack(shared, *args)
        assert result.exit_code == 2, result.output
        assert "unmounted" in result.output and "does not exist" in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "unmounted").exists()  # never made in place of the share


# -- the evidence folder: raw bodies stored once ---------------------------------------------


def _objects(evidence: Path) -> list[Path]:
    return sorted((evidence / "sha256").glob("*/*"))


def test_the_same_bytes_twice_in_time_are_stored_once(tmp_path: Path, backend: str) -> None:
    root = _workspace(tmp_path / "ws", backend)
    with _open(root) as store:
        fill(store)  # bodies one, then two
        back, _ = store.save_version(
            [_snapshot("2026-07-01T08:00:00Z", b"<p>one</p>")],
            Document((), title="Acme Terms"),
            OLD,
            diff=compare_clauses(NEW, OLD),
            previous=store.current_version("acme/terms"),
        )
        first = store.versions("acme/terms")[0]
        assert back.raw_files() == first.raw_files()
        assert back.snapshots()[0].body == b"<p>one</p>"
    assert len(_objects(root / "snapshots")) == 2
    assert tostrack(root, "store", "check").exit_code == 0


def test_workers_sharing_an_evidence_folder_store_each_body_once(
    tmp_path: Path, postgres_url: str
) -> None:
    evidence = tmp_path / "shared-evidence"
    evidence.mkdir()
    one = _workspace(tmp_path / "machine-1", postgres_url, evidence=str(evidence))
    two = _workspace(tmp_path / "machine-2", postgres_url, evidence=str(evidence))
    with _open(one) as store:
        fill(store, "acme/terms")
    with _open(two) as store:
        fill(store, "acme/terms-mirror")  # a second document serving the same bytes
        mirrored = store.current_version("acme/terms-mirror")
        assert mirrored is not None and mirrored.path.is_relative_to(evidence)
    assert len(_objects(evidence)) == 2
    assert not (one / "snapshots").exists() and not (two / "snapshots").exists()
    for root in (one, two):
        result = tostrack(root, "store", "check")
        assert result.exit_code == 0, result.output
        assert "4 version(s) of 2 source(s)" in result.output


def test_storing_one_body_at_once_from_many_writers_leaves_one_whole_file(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tostrack.store.evidence import store_object

    body = os.urandom(1 << 20)
    sha = Snapshot("a/b", "u", "t", 200, "text/html", body).sha256
    with ThreadPoolExecutor(8) as pool:
        names = set(pool.map(lambda _: store_object(tmp_path, body, sha, "html"), range(16)))
    (name,) = names
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()] == [
        name
    ]
    assert (tmp_path / name).read_bytes() == body
    # a damaged copy is written again by the next writer, never trusted
    (tmp_path / name).chmod(0o600)
    (tmp_path / name).write_bytes(b"damaged")
    assert store_object(tmp_path, body, sha, "html") == name
    assert (tmp_path / name).read_bytes() == body


def test_an_existing_workspace_moved_to_a_shared_evidence_folder_keeps_its_history(
    tmp_path: Path,
) -> None:
    root = _workspace(tmp_path / "ws", "")
    with _open(root) as store:
        fill(store)
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    _workspace(root, "", evidence=str(evidence))
    with _open(root) as store:
        old = store.current_version("acme/terms")
        assert old is not None and old.path.is_relative_to(root / "snapshots")
        assert old.snapshots()[0].body == b"<p>two \xff\xfe</p>"
        new, _ = store.save_version(
            [_snapshot("2026-07-01T08:00:00Z", b"<p>one</p>")],
            Document((), title="Acme Terms"),
            OLD,
            diff=compare_clauses(NEW, OLD),
            previous=old,
        )
        assert new.path.is_relative_to(evidence) and new.snapshots()[0].body == b"<p>one</p>"
    assert tostrack(root, "store", "check").exit_code == 0


def test_migrate_copies_the_evidence_into_the_shared_folder_for_every_worker(
    tmp_path: Path, postgres_url: str
) -> None:
    root = tmp_path / "old"
    shutil.copytree(Path(__file__).parent / "data" / "workspace-v2", root)
    with Store(root) as store:  # captures of both layouts: raw-0.html beside, and objects
        previous = store.current_version("nimbus/terms-of-use")
        store.save_version(
            [_snapshot("2026-12-02T08:00:00Z", b"<p>three</p>", "nimbus/terms-of-use")],
            Document((), title="Nimbus"),
            OLD,
            previous=previous,
        )
    shared = tmp_path / "evidence"
    shared.mkdir()
    config = f'[store]\nurl = "{postgres_url}"\nevidence = "{shared}"\n'
    (root / "tostrack.toml").write_text(config + (root / "tostrack.toml").read_text())
    result = tostrack(root, "store", "migrate")
    assert result.exit_code == 0, result.output
    assert "5 capture(s) and 1 raw file(s) copied, 0 already there" in result.output

    other = _workspace(tmp_path / "machine-2", postgres_url, evidence=str(shared))
    checked = tostrack(other, "store", "check")
    assert checked.exit_code == 0, checked.output
    assert "5 version(s) of 2 source(s)" in checked.output
    with _open(other) as store:
        versions = store.versions("nimbus/terms-of-use")
        assert [v.snapshots()[0].body[:9] for v in versions][-1] == b"<p>three<"
        assert all(v.path.is_relative_to(shared) for v in versions)

    # an interrupted copy is finished by running again; what is there is kept
    (shared / "corvid").rename(tmp_path / "taken-away")
    again = tostrack(root, "store", "migrate", "--replace")
    assert again.exit_code == 0, again.output
    assert "2 capture(s) and 0 raw file(s) copied, 4 already there" in again.output
    assert tostrack(other, "store", "check").exit_code == 0


def test_runs_record_into_a_shared_evidence_folder_and_reports_link_there(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    import re

    from tostrack.pipeline import run
    from tostrack.workspace import Workspace

    evidence = tmp_path / "evidence"
    evidence.mkdir()
    root = tmp_path / "ws"
    url = httpserver.url_for("/terms")
    write_config(root, '[store]\nevidence = "../evidence"\n' + source_config(url))
    for body in (TERMS_V1, TERMS_V2):
        httpserver.clear()
        httpserver.expect_request("/terms").respond_with_data(body, content_type="text/html")
        run(Workspace.open(root), force=True, send=False)
    assert not (root / "snapshots").exists()
    assert len(_objects(evidence)) == 2
    checked = tostrack(root, "store", "check")
    assert checked.exit_code == 0, checked.output
    assert f"2 version(s) of 1 source(s) in {root / 'tostrack.db'}" in checked.output
    assert f"hashed in {evidence}\n" in checked.output
    (page,) = (root / "reports" / "documents").rglob("*.html")
    linked = r'href="([^"]*sha256/[0-9a-f]{2}/[0-9a-f]{64}\.html)"'
    hrefs = set(re.findall(linked, page.read_text()))
    assert {(page.parent / h).resolve() for h in hrefs} == {p.resolve() for p in _objects(evidence)}


def test_a_copy_that_differs_from_its_source_is_rolled_back_and_exits_1(
    workspace: Path, postgres_url: str
) -> None:
    # A hand-edited tostrack.db: text where the message bytes go. SQLite keeps it as text;
    # PostgreSQL's bytea takes it as bytes, so the copy is not the same record.
    with Store(workspace) as store:
        store.db.execute("UPDATE outbox SET message = 'Subject: typed by hand'")
    result = tostrack(workspace, "store", "migrate", "--to", postgres_url)
    assert result.exit_code == 1, result.output
    (outbox,) = [line for line in result.output.splitlines() if line.startswith("outbox")]
    assert outbox.endswith("DIFFERS")
    assert "rolled back and the target is as it was" in result.output
    with Store(workspace, database=StoreConfig(postgres_url)) as store:
        assert not store.has_versions() and store.queued_count() == 0

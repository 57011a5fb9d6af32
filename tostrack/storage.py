"""`tostrack store ...`: moving a workspace's records to a shared PostgreSQL, and checking that
the database and the evidence folder agree. The work is the store's (tostrack.store.transfer,
tostrack.store.evidence); this module picks the workspace's database, target and lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from tostrack.config import StoreConfig, check_database_url, database_url_shown
from tostrack.errors import ConfigError, StorageError
from tostrack.lock import workspace_lock
from tostrack.store import Store, capture_folders
from tostrack.store.evidence import EvidenceCopy, EvidenceReport, check, copy_evidence
from tostrack.store.transfer import CopyReport, copy_records, refuse_held
from tostrack.workspace import Workspace


def migration_target(ws: Workspace, to: str | None) -> StoreConfig:
    """The PostgreSQL to copy into: --to, else [store] url (password from [store] password_env
    either way, or libpq's service file and ~/.pgpass)."""
    configured = ws.config.store
    if to is None:
        if configured is None:
            raise ConfigError(
                "no PostgreSQL to copy into: give --to postgresql://user@host/database, or set "
                f"[store] url in {ws.config_path}"
            )
        return configured
    try:
        url = check_database_url(to)
    except ValueError as exc:
        raise ConfigError(
            f"--to {database_url_shown(to)}: {str(exc) or 'not a PostgreSQL URL'}"
        ) from None
    return StoreConfig(url, configured.password_env if configured else "")


@dataclass(frozen=True)
class Migration:
    records: CopyReport
    evidence: EvidenceCopy | None  # None: the evidence folder is the workspace's own snapshots/


def migrate_to_postgres(ws: Workspace, to: str | None, *, replace: bool = False) -> Migration:
    """Copy the workspace's tostrack.db into PostgreSQL (see tostrack.store.transfer), and its
    snapshots/ into [store] evidence when that names another folder.

    The workspace lock is held throughout, so no run records anything while the copy is made;
    the SQLite file and snapshots/ are left as they were (beyond the database's own schema
    upgrade). The evidence is copied first: a worker never reads a version whose capture has
    not arrived."""
    target = migration_target(ws, to)
    if not ws.db_path.is_file():
        raise StorageError(
            f"{ws.db_path} does not exist: this workspace has no SQLite database to copy "
            "(--workspace names another one)"
        )
    own = ws.root / "snapshots"
    moving = ws.snapshots_dir.resolve() != own.resolve() and own.is_dir()
    if ws.shared_evidence:
        ws.check_evidence_folder()
    with (
        workspace_lock(ws.lock_path),
        Store(ws.root, evidence=ws.snapshots_dir) as source,
        Store(ws.root, database=target, evidence=ws.snapshots_dir) as shared,
    ):
        refuse_held(source, shared, replace=replace)
        evidence = copy_evidence(own, ws.snapshots_dir) if moving else None
        return Migration(copy_records(source, shared, replace=replace), evidence)


def check_workspace(ws: Workspace) -> EvidenceReport:
    """Whether the workspace's database and its evidence folder agree (see
    tostrack.store.evidence.check); reads only."""
    if not ws.has_records:
        found = len(capture_folders(ws.snapshots_dir))
        fix = (
            f"; `tostrack rebuild` recreates it from the {found} capture(s) in {ws.snapshots_dir}"
            if found
            else ""
        )
        raise StorageError(f"{ws.db_path} does not exist: nothing is recorded here to check{fix}")
    if ws.shared_evidence:
        ws.check_evidence_folder()  # even with nothing recorded yet: the share is not there
    with ws.open_store(read_only=True) as store:
        return check(store)

"""A workspace is a folder: tostrack.toml, snapshots/, tostrack.db, reports/, outbox/.

This module knows where things are and reads the settings; it does no tracking itself.
The settings are tostrack.config.Config (workspace.config), checked when the workspace is opened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tostrack.config import CONFIG_NAME, Config, Settings, load_settings
from tostrack.errors import ConfigError, StorageError

if TYPE_CHECKING:
    from tostrack.store import Store

__all__ = ["CONFIG_NAME", "ENV_WORKSPACE", "Settings", "Workspace", "load_settings"]

ENV_WORKSPACE = "TOSTRACK_WORKSPACE"


@dataclass(frozen=True)
class Workspace:
    root: Path
    settings: Settings
    reports_root: Path | None = None  # `report --output DIR`; default <root>/reports

    @classmethod
    def open(cls, root: str | os.PathLike[str] | None = None, *, check: bool = True) -> Workspace:
        """Open the workspace at root, $TOSTRACK_WORKSPACE, or the current folder.

        tostrack.toml is read and checked completely here (every table, key and value, and the
        sources and names it refers to): a mistake is a ConfigError before anything runs.
        check=False skips reading it (for `tostrack init`, which may overwrite a broken file).
        """
        chosen = root or os.environ.get(ENV_WORKSPACE) or "."
        path = Path(chosen).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise ConfigError(f"workspace {path} is a file, not a folder")
        if not check:
            return cls(path, Settings())
        settings = load_settings(path / CONFIG_NAME)
        check_settings(settings)
        return cls(path, settings)

    @property
    def config(self) -> Config:
        """The checked tostrack.toml (tostrack.config.Config)."""
        return self.settings.config

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def has_config(self) -> bool:
        return self.config_path.exists()

    @property
    def snapshots_dir(self) -> Path:
        """The evidence folder: capture folders and raw bodies. [store] evidence (a folder every
        worker sees, relative to the workspace if not absolute), else <workspace>/snapshots."""
        if self.config.evidence:
            return Path(os.path.normpath(self.root / Path(self.config.evidence).expanduser()))
        return self.root / "snapshots"

    @property
    def shared_evidence(self) -> bool:
        """[store] evidence names the folder: it is made by whoever sets up the shared mount."""
        return bool(self.config.evidence)

    @property
    def db_path(self) -> Path:
        return self.root / "tostrack.db"

    @property
    def shared_database(self) -> bool:
        """[store] names a PostgreSQL: the records are not in this folder's tostrack.db."""
        return self.config.store is not None

    @property
    def has_records(self) -> bool:
        """Something may have been recorded (a shared database always may)."""
        return self.shared_database or self.db_path.exists()

    def open_store(self, *, read_only: bool = False) -> Store:
        """The workspace's store: [store]'s PostgreSQL, else the embedded tostrack.db."""
        from tostrack.store import Store  # here: commands that never record start faster

        if self.shared_evidence and not read_only:
            self.check_evidence_folder()
        return Store(
            self.root,
            read_only=read_only,
            database=self.config.store,
            evidence=self.snapshots_dir,
        )

    def check_evidence_folder(self) -> None:
        """A StorageError when [store] evidence names no folder: an unmounted share must not be
        silently replaced by an empty local folder that other workers never see."""
        if not self.snapshots_dir.is_dir():
            raise StorageError(
                f"the evidence folder {self.snapshots_dir} ([store] evidence in "
                f"{self.config_path}) does not exist or is not a folder: mount the shared folder "
                "there, or create it (mkdir) if this is its first use"
            )

    @property
    def reports_dir(self) -> Path:
        return self.reports_root or self.root / "reports"

    @property
    def outbox_dir(self) -> Path:
        return self.root / "outbox"

    @property
    def preview_dir(self) -> Path:
        """Where `tostrack notify --dry-run` writes previews (never outbox/: nothing is sent)."""
        return self.root / "preview"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def lock_path(self) -> Path:
        return self.root / ".tostrack.lock"

    def ensure(self) -> None:
        """Create the workspace folders; StorageError saying what to fix when that fails."""
        if self.shared_evidence:
            self.check_evidence_folder()
        for folder in (self.root, self.snapshots_dir):
            if folder.exists() and not folder.is_dir():
                raise StorageError(
                    f"{folder} is a file; tostrack needs a folder there. Move the file away."
                )
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"cannot create {folder}: {exc.strerror}. Make the workspace writable by this "
                    "user, or point --workspace elsewhere."
                ) from None


def check_settings(settings: Settings) -> None:
    """Check what tostrack.toml refers to: [registry] and [[sources]] against the bundled
    registry, and the providers and sources that recipients name."""
    from tostrack.sources import load_sources, registry

    watched = load_sources(settings)
    settings.config.check_references((*registry(), *watched))

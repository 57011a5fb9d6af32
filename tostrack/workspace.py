"""A workspace is a folder: tostrack.toml, snapshots/, tostrack.db, reports/, outbox/.

This module knows where things are and reads the settings; it does no tracking itself.
Each stage reads its own table of the settings (settings.section("fetch"), ...).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tostrack.errors import ConfigError

CONFIG_NAME = "tostrack.toml"
ENV_WORKSPACE = "TOSTRACK_WORKSPACE"


@dataclass(frozen=True)
class Settings:
    """The parsed tostrack.toml (empty when the workspace has none)."""

    data: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def section(self, name: str) -> dict[str, Any]:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.where}: [{name}] must be a table, not {type(value).__name__}")
        return value

    def tables(self, name: str) -> list[dict[str, Any]]:
        """An array of tables such as [[sources]] or [[recipients]]."""
        value = self.data.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ConfigError(f"{self.where}: use [[{name}]] tables for '{name}'")
        return value

    @property
    def where(self) -> str:
        return str(self.path) if self.path else CONFIG_NAME


def load_settings(path: Path) -> Settings:
    if not path.exists():
        return Settings()
    try:
        with path.open("rb") as fh:
            return Settings(tomllib.load(fh), path)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}. Fix the line it names.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text.") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


@dataclass(frozen=True)
class Workspace:
    root: Path
    settings: Settings

    @classmethod
    def open(cls, root: str | os.PathLike[str] | None = None) -> Workspace:
        """Open the workspace at root, $TOSTRACK_WORKSPACE, or the current folder."""
        chosen = root or os.environ.get(ENV_WORKSPACE) or "."
        path = Path(chosen).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise ConfigError(f"workspace {path} is a file, not a folder")
        return cls(path, load_settings(path / CONFIG_NAME))

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def has_config(self) -> bool:
        return self.config_path.exists()

    @property
    def snapshots_dir(self) -> Path:
        return self.root / "snapshots"

    @property
    def db_path(self) -> Path:
        return self.root / "tostrack.db"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def outbox_dir(self) -> Path:
        return self.root / "outbox"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def lock_path(self) -> Path:
        return self.root / ".tostrack.lock"

    def ensure(self) -> None:
        for folder in (self.root, self.snapshots_dir):
            folder.mkdir(parents=True, exist_ok=True)

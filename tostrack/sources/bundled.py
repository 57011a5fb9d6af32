"""The bundled registry: AI providers' documents that tostrack knows how to watch.

The registry is data (tostrack/sources/registry/<provider>.toml, one [[documents]] table per
document) read with the same rules as a workspace's [[sources]] tables, so a registry entry and
a declaration mean the same thing.
"""

from __future__ import annotations

import tomllib
from dataclasses import replace
from importlib import resources
from typing import Any

from tostrack import config as schema
from tostrack.errors import ConfigError
from tostrack.models import Source

_source_from_table = schema.source_from_table


def registry() -> tuple[Source, ...]:
    """Every bundled document, ordered by provider file then by position in the file."""
    sources: list[Source] = []
    seen: dict[str, str] = {}
    for item in sorted(_registry_files(), key=lambda t: t.name):
        where = f"bundled registry {item.name}"
        try:
            data = tomllib.loads(item.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where} is not valid TOML: {exc}") from None
        provider = data.get("provider")
        if not isinstance(provider, str) or not provider:
            raise ConfigError(f'{where}: needs provider = "<slug>"')
        documents = data.get("documents", [])
        if not isinstance(documents, list) or not documents:
            raise ConfigError(f"{where}: needs [[documents]] tables")
        for n, table in enumerate(documents, 1):
            entry = f"{where}: [[documents]] #{n}"
            source = _source_from_table(table, entry)
            if source.provider != provider:
                raise ConfigError(f"{entry}: id '{source.id}' must start with '{provider}/'")
            if source.id in seen:
                raise ConfigError(f"{entry}: id '{source.id}' is already used in {seen[source.id]}")
            seen[source.id] = item.name
            extra = {"provider_name": str(data.get("name", provider)), "origin": "registry"}
            sources.append(replace(source, extra={**source.extra, **extra}))
    return tuple(sources)


def registry_providers() -> dict[str, str]:
    """Provider slug -> display name, in registry order."""
    return {s.provider: s.extra.get("provider_name", s.provider) for s in registry()}


def _registry_files() -> list[Any]:
    folder = resources.files("tostrack.sources") / "registry"
    return [item for item in folder.iterdir() if item.name.endswith(".toml")]

"""What a workspace watches: the bundled registry combined with tostrack.toml's [registry] and
[[sources]] tables.

`load_sources` combines them:

- no [registry] and no [[sources]]: the whole registry;
- [registry] include / exclude: providers ("openai") or ids ("anthropic/usage-policy"), or "all";
- [[sources]]: the workspace's own documents. One whose id is a registry id and that gives no
  url enables that entry, with any other keys as overrides. With [[sources]] but no [registry],
  only the declared sources are watched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from tostrack import config as schema
from tostrack.config import Config, Settings
from tostrack.errors import ConfigError, InputError
from tostrack.models import Source
from tostrack.sources.bundled import registry

DOCUMENT_TYPES = ("terms-of-service", "usage-policy", "business-terms", "privacy-policy", "licence")

# Keys a [[sources]] table (or a registry [[documents]] table) may have: tostrack.config.SCHEMA.
SOURCE_KEYS = tuple(schema.SCHEMA["sources"])
URL_KEYS = ("url", "urls", "combine")
REGISTRY_KEYS = tuple(schema.SCHEMA["registry"])

MIN_INTERVAL = schema.MIN_INTERVAL  # seconds; more often is impolite to a provider's server


# -- a workspace's sources ------------------------------------------------------------------


def load_sources(settings: Settings | Config) -> tuple[Source, ...]:
    """The sources a workspace watches (see the module docstring for the rules)."""
    config = settings if isinstance(settings, Config) else settings.config
    bundled = registry()
    by_id = {s.id: s for s in bundled}
    tables = config.sources
    if config.registry is not None:
        chosen = _choose_from_registry(bundled, config.registry, config.where)
    elif tables:
        chosen = []
    else:
        chosen = list(bundled)

    declared: dict[str, Source] = {}
    for table in tables:
        entry = table.entry
        source = _declared_source(table.as_dict(), entry, by_id)
        if source.id in declared:
            raise ConfigError(f"{entry}: id '{source.id}' is declared twice; ids must be unique")
        declared[source.id] = source

    # A declaration replaces the registry entry of the same id, in the registry's place.
    result = [declared.pop(s.id, s) for s in chosen]
    result.extend(declared.values())
    return tuple(result)


def _choose_from_registry(
    bundled: Sequence[Source], table: schema.RegistryConfig, where: str
) -> list[Source]:
    include, exclude = list(table.include), list(table.exclude)
    providers = {s.provider for s in bundled}
    ids = {s.id for s in bundled}
    for name, key in [(n, "include") for n in include] + [(n, "exclude") for n in exclude]:
        if name != "all" and name not in providers and name not in ids:
            hint = _did_you_mean(name, sorted(providers | ids))
            raise ConfigError(
                f"{where}: [registry] {key} names '{name}', which is neither a bundled provider "
                f"nor a document id.{hint} `tostrack sources list` shows them all."
            )

    def matches(source: Source, names: list[str]) -> bool:
        return "all" in names or source.provider in names or source.id in names

    return [s for s in bundled if matches(s, include) and not matches(s, exclude)]


def _declared_source(table: dict[str, Any], entry: str, by_id: dict[str, Source]) -> Source:
    source_id = table.get("id")
    if isinstance(source_id, str) and source_id in by_id and not any(k in table for k in URL_KEYS):
        _check_keys(table, SOURCE_KEYS, entry)
        base = by_id[source_id]
        # Overrides: parse the table as if it had the registry's URLs, keep only what it names.
        parsed = _source_from_table({**table, "urls": list(base.urls)}, entry)
        overrides = {
            field: getattr(parsed, field)
            for key, field in _FIELD_FOR_KEY.items()
            if key in table and key != "id"
        }
        extra = {**base.extra, **parsed.extra, "origin": "registry+workspace"}
        return replace(base, **overrides, extra=extra)
    if (
        isinstance(source_id, str)
        and not schema.source_id_problem(source_id)
        and not any(k in table for k in URL_KEYS)
    ):
        hint = _did_you_mean(source_id, list(by_id))
        raise ConfigError(
            f'{entry}: has no url. Give url = "https://..." (or urls = [...] for a document on '
            f"several pages), or the id of a bundled document to enable it.{hint}"
        )
    source = _source_from_table(table, entry)
    return replace(source, extra={**source.extra, "origin": "workspace"})


_FIELD_FOR_KEY = {
    "id": "id",
    "title": "title",
    "provider": "provider",
    "document_type": "document_type",
    "language": "language",
    "select": "select",
    "remove": "remove",
    "interval": "interval",
    "headers": "headers",
    "browser": "browser",
}


_source_from_table = schema.source_from_table
parse_interval = schema.parse_interval
_check_keys = schema.check_keys


_type = schema.type_name
_slug = schema.slug
_did_you_mean = schema.did_you_mean


# -- looking up and showing ----------------------------------------------------------------


def find_source(sources: Sequence[Source], source_id: str) -> Source:
    """The source with this id, or InputError naming the closest ids."""
    for source in sources:
        if source.id == source_id:
            return source
    same_provider = [s.id for s in sources if s.provider == source_id]
    if same_provider:
        hint = f" '{source_id}' is a provider; its documents: {', '.join(same_provider)}."
    else:
        hint = _did_you_mean(source_id, [s.id for s in sources])
    raise InputError(
        f"no source '{source_id}' in this workspace.{hint} `tostrack sources list` shows them."
    )


def source_to_json(source: Source) -> dict[str, Any]:
    """Stable JSON for `sources list/show --format json` (headers are left out: they may hold
    credentials)."""
    return {
        "id": source.id,
        "title": source.title,
        "provider": source.provider,
        "document_type": source.document_type,
        "language": source.language,
        "urls": list(source.urls),
        "select": list(source.select),
        "remove": list(source.remove),
        "browser": source.browser,
        "interval": source.interval,
    }

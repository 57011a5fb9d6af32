"""What a workspace watches: the bundled registry of AI providers' documents and tostrack.toml.

The registry is data (tostrack/registry/<provider>.toml, one [[documents]] table per document)
read with the same rules as a workspace's [[sources]] tables, so a registry entry and a
declaration mean the same thing. `load_sources` combines them:

- no [registry] and no [[sources]]: the whole registry;
- [registry] include / exclude: providers ("openai") or ids ("anthropic/usage-policy"), or "all";
- [[sources]]: the workspace's own documents. One whose id is a registry id and that gives no
  url enables that entry, with any other keys as overrides. With [[sources]] but no [registry],
  only the declared sources are watched.

`validate_source` fetches a source twice and says whether it yields the same, non-trivial text.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from tostrack import config as schema
from tostrack.config import Config, Settings
from tostrack.errors import ConfigError, InputError
from tostrack.models import Source

DOCUMENT_TYPES = ("terms-of-service", "usage-policy", "business-terms", "privacy-policy", "licence")

# Keys a [[sources]] table (or a registry [[documents]] table) may have: tostrack.config.SCHEMA.
SOURCE_KEYS = tuple(schema.SCHEMA["sources"])
URL_KEYS = ("url", "urls", "combine")
REGISTRY_KEYS = tuple(schema.SCHEMA["registry"])

MIN_INTERVAL = schema.MIN_INTERVAL  # seconds; more often is impolite to a provider's server


# -- the bundled registry -------------------------------------------------------------------


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
    folder = resources.files("tostrack") / "registry"
    return [item for item in folder.iterdir() if item.name.endswith(".toml")]


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


# -- validation -----------------------------------------------------------------------------

MIN_CHARACTERS = 500  # a document shorter than this is almost surely not the terms


@dataclass(frozen=True)
class Validation:
    """What `sources validate` found for one source. sha256 is the digest of the extracted
    clauses (as stored in a version's text_sha256), empty when nothing was extracted."""

    source_id: str
    ok: bool
    problems: tuple[str, ...] = ()
    clauses: int = 0
    characters: int = 0
    sha256: str = ""


def validate_source(
    source: Source, config: Any, session: Any = None, *, min_characters: int = MIN_CHARACTERS
) -> Validation:
    """Fetch a source twice; check both fetches extract to the same, non-trivial text.

    `config` is a FetchConfig, or a Fetcher to fetch through (`session` is then ignored)."""
    from tostrack.fetch import Fetcher
    from tostrack.fetch.health import check_document
    from tostrack.models import Failure
    from tostrack.pipeline import analyse, extract_snapshots
    from tostrack.store import text_digest

    problems: list[str] = []
    texts: list[str] = []
    clause_count = characters = 0
    digest = ""
    # A Fetcher given is the caller's to close; one made here is closed here.
    owned = nullcontext(config) if isinstance(config, Fetcher) else Fetcher(config, session=session)
    with owned as fetcher:
        for attempt in ("first", "second"):
            fetched = fetcher.fetch(source)
            if isinstance(fetched, Failure):
                detail = f": {fetched.detail[:200]}" if fetched.detail else ""
                problems.append(
                    f"{attempt} fetch failed ({fetched.reason}){detail}{_explain(fetched.reason)}"
                )
                break
            if not isinstance(fetched, tuple):  # a 304 is impossible without a previous state
                problems.append(f"{attempt} fetch returned no content")
                break
            document = extract_snapshots(fetched, source)
            clauses = analyse(document)
            if attempt == "first":
                clause_count, characters, digest = (
                    len(clauses),
                    len(document.text),
                    text_digest(clauses),
                )
                reason = check_document(fetched, document, len(clauses), None)
                if reason:
                    problems.append(
                        f"not the document ({reason}){_explain(reason)}"
                        f"{_select_hint(source, reason, characters)}"
                    )
                    break
                if characters < min_characters:
                    problems.append(
                        f"too little text: {characters} characters in {len(clauses)} clause(s), "
                        f"expected at least {min_characters}{_select_hint(source, None, characters)}"
                    )
            texts.append(document.text)
    if len(texts) == 2 and texts[0] != texts[1]:
        problems.append(
            "the two fetches extracted to different text (a page that flips between variants or "
            f"carries per-visit ids): {_first_difference(texts[0], texts[1])}"
        )
    return Validation(
        source_id=source.id,
        ok=not problems,
        problems=tuple(problems),
        clauses=clause_count,
        characters=characters,
        sha256=digest if characters else "",
    )


# What a failure reason (tostrack.fetch, tostrack.fetch.health) means for someone writing a source.
_EXPLANATIONS = {
    "timeout": "the server did not answer in time",
    "connection": "the server could not be reached; check the URL and any proxy",
    "too-large": "the response is larger than [fetch] max_bytes",
    "too-many-redirects": "the URL redirects in a loop or too often",
    "unsupported-type": "the response is not HTML, PDF, Markdown or plain text",
    "empty-body": "the server sent nothing",
    "challenge": "a bot challenge or interstitial answered instead of the page; "
    "try browser = true",
    "login-wall": "the page asks to log in",
    "error-page": "the server sent an error page",
    "selector-missed": "select matched nothing on the page",
    "empty": "almost no text was extracted",
    "browser-unavailable": "browser = true needs pip install 'tostrack[browser]' and Chromium",
    "browser-error": "Chromium could not render the page",
}


def _explain(reason: str) -> str:
    if reason in _EXPLANATIONS:
        return f"; {_EXPLANATIONS[reason]}"
    if reason.startswith("http-"):
        return f"; the server answered with status {reason[5:]}"
    return ""


def _select_hint(source: Source, reason: str | None, characters: int) -> str:
    if source.select and (reason in ("selector-missed", "empty") or characters == 0):
        return f"; check that select {list(source.select)} matches the page"
    return ""


def _first_difference(a: str, b: str) -> str:
    a_lines, b_lines = a.splitlines(), b.splitlines()
    for old, new in zip(a_lines, b_lines):
        if old != new:
            return f"{_clip(old)!r} then {_clip(new)!r}"
    if len(a_lines) != len(b_lines):
        return f"{len(a_lines)} lines then {len(b_lines)} lines"
    return "whitespace differs"


def _clip(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"

"""The one schema of tostrack.toml: a frozen dataclass per table, one loader, did-you-mean errors.

    from tostrack.config import load
    config = load(Path("tostrack.toml"))   # raises ConfigError listing every problem
    config.fetch.read_timeout, config.smtp, config.recipients[0].mode, ...

The file is read and checked completely when it is opened: an unknown table or key, a value of
the wrong type, a duration, size, mode, severity, label id, e-mail address or range that is not
allowed is a ConfigError naming the file, the key, what is allowed and the closest known name.
`SCHEMA` lists every table and key; `tostrack init`'s template and the README's reference are
tested against it. Durations and sizes have one parser each (`tostrack.clock.parse_duration`,
`parse_size`).

The [[sources]] and [registry] tables are checked here for their keys and value types and by
tostrack.sources for what they refer to (the bundled registry); `check_references` then checks
the provider, source and label names that recipients use.
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import os
import re
import shutil
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tostrack import __version__
from tostrack.clock import parse_duration
from tostrack.errors import ConfigError
from tostrack.models import SEVERITIES, SEVERITY_RANK, Source

CONFIG_NAME = "tostrack.toml"
MODES = ("immediate", "daily", "weekly")
TLS_MODES = ("none", "starttls", "ssl")
BROWSER_MODES = ("auto", "never", "always")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_FROM = "tostrack <tostrack@localhost>"
DEFAULT_USER_AGENT = (
    f"tostrack/{__version__} (terms-of-service change tracker; +https://pypi.org/project/tostrack/)"
)

# One id rule everywhere: provider/document, lower-case letters, digits, '.', '-', '_', each
# part starting with a letter or digit (so never '..', never a path separator beyond the one '/').
SOURCE_ID = re.compile(r"[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*")
PROVIDER_ID = re.compile(r"[a-z0-9][a-z0-9._-]*")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def source_id_problem(value: Any) -> str:
    """Why value is not a source id ('' when it is one). Used for tostrack.toml, the registry,
    `run --source` and `import`."""
    if not isinstance(value, str):
        return f"a source id must be a string, not {type_name(value)}"
    if SOURCE_ID.fullmatch(value):
        return ""
    if "/" not in value:
        return (
            f"'{value}' needs a provider and a document name, e.g. '{slug(value) or 'acme'}/terms'"
        )
    provider, _, document = value.partition("/")
    example = f"{slug(provider) or 'acme'}/{slug(document.replace('/', '-')) or 'terms'}"
    return (
        f"'{value.strip()}' must be provider/document in lower-case letters, digits, '.', '-' or "
        f"'_' (no spaces, no other '/'), e.g. '{example}'"
    )


def check_source_id(value: Any, where: str = "source id") -> str:
    """value if it is a source id, else ConfigError saying why."""
    problem = source_id_problem(value)
    if problem:
        raise ConfigError(f"{where}: {problem}")
    return value


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")


def type_name(value: Any) -> str:
    return {
        list: "a list",
        dict: "a table",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
    }.get(type(value), type(value).__name__)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """' Did you mean 'x'?' for the closest candidates, or ''."""
    candidates = [c for c in candidates if isinstance(c, str)]
    if not isinstance(name, str):
        return ""
    close: list[str] = []
    if "/" in name:
        # Prefer the same provider's documents: "openai/terms" -> "openai/terms-of-use".
        provider, document = name.split("/", 1)
        own = {c.split("/", 1)[1]: c for c in candidates if c.startswith(provider + "/")}
        close = [own[d] for d in difflib.get_close_matches(document, list(own), n=3, cutoff=0.6)]
    close = close or difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    if not close and "/" not in name:
        close = difflib.get_close_matches(
            name, sorted({c.split("/")[0] for c in candidates if "/" in c}), n=3, cutoff=0.6
        )
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


# -- durations and sizes ----------------------------------------------------------------------

_SIZES = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]?i?b?)")


def parse_size(value: Any) -> int:
    """Bytes from 20000000, "20MB", "512 KB", "1GB"; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a size")  # noqa: TRY004 - one error type for callers
    if isinstance(value, int):
        size = float(value)
    elif isinstance(value, float):
        size = value
    elif isinstance(value, str):
        found = _SIZE.fullmatch(value.strip().lower())
        if not found or found.group(2) not in _SIZES:
            raise ValueError(f"{value!r} is not a size")
        size = float(found.group(1)) * _SIZES[found.group(2)]
    else:
        raise ValueError(f"{type_name(value)} is not a size")  # noqa: TRY004 - one error type for callers
    if not math.isfinite(size) or size < 0:
        raise ValueError(f"{value!r} is not a size of zero or more")
    return int(size)


# -- a [[sources]] table (or a bundled registry [[documents]] table) -> Source -----------------

MIN_INTERVAL = 60  # seconds; more often than this is impolite to a provider's server
URL_KEYS = ("url", "urls", "combine")


def source_from_table(table: Any, entry: str) -> Source:
    """One [[sources]] / [[documents]] table -> Source, or ConfigError saying what is wrong."""
    if not isinstance(table, dict):
        raise ConfigError(f"{entry}: must be a table")
    check_keys(table, SOURCE_KEYS, entry)
    source_id = table.get("id")
    if source_id is None:
        raise ConfigError(f'{entry}: needs an id such as id = "acme/terms" (provider/document)')
    if not isinstance(source_id, str):
        raise ConfigError(f"{entry}: id must be a string, not {type_name(source_id)}")
    problem = source_id_problem(source_id)
    if problem:
        raise ConfigError(f"{entry}: id {problem}")

    given = [k for k in URL_KEYS if k in table]
    if not given:
        raise ConfigError(f'{entry}: needs url = "https://..." (or urls = [...] for several pages)')
    if len(given) > 1:
        raise ConfigError(f"{entry}: give only one of {', '.join(given)}")
    key = given[0]
    raw_urls = [table[key]] if key == "url" else table[key]
    if key == "url" and not isinstance(raw_urls[0], str):
        raise ConfigError(f"{entry}: url must be a string, not {type_name(raw_urls[0])}")
    if (
        not isinstance(raw_urls, list)
        or not raw_urls
        or not all(isinstance(u, str) for u in raw_urls)
    ):
        raise ConfigError(f"{entry}: {key} must be a non-empty list of URL strings")
    urls = tuple(u.strip() for u in raw_urls)
    for url in urls:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ConfigError(f"{entry}: '{url}' is not an http(s) URL")
    if len(set(urls)) != len(urls):
        raise ConfigError(f"{entry}: {key} lists the same URL twice")

    provider = _string(table, "provider", entry, source_id.split("/")[0])
    if provider != source_id.split("/")[0]:
        raise ConfigError(f"{entry}: provider '{provider}' does not match the id '{source_id}'")
    extra: dict[str, Any] = {}
    if "notes" in table:
        extra["notes"] = _string(table, "notes", entry, "")
    return Source(
        id=source_id,
        urls=urls,
        title=_string(table, "title", entry, source_id),
        provider=provider,
        document_type=_string(table, "document_type", entry, ""),
        language=_string(table, "language", entry, "en"),
        select=_selectors(table, "select", entry),
        remove=_selectors(table, "remove", entry),
        browser=_bool(table, "browser", entry),
        interval=parse_interval(table.get("interval", 86400), entry)
        if "interval" in table
        else 86400,
        headers=_headers(table, entry),
        extra=extra,
    )


def parse_interval(value: Any, entry: str = "interval") -> int:
    """Whole seconds, at least MIN_INTERVAL, from 3600, "3600", "30m", "6h", "1d", "1w" or
    "1h30m" (tostrack.clock.parse_duration)."""
    try:
        seconds = parse_duration(value)
    except ValueError:
        seconds = -1.0
    if isinstance(value, float) or seconds < 0 or seconds != int(seconds):
        raise ConfigError(
            f"{entry}: interval {value!r} is not a duration; use seconds (3600) or a string "
            'such as "30m", "6h" or "1d"'
        )
    if seconds < MIN_INTERVAL:
        raise ConfigError(
            f"{entry}: interval {value!r} is shorter than {MIN_INTERVAL} seconds; "
            'providers\' servers deserve a gentler pace, e.g. "1h"'
        )
    return int(seconds)


def check_keys(table: dict[str, Any], allowed: Sequence[str], entry: str) -> None:
    for key in table:
        if key not in allowed:
            hint = did_you_mean(key, list(allowed))
            raise ConfigError(
                f"{entry}: unknown key '{key}'.{hint} Known keys: {', '.join(allowed)}"
            )


def _string(table: dict[str, Any], key: str, entry: str, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{entry}: {key} must be a string, not {type_name(value)}")
    return value.strip()


def _bool(table: dict[str, Any], key: str, entry: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{entry}: {key} must be true or false, not {value!r}")
    return value


def _selectors(table: dict[str, Any], key: str, entry: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(
            f'{entry}: {key} must be a CSS selector or a list of them, e.g. {key} = ["main"]'
        )
    return tuple(v.strip() for v in value)


def _headers(table: dict[str, Any], entry: str) -> tuple[tuple[str, str], ...]:
    value = table.get("headers", {})
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(
            f"{entry}: headers must be a table of strings, "
            'e.g. headers = { Accept-Language = "en" }'
        )
    return tuple((k, v) for k, v in value.items())


# -- the schema -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """What one key accepts. kind: count, duration, size, text, bool, choice, email, emails,
    url, names (a string or a list of strings), labels, table (of strings), any (checked by
    tostrack.sources)."""

    kind: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False
    positive: bool = False  # durations: more than zero
    secret: bool = False  # never repeat the value in a message (a chat URL holds its token)

    def allowed(self) -> str:
        if self.kind == "count":
            if self.maximum is not None:
                return f"a whole number from {self.minimum or 0:g} to {self.maximum:g}"
            return f"a whole number, {self.minimum or 0:g} or more"
        if self.kind == "duration":
            least = "more than 0" if self.positive else f"at least {self.minimum or 0:g} s"
            return f'a duration ({least}): seconds (30) or a string such as "90s", "2m", "1h", "1d"'
        if self.kind == "size":
            return 'a size of 1 byte or more: bytes (20000000) or a string such as "20MB"'
        if self.kind == "choice":
            return "one of " + ", ".join(f'"{c}"' for c in self.choices)
        return {
            "text": "a non-empty string",
            "bool": "true or false",
            "email": 'an e-mail address, e.g. "legal@example.com"',
            "emails": 'a list of e-mail addresses, e.g. ["ops@example.com"]',
            "url": 'an http(s) address, e.g. "https://intranet.example/tostrack/"',
            "names": 'a list of strings, e.g. ["openai", "anthropic"]',
            "labels": 'a list of strings, label ids such as ["competing-models"]',
            "table": 'a table of strings, e.g. { Accept-Language = "en" }',
            "database_url": 'a PostgreSQL URL, e.g. "postgresql://tostrack@db.example/tostrack"',
            "chat_urls": 'an Apprise URL or a list of them, e.g. "json://hooks.example/tostrack"',
            "env_name": 'the name of an environment variable, e.g. "TOSTRACK_DB_PASSWORD"',
            "folder": 'a folder, e.g. "/srv/tostrack/evidence" (relative: to the workspace)',
            "env_names": "the name of an environment variable, or a list of names, e.g. "
            '"TOSTRACK_SLACK_URL"',
        }.get(self.kind, "see the README")


_SOURCE_KEYS: dict[str, Key] = {
    "id": Key("any", required=True),
    "url": Key("any"),
    "urls": Key("any"),
    "combine": Key("any"),
    "title": Key("any"),
    "provider": Key("any"),
    "document_type": Key("any"),
    "language": Key("any"),
    "select": Key("any"),
    "remove": Key("any"),
    "interval": Key("any"),
    "headers": Key("any"),
    "browser": Key("any"),
    "notes": Key("any"),
}

# Every table of tostrack.toml and every key of each. [[...]] tables are ARRAY_TABLES;
# [severity] takes label ids as keys (SEVERITY_KEY describes their values).
SCHEMA: dict[str, dict[str, Key]] = {
    "registry": {"include": Key("names", "all"), "exclude": Key("names", ())},
    "sources": _SOURCE_KEYS,
    "fetch": {
        "retries": Key("count", 2, 0, 20),
        "backoff": Key("duration", 1.0),
        "connect_timeout": Key("duration", 10.0, positive=True),
        "read_timeout": Key("duration", 30.0, positive=True),
        "total_timeout": Key("duration", 300.0, positive=True),
        "max_bytes": Key("size", 20 * 1024**2),
        "max_redirects": Key("count", 5, 0, 30),
        "delay": Key("duration", 1.0),
        "user_agent": Key("text", DEFAULT_USER_AGENT),
        "confirm_delay": Key("duration", 60.0),
        "max_retry_after": Key("duration", 120.0),
        "max_hosts": Key("count", 8, 1, 256),
        "browser": Key("choice", "auto", choices=BROWSER_MODES),
        "chromium": Key("text", ""),
    },
    "severity": {},
    "smtp": {
        "host": Key("text", required=True),
        "port": Key("count", None, 1, 65535),
        "tls": Key("choice", "starttls", choices=TLS_MODES),
        "username": Key("text", ""),
        "password_env": Key("text", ""),
        "from": Key("email", DEFAULT_FROM),
        "timeout": Key("duration", 30.0, positive=True),
        "ca_file": Key("text", ""),
    },
    "recipients": {
        "email": Key("email"),
        "url": Key("chat_urls", secret=True),
        "urls": Key("chat_urls", secret=True),
        "url_env": Key("env_names"),
        "max_length": Key("count", 0, 200, 100000),
        "providers": Key("names", ()),
        "sources": Key("names", ()),
        "labels": Key("labels", ()),
        "min_severity": Key("choice", "none", choices=SEVERITIES),
        "mode": Key("choice", "immediate", choices=MODES),
        "effective_date_changes": Key("bool", False),
    },
    "notify": {
        "operators": Key("emails", ()),
        "broken_after": Key("count", 3, 1, 1000),
        "digest_hour": Key("count", 8, 0, 23),
        "digest_weekday": Key("choice", "monday", choices=WEEKDAYS),
    },
    "store": {
        "url": Key("database_url", secret=True),
        "password_env": Key("env_name"),
        "lease": Key("duration", 600.0, minimum=1),
        "evidence": Key("folder", ""),
    },
    "report": {
        "title": Key("text", "Terms dashboard"),
        "base_url": Key("url", ""),
        "recent_changes": Key("count", 50, 1, 100000),
    },
}
ARRAY_TABLES = ("sources", "recipients")
RECIPIENT_TARGETS = ("email", "url", "urls", "url_env")
SOURCE_KEYS = tuple(_SOURCE_KEYS)
SEVERITY_KEY = Key("choice", choices=SEVERITIES)


# -- the values -------------------------------------------------------------------------------


def _default_chromium() -> str:
    return shutil.which("chromium") or "/usr/bin/chromium"


@dataclass(frozen=True)
class FetchConfig:
    """How to fetch: the [fetch] table. Durations are seconds, max_bytes is bytes."""

    retries: int = 2
    backoff: float = 1.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 300.0  # wall-clock deadline for one page, whatever the server does
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 5
    user_agent: str = DEFAULT_USER_AGENT
    delay: float = 1.0
    confirm_delay: float = 60.0
    max_retry_after: float = 120.0
    max_hosts: int = 8  # hosts fetched at once by a run (each host still one request at a time)
    browser: str = "auto"
    chromium: str = field(default_factory=_default_chromium)

    def __post_init__(self) -> None:
        if self.browser not in BROWSER_MODES:
            raise ConfigError(
                f"[fetch] browser = {self.browser!r}: use one of {', '.join(BROWSER_MODES)}"
            )

    @classmethod
    def from_settings(cls, settings: Any) -> FetchConfig:
        """The [fetch] table of a loaded file (Settings or Config)."""
        return _config_of(settings).fetch


@dataclass(frozen=True)
class SmtpConfig:
    """The [smtp] table: where mail goes. Absent: messages are written to outbox/ as .eml."""

    host: str
    port: int
    tls: str = "starttls"
    username: str = ""
    password_env: str = ""
    sender: str = DEFAULT_FROM
    timeout: float = 30.0
    ca_file: str = ""  # extra CA bundle, for a server with a private certificate

    @classmethod
    def from_settings(cls, settings: Any) -> SmtpConfig | None:
        return _config_of(settings).smtp

    def password(self) -> str:
        if not self.username:
            return ""
        if not self.password_env:
            raise ConfigError(
                "[smtp] username is set but password_env is not: name the environment variable "
                'that holds the password, e.g. password_env = "TOSTRACK_SMTP_PASSWORD"'
            )
        value = os.environ.get(self.password_env)
        if value is None:
            raise ConfigError(
                f"the SMTP password is read from ${self.password_env}, which is not set in this "
                "environment (cron starts with an almost empty one)"
            )
        return value


@dataclass(frozen=True)
class Recipient:
    """One [[recipients]] table: who (an e-mail address, Apprise URLs for chat and webhooks, or
    both), about which documents and labels, how often."""

    email: str = ""
    providers: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    min_severity: str = "none"
    mode: str = "immediate"
    effective_date_changes: bool = False  # also tell when only the announced effective date moves
    urls: tuple[str, ...] = ()  # Apprise URLs written in the file (url and urls)
    url_env: tuple[str, ...] = ()  # names of environment variables, each holding one Apprise URL
    max_length: int = 0  # characters a chat message may take; 0: what the target takes

    @property
    def chat_targets(self) -> tuple[str, ...]:
        """The Apprise targets as the outbox stores them: a URL from the file, or "env:NAME"
        (the secret URL itself is read from the environment when the message is sent)."""
        return (*self.urls, *(f"env:{name}" for name in self.url_env))

    @property
    def name(self) -> str:
        """How messages and errors name this recipient (never a URL: it may hold a token)."""
        if self.email:
            return self.email
        if self.url_env:
            return "$" + self.url_env[0]
        return self.urls[0].partition("://")[0] + "://…" if self.urls else "recipient"

    def wants_source(self, source_id: str) -> bool:
        if not self.providers and not self.sources:
            return True
        provider = source_id.partition("/")[0].lower()
        return provider in self.providers or source_id.lower() in self.sources

    def matching(self, changes: Iterable[Any]) -> tuple[Any, ...]:
        """The substantive changes this recipient asked to hear about."""
        floor = SEVERITY_RANK[self.min_severity]
        chosen = []
        for change in changes:
            if not change.substantive or SEVERITY_RANK.get(change.severity, 0) < floor:
                continue
            touched = {*change.labels, *change.labels_added, *change.labels_removed}
            if self.labels and not touched & set(self.labels):
                continue
            chosen.append(change)
        return tuple(chosen)


@dataclass(frozen=True)
class NotifyConfig:
    """The [notify] table: operators told when a source breaks, and the digest schedule."""

    operators: tuple[str, ...] = ()
    broken_after: int = 3
    digest_hour: int = 8
    digest_weekday: str = "monday"

    @property
    def weekday_index(self) -> int:
        return WEEKDAYS.index(self.digest_weekday)


@dataclass(frozen=True)
class ReportConfig:
    """The [report] table."""

    title: str = "Terms dashboard"
    base_url: str = ""  # where reports/ is published, ending in "/"; makes links absolute
    recent_changes: int = 50


POSTGRES_EXTRA = "pip install 'tostrack[postgres]'"


@dataclass(frozen=True)
class StoreConfig:
    """The [store] table: a shared PostgreSQL instead of the workspace's embedded tostrack.db.
    The password is never in the file: password_env names the environment variable holding it,
    or the URL names a libpq service (?service=...) whose file or ~/.pgpass has it."""

    url: str
    password_env: str = ""
    lease: float = 600.0  # seconds a worker holds a host or message unrenewed: a killed one's wait

    def password(self) -> str | None:
        """The password from password_env; None when the URL's service or ~/.pgpass gives it."""
        if not self.password_env:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            raise ConfigError(
                f"the database password is read from ${self.password_env}, which is not set in "
                "this environment (cron starts with an almost empty one)"
            )
        return value

    @property
    def shown(self) -> str:
        """The URL as messages show it: never a password (there is none), host and database."""
        return database_url_shown(self.url)


def psycopg_installed() -> bool:
    """Whether the extra is there, without importing it (config is read by every command)."""
    return importlib.util.find_spec("psycopg") is not None


def database_url_shown(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if _port_of(url) else ""
    return f"postgresql://{host}{port}{parts.path or '/'}"


def _port_of(url: str) -> int | None:
    try:
        return urlsplit(url).port
    except ValueError:
        return None


def check_database_url(value: Any) -> str:
    """A postgresql:// URL without a password in it; ValueError saying what is wrong."""
    if not isinstance(value, str) or not value.strip() or _CONTROL.search(value):
        raise ValueError("")
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(
            'use a PostgreSQL URL, e.g. "postgresql://tostrack@db.example/tostrack"; without '
            "[store], the workspace's own tostrack.db is used"
        )
    try:
        parts.port
    except ValueError:
        raise ValueError("the port is not a number from 1 to 65535") from None
    if parts.password is not None or "password" in parse_qs(parts.query):
        raise ValueError(
            "the URL holds a password: take it out and set password_env to the name of an "
            "environment variable that holds it (or use a libpq service file)"
        )
    return url


@dataclass(frozen=True)
class RegistryConfig:
    """The [registry] table (names are checked against the registry by tostrack.sources)."""

    include: tuple[str, ...] = ("all",)
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceTable:
    """One [[sources]] table, its keys checked; tostrack.sources reads its values."""

    number: int
    entry: str  # "<file>: [[sources]] #n (id '...')", for messages
    values: tuple[tuple[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)


@dataclass(frozen=True)
class Config:
    """The whole of tostrack.toml, checked. An absent file is Config()."""

    path: Path | None = None
    registry: RegistryConfig | None = None  # None: no [registry] table
    sources: tuple[SourceTable, ...] = ()
    fetch: FetchConfig = field(default_factory=FetchConfig)
    severity: tuple[tuple[str, str], ...] = ()
    smtp: SmtpConfig | None = None
    recipients: tuple[Recipient, ...] = ()
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    store: StoreConfig | None = None  # None: the workspace's embedded tostrack.db
    evidence: str = ""  # [store] evidence: the shared folder of captures; "": snapshots/

    @property
    def where(self) -> str:
        return str(self.path) if self.path else CONFIG_NAME

    @property
    def severity_overrides(self) -> dict[str, str]:
        return dict(self.severity)

    def check_references(self, known: Sequence[Any]) -> None:
        """Check that recipients name providers and sources that exist (known: Source objects
        of the bundled registry and the workspace)."""
        ids = sorted({s.id for s in known})
        providers = sorted({s.provider for s in known})
        problems = []
        for n, r in enumerate(self.recipients, 1):
            at = f"{self.where}: [[recipients]] #{n} ({r.name})"
            for name in r.providers:
                if name not in providers:
                    hint = did_you_mean(name, providers) or did_you_mean(name, ids)
                    problems.append(
                        f"{at}: providers names '{name}', which is no provider of the bundled "
                        f"registry or of [[sources]].{hint} `tostrack sources list --registry` "
                        "shows them."
                    )
            for name in r.sources:
                if name not in ids:
                    problems.append(
                        f"{at}: sources names '{name}', which is no source id."
                        f"{did_you_mean(name, ids)}"
                        " `tostrack sources list` shows them."
                    )
        _raise(problems, self.where)


def _config_of(settings: Any) -> Config:
    return settings if isinstance(settings, Config) else settings.config


# -- the loader -------------------------------------------------------------------------------


def load(path: Path) -> Config:
    """Read and check tostrack.toml; an absent file is the defaults. ConfigError lists every
    problem found, each with the file, the key and what is allowed."""
    data = read_toml(path)
    return parse(data, path) if data is not None else Config()


def read_toml(path: Path) -> dict[str, Any] | None:
    """The file's TOML as a dict, None when there is no file; ConfigError when unreadable."""
    try:
        with path.open("rb") as fh:
            raw = fh.read()
        # An editor's byte-order mark is not a mistake in the file.
        return tomllib.loads(raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except FileNotFoundError:
        return None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}. Fix the line it names.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text.") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder; tostrack.toml must be a file") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}. Give this user read permission on it."
        ) from None


def _raise(problems: Sequence[str], where: str) -> None:
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(
            f"{where} has {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)
        )


class _Checker:
    def __init__(self, where: str) -> None:
        self.where = where
        self.problems: list[str] = []

    def bad(self, at: str, message: str) -> None:
        self.problems.append(f"{self.where}: {at}{message}")

    def keys(self, table: Mapping[str, Any], allowed: Mapping[str, Key], at: str) -> None:
        for key in table:
            if key not in allowed:
                hint = did_you_mean(key, list(allowed))
                extra = ""
                if key == "password" and at.startswith(("[smtp]", "[store]")):
                    extra = (
                        " Do not put the password in the file; set password_env to the name "
                        "of an environment variable that holds it."
                    )
                self.bad(at, f"unknown key '{key}'.{hint}{extra} Known keys: {', '.join(allowed)}")
        for key, spec in allowed.items():
            if spec.required and key not in table:
                self.bad(at, f"{key} is required: give {spec.allowed()}")

    def value(self, at: str, key: str, value: Any, spec: Key) -> Any:
        """The checked, normalised value, or spec.default after recording the problem."""
        try:
            return _coerce(value, spec)
        except ValueError as exc:
            hint = ""
            if spec.kind == "choice" and isinstance(value, str):
                hint = did_you_mean(value.strip().lower(), spec.choices)
            shown = f"{key} = …" if spec.secret else f"{key} = {_show(value)}"
            if str(exc):
                self.bad(at, f"{shown}: {exc}.{hint}")
            else:
                self.bad(at, f"{shown} is not valid; give {spec.allowed()}.{hint}")
            return spec.default


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def check_address(value: Any) -> str:
    """value as an e-mail address ("Name <a@b>" or "a@b"); ValueError when it is not one."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("")
    text = value.strip()
    _, addr = parseaddr(text)
    if _CONTROL.search(text) or not addr or "@" not in addr or " " in addr:
        raise ValueError(f'{value!r} is not an email address, e.g. "legal@example.com"')
    local, _, domain = addr.rpartition("@")
    malformed = not local or "." not in domain.strip(".") or domain[:1] == "." or domain[-1:] == "."
    if malformed and domain != "localhost":
        raise ValueError(f'{value!r} is not an email address, e.g. "legal@example.com"')
    if not addr.isascii():
        raise ValueError(
            f"{addr!r} has non-ASCII characters, which tostrack cannot send to; write the domain "
            "in its xn-- form"
        )
    return text


def _coerce(value: Any, spec: Key) -> Any:
    kind = spec.kind
    if kind == "any":
        return value
    if kind == "count":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("")
        if (spec.minimum is not None and value < spec.minimum) or (
            spec.maximum is not None and value > spec.maximum
        ):
            raise ValueError("")
        return value
    if kind == "duration":
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise ValueError("") from None
        if (spec.positive and seconds <= 0) or seconds < (spec.minimum or 0):
            raise ValueError("")
        return seconds
    if kind == "size":
        try:
            size = parse_size(value)
        except ValueError:
            raise ValueError("") from None
        if size < 1:
            raise ValueError("")
        return size
    if kind == "text":
        if not isinstance(value, str) or not value.strip() or _CONTROL.search(value):
            raise ValueError("")
        return value.strip()
    if kind == "folder":
        if not isinstance(value, str) or not value.strip() or _CONTROL.search(value):
            raise ValueError("")
        return value.strip()
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError("")
        return value
    if kind == "choice":
        if not isinstance(value, str) or value.strip().lower() not in spec.choices:
            raise ValueError("")
        return value.strip().lower()
    if kind == "email":
        return check_address(value)
    if kind == "emails":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ValueError("")
        return tuple(check_address(v) for v in items)
    if kind == "url":
        if not isinstance(value, str) or (
            value and not re.match(r"(?i)https?://[^/\s]+", value.strip())
        ):
            raise ValueError("")
        url = value.strip()
        return url + "/" if url and not url.endswith("/") else url
    if kind == "database_url":
        return check_database_url(value)
    if kind == "chat_urls":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            raise ValueError("")
        for item in items:
            if not isinstance(item, str) or "://" not in item or _CONTROL.search(item):
                raise ValueError(
                    'each must be an Apprise URL such as "json://hooks.example/tostrack" '
                    'or "slack://TokenA/TokenB/TokenC" (see https://appriseit.com/services/)'
                )
        return tuple(item.strip() for item in items)
    if kind == "env_name":
        if not isinstance(value, str) or not ENV_NAME.fullmatch(value.strip()):
            raise ValueError("")
        return value.strip()
    if kind == "env_names":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            raise ValueError("")
        for item in items:
            if not isinstance(item, str) or not ENV_NAME.fullmatch(item.strip()):
                raise ValueError(
                    "each must be the name of an environment variable that holds an Apprise URL,"
                    ' e.g. "TOSTRACK_SLACK_URL" (the URL itself never goes in the file)'
                )
        return tuple(item.strip() for item in items)
    if kind in ("names", "labels"):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise ValueError("")
        return tuple(v.strip().lower() for v in items)
    raise ValueError(f"unknown kind {kind}")  # pragma: no cover - a schema mistake


def _labels() -> tuple[str, ...]:
    """The label ids of the taxonomy, read from classify's data file as data: importing the
    classifier would make a loop (it checks [severity] overrides with this module)."""
    data = resources.files("tostrack") / "classify" / "data" / "labels.toml"
    return tuple(tomllib.loads(data.read_text(encoding="utf-8")))


def check_severity(overrides: Mapping[str, Any] | None, where: str = CONFIG_NAME) -> dict[str, str]:
    """[severity] label = "high"|...: checked and lower-cased. ConfigError for an unknown label
    or level."""
    checker = _Checker(where)
    out = _severity(checker, overrides or {})
    _raise(checker.problems, where)
    return out


def _severity(checker: _Checker, table: Mapping[str, Any]) -> dict[str, str]:
    labels = _labels()
    out: dict[str, str] = {}
    for label, value in table.items():
        if label not in labels:
            checker.bad(
                "[severity] ",
                f"names an unknown label '{label}'.{did_you_mean(label, labels)} Known labels: "
                + ", ".join(labels),
            )
            continue
        level = checker.value("[severity] ", label, value, SEVERITY_KEY)
        if level is not None:
            out[label] = level
    return out


def _values(checker: _Checker, table: Mapping[str, Any], spec: Mapping[str, Key], at: str) -> dict:
    checker.keys(table, spec, at)
    return {
        key: checker.value(at, key, table[key], key_spec)
        for key, key_spec in spec.items()
        if key in table
    }


def _tables(checker: _Checker, data: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    value = data.get(name, [])
    if isinstance(value, dict):
        checker.bad("", f"'{name}' is a single [{name}] table; write [[{name}]] (one per entry)")
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        checker.bad("", f"use [[{name}]] tables for '{name}'")
        return []
    return value


def _table(checker: _Checker, data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if isinstance(value, list):
        checker.bad("", f"[{name}] must be a single table, not [[{name}]]")
        return {}
    if not isinstance(value, dict):
        checker.bad("", f"[{name}] must be a table, not {type_name(value)}")
        return {}
    return value


def parse(data: Mapping[str, Any], path: Path | None = None) -> Config:
    """Check a parsed tostrack.toml (see `load`)."""
    where = str(path) if path else CONFIG_NAME
    checker = _Checker(where)
    for name in data:
        if name not in SCHEMA:
            hint = did_you_mean(name, list(SCHEMA))
            what = "key" if not isinstance(data[name], (dict, list)) else "table"
            homes = [t for t, keys in SCHEMA.items() if name in keys and t not in ARRAY_TABLES]
            if what == "key" and homes:
                hint = f" It belongs in a table: write it under [{homes[0]}].{hint}"
            checker.bad(
                "",
                f"unknown {what} '{name}'.{hint} Known tables: "
                + ", ".join(f"[[{t}]]" if t in ARRAY_TABLES else f"[{t}]" for t in SCHEMA),
            )

    registry = None
    if "registry" in data:
        values = _values(
            checker, _table(checker, data, "registry"), SCHEMA["registry"], "[registry] "
        )
        registry = RegistryConfig(
            include=values.get("include", ("all",)), exclude=values.get("exclude", ())
        )

    sources = []
    for n, table in enumerate(_tables(checker, data, "sources"), 1):
        entry = f"{where}: [[sources]] #{n}"
        if isinstance(table.get("id"), str):
            entry += f" (id '{table['id']}')"
        # Every key and value is checked here; a table without a url enables a bundled document
        # (tostrack.sources checks that the id is one), so it is checked as if it had one.
        has_url = any(k in table for k in URL_KEYS)
        try:
            source_from_table(
                table if has_url else {**table, "url": "https://bundled.invalid/"}, entry
            )
        except ConfigError as exc:
            checker.problems.append(str(exc))
        sources.append(SourceTable(n, entry, tuple(table.items())))

    fetch_values = _values(checker, _table(checker, data, "fetch"), SCHEMA["fetch"], "[fetch] ")
    if "chromium" in fetch_values:
        fetch_values["chromium"] = os.path.expanduser(fetch_values["chromium"])
    fetch = FetchConfig(**fetch_values)

    severity = _severity(checker, _table(checker, data, "severity"))

    smtp = None
    if "smtp" in data:
        values = _values(checker, _table(checker, data, "smtp"), SCHEMA["smtp"], "[smtp] ")
        if "host" in values and values["host"] is not None:
            tls = values.get("tls", "starttls")
            port = values.get("port") or {"none": 25, "starttls": 587, "ssl": 465}[tls]
            sender = values.pop("from", DEFAULT_FROM)
            smtp = SmtpConfig(**{**values, "port": port, "tls": tls, "sender": sender})

    recipients = []
    for n, table in enumerate(_tables(checker, data, "recipients"), 1):
        at = f"[[recipients]] #{n} "
        values = _values(checker, table, SCHEMA["recipients"], at)
        labels = _labels()
        for label in values.get("labels") or ():
            if label not in labels:
                checker.bad(
                    at,
                    f"labels names an unknown label '{label}'."
                    f"{did_you_mean(label, labels)} Known labels: {', '.join(labels)}",
                )
        for name in values.get("sources") or ():
            problem = source_id_problem(name)
            if problem:
                checker.bad(at, f"sources: {problem}")
        urls = (*(values.pop("url", None) or ()), *(values.pop("urls", None) or ()))
        if values.get("url_env") is None:
            values.pop("url_env", None)
        if not (values.get("email") or urls or values.get("url_env")):
            if not any(key in table for key in RECIPIENT_TARGETS):
                checker.bad(
                    at,
                    "needs whom to tell: one of email, url, urls or url_env, e.g. "
                    'email = "legal@example.com" or url_env = "TOSTRACK_SLACK_URL"',
                )
            continue
        recipients.append(Recipient(**values, urls=urls))

    notify = NotifyConfig(
        **_values(checker, _table(checker, data, "notify"), SCHEMA["notify"], "[notify] ")
    )
    report = ReportConfig(
        **_values(checker, _table(checker, data, "report"), SCHEMA["report"], "[report] ")
    )
    store, evidence = None, ""
    if "store" in data:
        table = _table(checker, data, "store")
        values = _values(checker, table, SCHEMA["store"], "[store] ")
        evidence = values.get("evidence") or ""
        if "url" not in table and (set(table) - {"evidence"} or "evidence" not in table):
            checker.bad(
                "[store] ",
                f"url is required with {', '.join(sorted(table)) or 'an empty [store]'}: give "
                f"{SCHEMA['store']['url'].allowed()} (evidence alone keeps the embedded database)",
            )
        if values.get("url"):
            store = StoreConfig(
                values["url"], values.get("password_env") or "", values.get("lease", 600.0)
            )
            if not psycopg_installed():
                checker.bad(
                    "[store] ",
                    f"a PostgreSQL store needs psycopg, which is not installed: {POSTGRES_EXTRA}",
                )
    _raise(checker.problems, where)
    return Config(
        path=path,
        registry=registry,
        sources=tuple(sources),
        fetch=fetch,
        severity=tuple(severity.items()),
        smtp=smtp,
        recipients=tuple(recipients),
        notify=notify,
        report=report,
        store=store,
        evidence=evidence,
    )


# -- Settings: the raw file and its checked Config, as workspaces carry them -------------------


@dataclass(frozen=True)
class Settings:
    """The parsed tostrack.toml (empty when the workspace has none) and its checked Config."""

    data: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    config: Config = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.config is None:
            object.__setattr__(
                self, "config", parse(self.data, self.path) if self.data else Config(path=self.path)
            )

    def section(self, name: str) -> dict[str, Any]:
        """A table as a plain dict (already checked); prefer `config`."""
        value = self.data.get(name, {})
        return value if isinstance(value, dict) else {}

    def tables(self, name: str) -> list[dict[str, Any]]:
        value = self.data.get(name, [])
        return value if isinstance(value, list) else []

    @property
    def where(self) -> str:
        return str(self.path) if self.path else CONFIG_NAME


def load_settings(path: Path) -> Settings:
    """Read and check tostrack.toml (an absent file gives the defaults)."""
    data = read_toml(path)
    if data is None:
        return Settings()
    return Settings(data, path)

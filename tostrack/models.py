"""The values that flow through the pipeline.

source declaration --fetch--> Snapshot --extract--> Document --segment--> [Clause]
old + new [Clause] --align--> [Change] --classify--> labelled [Change] --record--> store

All are frozen: a stage returns new values, it never edits the ones it was given.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

_Value = TypeVar("_Value")

# A change's severity, least to most; the rank orders changes and filters them (min_severity).
SEVERITIES = ("none", "low", "medium", "high")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


def with_fields(value: _Value, /, **changes: Any) -> _Value:
    """dataclasses.replace(value, **changes) for the values here, three times quicker: the
    copy takes the fields as they are instead of passing each through __init__ again (which
    a frozen class sets one by one). A replay makes some 50,000 such copies. A class with a
    __post_init__ (which replace would run) goes through replace."""
    cls = type(value)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls) if f.init)  # type: ignore[arg-type]
    state = value.__dict__
    # replace for what the quick copy would get wrong: a __post_init__ to run, an unknown
    # field, or anything kept in the instance besides its fields (a cached_property's value)
    if hasattr(cls, "__post_init__") or not names.issuperset(changes) or len(state) != len(names):
        return replace(value, **changes)  # type: ignore[type-var]
    copy = object.__new__(cls)
    fresh = copy.__dict__  # frozen: __setattr__ refuses, the instance dict does not
    fresh.update(state)
    fresh.update(changes)
    return copy


_FIELD_NAMES: dict[type, frozenset[str]] = {}


@dataclass(frozen=True)
class Snapshot:
    """Raw bytes as fetched, with what is needed to prove where and when they came from."""

    source_id: str
    url: str
    fetched_at: str  # ISO 8601 UTC, e.g. 2026-11-25T06:45:00Z
    status: int
    content_type: str  # media type without parameters, e.g. "text/html"
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    encoding: str | None = None  # charset declared by the server or detected
    sha256: str = ""

    def __post_init__(self) -> None:
        if not self.sha256:
            import hashlib

            object.__setattr__(self, "sha256", hashlib.sha256(self.body).hexdigest())


@dataclass(frozen=True)
class Block:
    """One structural piece of a document.

    kind: "heading" (level 1-6), "paragraph", "list_item" (level = nesting depth, 1 = top),
    or "table_row" (cells joined by " | ").
    marker: the numbering or bullet the source showed ("1.1", "(a)", "•"), kept apart from
    text so renumbering alone is not a change of wording.
    """

    kind: str
    text: str
    level: int = 0
    marker: str = ""
    starts_list: bool = False  # the first item of a list (so a lead-in ends with its list)


@dataclass(frozen=True)
class Document:
    blocks: tuple[Block, ...]
    title: str = ""
    effective_date: str | None = None  # ISO date (YYYY-MM-DD) of "Effective"/"Last updated"
    effective_date_text: str = ""  # the sentence it was read from
    effective_date_is_future: bool = False  # set by callers that know "today"; extract is clockless
    metadata: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        return "\n\n".join(b.text for b in self.blocks)


@dataclass(frozen=True)
class Clause:
    """The smallest provision a lawyer would cite.

    id: stable identity across versions (inherited through alignment, see align.py).
    section: human path, e.g. "2 Usage Requirements › (c) Restrictions › (iii)".
    heading: the heading trail above the clause, outermost first.
    lead_in: for an item of an enumeration, the words that introduce it ("You may not").
    """

    id: str
    section: str
    heading: tuple[str, ...]
    text: str
    number: str = ""
    lead_in: str = ""
    labels: tuple[str, ...] = ()
    evidence: tuple[tuple[str, str], ...] = ()  # (label, matched text)

    @property
    def full_text(self) -> str:
        """Text with its lead-in, which is what a reader (and the classifier) needs."""
        return f"{self.lead_in} {self.text}".strip() if self.lead_in else self.text

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "section": self.section,
            "heading": " › ".join(self.heading),
            "text": self.full_text,
            "labels": list(self.labels),
            "evidence": dict(self.evidence),
        }


CHANGE_KINDS = ("added", "removed", "modified", "moved", "split", "merged")
SEVERITIES = ("none", "low", "medium", "high")


@dataclass(frozen=True)
class Change:
    """One difference between two versions, at clause level.

    old/new hold one clause each, except split (one old, several new) and merged
    (several old, one new). Added has no old, removed has no new.
    redline: word-level ops (op, text) with op in "equal", "insert", "delete"; applying the
    inserts and equals in order rebuilds the new text.
    """

    kind: str
    substantive: bool
    old: tuple[Clause, ...] = ()
    new: tuple[Clause, ...] = ()
    redline: tuple[tuple[str, str], ...] = ()
    moved: bool = False  # a modified clause that also changed place
    labels: tuple[str, ...] = ()
    labels_added: tuple[str, ...] = ()
    labels_removed: tuple[str, ...] = ()
    severity: str = "none"

    def to_json(self) -> dict[str, Any]:
        def side(clauses: tuple[Clause, ...]) -> Any:
            if not clauses:
                return None
            if len(clauses) == 1:
                return clauses[0].to_json()
            return [c.to_json() for c in clauses]

        return {
            "kind": self.kind,
            "substantive": self.substantive,
            "moved": self.moved,
            "old": side(self.old),
            "new": side(self.new),
            "labels": list(self.labels),
            "labels_added": list(self.labels_added),
            "labels_removed": list(self.labels_removed),
            "severity": self.severity,
            "redline": [list(op) for op in self.redline],
        }


@dataclass(frozen=True)
class Diff:
    """The whole comparison of two versions of one document."""

    changes: tuple[Change, ...]
    old_clauses: tuple[Clause, ...] = ()
    new_clauses: tuple[Clause, ...] = ()  # with ids inherited from old where aligned

    def summary(self) -> dict[str, int]:
        counts = {k: 0 for k in ("added", "removed", "modified", "moved", "split", "merged")}
        cosmetic = substantive = 0
        for ch in self.changes:
            counts[ch.kind] += 1
            if ch.substantive:
                substantive += 1
            else:
                cosmetic += 1
        return {**counts, "cosmetic": cosmetic, "substantive": substantive}

    @property
    def substantive(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.substantive)


@dataclass(frozen=True)
class Failure:
    """A fetch or extraction that did not yield the document. Never stored as a version."""

    source_id: str
    at: str
    reason: str  # short machine code: http-503, timeout, challenge, empty, collapsed, ...
    detail: str = ""


@dataclass(frozen=True)
class Source:
    """A document to watch: from the bundled registry or a workspace's tostrack.toml."""

    id: str  # provider/document
    urls: tuple[str, ...]
    title: str = ""
    provider: str = ""
    document_type: str = ""
    language: str = "en"
    select: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    browser: bool = False
    interval: int = 86400  # seconds between fetches
    headers: tuple[tuple[str, str], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def combine(self) -> bool:
        return len(self.urls) > 1

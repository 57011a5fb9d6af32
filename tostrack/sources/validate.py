"""`tostrack sources validate`: fetch a source twice and say whether it yields the same,
non-trivial text, and if not, what to change in its declaration.

It runs the pipeline's own steps (fetch, extract, analyse, health check), so it is kept out of
the package's __init__: tostrack.pipeline imports tostrack.sources, and this module imports
tostrack.pipeline.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from tostrack.fetch import Fetcher
from tostrack.fetch.health import check_document
from tostrack.models import Failure, Source
from tostrack.pipeline import analyse, extract_snapshots
from tostrack.store import text_digest

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
                        f"expected at least {min_characters}"
                        f"{_select_hint(source, None, characters)}"
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
    "challenge": "a bot challenge or interstitial answered instead of the page; try browser = true",
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

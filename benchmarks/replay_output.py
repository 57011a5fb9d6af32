"""Dump everything a replay of the corpus produces, or compare it with an earlier dump.

    python benchmarks/replay_output.py dump ../shared/corpus /tmp/replay-reference.tsv
    python benchmarks/replay_output.py check ../shared/corpus /tmp/replay-reference.tsv

One line per pair: the exact JSON line `tostrack replay` prints for it, a tab, and the SHA-256 of
both sides' full clause tuples (ids, sections, headings, lead-ins, labels, evidence), so a change
that `replay` output does not show (an unchanged clause's label or id) is caught too. Then one
line per version file: its name and the SHA-256 of the extracted Document. Speed work must leave
this file identical, byte for byte; `replay_corpus.py --check` runs the same comparison on the
timed replay. Uses only what `tostrack.replay` offered before that work, so a reference can be
made from an older checkout (`PYTHONPATH=/path/to/old/checkout python ...`).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import click

__all__ = ["compare_lines", "document_lines", "pair_line", "replay_lines"]


def pair_line(document: str, old: Path, new: Path, diff: object) -> str:
    """The dump line of one replayed pair (document as `tostrack replay` names it)."""
    from tostrack.output import diff_body

    record = {"document": document, "from": old.name, "to": new.name, **diff_body(diff)}
    clauses = repr((diff.old_clauses, diff.new_clauses)).encode("utf-8")
    return f"{json.dumps(record, ensure_ascii=False)}\t{hashlib.sha256(clauses).hexdigest()}"


def replay_lines(directories: Iterable[Path]) -> Iterator[str]:
    from tostrack.replay import replay_directory

    shared = shared_readings(replay_directory)
    for directory in directories:
        for old, new, diff in replay_directory(directory, **shared):
            yield pair_line(str(directory), old, new, diff)


def shared_readings(replay_directory: object) -> dict[str, dict[object, object]]:
    """The keyword that makes replay_directory share its classified readings between the
    directories of one replay, as `tostrack replay` does (none in older checkouts)."""
    import inspect

    parameters = inspect.signature(replay_directory).parameters  # type: ignore[arg-type]
    return {"known": {}} if "known" in parameters else {}


def document_lines(directories: Iterable[Path]) -> Iterator[str]:
    """One line per version file: what extraction alone makes of it."""
    from tostrack.extract import extract_file
    from tostrack.history import dated_files

    for directory in directories:
        for _, path in dated_files(directory):
            digest = hashlib.sha256(repr(extract_file(path)).encode("utf-8")).hexdigest()
            yield f"{path}\t{digest}"


def compare_lines(expected: list[str], got: list[str]) -> str | None:
    """None when identical, else a short description of the first difference."""
    for index, (want, have) in enumerate(zip(expected, got, strict=False)):
        if want != have:
            return f"line {index + 1} differs:\n  expected {want[:300]}\n  got      {have[:300]}"
    if len(expected) != len(got):
        return f"{len(expected)} lines expected, {len(got)} produced"
    return None


def _all_lines(corpus: Path, only: str, with_documents: bool) -> list[str]:
    from tostrack.replay import version_dirs

    directories = [
        d for d in version_dirs(corpus) if d.relative_to(corpus).as_posix().startswith(only)
    ]
    lines = list(replay_lines(directories))
    if with_documents:
        lines.extend(document_lines(directories))
    return lines


@click.command()
@click.argument("mode", type=click.Choice(["dump", "check"]))
@click.argument("corpus", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("reference", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--only", default="", help="Only documents whose path starts with this.")
@click.option("--no-documents", is_flag=True, help="Skip the per-file extraction digests.")
def main(mode: str, corpus: Path, reference: Path, only: str, no_documents: bool) -> None:
    """Write (dump) or compare with (check) the REFERENCE dump of replaying CORPUS."""
    corpus = corpus.resolve()  # the document names in the dump do not depend on the cwd
    lines = _all_lines(corpus, only, not no_documents)
    if mode == "dump":
        reference.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        click.echo(f"wrote {len(lines)} lines to {reference}")
        return
    expected = reference.read_text(encoding="utf-8").splitlines()
    if no_documents:
        expected = [line for line in expected if line.startswith("{")]
    problem = compare_lines(expected, lines)
    if problem:
        click.echo(f"DIFFERENT from {reference}: {problem}")
        sys.exit(1)
    click.echo(f"identical to {reference}: {len(lines)} lines")


if __name__ == "__main__":
    main()

"""Import the whole corpus into one fresh workspace, as `tostrack import` does for each document.

    python benchmarks/import_corpus.py                 # ../shared/corpus next to the project
    python benchmarks/import_corpus.py PATH --only openai/ --keep /tmp/ws

Prints the versions and changes stored, wall and CPU time, and peak memory. Each document is
imported under the id "provider/document" (its folder's path in the corpus) with
`tostrack.history.import_directory`, one after another in this process; `--keep` leaves the
workspace behind (e.g. to time `tostrack report` on it). Target (issue #14): at most 12 s.
"""

from __future__ import annotations

import resource
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
TARGET_SECONDS = 12.0


@dataclass(frozen=True)
class ImportFigures:
    documents: int
    versions: int
    changes: int
    skipped: int
    wall: float
    cpu: float


def _cpu() -> float:
    """CPU time of this process and of the workers it waited for."""
    return sum(
        u.ru_utime + u.ru_stime
        for u in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )


def import_corpus(
    corpus: Path, workspace_root: Path, only: str = "", jobs: int = 1
) -> ImportFigures:
    """Import every document of `corpus` into a new workspace at `workspace_root`, each with
    `jobs` processes (as `tostrack import -j`)."""
    from tostrack.history import import_directory
    from tostrack.replay import version_dirs
    from tostrack.workspace import Workspace

    workspace = Workspace.open(workspace_root, check=False)
    directories = [
        d for d in version_dirs(corpus) if d.relative_to(corpus).as_posix().startswith(only)
    ]
    versions = changes = skipped = 0
    cpu_before, started = _cpu(), time.perf_counter()
    for directory in directories:
        result = import_directory(
            workspace, directory.relative_to(corpus).as_posix(), directory, jobs=jobs
        )
        versions += result.versions
        changes += result.changes
        skipped += result.skipped
    return ImportFigures(
        len(directories),
        versions,
        changes,
        skipped,
        time.perf_counter() - started,
        _cpu() - cpu_before,
    )


def stored_lines(workspace_root: Path) -> list[str]:
    """What the workspace holds, one line per version and per recorded diff: dates, digests of
    the snapshot, of the stored clauses (ids, labels, evidence) and of each diff's changes.
    Equal lines, equal imports (`--dump` / `--check`, as replay_output.py for replay)."""
    import hashlib

    from tostrack.store import Store

    def digest(value: object) -> str:
        return hashlib.sha256(repr(value).encode("utf-8")).hexdigest()

    lines = []
    with Store(workspace_root, read_only=True) as store:
        for source_id in sorted(store.tracked_source_ids()):
            for v in store.versions(source_id):
                lines.append(
                    f"{source_id}\t{v.captured_at}\t{v.snapshot_sha256}\t"
                    f"{v.text_sha256}\t{v.clause_count}\t{digest(v.load()[1])}"
                )
            diffs = sorted(store.diffs(source_id), key=lambda d: d.to_version.captured_at)
            for d in diffs:
                lines.append(
                    f"{source_id}\t{d.from_version.captured_at} -> "
                    f"{d.to_version.captured_at}\t{d.kind}\t{d.severity}\t"
                    f"{sorted(d.summary.items())}\t{digest(d.changes)}"
                )
    return lines


def peak_mb() -> float:
    """The largest single process, this one or a worker (Linux reports KiB)."""
    peaks = (
        resource.getrusage(who).ru_maxrss
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return max(peaks) / 1024


@click.command()
@click.argument("corpus", required=False, type=click.Path(path_type=Path))
@click.option("--only", default="", help="Only documents whose path starts with this.")
@click.option(
    "--jobs",
    "-j",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Analyse each document's versions in this many processes (tostrack import -j).",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    help="Import into this folder (must not exist yet) and leave it there.",
)
@click.option(
    "--dump",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write what the workspace holds (see stored_lines) to this file.",
)
@click.option(
    "--check",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Compare what the workspace holds with a --dump made earlier.",
)
def main(
    corpus: Path | None,
    only: str,
    jobs: int,
    keep: Path | None,
    dump: Path | None,
    check: Path | None,
) -> None:
    """Import CORPUS (default: ../shared/corpus next to the project) and print figures."""
    corpus = (corpus or DEFAULT_CORPUS).resolve()
    if not corpus.is_dir():
        raise click.ClickException(f"no corpus at {corpus}")
    if keep is not None and keep.exists():
        raise click.ClickException(f"{keep} exists; --keep wants a new folder")
    root = keep or Path(tempfile.mkdtemp(prefix="tostrack-import-"))
    try:
        figures = import_corpus(corpus, root, only, jobs)
        stored = stored_lines(root) if dump or check else []
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    click.echo(f"documents                    {figures.documents}")
    click.echo(
        f"versions stored              {figures.versions} "
        f"({figures.changes} with substantive changes, {figures.skipped} skipped)"
    )
    click.echo(
        f"import time                  {figures.wall:.2f} s wall, {figures.cpu:.2f} s CPU, "
        f"{jobs} process{'es' if jobs > 1 else ''} per document (target <= {TARGET_SECONDS:g} s)"
    )
    click.echo(f"peak memory (ru_maxrss)      {peak_mb():.0f} MB")
    if keep is not None:
        click.echo(f"workspace                    {keep}")
    if dump:
        dump.write_text("".join(f"{line}\n" for line in stored), encoding="utf-8")
        click.echo(f"stored lines                 {len(stored)} written to {dump}")
    if check:
        from replay_output import compare_lines

        problem = compare_lines(check.read_text(encoding="utf-8").splitlines(), stored)
        click.echo(f"same as {check}: " + ("yes" if problem is None else f"NO, {problem}"))
        if problem:
            raise SystemExit(1)


if __name__ == "__main__":
    main()

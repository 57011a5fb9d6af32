"""Replay the historical corpus through tostrack and through git's word diff, in the same run.

    python benchmarks/replay_corpus.py                 # ../shared/corpus next to the project
    python benchmarks/replay_corpus.py PATH --list substantive --show 3
    python benchmarks/replay_corpus.py --only openai/ --no-git --no-import
    python benchmarks/replay_corpus.py --check /tmp/replay-reference.tsv

Prints: documents, pairs, pairs with substantive changes, cosmetic-only pairs, identical pairs,
clauses per version (mean / max); the replay's wall and CPU time in one process and with -j
(default: all cores, as `tostrack replay`), the slowest pair, peak memory; `git diff --no-index
--word-diff` over the same pairs with the ratios; and the import of the whole corpus into a
fresh workspace (benchmarks/import_corpus.py). Targets (issue #14): one process at most 3x
git's wall time, all cores at most 1.5x, no pair over 0.3 s, peak memory under 150 MB, the
import at most 12 s. The corpus's manifest marks re-extractions ("technical upgrade",
"refilter"); any of those judged substantive is listed, since it is a likely false alert.

`--check DUMP` compares the replay's output, pair by pair, with a dump that
benchmarks/replay_output.py made (e.g. before a change meant to leave the output alone).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
TARGET_RATIO, TARGET_RATIO_ALL_CORES, TARGET_PAIR_SECONDS, TARGET_MEMORY_MB = 3.0, 1.5, 0.3, 150.0
REEXTRACTIONS = {"technical_upgrade", "refilter"}


@dataclass
class Pair:
    document: str
    old: Path
    new: Path
    seconds: float
    summary: dict[str, int]
    changes: list[dict] = field(default_factory=list)
    change_kind: str = ""

    @property
    def verdict(self) -> str:
        if self.summary["substantive"]:
            return "substantive"
        return "cosmetic" if self.summary["cosmetic"] else "identical"


def _manifest_kinds(corpus: Path) -> dict[tuple[str, str], str]:
    try:
        manifest = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {
        (d["path"], v["file"]): v.get("change_kind", "")
        for d in manifest.get("documents", [])
        for v in d.get("version_list", [])
    }


@dataclass
class Replay:
    """One replay of the corpus: its pairs and what it cost."""

    pairs: list[Pair]
    clause_counts: list[int]
    wall: float
    cpu: float
    lines: list[str]  # with --check: the SHA-256 of replay_output.pair_line of each pair


def replay(
    corpus: Path, only: str, keep_changes: bool, jobs: int = 1, with_lines: bool = False
) -> Replay:
    """Replay each document as `tostrack replay` does; a pair's time is analysing its new
    version plus aligning and labelling (the old version was analysed for the pair before).
    With jobs > 1, documents are replayed in that many processes, as `tostrack replay -j`: the
    same tasks (replay.work_units), readings classified once per process. Making the --check
    lines is not counted in the times."""
    from functools import partial

    from replay_output import shared_readings

    from tostrack import replay as tostrack_replay

    kinds = _manifest_kinds(corpus)
    directories = [
        d
        for d in tostrack_replay.version_dirs(corpus)
        if not only or d.relative_to(corpus).as_posix().startswith(only)
    ]
    work = partial(
        _replay_unit, corpus=corpus, kinds=kinds, keep_changes=keep_changes, with_lines=with_lines
    )
    # As `tostrack replay` (older checkouts: what they have of it)
    tuned_gc = getattr(tostrack_replay, "long_run_gc", contextlib.nullcontext)
    cpu_before = _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with tuned_gc():
        if jobs > 1:
            from concurrent.futures import ProcessPoolExecutor

            units = _work_units(tostrack_replay, directories, jobs)
            with ProcessPoolExecutor(max_workers=jobs, initializer=_start_worker) as pool:
                futures = [pool.submit(work, unit) for unit in units]  # largest first
                by_directory = {d: r for f in futures for d, r in f.result().items()}
            results = [by_directory[d] for d in directories]
        else:
            _worker_shared.update(shared_readings(tostrack_replay.replay_directory))
            results = list(work(tuple(directories)).values())
    wall = time.perf_counter() - started
    cpu = _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN) - cpu_before
    done = Replay([], [], wall, cpu, [])
    for document_pairs, counts, lines, lines_seconds in results:
        done.pairs.extend(document_pairs)
        done.clause_counts.extend(counts)
        done.lines.extend(lines)
        done.cpu -= lines_seconds
        done.wall -= lines_seconds / jobs  # spread over the processes, roughly
    return done


# In a worker (or in this process): replay_directory's keyword for the readings shared
_worker_shared: dict[str, dict[object, object]] = {}


def _start_worker() -> None:
    from replay_output import shared_readings

    from tostrack import replay as tostrack_replay

    _worker_shared.clear()
    _worker_shared.update(shared_readings(tostrack_replay.replay_directory))
    start = getattr(tostrack_replay, "_start_replay_worker", None)
    if start is not None:
        start()


def _work_units(tostrack_replay: object, directories: list[Path], jobs: int) -> list[tuple]:
    units = getattr(tostrack_replay, "work_units", None)
    if units is not None:
        return units(directories, jobs)
    # older checkouts: a directory per task, largest first
    return [(d,) for d in sorted(directories, key=_history_bytes, reverse=True)]


def _replay_unit(unit: tuple[Path, ...], **kwargs: object) -> dict[Path, tuple]:
    return {d: _replay_document(d, shared=_worker_shared, **kwargs) for d in unit}


def _history_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


def _replay_document(
    directory: Path,
    corpus: Path,
    kinds: dict[tuple[str, str], str],
    keep_changes: bool,
    with_lines: bool = False,
    shared: dict[str, dict[object, object]] | None = None,
) -> tuple[list[Pair], list[int], list[str], float]:
    from replay_output import pair_line

    from tostrack.output import diff_body
    from tostrack.replay import replay_directory

    name = directory.relative_to(corpus).as_posix()
    pairs: list[Pair] = []
    clause_counts: list[int] = []
    lines: list[str] = []
    lines_seconds = 0.0
    t0 = time.perf_counter()
    for old, new, diff in replay_directory(directory, **(shared or {})):
        seconds = time.perf_counter() - t0
        if not clause_counts:
            clause_counts.append(len(diff.old_clauses))
        clause_counts.append(len(diff.new_clauses))
        body = diff_body(diff)
        pairs.append(
            Pair(
                name,
                old,
                new,
                seconds,
                body["summary"],
                body["changes"] if keep_changes else [],
                kinds.get((name, new.name), ""),
            )
        )
        if with_lines:  # a digest: the lines of the whole corpus take 23 MB
            t_lines = time.process_time()
            lines.append(_digest(pair_line(str(directory), old, new, diff)))
            lines_seconds += time.process_time() - t_lines
        t0 = time.perf_counter()
    return pairs, clause_counts, lines, lines_seconds


def _digest(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def _load_classifier() -> float:
    """Start-up: import the pipeline's modules (lxml, markdown-it, rapidfuzz, their compiled
    patterns), load the rules and the model, make the Markdown parser; on first use otherwise,
    inside the first pair's time. Timed from before the first tostrack import, with tostrack's
    bytecode compiled first, as `pip install` leaves it (a checkout run under
    PYTHONDONTWRITEBYTECODE, as on the CI machines, would compile every module from source on
    every run: 40 ms that no installed tostrack pays)."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("tostrack")  # finds the package without importing it
    for folder in (spec.submodule_search_locations or []) if spec else []:
        compileall.compile_dir(folder, quiet=1)
    started = time.perf_counter()
    from tostrack import align, extract, output, pipeline, replay, segment  # noqa: F401
    from tostrack.classify import classify_text

    classify_text("The rules and the model are loaded on first use, which takes a second.")
    extract._markdown_parser()
    return time.perf_counter() - started


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def git_word_diff(pairs: list[Pair]) -> tuple[float, float, float]:
    """Wall time, CPU time and slowest pair of `git diff --no-index --word-diff` on the pairs."""
    total = slowest = 0.0
    cpu_before = _cpu(resource.RUSAGE_CHILDREN)
    for pair in pairs:
        t0 = time.perf_counter()
        done = subprocess.run(
            [
                "git",
                "diff",
                "--no-index",
                "--word-diff",
                "--no-color",
                "--",
                str(pair.old),
                str(pair.new),
            ],
            capture_output=True,
            check=False,
        )
        seconds = time.perf_counter() - t0
        if done.returncode not in (0, 1):
            raise click.ClickException(f"git diff failed: {done.stderr.decode(errors='replace')}")
        total += seconds
        slowest = max(slowest, seconds)
    return total, _cpu(resource.RUSAGE_CHILDREN) - cpu_before, slowest


def _peak_mb() -> float:
    # The largest single process, this one or a replay worker (Linux reports KiB).
    peaks = (
        resource.getrusage(who).ru_maxrss
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return max(peaks) / 1024


def _redline(change: dict) -> str:
    if not change["redline"]:
        side = change["new"] or change["old"]
        sides = side if isinstance(side, list) else [side]
        return " ".join(c["text"] for c in sides)
    marks = {"equal": "{}", "insert": "{{+{}+}}", "delete": "[-{}-]"}
    return "".join(marks[op].format(text) for op, text in change["redline"])


def _where(change: dict) -> str:
    def sections(side: object) -> str:
        sides = side if isinstance(side, list) else [side] if side else []
        return " + ".join(c["section"] or c["id"] for c in sides)

    old, new = sections(change["old"]), sections(change["new"])
    return f"{old} -> {new}" if old and new and old != new else new or old


@click.command()
@click.argument("corpus", required=False, type=click.Path(path_type=Path))
@click.option(
    "--only", default="", help="Only documents whose path starts with this, e.g. openai/."
)
@click.option(
    "--list",
    "listing",
    type=click.Choice(["none", "substantive", "cosmetic", "all"]),
    default="none",
    show_default=True,
    help="List the pairs judged so, for spot checks.",
)
@click.option(
    "--show",
    default=0,
    show_default=True,
    help="With --list: print up to N changes of each listed pair, with redlines.",
)
@click.option("--no-git", is_flag=True, help="Skip the git word-diff comparison.")
@click.option("--no-import", is_flag=True, help="Skip the import of the corpus.")
@click.option(
    "--jobs",
    "-j",
    default=None,
    type=click.IntRange(min=1),
    help="Also replay in this many processes (as `tostrack replay -j`); default: all "
    "cores. 1: only the one-process replay.",
)
@click.option(
    "--check",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Compare the output with this dump of benchmarks/replay_output.py.",
)
@click.option(
    "--rounds",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Time the replays and git's word diff this many times, every round after the first "
    "in a fresh process, and print the medians (of each round's own ratios for the ratios).",
)
@click.option("--round-only", is_flag=True, hidden=True, help="Time one round, print JSON.")
def main(
    corpus: Path | None,
    only: str,
    listing: str,
    show: int,
    no_git: bool,
    no_import: bool,
    jobs: int | None,
    check: Path | None,
    rounds: int,
    round_only: bool,
) -> None:
    """Replay CORPUS (default: ../shared/corpus next to the project) and print figures."""
    corpus = (corpus or DEFAULT_CORPUS).resolve()  # dump lines name documents by full path
    if not corpus.is_dir():
        raise click.ClickException(
            f"no corpus at {corpus}: pass the path of a folder of dated versions "
            "(e.g. a checkout of ../shared/corpus)"
        )
    from tostrack.replay import all_cores

    jobs = jobs or all_cores()
    keep = listing != "none" and show > 0
    first, one, many = _round(corpus, only, jobs, keep, check is not None, no_git)
    if round_only:
        click.echo(json.dumps(first.__dict__))
        return
    if not one.pairs:
        raise click.ClickException(f"no pairs of dated versions under {corpus}")
    timed = [first] + [_fresh_round(corpus, only, jobs, no_git) for _ in range(rounds - 1)]
    start_up = _median(timed, "start_up")
    peak_one, peak_many = max(r.peak_one for r in timed), max(r.peak_many for r in timed)
    pairs, counts = one.pairs, one.clause_counts
    slow = max(pairs, key=lambda p: p.seconds)
    verdicts = [p.verdict for p in pairs]
    documents = len({p.document for p in pairs})
    out = click.echo
    out(f"corpus                       {corpus}")
    out(f"documents                    {documents}")
    out(f"pairs                        {len(pairs)}")
    out(f"  with substantive changes   {verdicts.count('substantive')}")
    out(f"  cosmetic only              {verdicts.count('cosmetic')}")
    out(f"  identical after extraction {verdicts.count('identical')}")
    changes = sum(p.summary["substantive"] for p in pairs)
    cosmetic = sum(p.summary["cosmetic"] for p in pairs)
    out(f"clause changes               {changes} substantive, {cosmetic} cosmetic")
    out(f"clauses per version          mean {sum(counts) / len(counts):.0f}, max {max(counts)}")
    if len(timed) > 1:
        out(
            f"rounds                       {len(timed)} (each after the first in a fresh "
            "process): the medians below"
        )
    loop_ms, git_ms = 1000 * _median(timed, "python_loop"), 1000 * _median(timed, "git_start")
    out(
        f"machine speed                Python loop {loop_ms:.0f} ms (2,000,000 additions)"
        + (f", git start-up {git_ms:.1f} ms" if not no_git else "")
        + " (best of a few tries, median of the rounds: compare runs by these)"
    )
    out(f"start-up                     {start_up:.2f} s (modules, rules and model loaded once)")
    one_wall = _median(timed, "one_wall")
    one_cpu = _median(timed, "one_cpu")
    out(
        f"tostrack, one process        {one_wall:.2f} s wall, "
        f"{one_cpu:.2f} s CPU (extract, segment, classify, align; start-up included)"
    )
    if many:
        many_wall = _median(timed, "many_wall")
        many_cpu = _median(timed, "many_cpu")
        out(f"tostrack, {jobs} processes       {many_wall:.2f} s wall, {many_cpu:.2f} s CPU")
    out(f"slowest pair                 {slow.seconds:.3f} s  {slow.document} {slow.new.name}")
    out(
        f"peak memory (ru_maxrss)      {peak_one:.0f} MB in one process"
        + (f", {peak_many:.0f} MB per process with {jobs}" if many else "")
    )
    reextracted = [p for p in pairs if p.change_kind in REEXTRACTIONS]
    flagged = [p for p in reextracted if p.verdict == "substantive"]
    out(f"re-extractions (manifest)    {len(reextracted)}, judged substantive {len(flagged)}")
    failed = []
    if not no_git:
        git_total = _median(timed, "git_wall")
        git_cpu = _median(timed, "git_cpu")
        out(
            f"git --word-diff time         {git_total:.2f} s wall, {git_cpu:.2f} s CPU "
            f"(slowest pair {first.git_slowest:.3f} s)"
        )
        # Each round's tostrack against the same round's git: the machine's speed drifts
        ratios = [r.one_wall / r.git_wall for r in timed]
        ratio = statistics.median(ratios)
        cpu_ratio = statistics.median(r.one_cpu / r.git_cpu for r in timed)
        out(
            f"ratio tostrack / git         {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU in one process "
            f"(target <= {TARGET_RATIO:g}x){_spread(ratios)}"
        )
        if ratio > TARGET_RATIO:
            failed.append("time ratio")
        if many:
            ratios_many = [r.many_wall / r.git_wall for r in timed]
            ratio_many = statistics.median(ratios_many)
            out(
                f"                             {ratio_many:.2f}x wall with {jobs} processes "
                f"(target <= {TARGET_RATIO_ALL_CORES:g}x){_spread(ratios_many)}"
            )
            if ratio_many > TARGET_RATIO_ALL_CORES:
                failed.append("time ratio, all cores")
    if slow.seconds > TARGET_PAIR_SECONDS:
        failed.append("slowest pair")
    if max(peak_one, peak_many) > TARGET_MEMORY_MB:
        failed.append("peak memory")
    if not no_import:
        failed += _import_figures(corpus, only, jobs)
    if check is not None:
        from replay_output import compare_lines

        # The dump's pairs of the documents replayed (replay_output.py checks documents too).
        replayed = json.dumps(str(corpus / only) if only else str(corpus))[:-1]
        expected = [
            _digest(line)
            for line in check.read_text(encoding="utf-8").splitlines()
            if line.startswith('{"document": ' + replayed)
        ]
        for label, run in (("one process", one), (f"{jobs} processes", many)):
            if run is None:
                continue
            problem = compare_lines(expected, run.lines)  # "line N differs": the Nth pair
            out(
                f"output, {label:<20} "
                + (
                    "identical to " + str(check)
                    if problem is None
                    else f"DIFFERENT from {check}: {problem}"
                )
            )
            if problem is not None:
                failed.append(f"output ({label})")
    out("targets                      " + ("met" if not failed else "MISSED: " + ", ".join(failed)))
    for pair in flagged:
        out(
            f"  re-extraction judged substantive: {pair.document} "
            f"{pair.old.name} -> {pair.new.name}"
        )
    if listing != "none":
        out("")
        for pair in pairs:
            if listing != "all" and pair.verdict != listing:
                continue
            s = pair.summary
            out(
                f"{pair.verdict:<11} {pair.document} {pair.old.name} -> {pair.new.name} "
                f"[{pair.change_kind}] {s['substantive']} substantive, {s['cosmetic']} cosmetic "
                f"({pair.seconds:.2f} s)"
            )
            shown = [c for c in pair.changes if c["substantive"] == (pair.verdict == "substantive")]
            for change in shown[:show]:
                moved = " and moved" if change["moved"] and change["kind"] == "modified" else ""
                out(f"    {change['kind']}{moved} {_where(change)}")
                out(f"      {_redline(change)[:600]}")
    sys.exit(1 if failed else 0)


@dataclass
class Round:
    """What one round measured, start-up included in the replays' times (as `tostrack
    replay` pays it)."""

    start_up: float
    one_wall: float
    one_cpu: float
    many_wall: float
    many_cpu: float
    peak_one: float
    peak_many: float
    git_wall: float = 0.0
    git_cpu: float = 0.0
    git_slowest: float = 0.0
    python_loop: float = 0.0  # machine_speed(), at the start of the round
    git_start: float = 0.0


def _round(
    corpus: Path, only: str, jobs: int, keep: bool, with_lines: bool, no_git: bool
) -> tuple[Round, Replay, Replay | None]:
    python_loop, git_start = machine_speed(no_git)
    # Timed apart: loading the classifier is start-up, not the work of the first pair.
    start_up = _load_classifier()
    # With all cores first: a worker forked later would start with this process's memory.
    many = (
        replay(corpus, only, keep_changes=False, jobs=jobs, with_lines=with_lines)
        if jobs > 1
        else None
    )
    peak_many = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if many else 0.0
    # git between the two replays, next to each of them in time: the machine's speed drifts
    # within a round, and each ratio is against this one git time.
    git = git_word_diff(many.pairs) if many is not None and not no_git else None
    one = replay(corpus, only, keep_changes=keep, with_lines=with_lines)
    peak_one = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    if git is None and not no_git:
        git = git_word_diff(one.pairs)  # one process only: git after it
    figures = Round(
        start_up,
        one.wall + start_up,
        one.cpu + start_up,
        (many.wall + start_up) if many else 0.0,
        (many.cpu + start_up) if many else 0.0,
        peak_one,
        peak_many,
        *(git or (0.0, 0.0, 0.0)),
        python_loop,
        git_start,
    )
    return figures, one, many


def machine_speed(no_git: bool = False) -> tuple[float, float]:
    """(seconds of a fixed pure-Python loop, seconds of starting `git --version`), each the
    best of a few tries: how fast this machine runs Python and starts git at the moment, to
    compare runs made on other machines or in other phases of this one (the ratios to git
    move with it: tostrack is bound by the interpreter, git's word diff by process start)."""
    loops = []
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for k in range(2_000_000):
            total += k
        loops.append(time.perf_counter() - started)
    starts = []
    for _ in range(0 if no_git else 20):
        started = time.perf_counter()
        subprocess.run(["git", "--version"], capture_output=True, check=False)
        starts.append(time.perf_counter() - started)
    return min(loops), min(starts, default=0.0)


def _fresh_round(corpus: Path, only: str, jobs: int, no_git: bool) -> Round:
    """One more round in a new process: its start-up, caches and heap as a run's are."""
    done = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            str(corpus),
            "--round-only",
            "--no-import",
            "-j",
            str(jobs),
            *(["--only", only] if only else []),
            *(["--no-git"] if no_git else []),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise click.ClickException(f"a timing round failed: {done.stderr.strip()[-2000:]}")
    return Round(**json.loads(done.stdout.strip().splitlines()[-1]))


def _median(rounds: list[Round], name: str) -> float:
    return statistics.median(getattr(r, name) for r in rounds)


def _spread(values: list[float]) -> str:
    return f"; rounds {min(values):.2f}-{max(values):.2f}x" if len(values) > 1 else ""


def _import_figures(corpus: Path, only: str, jobs: int) -> list[str]:
    """Import the corpus into fresh workspaces (one process, then `jobs`); the targets missed."""
    import shutil
    import tempfile

    from import_corpus import TARGET_SECONDS, import_corpus

    missed = []
    for processes in sorted({1, jobs}):
        root = Path(tempfile.mkdtemp(prefix="tostrack-import-"))
        try:
            figures = import_corpus(corpus, root, only, processes)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        click.echo(
            f"import, {processes} process{'es' if processes > 1 else '':<2}           "
            f"{figures.wall:.2f} s wall, {figures.cpu:.2f} s CPU "
            f"({figures.versions} versions stored; target <= {TARGET_SECONDS:g} s)"
        )
        if figures.wall > TARGET_SECONDS and processes == jobs:
            missed.append("import time")
    return missed


if __name__ == "__main__":
    main()

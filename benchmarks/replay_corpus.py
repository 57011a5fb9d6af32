"""Replay the historical corpus through tostrack and through git's word diff, in the same run.

    python benchmarks/replay_corpus.py                 # ../shared/corpus next to the project
    python benchmarks/replay_corpus.py PATH --list substantive --show 3
    python benchmarks/replay_corpus.py --only openai/ --no-git

Prints: documents, pairs, pairs with substantive changes, cosmetic-only pairs, identical pairs,
clauses per version (mean / max), wall time, slowest pair, peak memory, and `git diff --no-index
--word-diff` over the same pairs with the ratio. Targets (issue #3): at most 5x git's time, no
pair over 2 s, peak memory under 300 MB. The corpus's manifest marks re-extractions ("technical
upgrade", "refilter"); any of those judged substantive is listed, since it is a likely false alert.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
TARGET_RATIO, TARGET_PAIR_SECONDS, TARGET_MEMORY_MB = 5.0, 2.0, 300.0
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
    return {(d["path"], v["file"]): v.get("change_kind", "")
            for d in manifest.get("documents", []) for v in d.get("version_list", [])}


def replay(
    corpus: Path, only: str, keep_changes: bool, jobs: int = 1
) -> tuple[list[Pair], list[int], float]:
    """Replay each document as `tostrack replay` does; a pair's time is analysing its new
    version plus aligning and labelling (the old version was analysed for the pair before).
    With jobs > 1, documents are replayed in that many processes, as `tostrack replay -j`."""
    from functools import partial

    from tostrack.replay import version_dirs

    kinds = _manifest_kinds(corpus)
    directories = [d for d in version_dirs(corpus)
                   if not only or d.relative_to(corpus).as_posix().startswith(only)]
    work = partial(_replay_document, corpus=corpus, kinds=kinds, keep_changes=keep_changes)
    pairs: list[Pair] = []
    clause_counts: list[int] = []
    started = time.perf_counter()
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs) as pool:
            # Largest histories first, so no process is left with a big one at the end.
            futures = {d: pool.submit(work, d) for d in sorted(directories, key=_history_bytes,
                                                                reverse=True)}
            results = [futures[d].result() for d in directories]
    else:
        results = [work(d) for d in directories]
    for document_pairs, counts in results:
        pairs.extend(document_pairs)
        clause_counts.extend(counts)
    return pairs, clause_counts, time.perf_counter() - started


def _history_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


def _replay_document(
    directory: Path, corpus: Path, kinds: dict[tuple[str, str], str], keep_changes: bool
) -> tuple[list[Pair], list[int]]:
    from tostrack.output import diff_body
    from tostrack.replay import replay_directory

    name = directory.relative_to(corpus).as_posix()
    pairs: list[Pair] = []
    clause_counts: list[int] = []
    t0 = time.perf_counter()
    for old, new, diff in replay_directory(directory):
        seconds = time.perf_counter() - t0
        if not clause_counts:
            clause_counts.append(len(diff.old_clauses))
        clause_counts.append(len(diff.new_clauses))
        body = diff_body(diff)
        pairs.append(Pair(name, old, new, seconds, body["summary"],
                          body["changes"] if keep_changes else [],
                          kinds.get((name, new.name), "")))
        t0 = time.perf_counter()
    return pairs, clause_counts


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
            ["git", "diff", "--no-index", "--word-diff", "--no-color", "--", str(pair.old),
             str(pair.new)], capture_output=True, check=False,
        )
        seconds = time.perf_counter() - t0
        if done.returncode not in (0, 1):
            raise click.ClickException(f"git diff failed: {done.stderr.decode(errors='replace')}")
        total += seconds
        slowest = max(slowest, seconds)
    return total, _cpu(resource.RUSAGE_CHILDREN) - cpu_before, slowest


def _peak_mb() -> float:
    # The largest single process, this one or a replay worker (Linux reports KiB).
    peaks = (resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
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
@click.option("--only", default="",
              help="Only documents whose path starts with this, e.g. openai/.")
@click.option("--list", "listing", type=click.Choice(["none", "substantive", "cosmetic", "all"]),
              default="none", show_default=True, help="List the pairs judged so, for spot checks.")
@click.option("--show", default=0, show_default=True,
              help="With --list: print up to N changes of each listed pair, with redlines.")
@click.option("--no-git", is_flag=True, help="Skip the git word-diff comparison.")
@click.option("--jobs", "-j", default=1, show_default=True, type=click.IntRange(min=1),
              help="Replay documents in this many processes (as `tostrack replay -j`).")
def main(
    corpus: Path | None, only: str, listing: str, show: int, no_git: bool, jobs: int
) -> None:
    """Replay CORPUS (default: ../shared/corpus next to the project) and print figures."""
    corpus = corpus or DEFAULT_CORPUS
    if not corpus.is_dir():
        raise click.ClickException(
            f"no corpus at {corpus}: pass the path of a folder of dated versions "
            "(e.g. a checkout of ../shared/corpus)")
    cpu_before = _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN)
    pairs, counts, wall = replay(corpus, only, keep_changes=listing != "none" and show > 0, jobs=jobs)
    cpu = _cpu(resource.RUSAGE_SELF) + _cpu(resource.RUSAGE_CHILDREN) - cpu_before
    if not pairs:
        raise click.ClickException(f"no pairs of dated versions under {corpus}")
    peak = _peak_mb()
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
    out(f"tostrack time                {wall:.2f} s wall, {cpu:.2f} s CPU "
        f"(extract, segment, classify, align; {jobs} process{'es' if jobs > 1 else ''})")
    out(f"slowest pair                 {slow.seconds:.3f} s  {slow.document} {slow.new.name}")
    out(f"peak memory (ru_maxrss)      {peak:.0f} MB")
    reextracted = [p for p in pairs if p.change_kind in REEXTRACTIONS]
    flagged = [p for p in reextracted if p.verdict == "substantive"]
    out(f"re-extractions (manifest)    {len(reextracted)}, judged substantive {len(flagged)}")
    failed = []
    if not no_git:
        git_total, git_cpu, git_slowest = git_word_diff(pairs)
        ratio = wall / git_total if git_total else float("inf")
        cpu_ratio = cpu / git_cpu if git_cpu else float("inf")
        out(f"git --word-diff time         {git_total:.2f} s wall, {git_cpu:.2f} s CPU "
            f"(slowest pair {git_slowest:.3f} s)")
        out(f"ratio tostrack / git         {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU "
            f"(target <= {TARGET_RATIO:g}x)")
        if ratio > TARGET_RATIO:
            failed.append("time ratio")
    if slow.seconds > TARGET_PAIR_SECONDS:
        failed.append("slowest pair")
    if peak > TARGET_MEMORY_MB:
        failed.append("peak memory")
    out("targets                      " + ("met" if not failed else "MISSED: " + ", ".join(failed)))
    for pair in flagged:
        out(f"  re-extraction judged substantive: {pair.document} "
            f"{pair.old.name} -> {pair.new.name}")
    if listing != "none":
        out("")
        for pair in pairs:
            if listing != "all" and pair.verdict != listing:
                continue
            s = pair.summary
            out(f"{pair.verdict:<11} {pair.document} {pair.old.name} -> {pair.new.name} "
                f"[{pair.change_kind}] {s['substantive']} substantive, {s['cosmetic']} cosmetic "
                f"({pair.seconds:.2f} s)")
            shown = [c for c in pair.changes if c["substantive"] == (pair.verdict == "substantive")]
            for change in shown[:show]:
                moved = " and moved" if change["moved"] and change["kind"] == "modified" else ""
                out(f"    {change['kind']}{moved} {_where(change)}")
                out(f"      {_redline(change)[:600]}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

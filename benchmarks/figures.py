"""Every figure of issue #14 in one run, and the README's figures table made from them.

    python benchmarks/figures.py                      # ../shared/corpus next to the project
    python benchmarks/figures.py --check /tmp/replay-reference.tsv   # and the same output?
    python benchmarks/figures.py --readme README.md   # also rewrite the README's table

Runs, each in a process of its own (so that each peak memory is its own), with this checkout's
tostrack first on the path (PYTHONPATH, unless set already):

1. replay_corpus.py: the replay in one process and with all cores, the slowest pair, peak
   memory, git's word diff of the same pairs and the ratios (`--check`: the output too);
2. import_corpus.py: the import in one process (kept for step 4), then with all cores;
3. report_incremental.py on that workspace: the full render, then nothing new;
4. run_hosts.py: 300 sources on 30 local hosts, 30 changes, `confirm_delay` 5 s;
5. classify_cost.py: the classifier's CPU time per distinct clause reading, rules against model.

Each script's own output is printed as it comes, then the table of figures (Markdown). With
`--readme`, the lines between `<!-- figures:begin -->` and `<!-- figures:end -->` become that
table. Exits 1 when a script reports a target missed (the table says which), 0 otherwise.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"

# (figure, script, the label its line starts with): the rows of the table, in order. A row's
# value is the rest of that line as the script printed it.
ROWS = (
    ("pairs", "replay", "pairs  "),
    ("pairs with substantive changes", "replay", "  with substantive changes"),
    ("pairs with cosmetic changes only", "replay", "  cosmetic only"),
    ("pairs identical after extraction", "replay", "  identical after extraction"),
    ("clause changes", "replay", "clause changes"),
    ("clauses per version", "replay", "clauses per version"),
    ("replay timing rounds", "replay", "rounds  "),
    ("machine speed", "replay", "machine speed"),
    ("replay, one process", "replay", "tostrack, one process"),
    ("replay, all cores", "replay", "tostrack, "),
    ("git `--word-diff`, same pairs", "replay", "git --word-diff time"),
    ("ratio to git, one process", "replay", "ratio tostrack / git"),
    ("ratio to git, all cores", "replay", "  "),
    ("slowest pair", "replay", "slowest pair"),
    ("peak memory, replay", "replay", "peak memory (ru_maxrss)"),
    ("replay output", "replay", "output, one process"),
    ("import of the corpus, one process", "import", "import time"),
    ("import of the corpus, all cores", "import-j", "import time"),
    ("peak memory, import", "import", "peak memory (ru_maxrss)"),
    ("`tostrack report`, full render", "report", "full render"),
    ("`tostrack report`, nothing new", "report", "nothing new, tostrack report"),
    ("report files and folders", "report", "modes"),
    ("300 sources on 30 hosts, 30 changes", "hosts", "run with changes"),
    ("the same, one source after another", "hosts", "one source after another"),
    ("300 sources: target", "hosts", "one confirmation + slowest host"),
    ("distinct clause readings classified", "classify", "distinct readings classified"),
    ("classifier, per distinct reading", "classify", "per reading"),
    ("classifier, rules' share", "classify", "of which rules (match_rules)"),
)


@dataclass
class Step:
    name: str
    command: list[str]
    output: str = ""
    code: int = 0


def _run(step: Step, env: dict[str, str]) -> None:
    """Run one script, echoing its output as it comes."""
    click.echo(f"$ {' '.join(step.command)}", err=True)
    process = subprocess.Popen(
        [sys.executable, *step.command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        click.echo(line, nl=False)
        lines.append(line)
    step.code = process.wait()
    step.output = "".join(lines)


def value(output: str, label: str, *, after: str = "") -> str:
    """The rest of the first line of `output` (after the line starting with `after`, if given)
    that starts with `label`; "" when there is none."""
    lines = output.splitlines()
    if after:
        starts = [k for k, line in enumerate(lines) if line.startswith(after)]
        lines = lines[starts[0] + 1 :] if starts else []
    for line in lines:
        if line.startswith(label):
            rest = line[len(label) :]
            return re.sub(r"\s+", " ", rest).strip(" :")
    return ""


def table(steps: dict[str, Step], heading: str) -> str:
    """The figures as a Markdown table, under a line saying when and where they were made."""
    rows = []
    for figure, name, label in ROWS:
        step = steps.get(name)
        if step is None:
            continue
        if figure == "replay, all cores":  # the "tostrack, N processes" line after one process
            found = value(step.output, label, after="tostrack, one process")
        elif figure == "ratio to git, all cores":  # the line below the one-process ratio
            found = value(step.output, label, after="ratio tostrack / git")
            found = found if "processes" in found else ""
        else:
            found = value(step.output, label)
        if figure == "replay output":  # the dump by its name: its folder says nothing to a reader
            found = re.sub(r"(?:/[^/\s]+)+/([^/\s]+)", r"\1", found)
        if found:
            rows.append(f"| {figure} | {found.replace('|', '/')} |")
    missed = missed_targets(steps)
    rows.append(
        "| targets of issue #14 | "
        + ("all met" if not missed else "missed: " + "; ".join(missed))
        + " |"
    )
    return "\n".join([heading, "", "| figure | value |", "|---|---|", *rows])


IMPORT_TARGET, REPORT_TARGET = 12.0, 0.5  # seconds (import_corpus.py, report_incremental.py)


def missed_targets(steps: dict[str, Step]) -> list[str]:
    """What each script says it missed (replay_corpus.py and run_hosts.py say MISSED; the
    import and the report print their times, read here against their targets)."""
    missed = []
    replay = steps.get("replay")
    if replay is not None and (replay.code or "MISSED" in replay.output):
        missed.append(
            "replay (" + value(replay.output, "targets").removeprefix("MISSED:").strip() + ")"
        )
    for name in ("import", "import-j"):
        step = steps.get(name)
        if step is None:
            continue
        wall = re.match(r"([\d.]+) s wall", value(step.output, "import time"))
        if step.code or not wall or float(wall.group(1)) > IMPORT_TARGET:
            missed.append(f"{name} (target {IMPORT_TARGET:g} s)")
    report = steps.get("report")
    if report is not None:
        beyond = re.search(r"beyond start-up ([\d.]+) s", report.output)
        if report.code or not beyond or float(beyond.group(1)) > REPORT_TARGET:
            missed.append(f"report with nothing new (target {REPORT_TARGET:g} s)")
    hosts = steps.get("hosts")
    if hosts is not None and (hosts.code or "MISSED" in hosts.output):
        missed.append("300 sources (target 3 confirmation delays)")
    return missed


def _replace_table(readme: Path, text: str) -> None:
    content = readme.read_text(encoding="utf-8")
    start, end = content.find(BEGIN), content.find(END)
    if start < 0 or end < start:
        raise click.ClickException(f"{readme} has no {BEGIN} ... {END} lines to replace")
    readme.write_text(
        content[: start + len(BEGIN)] + "\n" + text + "\n" + content[end:], encoding="utf-8"
    )


@click.command()
@click.argument("corpus", required=False, type=click.Path(path_type=Path))
@click.option(
    "--check",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A dump of benchmarks/replay_output.py the replay's output must equal.",
)
@click.option(
    "--readme",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Rewrite the figures table of this README.",
)
@click.option("--only", default="", help="Only documents whose path starts with this.")
@click.option("--no-hosts", is_flag=True, help="Skip the 300-source run.")
@click.option("--no-report", is_flag=True, help="Skip the report timings.")
def main(
    corpus: Path | None,
    check: Path | None,
    readme: Path | None,
    only: str,
    no_hosts: bool,
    no_report: bool,
) -> None:
    """Print every figure of issue #14 for CORPUS (default: ../shared/corpus)."""
    from tostrack.replay import all_cores

    corpus = (corpus or DEFAULT_CORPUS).resolve()
    if not corpus.is_dir():
        raise click.ClickException(f"no corpus at {corpus}")
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", str(ROOT))  # this checkout, not an installed tostrack
    cores = all_cores()
    scratch = Path(tempfile.mkdtemp(prefix="tostrack-figures-"))
    workspace = scratch / "workspace"
    steps = {
        "replay": Step(
            "replay",
            [
                str(HERE / "replay_corpus.py"),
                str(corpus),
                "--no-import",
                *(["--check", str(check)] if check else []),
                *(["--only", only] if only else []),
            ],
        ),
        "import": Step(
            "import",
            [str(HERE / "import_corpus.py"), str(corpus), "--keep", str(workspace)]
            + (["--only", only] if only else []),
        ),
        "import-j": Step(
            "import-j",
            [str(HERE / "import_corpus.py"), str(corpus), "-j", str(cores)]
            + (["--only", only] if only else []),
        ),
    }
    if not no_report:
        steps["report"] = Step(
            "report", [str(HERE / "report_incremental.py"), "--workspace", str(workspace)]
        )
    if not no_hosts:
        steps["hosts"] = Step("hosts", [str(HERE / "run_hosts.py")])
    steps["classify"] = Step(
        "classify",
        [str(HERE / "classify_cost.py"), str(corpus), *(["--only", only] if only else [])],
    )
    try:
        for step in steps.values():
            _run(step, env)
            if step.name == "import" and step.code and not workspace.is_dir():
                steps.pop("report", None)  # nothing imported to report on
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    heading = (
        f"Figures of {datetime.now(timezone.utc):%Y-%m-%d} (`python benchmarks/figures.py`; "
        f"{cores} cores, load average {load:.1f} at the end, Python {platform.python_version()}; "
        "compare CPU times when the machine is shared):"
    )
    text = table(steps, heading)
    click.echo("")
    click.echo(text)
    if readme is not None:
        _replace_table(readme, text)
        click.echo(f"\n{readme}: figures table rewritten")
    sys.exit(1 if missed_targets(steps) else 0)


if __name__ == "__main__":
    main()

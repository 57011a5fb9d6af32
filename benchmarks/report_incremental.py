"""Time `tostrack report` on the imported corpus: a full render, then renders with nothing new.

    python benchmarks/report_incremental.py                  # imports ../shared/corpus first
    python benchmarks/import_corpus.py --keep /tmp/ws        # or import once (slow) ...
    python benchmarks/report_incremental.py --workspace /tmp/ws   # ... and reuse it

The site is written to a new folder each time (as `tostrack report --output DIR`), so the
workspace's own reports/ is left alone. Prints the full render's wall and CPU time and peak
memory, the files and their modes, then the render with nothing new (in this process, repeated,
and as the whole `tostrack report` command next to the same command on an empty workspace, i.e.
the start-up). Target (issue #14): nothing new in at most 0.5 s beyond start-up.
"""

from __future__ import annotations

import dataclasses
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
TARGET_SECONDS = 0.5


def _render(workspace_root: Path, output: Path) -> tuple[float, float]:
    """render_site into output; (wall, CPU) seconds."""
    from tostrack.render import render_site
    from tostrack.store import Store
    from tostrack.workspace import Workspace

    workspace = dataclasses.replace(Workspace.open(workspace_root), reports_root=output)
    cpu, wall = time.process_time(), time.perf_counter()
    with Store(workspace.root, read_only=True) as store:
        render_site(workspace, store)
    return time.perf_counter() - wall, time.process_time() - cpu


def _command(*args: str) -> float:
    """Wall time of one `tostrack` command in a new process."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tostrack", *args], check=True, capture_output=True, cwd=ROOT
    )
    return time.perf_counter() - started


def _modes(folder: Path) -> str:
    files = Counter(oct(stat.S_IMODE(p.stat().st_mode)) for p in folder.rglob("*") if p.is_file())
    folders = Counter(oct(stat.S_IMODE(p.stat().st_mode)) for p in folder.rglob("*") if p.is_dir())
    show = ", ".join
    return (
        f"files {show(f'{n} x {m}' for m, n in files.items())}; "
        f"folders {show(f'{n} x {m}' for m, n in folders.items())}"
    )


@click.command()
@click.argument("corpus", required=False, type=click.Path(path_type=Path))
@click.option(
    "--workspace",
    "workspace_root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A workspace the corpus was imported into (benchmarks/import_corpus.py --keep).",
)
@click.option("--repeat", default=5, show_default=True, type=click.IntRange(min=1))
def main(corpus: Path | None, workspace_root: Path | None, repeat: int) -> None:
    """Print full and nothing-new report times on the imported corpus."""
    scratch = Path(tempfile.mkdtemp(prefix="tostrack-report-"))
    try:
        if workspace_root is None:
            sys.path.insert(0, str(Path(__file__).parent))
            from import_corpus import import_corpus

            corpus = (corpus or DEFAULT_CORPUS).resolve()
            if not corpus.is_dir():
                raise click.ClickException(f"no corpus at {corpus}")
            workspace_root = scratch / "workspace"
            click.echo(f"importing {corpus} (once) ...")
            import_corpus(corpus, workspace_root, jobs=2)
        site = scratch / "site"
        wall, cpu = _render(workspace_root, site)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        files = [p for p in site.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        click.echo(f"full render                  {wall:.2f} s wall, {cpu:.2f} s CPU")
        click.echo(f"peak memory (ru_maxrss)      {peak:.0f} MB")
        click.echo(f"site                         {len(files)} files, {size / 1e6:.0f} MB")
        click.echo(f"modes (umask {_umask():03o})         {_modes(site)}")
        nothing_new = [_render(workspace_root, site) for _ in range(repeat)]
        best = min(nothing_new)
        click.echo(
            f"nothing new, render_site     {best[0]:.3f} s wall, {best[1]:.3f} s CPU (best of "
            f"{repeat}; all: {', '.join(f'{w:.3f}' for w, _ in nothing_new)}; target <= "
            f"{TARGET_SECONDS:g} s)"
        )
        empty = scratch / "empty"
        empty.mkdir()
        command = min(
            _command("-w", str(workspace_root), "report", "--output", str(site)) for _ in range(5)
        )
        startup = min(_command("-w", str(empty), "report") for _ in range(5))
        click.echo(
            f"nothing new, tostrack report {command:.2f} s wall; on an empty workspace "
            f"(start-up) {startup:.2f} s; beyond start-up {command - startup:.2f} s (best of 5)"
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _umask() -> int:
    from tostrack.render.pages import current_umask

    return current_umask()


if __name__ == "__main__":
    main()

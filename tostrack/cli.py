"""The tostrack command line: parse options, call one library function, print.

No tracking logic lives here; see pipeline.py for the path data takes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import click

from tostrack.errors import TostrackError
from tostrack.workspace import Workspace

EXIT_OK = 0
EXIT_CHANGES = 1  # diff: substantive changes found
EXIT_TROUBLE = 2  # usage, configuration or input error
EXIT_SOURCES_FAILED = 3  # run: at least one source failed (details on stderr)
EXIT_LOCKED = 75  # run: another run holds the workspace lock


def _workspace(ctx: click.Context) -> Workspace:
    return Workspace.open(ctx.obj.get("workspace"))


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


class _Group(click.Group):
    """Turns errors a user can act on into a message and an exit status, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from tostrack.errors import LockedError

        try:
            return super().invoke(ctx)
        except LockedError as exc:
            click.echo(f"tostrack: {exc}", err=True)
            ctx.exit(EXIT_LOCKED)
        except TostrackError as exc:
            click.echo(f"tostrack: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (OSError, sqlite3.OperationalError) as exc:
            # The environment, not a bug: a read-only or full disk, a file where a folder goes.
            click.echo(f"tostrack: error: {_environment_error(exc)}", err=True)
            ctx.exit(EXIT_TROUBLE)


def _environment_error(exc: BaseException) -> str:
    """What went wrong with the disk or the database, and what to do about it."""
    import errno

    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if "readonly" in text or "unable to open" in text:
            return (
                f"the database cannot be written ({text}). Make the workspace and its "
                "tostrack.db writable by this user; status, history and report only read it."
            )
        return f"database error ({text}). Check the disk, then run again."
    name = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
    what = f"{name}{exc.strerror or exc}" if isinstance(exc, OSError) else str(exc)
    code = getattr(exc, "errno", None)
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        fix = (
            "Make the workspace writable by this user (status, history and `report --output "
            "DIR` work on a read-only one)."
        )
    elif code in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        fix = "A file is where tostrack needs a folder (or the reverse): move it away."
    elif code == errno.ENOSPC:
        fix = "The disk is full: free some space and run again."
    else:
        fix = "Check the path and its permissions, then run again."
    return f"cannot access {what}. {fix}"


@click.group(
    cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.option(
    "--workspace",
    "-w",
    type=click.Path(file_okay=False),
    envvar="TOSTRACK_WORKSPACE",
    help="Workspace folder (default: the current folder; or $TOSTRACK_WORKSPACE).",
)
@click.version_option(package_name="tostrack")
@click.pass_context
def cli(ctx: click.Context, workspace: str | None) -> None:
    """Track AI providers' terms of service clause by clause, and tell legal teams what changed.

    \b
    Quick start:
      tostrack demo                 the whole pipeline offline, on bundled sample documents
      tostrack init                 write a commented tostrack.toml in the current folder
      tostrack config check         check tostrack.toml completely, without running anything
      tostrack run                  fetch due sources, record changes, render reports, send email
      tostrack diff old.html new.html --format json
    """
    ctx.ensure_object(dict)
    ctx.obj["workspace"] = workspace


@cli.command()
@click.option("--force", is_flag=True, help="Overwrite an existing tostrack.toml.")
@click.pass_context
def init(ctx: click.Context, force: bool) -> None:
    """Write a commented tostrack.toml in the workspace.

    \b
    Example:
      mkdir legal-watch && cd legal-watch && tostrack init && $EDITOR tostrack.toml
    """
    from tostrack.config_template import write_config

    # Not checked: init may be asked to overwrite a broken file (--force).
    path = write_config(Workspace.open(ctx.obj.get("workspace"), check=False), force=force)
    click.echo(f"Wrote {path}. Edit it, then run: tostrack run")


@cli.command()
@click.option("--force", is_flag=True, help="Fetch every source now, whatever its interval.")
@click.option(
    "--source", "only", multiple=True, help="Only this source id or provider (repeatable)."
)
@click.option("--no-send", is_flag=True, help="Queue notifications but do not send them.")
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False),
    help="Also append what this run prints, with a timestamp, to this file.",
)
@click.pass_context
def run(
    ctx: click.Context, force: bool, only: tuple[str, ...], no_send: bool, log_file: str | None
) -> None:
    """Fetch due sources, record changes, render reports and send notifications.

    Made for cron: silent when nothing changed, a short summary on stdout when something did,
    problems on stderr. Exit status: 0 ran fine, 3 some sources failed or mail could not be
    sent, 75 another run holds the lock (nothing was done), 2 configuration error.

    \b
    Examples:
      tostrack run                          # what cron runs, e.g. hourly
      tostrack run --force --source openai  # fetch OpenAI's documents now
      tostrack run --log-file /var/log/tostrack.log
    """
    from tostrack.pipeline import run as run_pipeline

    ws = _workspace(ctx)
    _check_only(ws, only)
    result = run_pipeline(ws, force=force, only=only, send=not no_send)
    lines: list[tuple[str, bool]] = [(m, m.startswith("warning")) for m in result.messages]
    for r in result.results:
        if r.status == "changed":
            lines.append((f"changed  {r.source.id}: {r.substantive} substantive change(s)", False))
        elif r.status == "first":
            lines.append((f"tracking {r.source.id}: first version stored", False))
        elif r.status == "effective-date" and r.version is not None:
            date = r.version.effective_date or "none"
            lines.append(
                (f"dated    {r.source.id}: effective date now {date} (no clause changed)", False)
            )
    lines += [(f"report   {path}", False) for path in result.reports]
    if result.notifications_sent:
        lines.append((f"sent     {result.notifications_sent} notification(s) by SMTP", False))
    if result.eml_files:
        count = len(result.eml_files)
        lines.append(
            (f"written  {count} notification(s) to outbox/ as .eml, not sent (no [smtp])", False)
        )
    lines += [(f"email    {path}", False) for path in result.eml_files]
    for r in result.failed:
        reason = r.failure.reason if r.failure else "unknown"
        lines.append(
            (f"failed   {r.source.id}: {reason} (failure {r.consecutive_failures} in a row)", True)
        )
    lines += [(f"mail     {err}", True) for err in result.notification_errors]
    if result.summary:
        lines.append((result.summary, True))  # the one line to read when everything failed
    for text, to_stderr in lines:
        click.echo(text, err=to_stderr)
    if log_file and lines:
        _append_log(Path(log_file), [text for text, _ in lines])
    if result.failed or result.notification_errors:
        sys.exit(EXIT_SOURCES_FAILED)


def _check_only(ws: Workspace, only: tuple[str, ...]) -> None:
    """`run --source X`: X must be a watched source id or provider (a typo used to run nothing
    and exit 0)."""
    from tostrack.config import did_you_mean
    from tostrack.errors import ConfigError
    from tostrack.sources import load_sources

    if not only:
        return
    watched = load_sources(ws.settings)
    names = {s.id for s in watched} | {s.provider for s in watched}
    for name in only:
        if name not in names:
            raise ConfigError(
                f"--source {name!r} is neither a source id nor a provider this workspace watches."
                f"{did_you_mean(name, sorted(names))} `tostrack sources list` shows them."
            )


def _append_log(path: Path, lines: list[str]) -> None:
    from tostrack.clock import now_iso

    stamp = now_iso()
    try:
        with path.open("a", encoding="utf-8") as fh:
            fh.writelines(f"{stamp} {line}\n" for line in lines)
    except OSError as exc:
        click.echo(f"tostrack: cannot write the log file {path}: {exc.strerror}", err=True)


def _clause_line(clause: dict[str, Any] | list | None) -> str:
    if clause is None:
        return ""
    if isinstance(clause, list):
        return " + ".join(c["section"] or c["id"] for c in clause)
    return clause["section"] or clause["id"]


@cli.command()
@click.argument("old", type=click.Path(exists=True, dir_okay=False))
@click.argument("new", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--all", "show_all", is_flag=True, help="Also show cosmetic changes (text format).")
@click.pass_context
def diff(ctx: click.Context, old: str, new: str, fmt: str, show_all: bool) -> None:
    """Compare two versions of a document (.html, .md, .txt or .pdf) clause by clause.

    Exit status as diff(1): 0 no substantive change, 1 substantive changes, 2 trouble.

    \b
    Examples:
      tostrack diff terms-2024.html terms-2025.html
      tostrack diff old.md new.md --format json | jq '.changes[] | select(.severity=="high")'
    """
    from tostrack.output import diff_json, format_diff_text
    from tostrack.pipeline import compare_files

    severity = _workspace(ctx).config.severity_overrides
    comparison = compare_files(old, new, severity)
    if fmt == "json":
        _echo_json(diff_json(comparison, old_name=old, new_name=new))
    else:
        click.echo(
            format_diff_text(comparison, show_all=show_all, color=sys.stdout.isatty()), nl=False
        )
    sys.exit(EXIT_CHANGES if comparison.diff.substantive else EXIT_OK)


@cli.command()
@click.argument("file", required=False, default="-")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--jsonl",
    is_flag=True,
    help="Read JSON lines with 'id', 'text' and optionally 'section'; write one result per line.",
)
@click.option(
    "--input-format",
    type=click.Choice(["auto", "html", "markdown", "text"]),
    default="auto",
    help="How to read FILE (auto: by suffix; stdin defaults to text).",
)
@click.option(
    "--explain",
    is_flag=True,
    help="Show what decided each label: the rule id, the lead-in, or the learned model's "
    "probability and heaviest words; and rule matches a veto blocked.",
)
def classify(file: str, fmt: str, jsonl: bool, input_format: str, explain: bool) -> None:
    """Split a document into clauses and label each one.

    \b
    Examples:
      tostrack classify terms.html --format json
      echo "You may not use Output to develop competing models." | tostrack classify -
      echo "We may train our models on your chats unless you opt out." | tostrack classify - --explain
      tostrack classify --jsonl clauses.jsonl > labelled.jsonl
    """  # noqa: E501 - the example is one command line
    from tostrack.output import classify_document, classify_jsonl_lines, explain_lines

    if jsonl:
        stream = click.open_file(file, "r", encoding="utf-8")
        for line in classify_jsonl_lines(stream, explain):
            click.echo(line)
        return
    result = classify_document(file, input_format, explain)
    if fmt == "json":
        _echo_json(result)
        return
    for clause in result["clauses"]:
        labels = ", ".join(clause["labels"]) or "-"
        click.echo(f"[{clause['section'] or clause['id']}] {labels}")
        click.echo(f"    {clause['text'][:200]}")
        for line in explain_lines(clause.get("explain", [])):
            click.echo(line)


@cli.command()
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "text"]), default="jsonl", show_default=True
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Replay this many documents at once, in separate processes (output order is kept); "
    "default: all cores.",
)
def replay(dirs: tuple[str, ...], fmt: str, jobs: int | None) -> None:
    """Diff each consecutive pair of dated versions in each DIR (touches no workspace).

    Each DIR holds versions of one document named by capture time, e.g.
    2024-05-02T00-30-06Z.md. One JSON line per pair: {"document", "from", "to", ...diff}.

    \b
    Example:
      tostrack replay ../shared/corpus/openai/terms-of-use | jq -c '.summary'
    """
    from tostrack.replay import all_cores, replay_lines

    form = "json" if fmt == "jsonl" else "summary"
    for line in replay_lines([Path(d) for d in dirs], jobs=jobs or all_cores(), form=form):
        click.echo(line)


@cli.command(name="import")
@click.argument("source_id")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--url", default="", help="The document's URL, recorded with each version.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Extract and classify versions in this many processes while earlier ones are stored "
    "(1: all in this one); default: all cores.",
)
@click.pass_context
def import_history(
    ctx: click.Context, source_id: str, directory: str, url: str, jobs: int | None
) -> None:
    """Backfill a dated history of one document into the workspace, without alerting.

    DIRECTORY holds versions named by capture time (YYYY-MM-DDTHH-MM-SSZ.md/.html/.txt), e.g.
    a folder of an Open Terms Archive versions checkout. Each is recorded as if crawled then.

    \b
    Example:
      tostrack import openai/terms-of-use ../shared/corpus/openai/terms-of-use
    """
    from tostrack.config import check_source_id
    from tostrack.history import import_directory
    from tostrack.sources import find_source, load_sources

    ws = _workspace(ctx)
    check_source_id(source_id, "import")
    # Only a source the workspace watches: anything else would be an orphan nobody fetches.
    find_source(load_sources(ws.settings), source_id)
    from tostrack.replay import all_cores

    result = import_directory(ws, source_id, Path(directory), url=url, jobs=jobs or all_cores())
    click.echo(
        f"Imported {result.versions} version(s) of {source_id} "
        f"({result.changes} with substantive changes, {result.skipped} identical skipped)."
    )
    for line in result.rejected:  # what `run` would have recorded as a failed fetch
        click.echo(f"skipped {line}", err=True)


@cli.command()
@click.argument("source", required=False)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.pass_context
def history(ctx: click.Context, source: str | None, fmt: str) -> None:
    """List the stored versions and failures of SOURCE (or of every tracked source).

    \b
    Examples:
      tostrack history
      tostrack history openai/terms-of-use --format json
    """
    from tostrack.history import source_history

    data = source_history(_workspace(ctx), source)
    if fmt == "json":
        _echo_json(data)
        return
    entries = [data] if source else data["sources"]
    for entry in entries:
        click.echo(entry["source"])
        for v in entry["versions"]:
            changes = v.get("substantive_changes")
            note = f", {changes} substantive change(s)" if changes else ""
            if v.get("effective_date_only"):
                was, now = v["previous_effective_date"] or "none", v["effective_date"] or "none"
                note += f", effective date {was} -> {now} only"
            if v.get("redirect"):
                note += f", redirected {v['redirect']}"
            click.echo(
                f"  {v['captured_at']}  {v['clauses']} clauses  sha256 {v['sha256'][:12]}{note}"
            )
        for f in entry["failures"]:
            click.echo(f"  {f['at']}  FAILED {f['reason']}")


@cli.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False),
    help=(
        "Write the site here instead of the workspace's reports/ (e.g. for a read-only workspace)."
    ),
)
@click.pass_context
def report(ctx: click.Context, output: str | None) -> None:
    """Render the HTML reports (dashboard, change reports, timelines, feeds) into reports/.

    Only reads the database, so it works on a read-only workspace with --output.

    \b
    Examples:
      tostrack report && xdg-open reports/index.html
      tostrack -w /mnt/legal-watch report --output /tmp/site
    """
    import dataclasses

    from tostrack.render import render_site

    ws = _workspace(ctx)
    if output:
        ws = dataclasses.replace(ws, reports_root=Path(output).expanduser().resolve())
    with ws.open_store(read_only=True) as store:
        index = render_site(ws, store)
    click.echo(f"Reports in {index.parent} (open {index})")


@cli.command()
@click.option(
    "--dry-run",
    is_flag=True,
    help="Write what is queued as .eml previews in preview/; send nothing, change nothing.",
)
@click.pass_context
def notify(ctx: click.Context, dry_run: bool) -> None:
    """Send every queued notification now, and say what was sent, what failed and why.

    Messages waiting to retry after a failed attempt go now too (you just fixed the mail
    server); `run` keeps their backoff. Without [smtp], messages are written to outbox/ as
    .eml files: "written", not "sent". Exit status 3 when a message could not be sent.

    \b
    Examples:
      tostrack notify
      tostrack notify --dry-run && ls preview/
    """
    from tostrack.lock import workspace_lock
    from tostrack.notify import send_pending

    ws = _workspace(ctx)
    # On a shared database no lock: each message is claimed by the one worker sending it.
    lock = contextlib.nullcontext() if ws.shared_database else workspace_lock(ws.lock_path)
    with lock, ws.open_store() as store:
        summary = send_pending(ws, store, dry_run=dry_run, ignore_backoff=True)
    for o in summary.outcomes:
        where = f" ({o.detail})" if o.detail else ""
        line = f"{o.state:<8} {o.recipient}: {o.subject}{where}"
        click.echo(line, err=o.state in ("failed", "rejected", "uncertain"))
    counts: dict[str, int] = {}
    for o in summary.outcomes:
        counts[o.state] = counts.get(o.state, 0) + 1
    if not summary.outcomes:
        click.echo(
            "nothing queued: every message has been sent or written already"
            " (`tostrack outbox` lists them)"
        )
    elif dry_run:
        click.echo(f"{counts['preview']} preview(s) in {ws.preview_dir}; nothing was sent")
    else:
        click.echo(", ".join(f"{n} {state}" for state, n in counts.items()))
    if summary.failed:
        sys.exit(EXIT_SOURCES_FAILED)


@cli.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default="tostrack-demo",
    show_default=True,
    help="Where to leave the demo workspace.",
)
def demo(directory: str) -> None:
    """Run the whole pipeline offline on bundled sample documents.

    Serves two versions of a few sample provider documents from 127.0.0.1, tracks the first,
    then the second, and leaves the change reports in DIR/reports/ and the notification emails
    (as .eml files, since no mail server is configured) in DIR/outbox/.
    """
    from tostrack.demo import run_demo

    outcome = run_demo(Path(directory))
    click.echo(f"Demo workspace: {outcome.workspace}")
    for line in outcome.lines:
        click.echo(f"  {line}")
    click.echo(f"Dashboard:      {outcome.index}")
    for path in outcome.reports:
        click.echo(f"Change report:  {path}")
    for path in outcome.emails:
        click.echo(f"Email:          {path}")


# -- sources, status, evaluation, export, scheduling -----------------------------------------


@cli.group()
def sources() -> None:
    """The documents this workspace watches (the bundled registry and tostrack.toml).

    \b
    Examples:
      tostrack sources list
      tostrack sources list --format json | jq -r '.[].id'
      tostrack sources show openai/terms-of-use
      tostrack sources validate acme/terms
    """


@sources.command(name="list")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--registry", "whole_registry", is_flag=True, help="List the whole bundled registry.")
@click.pass_context
def sources_list(ctx: click.Context, fmt: str, whole_registry: bool) -> None:
    """List the sources the workspace tracks (or the whole bundled registry)."""
    from tostrack.sources import load_sources, registry, source_to_json

    found = registry() if whole_registry else load_sources(_workspace(ctx).settings)
    if fmt == "json":
        _echo_json([source_to_json(s) for s in found])
        return
    width = max((len(s.id) for s in found), default=10)
    for s in found:
        browser = "  (browser)" if s.browser else ""
        click.echo(f"{s.id:<{width}}  {s.title}{browser}")


@sources.command(name="show")
@click.argument("source_id")
@click.pass_context
def sources_show(ctx: click.Context, source_id: str) -> None:
    """Show one source's declaration as JSON."""
    from tostrack.sources import find_source, load_sources, registry, source_to_json

    declared = load_sources(_workspace(ctx).settings)
    known = {s.id: s for s in (*registry(), *declared)}
    _echo_json(source_to_json(find_source(tuple(known.values()), source_id)))


@sources.command(name="validate")
@click.argument("source_ids", nargs=-1)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.pass_context
def sources_validate(ctx: click.Context, source_ids: tuple[str, ...], fmt: str) -> None:
    """Fetch each source twice and check both extract to the same, non-trivial document.

    Exit status 0 when every source checked is fine, 3 otherwise.
    """
    import dataclasses

    from tostrack.fetch import FetchConfig, Fetcher
    from tostrack.sources import find_source, load_sources
    from tostrack.sources.validate import validate_source

    ws = _workspace(ctx)
    declared = load_sources(ws.settings)
    chosen = [find_source(declared, i) for i in source_ids] if source_ids else list(declared)
    config = FetchConfig.from_settings(ws.settings)
    results = []
    with Fetcher(config) as fetcher:
        for source in chosen:
            result = validate_source(source, fetcher)
            results.append(result)
            if fmt == "text":
                state = "ok    " if result.ok else "FAILED"
                click.echo(
                    f"{state} {result.source_id}: {result.clauses} clauses, "
                    f"{result.characters} characters"
                )
                for problem in result.problems:
                    click.echo(f"       - {problem}")
    if fmt == "json":
        _echo_json([dataclasses.asdict(r) for r in results])
    if not all(r.ok for r in results):
        sys.exit(EXIT_SOURCES_FAILED)


@cli.command()
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.pass_context
def status(ctx: click.Context, fmt: str) -> None:
    """Show each source's state: last check, last success, failures, current version, next due.

    Exit status 0 when every source works, 3 when one is failing or broken (its last check
    failed; see the NOTE column), 2 when the workspace cannot be read.

    \b
    Example:
      tostrack status --format json | jq '.[] | select(.state != "ok")'
    """
    from tostrack.clock import now
    from tostrack.sources import load_sources
    from tostrack.status import format_status, workspace_status

    ws = _workspace(ctx)
    declared = load_sources(ws.settings)
    broken_after = ws.config.notify.broken_after
    with ws.open_store(read_only=True) as store:
        rows = workspace_status(store, declared, now(), broken_after=broken_after)
    if fmt == "json":
        _echo_json(rows)
    else:
        click.echo(format_status(rows), nl=False)
    if any(r["state"] in ("failing", "broken") for r in rows):
        sys.exit(EXIT_SOURCES_FAILED)


@cli.command(name="eval")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--exclude-unsure",
    is_flag=True,
    help='Leave out clauses marked "unsure": true (where careful readers disagree).',
)
def evaluate_command(file: str | None, fmt: str, exclude_unsure: bool) -> None:
    """Measure the classifier on labelled clauses (JSON lines with id, text, labels, and
    optionally section and unsure).

    FILE defaults to tests/data/dev_clauses.jsonl in a source checkout. The shipped model has
    learned from the shared real clauses: figures on that file are on training data; the
    honest figure is benchmarks/eval_classifier.py --cv (train on 12 documents, test on the
    13th).

    \b
    Examples:
      tostrack eval tests/data/heldout_clauses.jsonl --format json | jq .micro
      tostrack eval ../shared/labels/real-clauses.jsonl --exclude-unsure
    """
    from tostrack.errors import InputError
    from tostrack.evaluate import evaluate

    path = Path(file or "tests/data/dev_clauses.jsonl")
    if not path.exists():
        raise InputError(f"{path} does not exist; pass a JSON-lines file of labelled clauses")
    report = evaluate(path, exclude_unsure)
    if fmt == "json":
        _echo_json(report.to_json())
    else:
        click.echo(report.format_text(), nl=False)


@cli.command()
@click.option(
    "--what", type=click.Choice(["clauses", "changes"]), default="changes", show_default=True
)
@click.option(
    "--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True
)
@click.pass_context
def export(ctx: click.Context, what: str, fmt: str) -> None:
    """Export the current clauses of every tracked document, or every recorded change.

    \b
    Examples:
      tostrack export --what clauses --format csv > clauses.csv
      tostrack export --what changes | jq '.[] | select(.severity == "high")'
    """
    from tostrack.render import export_records

    ws = _workspace(ctx)
    with ws.open_store(read_only=True) as store:
        click.echo(export_records(store, what, fmt), nl=False)


@cli.command()
@click.option(
    "--every",
    default="hourly",
    show_default=True,
    help="How often cron or the timer starts a run: hourly, daily, 15m, 6h, ... "
    "(each source still keeps its own interval).",
)
@click.option("--log-file", type=click.Path(dir_okay=False), help="Log file for the run command.")
@click.pass_context
def cron(ctx: click.Context, every: str, log_file: str | None) -> None:
    """Print a crontab line and a systemd service + timer for this workspace.

    \b
    Example:
      tostrack cron >> /tmp/tostrack-cron.txt && crontab -e
    """
    import shutil

    from tostrack.schedule import cron_text

    ws = _workspace(ctx)
    executable = shutil.which("tostrack") or f"{sys.executable} -m tostrack"
    click.echo(
        cron_text(
            ws.root.resolve(),
            executable,
            every=every,
            log_file=Path(log_file) if log_file else None,
        ),
        nl=False,
    )


@cli.group(invoke_without_command=True)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.pass_context
def outbox(ctx: click.Context, fmt: str) -> None:
    """List the notification outbox: every message, its state and its last error.

    States: queued (waiting, or retrying with backoff), in-flight, sent (taken by the SMTP
    server), written (an .eml in outbox/, since there is no [smtp] table: not sent), uncertain
    (a run stopped after the mail server may have taken it: check the server's log), rejected
    (refused for good by the server).

    \b
    Examples:
      tostrack outbox
      tostrack outbox --format json | jq '.[] | select(.state == "queued")'
      tostrack outbox resend 12
    """
    if ctx.invoked_subcommand is not None:
        return
    from tostrack.notify import outbox_rows

    ws = _workspace(ctx)
    with ws.open_store(read_only=True) as store:
        rows = outbox_rows(store)
    if fmt == "json":
        _echo_json(rows)
        return
    for r in rows:
        error = (
            f"  ({r['last_error']})"
            if r["last_error"] and r["state"] not in ("sent", "written")
            else ""
        )
        click.echo(
            f"{r['id']:>5}  {r['state']:<10} {r['recipient']:<30} {r['subject'] or ''}{error}"
        )


@outbox.command(name="resend")
@click.argument("message_id", type=int)
@click.pass_context
def outbox_resend(ctx: click.Context, message_id: int) -> None:
    """Queue an uncertain or rejected message again (after checking the mail server's log)."""
    from tostrack.lock import workspace_lock
    from tostrack.notify import requeue

    ws = _workspace(ctx)
    with workspace_lock(ws.lock_path), ws.open_store() as store:
        done = requeue(store, message_id)
    click.echo(
        f"message {done['id']} to {done['recipient']} queued again (was {done['was']}); "
        "the next `tostrack notify` or `run` sends it"
    )


@cli.command()
@click.option(
    "--force", is_flag=True, help="Replace a database that is readable and records versions."
)
@click.pass_context
def rebuild(ctx: click.Context, force: bool) -> None:
    """Recreate tostrack.db from the captures in snapshots/, without alerting anyone.

    Each capture folder keeps its raw bytes (snapshot.json) and its extracted version
    (version.json, with clause ids): versions and diffs are recorded again from them, oldest
    first. For a database that was emptied, deleted or corrupted (`run` refuses one and says
    to run this). The old file is kept aside as tostrack.db.before-rebuild-<time>. The outbox
    and the failure history are not in the captures: they start empty.

    \b
    Example:
      tostrack rebuild && tostrack status
    """
    from tostrack.recovery import rebuild as rebuild_database

    ws = _workspace(ctx)
    result = rebuild_database(ws, force=force)
    click.echo(
        f"Rebuilt {ws.db_path.name}: {result.versions} version(s) of "
        f"{result.sources} source(s), {result.changes} with substantive changes, "
        f"{result.effective_date_changes} effective-date change(s); nobody was notified."
    )
    if result.kept_aside:
        click.echo(f"The previous database is kept as {result.kept_aside}")
    for line in result.skipped:
        click.echo(f"skipped  {line}", err=True)


@cli.group(name="store")
def store_group() -> None:
    """The database and the evidence folder: copy to PostgreSQL, check they agree.

    \b
    Examples:
      tostrack store migrate --to postgresql://tostrack@db.example/tostrack
      tostrack store check
    """


@store_group.command(name="migrate")
@click.option(
    "--to",
    metavar="URL",
    help="The PostgreSQL to copy into (default: [store] url). Its password comes from [store] "
    "password_env, a libpq service file or ~/.pgpass, never the URL.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Delete the records the target already holds and copy this workspace's in their place.",
)
@click.pass_context
def store_migrate(ctx: click.Context, to: str | None, replace: bool) -> None:
    """Copy this workspace's tostrack.db into a PostgreSQL database, verified.

    Every table is copied in one transaction and compared before it commits: the report lists
    rows and a checksum per table on both sides. Exit status 0 when all agree; 1 when any
    differs (nothing was committed); 2 when the copy could not be made, e.g. a target that
    already holds records (refused unless --replace). An interrupted copy commits nothing:
    run it again. The SQLite file is left in place; add [store] url to tostrack.toml to use
    the copy. The snapshots stay files: when [store] evidence names a shared folder, the
    workspace's snapshots/ is copied there first (what is there already is kept, and a re-run
    finishes an interrupted copy); `tostrack store check` then proves both agree.

    \b
    Example:
      tostrack store migrate --to postgresql://tostrack@db.example/tostrack
    """
    from tostrack.storage import migrate_to_postgres

    migration = migrate_to_postgres(_workspace(ctx), to, replace=replace)
    report, evidence = migration.records, migration.evidence
    if evidence is not None:
        click.echo(
            f"evidence {evidence.source} -> {evidence.target}: {evidence.captures} capture(s) "
            f"and {evidence.objects} raw file(s) copied, {evidence.present} already there"
        )
    click.echo(f"from {report.source}\ninto {report.target}\n")
    click.echo(f"{'table':<16} {'rows':>8}  {'checksum':<16}  {'copied':>8}  {'checksum':<16}")
    for t in report.tables:
        mark = "" if t.agrees else "  DIFFERS"
        click.echo(
            f"{t.table:<16} {t.source_rows:>8}  {t.source_checksum[:16]}  "
            f"{t.target_rows:>8}  {t.target_checksum[:16]}{mark}"
        )
    if not report.committed:
        click.echo(
            "\nThe copy differs from the source; it was rolled back and the target is as it was.",
            err=True,
        )
        ctx.exit(EXIT_CHANGES)
    replaced = f" (after deleting the {report.replaced} row(s) it held)" if report.replaced else ""
    click.echo(
        f"\nAll {len(report.tables)} tables agree: {report.rows} row(s) copied in one "
        f"transaction{replaced}. Set [store] url in tostrack.toml to record there."
    )


@store_group.command(name="check")
@click.pass_context
def store_check(ctx: click.Context) -> None:
    """Check that the database and the evidence folder agree.

    Every version's capture folder and raw snapshots must exist and hash to the sha256 the
    database recorded; every file in the evidence folder must belong to a version (or to a
    capture of raw bytes that matched one). Reads only. Exit status 0 when they agree; 1 with
    one line per problem (missing, corrupt, mismatch, unreadable, unreferenced); 2 when the
    database or the evidence folder cannot be read. A run in progress may show its newest
    files as unreferenced until it records them.

    \b
    Example:
      tostrack store check || echo "restore from the backup"
    """
    from tostrack.storage import check_workspace

    report = check_workspace(_workspace(ctx))
    click.echo(
        f"{report.versions} version(s) of {report.sources} source(s) in {report.database}; "
        f"{report.files} raw file(s), {report.size:,} bytes hashed in {report.folder}"
    )
    for problem in report.problems:
        detail = f"  ({problem.detail})" if problem.detail else ""
        click.echo(f"{problem.kind:<13}{problem.path}{detail}")
    if report.agrees:
        click.echo("OK: the database and the evidence agree.")
        return
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(report.counts().items()))
    click.echo(
        f"The database and the evidence disagree: {counts}. Restore missing and corrupt files "
        "from a backup; unreferenced ones belong to no version (an interrupted run's, or another "
        "database's): look at them before moving them away.",
        err=True,
    )
    ctx.exit(EXIT_CHANGES)


@cli.group(name="config")
def config_group() -> None:
    """The workspace's tostrack.toml.

    \b
    Example:
      tostrack config check
    """


@config_group.command(name="check")
@click.pass_context
def config_check(ctx: click.Context) -> None:
    """Read and check tostrack.toml completely, without running anything.

    Every table, key and value is checked (types, durations, sizes, modes, severities, label
    ids, e-mail addresses, ranges, source ids and what they refer to), and every chat or
    webhook URL with Apprise (`pip install 'tostrack[chat]'`). Exit status 0 with one line
    when it is fine, 2 with every problem found, each with what is allowed.
    """
    from tostrack.notify.chat import check_recipients, target_count
    from tostrack.sources import load_sources

    ws = _workspace(ctx)
    cfg = ws.config
    if not ws.has_config:
        click.echo(
            f"OK: no {ws.config_path} (the defaults: the whole bundled registry, "
            "messages written to outbox/)"
        )
        return
    watched = load_sources(ws.settings)
    notes = check_recipients(cfg, need_environment=False)
    mail = (
        f"SMTP {cfg.smtp.host}:{cfg.smtp.port}"
        if cfg.smtp
        else "no [smtp]: messages written to outbox/"
    )
    chats = target_count(cfg)
    chat = f", {chats} chat or webhook target(s)" if chats else ""
    click.echo(
        f"OK: {ws.config_path}: {len(watched)} source(s), {len(cfg.recipients)} "
        f"recipient(s), {mail}{chat}"
    )
    for note in notes:
        click.echo(f"note: {note}", err=True)


def main() -> None:
    """Entry point for the console script."""
    try:
        cli.main(prog_name="tostrack")
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:
        if os.environ.get("TOSTRACK_DEBUG"):
            raise
        click.echo(
            f"tostrack: internal error: {type(exc).__name__}: {exc}\n"
            "Nothing half-written was kept. "
            "Run again with TOSTRACK_DEBUG=1 for details and report it.",
            err=True,
        )
        sys.exit(EXIT_TROUBLE)


if __name__ == "__main__":
    main()

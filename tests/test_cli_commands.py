"""The operator's commands through the real CLI: sources, status, eval, export, cron, and
run --log-file."""

from __future__ import annotations

import csv
import io
import json
from itertools import count
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TERMS_V1, TERMS_V2, source_config, write_config
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Request, Response

from tostrack.cli import cli


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _ws_with_two_versions(runner: CliRunner, httpserver: HTTPServer, ws: Path) -> None:
    httpserver.expect_request("/terms").respond_with_data(TERMS_V1, content_type="text/html")
    write_config(ws, source_config(httpserver.url_for("/terms")))
    assert runner.invoke(cli, ["-w", str(ws), "run", "--force", "--no-send"]).exit_code == 0
    httpserver.clear()
    httpserver.expect_request("/terms").respond_with_data(TERMS_V2, content_type="text/html")
    assert runner.invoke(cli, ["-w", str(ws), "run", "--force", "--no-send"]).exit_code == 0


def test_sources_list_show_and_unknown(runner: CliRunner, tmp_path: Path) -> None:
    whole = runner.invoke(
        cli, ["-w", str(tmp_path), "sources", "list", "--registry", "--format", "json"]
    )
    assert whole.exit_code == 0, whole.output
    ids = [s["id"] for s in json.loads(whole.output)]
    assert len(ids) >= 30 and "openai/terms-of-use" in ids

    write_config(tmp_path, source_config("http://127.0.0.1:9/terms"))
    mine = runner.invoke(cli, ["-w", str(tmp_path), "sources", "list"])
    assert mine.exit_code == 0 and mine.output.split()[0] == "acme/terms"

    shown = runner.invoke(cli, ["-w", str(tmp_path), "sources", "show", "openai/terms-of-use"])
    assert shown.exit_code == 0 and json.loads(shown.output)["provider"] == "openai"

    unknown = runner.invoke(cli, ["-w", str(tmp_path), "sources", "show", "openai/terms-of-us"])
    assert unknown.exit_code == 2 and "openai/terms-of-use" in unknown.output


# Long enough to pass validate's "non-trivial text" check.
LONG_TERMS = TERMS_V1.replace(
    "</main>",
    "".join(
        f"<p>3.{n} Fees for plan {n} are billed monthly in advance and are not refundable except "
        "where the law requires a refund.</p>"
        for n in range(1, 8)
    )
    + "</main>",
)


def test_sources_validate_finds_a_page_that_changes_on_every_visit(
    runner: CliRunner, httpserver: HTTPServer, tmp_path: Path
) -> None:
    visits = count()

    def flapping(request: Request) -> Response:
        html = LONG_TERMS.replace("England and Wales", f"England and Wales (visit {next(visits)})")
        return Response(html, content_type="text/html")

    httpserver.expect_request("/terms").respond_with_data(LONG_TERMS, content_type="text/html")
    httpserver.expect_request("/flaps").respond_with_handler(flapping)
    write_config(
        tmp_path,
        source_config(httpserver.url_for("/terms"), extra="")
        + f"""
[[sources]]
id = "acme/flapping"
url = "{httpserver.url_for("/flaps")}"
select = ["main"]
""",
    )
    (tmp_path / "tostrack.toml").write_text(
        (tmp_path / "tostrack.toml")
        .read_text()
        .replace("confirm_delay = 0", "confirm_delay = 0\ndelay = 0"),
    )
    good = runner.invoke(cli, ["-w", str(tmp_path), "sources", "validate", "acme/terms"])
    assert good.exit_code == 0, good.output
    both = runner.invoke(cli, ["-w", str(tmp_path), "sources", "validate", "--format", "json"])
    assert both.exit_code == 3
    results = {r["source_id"]: r for r in json.loads(both.output)}
    assert results["acme/terms"]["ok"] and not results["acme/flapping"]["ok"]


def test_status_reports_ok_then_broken(
    runner: CliRunner, httpserver: HTTPServer, tmp_path: Path
) -> None:
    _ws_with_two_versions(runner, httpserver, tmp_path)
    ok = runner.invoke(cli, ["-w", str(tmp_path), "status", "--format", "json"])
    assert ok.exit_code == 0, ok.output
    (row,) = json.loads(ok.output)
    assert row["id"] == "acme/terms" and row["state"] == "ok" and row["versions"] == 2

    httpserver.clear()
    httpserver.expect_request("/terms").respond_with_data("down", status=503)
    for _ in range(3):
        assert (
            runner.invoke(cli, ["-w", str(tmp_path), "run", "--force", "--no-send"]).exit_code == 3
        )
    broken = runner.invoke(cli, ["-w", str(tmp_path), "status"])
    assert broken.exit_code == 3 and "broken" in broken.output


def test_export_changes_and_clauses(
    runner: CliRunner, httpserver: HTTPServer, tmp_path: Path
) -> None:
    _ws_with_two_versions(runner, httpserver, tmp_path)
    changes = runner.invoke(cli, ["-w", str(tmp_path), "export", "--what", "changes"])
    assert changes.exit_code == 0, changes.output
    records = json.loads(changes.output)
    assert any("competing-models" in r["labels_added"] for r in records)
    clauses = runner.invoke(
        cli, ["-w", str(tmp_path), "export", "--what", "clauses", "--format", "csv"]
    )
    rows = list(csv.DictReader(io.StringIO(clauses.output)))
    assert rows and any("compete with Acme" in " ".join(r.values()) for r in rows)


def test_eval_on_a_small_labelled_file(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "gold.jsonl"
    path.write_text(
        json.dumps(
            {
                "id": "1",
                "text": "You may not use Output to develop competing models.",
                "labels": ["competing-models"],
            }
        )
        + "\n"
        + json.dumps({"id": "2", "text": "Please read these terms.", "labels": ["arbitration"]})
        + "\n",
        encoding="utf-8",
    )
    result = runner.invoke(cli, ["eval", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["n"] == 2 and data["micro"]["recall"] == 0.5  # the wrong gold label is missed
    missing = runner.invoke(cli, ["eval", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_cron_prints_crontab_and_systemd_units(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["-w", str(tmp_path), "cron", "--every", "15m"])
    assert result.exit_code == 0, result.output
    assert (
        "*/15 * * * *" in result.output
        and "[Timer]" in result.output
        and "[Service]" in result.output
    )
    assert str(tmp_path.resolve()) in result.output


def test_run_log_file_records_what_was_printed(
    runner: CliRunner, httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/terms").respond_with_data(TERMS_V1, content_type="text/html")
    write_config(tmp_path, source_config(httpserver.url_for("/terms")))
    log = tmp_path / "run.log"
    result = runner.invoke(cli, ["-w", str(tmp_path), "run", "--no-send", "--log-file", str(log)])
    assert result.exit_code == 0, result.output
    lines = log.read_text().splitlines()
    assert lines and lines[0].endswith("tracking acme/terms: first version stored")
    assert lines[0][:4].isdigit() and "Z " in lines[0]


def test_replay_in_two_processes_prints_the_same_lines(runner: CliRunner, tmp_path: Path) -> None:
    for name, variants in (
        ("acme/terms", (TERMS_V1, TERMS_V2)),
        ("acme/policy", (TERMS_V2, TERMS_V1)),
    ):
        folder = tmp_path / name
        folder.mkdir(parents=True)
        for day, html in zip(("2026-01-01", "2026-02-01"), variants, strict=True):
            (folder / f"{day}T00-00-00Z.html").write_text(html, encoding="utf-8")
    one = runner.invoke(cli, ["replay", str(tmp_path)])
    two = runner.invoke(cli, ["replay", "-j", "2", str(tmp_path)])
    assert one.exit_code == two.exit_code == 0, two.output
    assert one.output == two.output and len(one.output.splitlines()) == 2
    # The text format: a summary line per pair, made in the workers with -j
    expected = []
    for line in one.output.splitlines():
        record = json.loads(line)
        s = record["summary"]
        expected.append(
            f"{record['document']}: {record['from']} -> {record['to']}: "
            f"{s['substantive']} substantive, {s['cosmetic']} cosmetic"
        )
    for jobs in ("1", "2"):
        text = runner.invoke(cli, ["replay", "--format", "text", "-j", jobs, str(tmp_path)])
        assert text.exit_code == 0, text.output
        assert text.output.splitlines() == expected


def test_outbox_lists_messages_and_resends_an_uncertain_one(
    runner: CliRunner, httpserver: HTTPServer, tmp_path: Path
) -> None:
    import sqlite3

    _ws_with_two_versions(runner, httpserver, tmp_path)
    assert runner.invoke(cli, ["-w", str(tmp_path), "notify"]).exit_code == 0
    listed = json.loads(
        runner.invoke(cli, ["-w", str(tmp_path), "outbox", "--format", "json"]).output
    )
    (message,) = listed
    # no [smtp]: written to outbox/ as .eml, which is not "sent"
    assert message["state"] == "written" and message["recipient"] == "legal@example.com"
    refused = runner.invoke(cli, ["-w", str(tmp_path), "outbox", "resend", str(message["id"])])
    assert refused.exit_code == 2 and "only uncertain or rejected" in refused.output

    with sqlite3.connect(
        tmp_path / "tostrack.db"
    ) as db:  # as a crash after the final dot leaves it
        db.execute("UPDATE outbox SET state = 'uncertain' WHERE id = ?", (message["id"],))
    again = runner.invoke(cli, ["-w", str(tmp_path), "outbox", "resend", str(message["id"])])
    assert again.exit_code == 0, again.output
    resent = runner.invoke(cli, ["-w", str(tmp_path), "notify"])
    assert resent.exit_code == 0 and ".eml" in resent.output  # written (again) by this run
    listed = json.loads(
        runner.invoke(cli, ["-w", str(tmp_path), "outbox", "--format", "json"]).output
    )
    assert [m["state"] for m in listed] == ["written"]

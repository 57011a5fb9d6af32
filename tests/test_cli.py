"""Every command through click's CliRunner, on real files, a real HTTP server and real SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TERMS_V1, TERMS_V2, source_config, write_config
from pytest_httpserver import HTTPServer

from tostrack.cli import cli

CHANGE_KEYS = {
    "kind",
    "substantive",
    "old",
    "new",
    "labels",
    "labels_added",
    "labels_removed",
    "severity",
}
CLAUSE_KEYS = {"id", "section", "heading", "text", "labels", "evidence"}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def versions(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old.html", tmp_path / "new.html"
    old.write_text(TERMS_V1, encoding="utf-8")
    new.write_text(TERMS_V2, encoding="utf-8")
    return old, new


def test_diff_json_contract_and_exit_status(runner: CliRunner, versions: tuple[Path, Path]) -> None:
    old, new = versions
    result = runner.invoke(cli, ["diff", str(old), str(new), "--format", "json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert {"old", "new", "summary", "changes"} <= data.keys()
    assert set(data["summary"]) >= {
        "added",
        "removed",
        "modified",
        "moved",
        "cosmetic",
        "substantive",
    }
    assert data["summary"]["substantive"] >= 1
    for change in data["changes"]:
        assert CHANGE_KEYS <= change.keys()
        assert change["kind"] in {"added", "removed", "modified", "moved", "split", "merged"}
        for side in (change["old"], change["new"]):
            for clause in side if isinstance(side, list) else [side] if side else []:
                assert CLAUSE_KEYS <= clause.keys()
    hit = [c for c in data["changes"] if "competing-models" in c["labels_added"]]
    assert hit and hit[0]["severity"] == "high" and hit[0]["kind"] == "modified"
    assert data["new"]["effective_date"] == "2026-06-09"


def test_diff_same_file_exits_zero(runner: CliRunner, versions: tuple[Path, Path]) -> None:
    old, _ = versions
    result = runner.invoke(cli, ["diff", str(old), str(old), "--format", "json"])
    assert result.exit_code == 0
    assert json.loads(result.output)["changes"] == []


def test_diff_text_is_a_readable_redline(runner: CliRunner, versions: tuple[Path, Path]) -> None:
    old, new = versions
    result = runner.invoke(cli, ["diff", str(old), str(new)])
    assert result.exit_code == 1
    assert "{+" in result.output and "compete" in result.output
    assert "severity: high" in result.output


def test_diff_missing_or_garbage_file_is_trouble_not_traceback(
    runner: CliRunner, tmp_path: Path
) -> None:
    bad = tmp_path / "x.docx"
    bad.write_bytes(b"\x00\x01garbage")
    result = runner.invoke(cli, ["diff", str(bad), str(bad)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    missing = runner.invoke(cli, ["diff", str(tmp_path / "nope.html"), str(bad)])
    assert missing.exit_code == 2


def test_classify_json_and_stdin(runner: CliRunner, versions: tuple[Path, Path]) -> None:
    _, new = versions
    result = runner.invoke(cli, ["classify", str(new), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["source"] == str(new)
    assert all(CLAUSE_KEYS <= c.keys() for c in data["clauses"])
    labelled = {label for c in data["clauses"] for label in c["labels"]}
    assert {"competing-models", "governing-law"} <= labelled
    stdin = runner.invoke(
        cli,
        ["classify", "-", "--format", "json"],
        input="You must not use any output to build a model that competes with us.\n",
    )
    assert stdin.exit_code == 0
    assert "competing-models" in json.loads(stdin.output)["clauses"][0]["labels"]


def test_classify_jsonl(runner: CliRunner) -> None:
    lines = "\n".join(
        json.dumps(r)
        for r in [
            {"id": "a", "text": "Disputes will be settled by binding arbitration in New York."},
            {"id": "b", "text": "Our office is open on weekdays."},
        ]
    )
    result = runner.invoke(cli, ["classify", "--jsonl", "-"], input=lines)
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.output.splitlines()]
    assert [o["id"] for o in out] == ["a", "b"]
    assert "arbitration" in out[0]["labels"] and out[1]["labels"] == []
    bad = runner.invoke(cli, ["classify", "--jsonl", "-"], input="not json\n")
    assert bad.exit_code == 2 and "line 1" in bad.output


def test_replay_jsonl(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "acme" / "terms"
    folder.mkdir(parents=True)
    (folder / "2026-01-01T00-00-00Z.html").write_text(TERMS_V1)
    (folder / "2026-02-01T00-00-00Z.html").write_text(TERMS_V1)
    (folder / "2026-03-01T00-00-00Z.html").write_text(TERMS_V2)
    result = runner.invoke(cli, ["replay", str(folder)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["from"], r["to"]) for r in records] == [
        ("2026-01-01T00-00-00Z.html", "2026-02-01T00-00-00Z.html"),
        ("2026-02-01T00-00-00Z.html", "2026-03-01T00-00-00Z.html"),
    ]
    assert records[0]["summary"]["substantive"] == 0 and records[1]["summary"]["substantive"] >= 1
    assert records[1]["document"] == str(folder)


def test_init_writes_commented_config_and_refuses_overwrite(
    runner: CliRunner, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    first = runner.invoke(cli, ["--workspace", str(ws), "init"])
    assert first.exit_code == 0, first.output
    text = (ws / "tostrack.toml").read_text()
    assert "[smtp]" in text and "password_env" in text
    second = runner.invoke(cli, ["--workspace", str(ws), "init"])
    assert second.exit_code == 2 and "already exists" in second.output


def test_broken_config_is_a_clear_error(runner: CliRunner, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write_config(ws, "[fetch\nretries = 3\n")
    result = runner.invoke(cli, ["--workspace", str(ws), "run"])
    assert result.exit_code == 2
    assert "not valid TOML" in result.output and "Traceback" not in result.output


def test_run_history_report_notify(
    runner: CliRunner, httpserver: HTTPServer, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    httpserver.expect_request("/terms").respond_with_data(TERMS_V1, content_type="text/html")
    write_config(ws, source_config(httpserver.url_for("/terms")))
    first = runner.invoke(cli, ["--workspace", str(ws), "run", "--force", "--no-send"])
    assert first.exit_code == 0, first.output
    assert "first version" in first.output
    httpserver.clear()
    httpserver.expect_request("/terms").respond_with_data(TERMS_V2, content_type="text/html")
    second = runner.invoke(cli, ["--workspace", str(ws), "run", "--force", "--no-send"])
    assert second.exit_code == 0, second.output
    assert "changed  acme/terms" in second.output
    quiet = runner.invoke(cli, ["--workspace", str(ws), "run", "--no-send"])
    assert quiet.exit_code == 0 and quiet.output == ""  # cron: silent when nothing is due

    history = runner.invoke(
        cli, ["--workspace", str(ws), "history", "acme/terms", "--format", "json"]
    )
    data = json.loads(history.output)
    assert data["source"] == "acme/terms" and len(data["versions"]) == 2
    assert {"captured_at", "sha256"} <= data["versions"][0].keys() and data["failures"] == []

    report = runner.invoke(cli, ["--workspace", str(ws), "report"])
    assert report.exit_code == 0 and (ws / "reports" / "index.html").exists()

    notify = runner.invoke(cli, ["--workspace", str(ws), "notify", "--dry-run"])
    assert notify.exit_code == 0, notify.output
    assert len(list((ws / "preview").glob("*.eml"))) == 1 and not (ws / "outbox").exists()
    sent = runner.invoke(cli, ["--workspace", str(ws), "notify"])
    assert "1 written" in sent.output and len(list((ws / "outbox").glob("*.eml"))) == 1
    again = runner.invoke(cli, ["--workspace", str(ws), "notify"])
    assert len(list((ws / "outbox").glob("*.eml"))) == 1, again.output  # exactly once
    assert "nothing queued" in again.output


def test_failed_source_exits_3_and_says_why(
    runner: CliRunner, httpserver: HTTPServer, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    httpserver.expect_request("/terms").respond_with_data("gone", status=404)
    write_config(ws, source_config(httpserver.url_for("/terms")))
    result = runner.invoke(cli, ["--workspace", str(ws), "run", "--no-send"])
    assert result.exit_code == 3
    assert "failed   acme/terms" in result.output


def test_history_unknown_source(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["--workspace", str(tmp_path), "history", "nobody/nothing"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_import_backfills_without_notifying(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "hist"
    folder.mkdir()
    (folder / "2025-01-01T00-00-00Z.html").write_text(TERMS_V1)
    (folder / "2025-06-01T00-00-00Z.html").write_text(TERMS_V2)
    ws = tmp_path / "ws"
    write_config(ws, '[[sources]]\nid = "acme/terms"\nurl = "https://acme.example/terms"\n')
    result = runner.invoke(cli, ["--workspace", str(ws), "import", "acme/terms", str(folder)])
    assert result.exit_code == 0, result.output
    assert "Imported 2 version(s)" in result.output
    history = json.loads(
        runner.invoke(
            cli, ["--workspace", str(ws), "history", "acme/terms", "--format", "json"]
        ).output
    )
    assert [v["captured_at"] for v in history["versions"]] == [
        "2025-01-01T00:00:00Z",
        "2025-06-01T00:00:00Z",
    ]
    assert history["versions"][1]["substantive_changes"] >= 1
    notify = runner.invoke(cli, ["--workspace", str(ws), "notify", "--dry-run"])
    assert notify.exit_code == 0 and not list((ws / "outbox").glob("*.eml"))


def test_demo_leaves_report_and_email(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "demo"
    result = runner.invoke(cli, ["demo", "--dir", str(target)])
    assert result.exit_code == 0, result.output
    assert (target / "reports" / "index.html").exists()
    reports = [p for p in (target / "reports").rglob("*.html") if p.name != "index.html"]
    emls = list((target / "outbox").glob("*.eml"))
    assert emls, result.output
    report_text = "".join(p.read_text() for p in reports)
    assert "competing-models" in report_text or "compet" in report_text.lower()
    assert any("Nimbus" in e.read_text(errors="replace") for e in emls)
    # the re-rendered Corvid page (markup, link ids, heading case) is not alerted on
    assert not any("Corvid" in e.read_text(errors="replace") for e in emls)
    rerun = runner.invoke(cli, ["demo", "--dir", str(target)])
    assert rerun.exit_code == 0

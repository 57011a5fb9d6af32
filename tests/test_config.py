"""The one schema of tostrack.toml, and the ways a mistake or a hostile environment used to lose
an alert silently (issue 11, problems 1, 2, 8 and 10). Real parts: the CLI, SQLite files, an
HTTP server, a raw socket server that drips, a read-only bind mount (or chmod)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TERMS_V1, TERMS_V2, source_config, write_config
from pytest_httpserver import HTTPServer

from tostrack import config
from tostrack.cli import cli
from tostrack.config_template import CONFIG_TEMPLATE
from tostrack.errors import ConfigError
from tostrack.fetch import FetchConfig, fetch_source
from tostrack.models import Failure, Source

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _invoke(runner: CliRunner, ws: Path, *args: str):
    return runner.invoke(cli, ["--workspace", str(ws), *args])


def _refused(runner: CliRunner, ws: Path, *args: str) -> str:
    result = _invoke(runner, ws, *args)
    assert result.exit_code == 2, result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    return result.output


# -- problem 1: typos are refused, with a did-you-mean ------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('[smpt]\nhost = "mail.example.com"\n', "unknown table 'smpt'. Did you mean 'smtp'?"),
        ('[[recipient]]\nemail = "legal@example.com"\n', "Did you mean 'recipients'?"),
        (
            '[[recipients]]\nemail = "a@example.com"\nmin_severty = "high"\n',
            "unknown key 'min_severty'. Did you mean 'min_severity'?",
        ),
        (
            '[smtp]\nhost = "mail.example.com"\npasword_env = "PW"\n',
            "unknown key 'pasword_env'. Did you mean 'password_env'?",
        ),
        (
            '[[recipients]]\nemail = "a@example.com"\nlabels = ["competing-model"]\n',
            "unknown label 'competing-model'. Did you mean 'competing-models'?",
        ),
        (
            '[[recipients]]\nemail = "a@example.com"\nprovider = ["openai"]\n',
            "unknown key 'provider'. Did you mean 'providers'?",
        ),
        (
            '[[recipients]]\nemail = "a@example.com"\nproviders = ["opnai"]\n',
            "providers names 'opnai'",
        ),
        (
            '[[recipients]]\nemail = "a@example.com"\nsources = ["anthropic/consumer-term"]\n',
            "Did you mean 'anthropic/consumer-terms'",
        ),
        ("retries = 3\n", "unknown key 'retries'. It belongs in a table: write it under [fetch]."),
        (
            '[[recipients]]\nemail = "a@example.com"\nmode = "dayly"\n',
            (
                'mode = \'dayly\' is not valid; give one of "immediate", "daily", "weekly". '
                "Did you mean 'daily'?"
            ),
        ),
        ("[fetch]\nretrys = 1\n", "Did you mean 'retries'?"),
        ('[report]\ntitel = "x"\n', "Did you mean 'title'?"),
        ('[notify]\noperators = ["ops at example"]\n', "not an email address"),
    ],
)
def test_typos_are_refused_by_every_command(
    runner: CliRunner, tmp_path: Path, body: str, expected: str
) -> None:
    write_config(tmp_path, body)
    for command in (["config", "check"], ["run"], ["status"], ["report"], ["notify"]):
        output = _refused(runner, tmp_path, *command)
        assert expected in output, (command, output)
        assert str(tmp_path / "tostrack.toml") in output  # the file is named
    assert not (tmp_path / "tostrack.db").exists()  # nothing ran


def test_a_wrong_mode_never_records_a_change_whose_email_is_lost(
    runner: CliRunner, httpserver: HTTPServer, tmp_path: Path
) -> None:
    """`mode = "dayly"` used to pass `run` until the first change, which was then recorded and
    its email never queued, even after the file was fixed."""
    httpserver.expect_request("/terms").respond_with_data(TERMS_V1, content_type="text/html")
    good = source_config(httpserver.url_for("/terms"))
    write_config(tmp_path, good)
    assert _invoke(runner, tmp_path, "run", "--force", "--no-send").exit_code == 0
    httpserver.clear()
    httpserver.expect_request("/terms").respond_with_data(TERMS_V2, content_type="text/html")
    write_config(tmp_path, good + 'mode = "dayly"\n')
    assert "Did you mean 'daily'?" in _refused(runner, tmp_path, "run", "--force")
    write_config(tmp_path, good)  # fixed: the change is recorded now, and its email written
    fixed = _invoke(runner, tmp_path, "run", "--force")
    assert fixed.exit_code == 0, fixed.output
    assert "changed  acme/terms" in fixed.output and "written  1 notification(s)" in fixed.output
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def test_config_check_ok_in_one_line_or_every_problem(runner: CliRunner, tmp_path: Path) -> None:
    write_config(tmp_path, CONFIG_TEMPLATE)
    ok = _invoke(runner, tmp_path, "config", "check")
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("OK: ") and len(ok.output.splitlines()) == 1
    write_config(
        tmp_path,
        '[fetch]\nread_timeout = 0\nretrys = 1\n[notify]\nbroken_after = "three"\n'
        '[severity]\ngoverning-law = "extreme"\n',
    )
    output = _refused(runner, tmp_path, "config", "check")
    assert "has 4 problems" in output
    for key in ("read_timeout", "retrys", "broken_after", "governing-law"):
        assert key in output


def test_run_source_typo_is_an_error_not_a_quiet_success(runner: CliRunner, tmp_path: Path) -> None:
    output = _refused(runner, tmp_path, "run", "--source", "anthropic/consumer-term")
    assert "Did you mean 'anthropic/consumer-terms'" in output
    output = _refused(runner, tmp_path, "run", "--source", "antropic")
    assert "Did you mean 'anthropic'?" in output
    assert not (tmp_path / "tostrack.db").exists()


# -- problem 8: one id rule, import included; nothing written outside the workspace ------------


@pytest.mark.parametrize(
    "bad",
    [
        "../../escaped/x",
        "acme/../../x",
        "acme/terms/extra",
        "acme/terms\n",
        "acme/terms ",
        " acme/terms",
        "acme co/terms",
        "Acme/Terms",
        "acme/",
        "/terms",
        "acme",
        ".acme/terms",
        "acme/..",
        "acme\\terms/x",
        "acme/te\x00rms",
    ],
)
def test_one_id_rule(bad: str) -> None:
    assert config.source_id_problem(bad)
    with pytest.raises(ConfigError):
        config.check_source_id(bad)


@pytest.mark.parametrize("good", ["acme/terms", "openai/terms-of-use", "x.ai/usage_policy.v2"])
def test_one_id_rule_accepts(good: str) -> None:
    assert config.source_id_problem(good) == ""


@pytest.mark.parametrize(
    "bad", ["../../escaped/x", "acme/terms\n", "acme terms/x", "acme/terms/../../../x"]
)
def test_import_refuses_bad_ids_and_writes_nothing_outside(
    runner: CliRunner, tmp_path: Path, bad: str
) -> None:
    folder = tmp_path / "hist"
    folder.mkdir()
    (folder / "2025-01-01T00-00-00Z.html").write_text(TERMS_V1)
    ws = tmp_path / "a" / "b" / "ws"
    write_config(ws, '[[sources]]\nid = "acme/terms"\nurl = "https://acme.example/terms"\n')
    before = sorted(p for p in tmp_path.rglob("*"))
    output = _refused(runner, ws, "import", bad, str(folder))
    assert "provider/document" in output or "no source" in output
    assert sorted(p for p in tmp_path.rglob("*")) == before  # not a file more, anywhere


def test_import_of_an_unknown_source_says_which_one_was_meant(
    runner: CliRunner, tmp_path: Path
) -> None:
    folder = tmp_path / "hist"
    folder.mkdir()
    (folder / "2025-01-01T00-00-00Z.html").write_text(TERMS_V1)
    output = _refused(runner, tmp_path / "ws", "import", "anthropic/consumer-term", str(folder))
    assert "Did you mean 'anthropic/consumer-terms'" in output
    assert not (tmp_path / "ws" / "snapshots").exists()


def test_a_source_id_with_a_trailing_newline_is_refused_in_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="provider/document"):
        write_config(tmp_path, '[[sources]]\nid = "acme/terms\\n"\nurl = "https://a.example/"\n')
        from tostrack.workspace import Workspace

        Workspace.open(tmp_path)


# -- problem 10: environment errors say what to fix, exit 2 -------------------------------------


@pytest.mark.parametrize(
    ("body", "key", "allowed"),
    [
        ('[notify]\nbroken_after = "three"\n', "broken_after", "whole number from 1"),
        ("[notify]\nbroken_after = -1\n", "broken_after", "whole number from 1"),
        ("[notify]\nbroken_after = 0\n", "broken_after", "whole number from 1"),
        ("[fetch]\nread_timeout = 0\n", "read_timeout", "more than 0"),
        ('[fetch]\ntotal_timeout = "0s"\n', "total_timeout", "more than 0"),
        ('[fetch]\nconnect_timeout = "soon"\n', "connect_timeout", "a duration"),
        ('[fetch]\nmax_bytes = "lots"\n', "max_bytes", "a size"),
        ('[severity]\ngoverning-law = "extreme"\n', "governing-law", '"high"'),
        (
            '[severity]\ngoverning-laws = "high"\n',
            "governing-laws",
            "Did you mean 'governing-law'?",
        ),
        ("[notify]\ndigest_hour = 24\n", "digest_hour", "0 to 23"),
        ('[notify]\ndigest_weekday = "mondays"\n', "digest_weekday", "Did you mean 'monday'"),
        ('[smtp]\nhost = "m.example"\nport = 70000\n', "port", "1 to 65535"),
        ("[smtp]\nport = 25\n", "host is required", "non-empty string"),
        ('[report]\nbase_url = "intranet/x"\n', "base_url", "http(s)"),
        ('[[recipients]]\nmode = "daily"\n', "email, url, urls or url_env", "legal@example.com"),
        (
            '[[recipients]]\nemail = "a@example.com"\nulr = "json://h/p"\n',
            "ulr",
            "Did you mean 'url'",
        ),
    ],
)
def test_bad_values_are_exit_2_with_what_is_allowed(
    runner: CliRunner, tmp_path: Path, body: str, key: str, allowed: str
) -> None:
    write_config(tmp_path, body)
    output = _refused(runner, tmp_path, "run")
    assert key in output and allowed in output


def test_bad_value_through_the_console_script_is_not_an_internal_error(tmp_path: Path) -> None:
    write_config(tmp_path, "[fetch]\nread_timeout = 0\n")
    proc = subprocess.run(
        [sys.executable, "-m", "tostrack", "--workspace", str(tmp_path), "run"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "read_timeout" in proc.stderr
    assert "internal error" not in proc.stderr


def test_outbox_being_a_file_is_exit_2_and_keeps_the_message(
    runner: CliRunner, httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/terms").respond_with_data(TERMS_V1, content_type="text/html")
    write_config(tmp_path, source_config(httpserver.url_for("/terms")))
    assert _invoke(runner, tmp_path, "run", "--force").exit_code == 0
    httpserver.clear()
    httpserver.expect_request("/terms").respond_with_data(TERMS_V2, content_type="text/html")
    (tmp_path / "outbox").write_text("not a folder")
    output = _refused(runner, tmp_path, "run", "--force")
    assert "outbox is a file" in output and "move it away" in output
    (tmp_path / "outbox").unlink()
    sent = _invoke(runner, tmp_path, "notify")  # the message was kept, queued
    assert sent.exit_code == 0 and "1 written" in sent.output, sent.output


def test_workspace_being_a_file_or_unwritable_folder(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "ws").write_text("x")
    assert "is a file" in _refused(runner, tmp_path / "ws", "run")
    (tmp_path / "ws2").mkdir()
    (tmp_path / "ws2" / "snapshots").write_text("x")
    assert "move the file away" in _refused(runner, tmp_path / "ws2", "run").lower()


# -- read-only workspace: read-only commands work, writing ones say what to fix ----------------


def _read_only_runner(ws: Path) -> str:
    """How to run a command with ws read-only: a read-only bind mount in a private mount
    namespace when root (chmod does not stop root), else chmod."""
    if os.geteuid() != 0:
        return "chmod"
    if not shutil.which("unshare"):
        pytest.skip("needs unshare for a read-only bind mount as root")
    probe = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            f"mount --bind {ws} {ws} && mount -o remount,bind,ro {ws} {ws}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only bind mount here: {probe.stderr.strip()}")
    return "mount"


def _run_read_only(ws: Path, how: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tostrack", "--workspace", str(ws), *args]
    if how == "mount":
        script = (
            f"mount --bind {ws} {ws} && mount -o remount,bind,ro {ws} {ws} && exec "
            + " ".join(f"'{c}'" for c in command)
        )
        command = ["unshare", "-m", "sh", "-c", script]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def read_only_workspace(
    runner: CliRunner, httpserver: HTTPServer, tmp_path: Path
) -> Iterator[tuple[Path, str]]:
    ws = tmp_path / "ws"
    httpserver.expect_request("/terms").respond_with_data(TERMS_V1, content_type="text/html")
    write_config(ws, source_config(httpserver.url_for("/terms")))
    assert _invoke(runner, ws, "run", "--force").exit_code == 0
    httpserver.clear()
    httpserver.expect_request("/terms").respond_with_data(TERMS_V2, content_type="text/html")
    assert _invoke(runner, ws, "run", "--force").exit_code == 0
    how = _read_only_runner(ws)
    if how == "chmod":
        for path in [ws, *ws.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        yield ws, how
    finally:
        for path in [ws, *ws.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_read_only_commands_work_on_a_read_only_workspace(
    read_only_workspace: tuple[Path, str], tmp_path: Path
) -> None:
    ws, how = read_only_workspace
    before = {p: p.stat().st_mtime_ns for p in ws.rglob("*")}
    status = _run_read_only(ws, how, "status")
    assert status.returncode == 0, status.stderr
    assert "acme/terms" in status.stdout
    history = _run_read_only(ws, how, "history", "acme/terms", "--format", "json")
    assert history.returncode == 0, history.stderr
    assert history.stdout.count('"captured_at"') == 2
    for command in (["outbox"], ["export", "--what", "changes"]):
        listed = _run_read_only(ws, how, *command)
        assert listed.returncode == 0 and listed.stdout.strip(), (command, listed.stderr)
    site = tmp_path / "site"
    report = _run_read_only(ws, how, "report", "--output", str(site))
    assert report.returncode == 0, report.stderr
    assert (site / "index.html").exists()
    in_place = _run_read_only(ws, how, "report")  # fine if no page changed; else says --output
    assert in_place.returncode == 0 or (
        in_place.returncode == 2 and "--output" in in_place.stderr
    ), in_place.stderr
    run = _run_read_only(ws, how, "run", "--force")
    assert run.returncode == 2, run.stderr
    assert "internal error" not in run.stderr and "writable" in run.stderr
    assert {p: p.stat().st_mtime_ns for p in ws.rglob("*")} == before


# -- problem 2: total_timeout is a wall-clock deadline -------------------------------------------


@pytest.fixture
def drip_server() -> Iterator[tuple[str, list[float]]]:
    """A raw socket server on 127.0.0.1 that sends its headers (path /headers: one byte at a
    time) and then a body one byte a second, for as long as the client listens."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    closed: list[float] = []
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        try:
            request = conn.recv(65536)
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n"
            if b"GET /headers" in request:
                for byte in head:
                    conn.sendall(bytes([byte]))
                    time.sleep(0.5)
            else:
                conn.sendall(head)
            while not stop.is_set():
                conn.sendall(b"<")
                time.sleep(1.0)
        except OSError:
            closed.append(time.monotonic())
        finally:
            conn.close()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}", closed
    stop.set()
    srv.close()


@pytest.mark.parametrize("path", ["/body", "/headers"])
def test_total_timeout_is_a_wall_clock_deadline_against_a_slow_drip(
    drip_server: tuple[str, list[float]], path: str
) -> None:
    base, _ = drip_server
    cfg = FetchConfig(
        retries=2, backoff=0.01, delay=0, read_timeout=5, total_timeout=2, browser="never"
    )
    started = time.monotonic()
    result = fetch_source(Source("acme/terms", (base + path,)), cfg)
    took = time.monotonic() - started
    assert isinstance(result, Failure) and result.reason == "timeout", result
    assert "total_timeout" in result.detail
    assert 1.9 <= took < 3.5, took  # the deadline, not read_timeout x retries, nor for ever


def test_a_dripping_source_does_not_hold_the_run(
    runner: CliRunner, drip_server: tuple[str, list[float]], tmp_path: Path
) -> None:
    base, _ = drip_server
    write_config(
        tmp_path,
        source_config(base + "/body").replace("retries = 0", 'retries = 0\ntotal_timeout = "2s"'),
    )
    started = time.monotonic()
    result = _invoke(runner, tmp_path, "run", "--force")
    assert time.monotonic() - started < 8
    assert result.exit_code == 3 and "failed   acme/terms: timeout" in result.output


# -- parsers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("2m", 120.0),
        ("1h30m", 5400.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        (" 2H ", 7200.0),
        ("0", 0.0),
        ("0.5s", 0.5),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert config.parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "6 hours", "", "h", "-5m", -1, True, [1], "1y", "nan"])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        config.parse_duration(value)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (1000, 1000),
        ("20MB", 20 * 2**20),
        ("512 KB", 512 * 1024),
        ("1GB", 2**30),
        ("7", 7),
        ("1.5mb", int(1.5 * 2**20)),
        ("3MiB", 3 * 2**20),
    ],
)
def test_parse_size(value: object, size: int) -> None:
    assert config.parse_size(value) == size


@pytest.mark.parametrize("value", ["lots", "20 TB", "", -5, True, "MB"])
def test_parse_size_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        config.parse_size(value)


def test_the_config_is_typed_and_frozen(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        '[fetch]\nread_timeout = "1m"\nmax_bytes = "1MB"\n[smtp]\nhost = "m.example"\ntls = "ssl"\n'
        '[[recipients]]\nemail = "Legal <legal@example.com>"\n'
        'mode = "Daily"\nlabels = ["Feedback"]\n'
        '[notify]\ndigest_weekday = "Friday"\n[report]\nbase_url = "https://x.example/r"\n'
        '[severity]\ngoverning-law = "HIGH"\n',
    )
    cfg = config.load(path)
    assert cfg.fetch.read_timeout == 60.0 and cfg.fetch.max_bytes == 2**20
    assert cfg.smtp is not None and (cfg.smtp.port, cfg.smtp.tls) == (465, "ssl")
    (recipient,) = cfg.recipients
    assert (recipient.mode, recipient.labels) == ("daily", ("feedback",))
    assert cfg.notify.weekday_index == 4 and cfg.report.base_url == "https://x.example/r/"
    assert cfg.severity_overrides == {"governing-law": "high"}
    with pytest.raises(AttributeError):
        cfg.fetch.retries = 5  # type: ignore[misc]
    assert config.load(tmp_path / "missing.toml") == config.Config()


# -- the template and the README are the schema --------------------------------------------------

_TABLE = re.compile(r"^#?\s*\[\[?([a-z_]+)\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"^#?\s*([a-z_][a-z0-9_-]*)\s*=")


def _template_keys() -> set[tuple[str, str]]:
    keys: set[tuple[str, str]] = set()
    table = ""
    for line in CONFIG_TEMPLATE.splitlines():
        line = line.strip()
        found = _TABLE.match(line)
        if found:
            table = found.group(1)
            continue
        found = _KEY.match(line)
        if found and table:
            keys.add((table, found.group(1)))
    return keys


def _schema_keys() -> set[tuple[str, str]]:
    return {(table, key) for table, spec in config.SCHEMA.items() for key in spec}


def test_template_lists_every_key_of_the_schema_and_no_other() -> None:
    found = _template_keys()
    severity = {key for table, key in found if table == "severity"}
    labels = {label for label in config._labels()}
    assert severity and severity <= labels
    assert {k for k in found if k[0] != "severity"} == _schema_keys()
    assert {t for t, _ in found} == set(config.SCHEMA)


def test_template_loads_and_every_commented_example_is_valid(tmp_path: Path) -> None:
    config.parse(tomllib.loads(CONFIG_TEMPLATE))
    uncommented = []
    for line in CONFIG_TEMPLATE.splitlines():
        body = line.removeprefix("# ")
        if _TABLE.match(body.strip()) or (_KEY.match(body) and not line.startswith("#  ")):
            if body.startswith(("urls", "combine")):  # alternatives to url
                continue
            uncommented.append(body)
        else:
            uncommented.append(line)
    text = "\n".join(uncommented)
    text = text.replace('id = "acme-ai/terms"', 'id = "acme-ai/terms"')
    data = tomllib.loads(text)
    cfg = config.parse(data, tmp_path / "tostrack.toml")
    assert cfg.smtp is not None and cfg.recipients and cfg.sources


def _readme_keys() -> set[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 5)]
    keys = set()
    for row in re.findall(r"^\| `\[\[?([a-z_]+)\]\]?` \| ([^|]+) \|", section, re.MULTILINE):
        table, key = row
        keys.add((table, key.strip().strip("`*")))
    return keys


def test_readme_reference_lists_every_key_of_the_schema_and_no_other() -> None:
    found = _readme_keys()
    assert ("severity", "label id") in found
    assert {k for k in found if k[0] != "severity"} == _schema_keys()


def test_unreadable_or_odd_files(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "tostrack.toml").write_bytes(b"\xef\xbb\xbf[fetch]\nretries = 1\n")  # a BOM
    assert config.load(tmp_path / "tostrack.toml").fetch.retries == 1
    (tmp_path / "tostrack.toml").write_bytes(b'[fetch]\nuser_agent = "\xff"\n')
    assert "not UTF-8" in _refused(runner, tmp_path, "config", "check")
    (tmp_path / "tostrack.toml").unlink()
    (tmp_path / "tostrack.toml").mkdir()
    assert "is a folder" in _refused(runner, tmp_path, "config", "check")
    empty = tmp_path / "empty"
    ok = _invoke(runner, empty, "config", "check")
    assert ok.exit_code == 0 and ok.output.startswith("OK: no ")

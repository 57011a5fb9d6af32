"""Scheduled runs: the crontab / systemd text, and two runs started on one workspace at once."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TERMS_V1, source_config, write_config
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tostrack.errors import ConfigError
from tostrack.schedule import cron_text, schedule_for


def _crontab_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return lines[0]


def _section(text: str, unit: str) -> str:
    return text.split(f"# {unit}", 1)[1]


def test_crontab_line_runs_the_workspace_without_flock(tmp_path: Path) -> None:
    ws = tmp_path / "legal watch"
    text = cron_text(ws, "/opt/tostrack/bin/tostrack")
    line = _crontab_line(text)
    fields = line.split(" ", 5)
    assert re.fullmatch(r"\d{1,2}", fields[0]) and fields[1:5] == ["*", "*", "*", "*"]
    assert shlex.split(fields[5]) == [
        "/opt/tostrack/bin/tostrack",
        "--workspace",
        str(ws.resolve()),
        "run",
    ]
    assert "flock" not in line and "75" in text  # tostrack locks itself; the status is documented
    assert "stdout" in text and "stderr" in text and "--log-file" in text
    # the same workspace always gets the same minute; another workspace most likely another one
    assert _crontab_line(cron_text(ws, "/x")).split()[0] == fields[0]


def test_systemd_service_and_timer(tmp_path: Path) -> None:
    ws = tmp_path / "watch"
    text = cron_text(ws, "/usr/bin/tostrack", every="daily", log_file=tmp_path / "run.log")
    service = _section(text, "tostrack-watch.service")
    timer = _section(text, "tostrack-watch.timer")
    assert "[Service]" in service and "Type=oneshot" in service
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    assert shlex.split(exec_start.removeprefix("ExecStart=")) == [
        "/usr/bin/tostrack",
        "--workspace",
        str(ws.resolve()),
        "run",
        "--log-file",
        str((tmp_path / "run.log").resolve()),
    ]
    assert "SuccessExitStatus=75" in service
    assert re.search(r"^OnCalendar=\*-\*-\* 06:\d\d:00$", timer, re.MULTILINE)
    assert "Persistent=true" in timer and "WantedBy=timers.target" in timer
    assert "--log-file" in _crontab_line(text)


def test_percent_signs_and_spaces_are_escaped_for_cron_and_systemd(tmp_path: Path) -> None:
    ws = tmp_path / "50% legal"
    text = cron_text(ws, "/usr/bin/tostrack")
    line = _crontab_line(text)
    assert "\\%" in line and re.search(r"(?<!\\)%", line) is None  # cron: % would end the command
    service = _section(text, "tostrack-50-legal.service")
    assert "50%% legal" in service and "50% legal" not in service.replace("50%% legal", "")


def test_python_module_invocation_is_split_into_words(tmp_path: Path) -> None:
    line = _crontab_line(cron_text(tmp_path, f"{sys.executable} -m tostrack"))
    assert shlex.split(line.split(" ", 5)[5])[:3] == [sys.executable, "-m", "tostrack"]


@pytest.mark.parametrize(
    ("every", "cron", "calendar"),
    [("15m", "*/15 * * * *", "*:0/15"), ("6h", "7 */6 * * *", "*-*-* 0/6:07:00")],
)
def test_other_schedules(every: str, cron: str, calendar: str) -> None:
    fields, on_calendar, _ = schedule_for(every, 7)
    assert (fields, on_calendar) == (cron, calendar)


@pytest.mark.parametrize("every", ["weekly", "7m", "5h", "0m", ""])
def test_bad_schedule_is_a_config_error(every: str) -> None:
    with pytest.raises(ConfigError, match="cannot schedule"):
        cron_text(Path("/tmp/ws"), "/usr/bin/tostrack", every=every)


def test_cron_command_prints_the_text(tmp_path: Path) -> None:
    from tostrack.cli import cli

    if "cron" not in cli.commands:
        pytest.skip("the CLI has no cron command yet")
    ws = tmp_path / "ws"
    ws.mkdir()
    result = CliRunner().invoke(cli, ["--workspace", str(ws), "cron"])
    assert result.exit_code == 0, result.output
    assert str(ws.resolve()) in _crontab_line(result.output)
    assert "[Timer]" in result.output


@pytest.mark.skipif(
    importlib.util.find_spec("tostrack.extract") is None, reason="the pipeline has not landed"
)
def test_second_concurrent_run_exits_75_at_once(httpserver: HTTPServer, tmp_path: Path) -> None:
    entered = threading.Event()

    def slow(request: Request) -> Response:
        entered.set()
        time.sleep(3)
        return Response(TERMS_V1, content_type="text/html; charset=utf-8")

    httpserver.expect_request("/terms").respond_with_handler(slow)
    ws = tmp_path / "ws"
    write_config(ws, source_config(httpserver.url_for("/terms")))
    command = [sys.executable, "-m", "tostrack", "--workspace", str(ws), "run", "--no-send"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert entered.wait(30), "the first run never fetched"
        started = time.monotonic()
        second = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        elapsed = time.monotonic() - started
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 75, second.stderr
    assert "another tostrack run" in second.stderr and str(first.pid) in second.stderr
    assert second.stdout == "" and "Traceback" not in second.stderr
    assert elapsed < 2.5  # at once, not after the first run's 3 s fetch
    assert first.returncode == 0, err
    assert "first version stored" in out
    assert len(httpserver.log) == 1  # the second run fetched nothing

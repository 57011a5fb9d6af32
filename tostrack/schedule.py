"""When sources are due, and `tostrack cron`: a crontab line and a systemd service + timer.

tostrack takes its own workspace lock (an overlapping run exits at once with status 75), so no
flock(1) wrapper is needed, and each source keeps its own interval, so a frequent schedule only
fetches what is due.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from datetime import datetime, timedelta
from pathlib import Path

from tostrack.clock import parse_iso
from tostrack.errors import ConfigError

_EVERY = re.compile(r"^(\d+)\s*(m|min|minutes?|h|hours?)$")

# After a failure a source is due again soon, not a whole interval later: first after RETRY_FIRST,
# doubling with each failure in a row, never later than its own interval.
RETRY_FIRST = 3600
# A run starting a little early still counts: an hourly cron must not miss a source due in 1 h.
SLACK = 120


def retry_delay(interval: int, failures: int) -> int:
    """Seconds from a check to the next one: the interval, or sooner after failures."""
    if failures <= 0:
        return interval
    return min(interval, RETRY_FIRST * 2 ** min(failures - 1, 16))


def next_check(last_checked: str | None, interval: int, failures: int = 0) -> datetime | None:
    """When a source is next due (None: due now, never checked or an unreadable time)."""
    if not last_checked:
        return None
    try:
        last = parse_iso(last_checked)
    except ValueError:  # a hand-edited database: treat the source as due
        return None
    return last + timedelta(seconds=retry_delay(interval, failures))


def is_due(last_checked: str | None, interval: int, failures: int, now: datetime) -> bool:
    due = next_check(last_checked, interval, failures)
    return due is None or now >= due - timedelta(seconds=SLACK)


def _minute(workspace_root: Path) -> int:
    """A fixed, workspace-specific minute: runs do not all start on the hour."""
    return int(hashlib.sha256(str(workspace_root).encode()).hexdigest(), 16) % 60


def schedule_for(every: str, minute: int) -> tuple[str, str, str]:
    """(cron fields, systemd OnCalendar, words) for "hourly", "daily", "15m", "6h", ..."""
    text = every.strip().lower()
    if text == "hourly":
        return f"{minute} * * * *", f"*-*-* *:{minute:02d}:00", "every hour"
    if text == "daily":
        return f"{minute} 6 * * *", f"*-*-* 06:{minute:02d}:00", f"every day at 06:{minute:02d}"
    match = _EVERY.match(text)
    if match:
        n, unit = int(match.group(1)), match.group(2)[0]
        if unit == "m" and n in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30):
            return f"*/{n} * * * *", f"*:0/{n}", f"every {n} minutes"
        if unit == "h" and n in (1, 2, 3, 4, 6, 8, 12):
            return (
                f"{minute} */{n} * * *",
                f"*-*-* 0/{n}:{minute:02d}:00",
                f"every {n} hour{'s' if n > 1 else ''}",
            )
    raise ConfigError(
        f"cannot schedule {every!r}: use hourly, daily, a number of minutes that divides 60 "
        "(e.g. 15m) or of hours that divides 24 (e.g. 6h)"
    )


def _cron_quote(word: str) -> str:
    # cron turns an unescaped % into a newline: escape it after shell quoting.
    return shlex.quote(word).replace("%", "\\%")


def _systemd_quote(word: str) -> str:
    word = word.replace("%", "%%")  # systemd expands %-specifiers in unit files
    if re.search(r"[\s\"'\\;]", word):
        return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def _systemd_path(path: Path) -> str:
    # Path settings take the rest of the line as is: only %-specifiers need escaping.
    return str(path).replace("%", "%%")


def _unit_name(workspace_root: Path) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", workspace_root.name).strip("-").lower()
    return f"tostrack-{slug}" if slug else "tostrack"


def cron_text(
    workspace_root: Path,
    executable: str,
    *,
    every: str = "hourly",
    log_file: Path | None = None,
) -> str:
    """A commented crontab line and a systemd service + timer pair that run `tostrack run`."""
    root = Path(workspace_root).expanduser().resolve()
    # "python -m tostrack" arrives as one string; a path (even with spaces) is one word.
    program = [executable] if Path(executable).exists() else shlex.split(executable)
    cron_fields, calendar, words = schedule_for(every, _minute(root))
    run_args = ["run"]
    if log_file is not None:
        run_args += ["--log-file", str(Path(log_file).expanduser().resolve())]
    cron_command = " ".join(
        [
            *map(_cron_quote, program),
            "--workspace",
            _cron_quote(str(root)),
            *map(_cron_quote, run_args),
        ]
    )
    service_command = " ".join(
        [
            *map(_systemd_quote, program),
            "--workspace",
            _systemd_quote(str(root)),
            *map(_systemd_quote, run_args),
        ]
    )
    unit = _unit_name(root)
    log_note = (
        f"# Everything is also appended to {log_file} (--log-file)."
        if log_file is not None
        else (
            "# To keep a log as well, add --log-file PATH after `run` "
            "(or `tostrack cron --log-file`)."
        )
    )
    return f"""\
# ---- crontab (crontab -e) ------------------------------------------------------------------
# tostrack {words}, on workspace {root}.
# No flock needed: tostrack locks the workspace itself; a run that finds the last one still going
# exits at once with status 75 and a one-line message. Each source keeps its own interval
# (default 1 day), so a frequent schedule only fetches the sources that are due.
# Cron mails whatever a job prints: tostrack is silent when nothing changed, prints a short
# summary on stdout when something did, and errors on stderr.
# Exit status: 0 ran fine, 3 some sources failed, 75 another run holds the lock, 2 configuration.
{log_note}
# Cron's environment is nearly empty: set the SMTP password variable named by [smtp] password_env
# here (e.g. TOSTRACK_SMTP_PASSWORD=...) or in the environment file used by the systemd unit.
{cron_fields} {cron_command}

# ---- systemd (instead of cron) -----------------------------------------------------------------
# Save the two units below as ~/.config/systemd/user/{unit}.service and {unit}.timer
# (or in /etc/systemd/system/ with User= set), then:
#   systemctl --user daemon-reload && systemctl --user enable --now {unit}.timer
#   journalctl --user -u {unit}.service     # what the runs printed

# {unit}.service
[Unit]
Description=tostrack: check AI providers' terms for changes ({_systemd_path(Path(root.name))})
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
WorkingDirectory={_systemd_path(root)}
ExecStart={service_command}
# Holds the SMTP password variable, e.g. TOSTRACK_SMTP_PASSWORD=... (chmod 600).
EnvironmentFile=-{_systemd_path(root / "tostrack.env")}
# 75: the previous run was still going; not a failure.
SuccessExitStatus=75
Nice=10

# {unit}.timer
[Unit]
Description=Run tostrack {words} ({_systemd_path(Path(root.name))})

[Timer]
OnCalendar={calendar}
Persistent=true
RandomizedDelaySec=60

[Install]
WantedBy=timers.target
"""

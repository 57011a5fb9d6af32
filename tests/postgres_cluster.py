"""A throw-away PostgreSQL cluster for the tests: initdb in a temp folder, a free port on
127.0.0.1, the unix socket in that folder, trust authentication (it listens on loopback only and
lives for one test session).

PostgreSQL refuses to run as root, so under root (CI) the cluster belongs to an unprivileged
system user (`postgres` when the package made one, else `nobody`) and the commands run through
`runuser`. Anything that stops the cluster from starting is a reason to skip, never an error:
`Cluster.start` raises `Unavailable` saying what was missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SUPERUSER = "tostrack"  # the cluster's own superuser; no password (trust)


class Unavailable(Exception):
    """PostgreSQL cannot be started here; the message says why (a pytest skip reason)."""


def server_bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, or Debian's /usr/lib/postgresql/<major>/bin."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).resolve().parent
    majors = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    majors.sort(key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    return majors[-1] if majors else None  # the newest major version installed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged user to run the server as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise Unavailable("running as root and there is no 'postgres' or 'nobody' user to run it as")


@dataclass
class Cluster:
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tostrack-pg-")))
    port: int = field(default_factory=free_port)
    started: bool = False

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def _command(self, args: list[str]) -> list[str]:
        user = _run_as()
        if user is None:
            return args
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", user.pw_name, "--", *args]
        su = shutil.which("su")
        if su:
            return [su, "-s", "/bin/sh", user.pw_name, "-c", subprocess.list2cmdline(args)]
        raise Unavailable("running as root with neither runuser nor su to drop privileges")

    def _call(self, args: list[str], what: str) -> None:
        try:
            done = subprocess.run(
                self._command(args), capture_output=True, text=True, timeout=120, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unavailable(f"{what} failed: {exc}") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            log = self.folder / "server.log"
            if log.exists():
                tail += log.read_text(errors="replace").strip().splitlines()[-3:]
            raise Unavailable(f"{what} failed: {' | '.join(tail)}")

    def start(self) -> str:
        """initdb and start; returns the superuser's URL."""
        bin_dir = server_bin_dir()
        if bin_dir is None:
            raise Unavailable(
                "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under "
                "/usr/lib/postgresql/*/bin; `apt-get install postgresql` (as .ci/run does)"
            )
        user = _run_as()
        if user is not None:
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        self._call(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        # listen on loopback only; no fsync: the cluster dies with the session anyway
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._call(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.folder / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            "pg_ctl start",
        )
        self.started = True
        return self.url

    def stop(self) -> None:
        bin_dir = server_bin_dir()
        if self.started and bin_dir is not None:
            try:
                self._call(
                    [str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "stop"],
                    "pg_ctl stop",
                )
            except Unavailable:
                pass  # the folder goes anyway
        self.started = False
        shutil.rmtree(self.folder, ignore_errors=True)

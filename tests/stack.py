"""The services of a scaled-out deployment, started for a test or a benchmark on 127.0.0.1:
Redis, a PostgreSQL cluster in a temporary folder, Celery workers (README "Scaling out").

Each ``start()`` raises :class:`Unavailable` (with the reason) when its binary is missing or
will not start, so callers can skip cleanly.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Unavailable(RuntimeError):
    """A service cannot run here (binary missing, or it did not start)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kill_group(proc: subprocess.Popen | None) -> None:
    """SIGKILL a process started in its own session, with every process of its group."""
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def stop_group(proc: subprocess.Popen | None) -> None:
    """SIGTERM a process and wait; after 30 s its whole group gets SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        kill_group(proc)


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Unavailable(f"{what} exited with status {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise Unavailable(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


class Redis:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise Unavailable("redis-server is not installed (apt-get install redis-server)")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.folder)]
        log = open(self.folder / "redis.log", "w")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _wait_port(self.port, self.proc, "redis-server")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def _pg_bindir() -> Path | None:
    """The folder holding initdb, pg_ctl and createdb (Debian's, else the PATH's)."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    found = shutil.which("initdb")
    candidates = [Path(d) for d in reversed(dirs)] + ([Path(found).parent] if found else [])
    for folder in candidates:
        if all((folder / name).exists() for name in ("initdb", "pg_ctl", "createdb")):
            return folder
    return None


class Postgres:
    """A throw-away cluster (initdb into ``folder``), trust auth, on 127.0.0.1. As root, the
    server runs as the ``postgres`` user (``runuser``), as PostgreSQL requires."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.port = 0
        self.bindir = _pg_bindir()
        self.data = self.folder / "data"

    def url(self, database: str = "faceproof") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise Unavailable("running as root and runuser is missing")
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise Unavailable(f"{args[0]} failed: {err}") from err
        if out.returncode != 0:
            raise Unavailable(f"{args[0]} failed ({out.returncode}): {out.stderr.strip()[-500:]}")

    def start(self, database: str = "faceproof") -> Postgres:
        if self.bindir is None:
            raise Unavailable("PostgreSQL is not installed (apt-get install postgresql)")
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            try:
                shutil.chown(self.folder, "postgres")
            except (LookupError, OSError) as err:
                raise Unavailable(f"no postgres user to run PostgreSQL as root: {err}") from err
            self.folder.chmod(0o755)
            for parent in self.folder.parents:  # the server must reach its folder
                if parent.stat().st_mode & 0o001 == 0:
                    parent.chmod(parent.stat().st_mode | 0o001)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-sync")
        self.port = free_port()
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l",
                  str(self.folder / "postgres.log"), "-w", "-t", "60", "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", database)
        return self

    def stop(self) -> None:
        if self.port:
            with contextlib.suppress(Unavailable):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")


class CeleryWorker:
    """``celery -A webapp.tasks worker`` with one pool process, in its own process group."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path):
        self.name = name
        self.env = env
        self.log_path = Path(log_dir) / f"celery-{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> CeleryWorker:
        log = open(self.log_path, "a")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "webapp.tasks", "worker", "-n",
             f"{self.name}@%h", "--concurrency", "1", "--loglevel", "INFO", "-Q", "faceproof"],
            cwd=PROJECT_ROOT,
            env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the worker listens and its pool process has loaded the model."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited:\n{self.log()[-3000:]}")
            log = self.log()
            if " ready." in log and "faceproof: model loaded" in log:
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker {self.name} not ready after {timeout} s:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool process: a machine lost mid-analysis."""
        kill_group(self.proc)

    def stop(self) -> None:
        stop_group(self.proc)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

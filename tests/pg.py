"""A PostgreSQL server for the test suite.

The running server on 127.0.0.1:5432 is used where there is one (these
machines have it, trust auth). Elsewhere a throwaway cluster is started from
the PostgreSQL binaries (``initdb`` + ``pg_ctl``) in a temporary directory and
removed afterwards. pytest-postgresql's process fixture does the same but
refuses to run as root, which CI is, so as root the cluster runs as the
``postgres`` system user through ``runuser``.

``ESCROWD_TEST_PG`` overrides: a ``postgresql://`` URL to use, or ``throwaway``
to force a new cluster even when a server runs.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise RuntimeError(
        f"no PostgreSQL server reachable and no {name} binary: run `make setup` "
        "(it installs Debian's postgresql package)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Start a new cluster on a free port; yield its maintenance URL."""
    base = Path(tempfile.mkdtemp(prefix="escrowd-pg-"))
    data = base / "data"
    port = _free_port()
    as_root = os.geteuid() == 0
    prefix: list[str] = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(base, "postgres", "postgres")
        base.chmod(0o700)
    run = lambda *args: subprocess.run(  # noqa: E731
        [*prefix, *args], check=True, capture_output=True, text=True
    )
    run(_pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    opts = f"-p {port} -k {base} -h 127.0.0.1 -c fsync=off -c full_page_writes=off"
    run(_pg_bin("pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "pg.log"), "-w", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, _pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def server() -> Iterator[str]:
    """The maintenance URL of a PostgreSQL server the tests may create databases on."""
    choice = os.environ.get("ESCROWD_TEST_PG", "")
    if choice.startswith("postgresql://"):
        yield choice
    elif choice != "throwaway" and _reachable(DEFAULT_URL):
        yield DEFAULT_URL
    else:
        with throwaway_cluster() as url:
            yield url


def with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


def create_database(maintenance_url: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        tmpl = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{tmpl}')
    return with_database(maintenance_url, name)


def drop_database(maintenance_url: str, name: str) -> None:
    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Cluster:
    """A throwaway PostgreSQL cluster the test owns and may kill (never the
    shared server): ``start()``, ``kill9()`` (SIGKILL to the postmaster, as
    a crash), ``start()`` again (crash recovery from the WAL), ``stop()``.

    ``durable=True`` keeps fsync and full_page_writes on, so what a commit
    acknowledged survives even an OS crash, not only a process crash."""

    def __init__(self, *, durable: bool = True) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="escrowd-pgk-"))
        self.data = self.base / "data"
        self.port = _free_port()
        self.durable = durable
        as_root = os.geteuid() == 0
        self.prefix: list[str] = ["runuser", "-u", "postgres", "--"] if as_root else []
        if as_root:
            shutil.chown(self.base, "postgres", "postgres")
            self.base.chmod(0o700)
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.prefix, *args], check=True, capture_output=True,
                              text=True)

    def start(self, timeout_s: float = 60) -> None:
        opts = f"-p {self.port} -k {self.base} -h 127.0.0.1"
        if not self.durable:
            opts += " -c fsync=off -c full_page_writes=off"
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                          str(self.base / "pg.log"), "-w", "-t", "60", "start")
                return
            except subprocess.CalledProcessError:
                # after a kill -9 the old backends may hold shared memory for
                # a moment: they exit as soon as they notice the postmaster died
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().splitlines()[0])

    def kill9(self) -> None:
        os.kill(self.postmaster_pid(), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _reachable(self.url) and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self) -> None:
        subprocess.run(
            [*self.prefix, _pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True, check=False,
        )
        shutil.rmtree(self.base, ignore_errors=True)

    def log(self) -> str:
        try:
            return (self.base / "pg.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

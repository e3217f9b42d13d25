"""A private PostgreSQL cluster run from the installed server binaries.

Used by the embedded mode (no DATABASE_URL: the demo, a single-machine install) and by the
test fixtures. Its settings (BULK_SETTINGS) are sized for bulk portfolio imports.
PostgreSQL refuses to run as root, so when we are root the server commands run as the
`postgres` system user and the data directory is owned by it.

Several `pratica` processes may use one cluster at once (the demo running, `pratica
export` in a second terminal): `join` and `leave` share it, see `EmbeddedPostgres.join`.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


class EmbeddedPostgresError(RuntimeError):
    """The private cluster could not be created or started; the message says why."""


# The server's defaults suit a small shared machine; an embedded install is a single-user
# product whose heavy moments are portfolio imports (a million cases write some 3 GiB of
# WAL and touch indexes much larger than 128 MB). A larger buffer pool keeps the indexes
# being filled in memory instead of the import's own backend writing pages out, and room
# for more WAL between checkpoints spares the repeated full-page images a checkpoint
# forces. With WAL buffers larger than the automatic 16 MB the WAL writer writes the WAL
# out and creates its new segment files in the background; with 16 MB the import's own
# backend kept finding the buffers full and did it itself, about a sixth of its time
# (a million-row import: 55-58 s -> 45-50 s). The 64 MB of WAL buffers are taken at
# start; memory for shared_buffers only as pages are used.
BULK_SETTINGS = (
    ("shared_buffers", "512MB"),
    ("max_wal_size", "4GB"),
    ("checkpoint_timeout", "15min"),
    ("wal_buffers", "64MB"),
)


def find_bindir() -> Path:
    """The directory holding initdb/pg_ctl: PATH first, then Debian's versioned dirs."""
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if candidates:
        return Path(candidates[-1]).parent
    raise EmbeddedPostgresError(
        "PostgreSQL server binaries not found (initdb, pg_ctl); install the Debian package "
        "'postgresql' or set DATABASE_URL to an existing server"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedPostgres:
    """One cluster in `datadir`, listening on 127.0.0.1:`port` with trust auth for `user`.

    Trust authentication is acceptable because the cluster only listens on loopback and
    its socket lives inside the (private) data directory.
    """

    def __init__(self, datadir: Path, port: int, user: str = "pratica", fast: bool = False):
        if not user.isidentifier() or not user.islower():
            raise EmbeddedPostgresError(f"invalid database user name {user!r}")
        self.datadir = datadir.resolve()
        self.port = port
        self.user = user
        # fast: no fsync, for tests and throwaway demos where durability does not matter.
        self.fast = fast
        self.bindir = find_bindir()
        self._run_as = self._system_user()
        self._user_lock: int | None = None  # file descriptor while joined

    @staticmethod
    def _system_user() -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise EmbeddedPostgresError(
                "running as root, and PostgreSQL refuses to run as root: create a 'postgres' "
                "system user (the Debian package does) or run as an ordinary user"
            ) from None
        return "postgres"

    def _cmd(self, *args: str) -> list[str]:
        if self._run_as is None:
            return list(args)
        return ["runuser", "-u", self._run_as, "--", *args]

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self._cmd(*args), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise EmbeddedPostgresError(
                f"{Path(args[0]).name} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.user}"

    def url_for(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    @property
    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def _prepare_dir(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self._run_as is not None:
            entry = pwd.getpwnam(self._run_as)
            # The server user must reach the data directory through every parent.
            for parent in self.datadir.parents:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)
            for root, dirs, files in os.walk(self.datadir):
                for name in [*dirs, *files]:
                    os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
            os.chown(self.datadir, entry.pw_uid, entry.pw_gid)
        os.chmod(self.datadir, 0o700)

    def initialize(self) -> None:
        if self.initialized:
            return
        self._prepare_dir()
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        )

    @property
    def running(self) -> bool:
        proc = subprocess.run(
            self._cmd(str(self.bindir / "pg_ctl"), "status", "-D", str(self.datadir)),
            capture_output=True,
            text=True,
            check=False,
        )
        return proc.returncode == 0

    def start(self, timeout: float = 30.0) -> None:
        self.initialize()
        if self.running:
            raise EmbeddedPostgresError(
                f"a server is already running on {self.datadir}; stop it first "
                f"(pg_ctl stop -D {self.datadir})"
            )
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.datadir}",
            "-c max_connections=200",
            *(f"-c {name}={value}" for name, value in BULK_SETTINGS),
        ]
        if self.fast:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            str(self.bindir / "pg_ctl"),
            "start",
            "-w",
            "-t",
            str(int(timeout)),
            "-D",
            str(self.datadir),
            "-l",
            str(self.datadir / "server.log"),
            "-o",
            " ".join(options),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise EmbeddedPostgresError(f"PostgreSQL did not open port {self.port}")
        self._ensure_database()

    def _ensure_database(self) -> None:
        psql = [
            str(self.bindir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            "postgres",
            "-tAc",
        ]
        exists = self._run(*psql, f"SELECT 1 FROM pg_database WHERE datname = '{self.user}'")  # noqa: S608 - checked identifier
        if exists.stdout.strip() != "1":
            self._run(*psql, f'CREATE DATABASE "{self.user}"')

    def stop(self, timeout: float = 60.0) -> None:
        """Fast shutdown, waiting until the server is gone. Driven by the pid file rather than
        `pg_ctl status`, and with a direct signal as the fallback: a cluster must never be
        left running behind a command that says it stopped."""
        pid_file = self.datadir / "postmaster.pid"
        if not pid_file.exists():
            return
        proc = subprocess.run(
            self._cmd(str(self.bindir / "pg_ctl"), "stop", "-w", "-t", str(int(timeout)),
                      "-m", "fast", "-D", str(self.datadir)),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode == 0 or not pid_file.exists():
            return
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
            os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown
        except (OSError, ValueError):
            pass
        deadline = time.monotonic() + timeout
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_file.exists():
            raise EmbeddedPostgresError(
                f"pg_ctl stop failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
            )

    # Sharing the cluster between processes. Two lock files beside the data directory
    # (not in it: initdb wants it empty), locked with flock, which the kernel releases
    # when a process dies however it dies, and which the postmaster does not inherit
    # (Python's descriptors are close-on-exec):
    # - `<datadir>.users`: every process using the cluster holds a shared lock on it, so
    #   "nobody holds it" means that nobody alive uses the cluster;
    # - `<datadir>.control`: held exclusively while one process decides to start, attach,
    #   or stop, so those decisions never interleave.

    def _lock_path(self, kind: str) -> Path:
        return self.datadir.with_name(f"{self.datadir.name}.{kind}")

    @contextlib.contextmanager
    def _control(self, timeout: float) -> Iterator[None]:
        path = self._lock_path("control")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise EmbeddedPostgresError(
                            f"another pratica command has been starting or stopping the "
                            f"embedded PostgreSQL in {self.datadir} for {timeout:.0f} s"
                        ) from None
                    time.sleep(0.1)
            yield
        finally:
            os.close(fd)  # releases the lock

    def running_port(self) -> int | None:
        """The port of the postmaster running on this data directory, None when none is
        (its pid file gone, or naming a process that is not alive)."""
        try:
            lines = (self.datadir / "postmaster.pid").read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, another user's (the postgres user's, when we are not root)
        return port if self.running else None

    def join(self, timeout: float = 120.0) -> bool:
        """Use the cluster from this process until `leave`: attach to it when another live
        pratica process is using it (this object's port becomes the running cluster's),
        else start it, first stopping a cluster that a dead process left running.
        Returns True when this call started the cluster."""
        if self._user_lock is not None:
            raise EmbeddedPostgresError("this process has already joined the cluster")
        with self._control(timeout):
            fd = os.open(self._lock_path("users"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    alone = True
                except BlockingIOError:
                    alone = False
                port = self.running_port()
                started = False
                if alone or port is None:
                    if alone and port is not None:
                        log.warning(
                            "an embedded PostgreSQL was left running by a process that is "
                            "gone; restarting it"
                        )
                        self.stop()
                    self.start(timeout)
                    started = True
                else:
                    log.info("using the embedded PostgreSQL another pratica process runs")
                    self.port = port
                # Under the control lock no one else can slip in between.
                fcntl.flock(fd, fcntl.LOCK_SH)
            except BaseException:
                os.close(fd)
                raise
            self._user_lock = fd
            return started

    def leave(self, timeout: float = 120.0) -> bool:
        """Stop using the cluster; the last process to leave stops it. Returns True when
        this call stopped it."""
        fd = self._user_lock
        if fd is None:
            return False
        with self._control(timeout):
            self._user_lock = None
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False  # still in use by another process
                self.stop()
                return True
            finally:
                os.close(fd)

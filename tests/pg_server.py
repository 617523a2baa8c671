"""A throwaway PostgreSQL server for tests: its own data folder, a Unix socket, no TCP.

    with PostgresServer() as pg:        # initdb, start, createdb gradebook
        url = pg.url                    # postgresql+psycopg2://postgres@/gradebook?host=<socket dir>
    # stopped and deleted here, also when the body raised

PostgreSQL refuses to run as root: as root, the server programs run as the ``postgres``
user (``su postgres``) in a temporary folder that user owns; as anyone else, as themselves.
"""
import glob
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

SERVER_USER = "postgres"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server programs are not installed here."""


PROGRAMS = ("initdb", "pg_ctl", "createdb")


def find_bin():
    """The folder holding initdb, pg_ctl and createdb, or None: $PATH first, then Debian's versioned folders."""
    candidates = []
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).resolve().parent)   # /usr/local/bin/initdb may be a link
    candidates += sorted((Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
                         key=lambda d: [int(x) if x.isdigit() else 0 for x in d.parent.name.split(".")],
                         reverse=True)
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in PROGRAMS):
            return folder
    return None


class PostgresServer:
    """initdb + pg_ctl start in a temp folder; ``url`` for SQLAlchemy; ``stop()`` is idempotent."""

    def __init__(self, database="gradebook", bin_dir=None):
        self.bin = Path(bin_dir) if bin_dir else find_bin()
        if self.bin is None:
            raise PostgresUnavailable("initdb, pg_ctl and createdb not found (Debian: apt-get install postgresql)")
        self.database = database
        self.as_root = os.geteuid() == 0
        self.root = None
        self.started = False

    @property
    def data(self):
        return self.root / "data"

    @property
    def socket_dir(self):
        return self.root / "socket"

    @property
    def user(self):
        return SERVER_USER if self.as_root else pwd.getpwuid(os.geteuid()).pw_name

    @property
    def url(self):
        return f"postgresql+psycopg2://{self.user}@/{self.database}?host={self.socket_dir}"

    def _run(self, *argv, timeout=120):
        argv = [str(self.bin / argv[0]), *map(str, argv[1:])]
        if self.as_root:
            argv = ["su", SERVER_USER, "-s", "/bin/sh", "-c", shlex.join(argv)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(argv[-1:] if self.as_root else argv)} failed "
                               f"({done.returncode}):\n{done.stdout}{done.stderr}{tail}")
        return done

    def start(self):
        # Short path (a Unix socket path has ~100 bytes), not under pytest's root-only tmp folders.
        self.root = Path(tempfile.mkdtemp(prefix="rnn-pg-"))
        self.socket_dir.mkdir()
        if self.as_root:
            owner = pwd.getpwnam(SERVER_USER)
            for path in (self.root, self.socket_dir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        os.chmod(self.root, 0o755)
        self._run("initdb", "-D", self.data, "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-c listen_addresses= -c unix_socket_directories={self.socket_dir} -c fsync=off " \
                  f"-c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "start", "-D", self.data, "-l", self.root / "server.log", "-w", "-t", "60",
                  "-o", options)
        self.started = True
        self._run("createdb", "-h", self.socket_dir, "-U", self.user, self.database)
        return self

    def stop(self):
        """Stop the server (fast) and delete its folder; safe to call twice or after a failed start."""
        if self.root is None:
            return
        try:
            if self.started or (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-D", self.data, "-m", "immediate", "-w", "-t", "60")
        finally:
            self.started = False
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

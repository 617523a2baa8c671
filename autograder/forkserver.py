"""The grader's side of the zygote (:mod:`autograder.zygote`): jailed kernels, forked.

A :class:`ForkServer` starts the zygote in bubblewrap (the same jail as a kernel:
:meth:`autograder.sandbox.Sandbox.options`), then asks it for one kernel per student.
A kernel's box (connection file, sockets, a copy of the notebook's folder) lies in the
folder the zygote sees as ``/run/boxes``; the kernel itself sees only its own.
:class:`ForkedKernel` is the ``subprocess.Popen`` look-alike that jupyter_client's
provisioner holds.

The process that starts the zygote owns it: it dies with that process. Processes forked
from the owner (a batch's workers, see :mod:`autograder.scheduling`) share it, each over
a connection of its own to the zygote's socket; any other process starts its own.

If the zygote dies, the kernels it forked die with it and the next kernel starts a new
one; only the students whose kernels were running are affected. A grader process that
dies takes its own kernels with it, not the others'.
"""
import atexit
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import trees
from . import zygote

SCRIPT = Path(zygote.__file__).resolve()
SCRIPT_IN_JAIL = "/opt/rnn-grader/zygote.py"
START_SECONDS = 120   # the zygote imports numpy, the kit, ipykernel: slow on a busy machine
ANSWER_SECONDS = 30


class ZygoteFailed(RuntimeError):
    """The zygote did not start, or died."""


class ForkServer:
    """A zygote in its jail, for kernels configured by ``sandbox`` (a Sandbox).

    cgroup_parents: controller -> host folder under which the kernels' cgroups are made
    (bound into the jail); private_root: where the zygote's folder goes.
    """

    def __init__(self, sandbox, cgroup_parents, private_root):
        self.sandbox = sandbox
        self.owner = os.getpid()
        self.root = Path(tempfile.mkdtemp(prefix=f"rnn-zygote-{self.owner}-", dir=private_root))
        self.boxes, self.control = self.root / "boxes", self.root / "control"
        self.boxes.mkdir()
        self.control.mkdir(mode=0o700)
        if sandbox.separate_user():
            os.chown(self.boxes, sandbox.uid, sandbox.uid)
        # A root grader gives each box a file system of its own (see new_box): mounted here,
        # it reaches the zygote's view through this shared mount.
        self.bounded = os.geteuid() == 0
        if self.bounded:
            try:
                zygote.mount(str(self.boxes), str(self.boxes), None, zygote.MS_BIND)
                zygote.mount(None, str(self.boxes), None, zygote.MS_SHARED)
            except OSError:
                zygote.unmount(self.boxes)
                self.bounded = False
        self.cgroup_parents = dict(cgroup_parents)
        self.lock = threading.Lock()
        self.process = None
        self.failure = None
        self._connect_as = None   # the pid whose connection ``sock`` is
        started = threading.Event()
        # A thread of its own starts bubblewrap and outlives the caller's thread:
        # --die-with-parent follows the thread that started it.
        threading.Thread(target=self._run, args=(started,), name="rnn-zygote", daemon=True).start()
        try:
            if not started.wait(START_SECONDS) or self.failure:
                raise ZygoteFailed(self.failure or f"the zygote did not start in {START_SECONDS} s")
            ready = self._ready(START_SECONDS)
            if not ready["namespaces"]:
                raise ZygoteFailed("this system does not let an unprivileged process create "
                                   "user namespaces")
        except ZygoteFailed:
            self.close()
            raise

    def _run(self, started):
        try:
            environment = dict(os.environ)
            options = self.sandbox.options(None, None, environment, zygote=self)
            # root in its jail (it mounts, then makes each kernel the user ``uid``) when the
            # grader is root; else the grader's user in a user namespace, like a kernel
            argv = self.sandbox.wrap([sys.executable, SCRIPT_IN_JAIL], None, None, environment,
                                     self.root / "bwrap-args", options=options, zygote=True)
            with open(self.root / "zygote.log", "wb") as log:
                self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                stderr=log, env={"PATH": os.defpath},
                                                start_new_session=True)
        except Exception as exc:   # reported by __init__
            self.failure = f"the zygote could not start: {exc}"
            started.set()
            return
        started.set()
        self.process.wait()

    def _ready(self, seconds):
        """The zygote's first line: it listens (or it died: its log says why)."""
        ready, _, _ = select.select([self.process.stdout], [], [], seconds)
        line = self.process.stdout.readline() if ready else b""
        if not line:
            raise ZygoteFailed("the zygote died: " + self.log_tail() if ready
                               else f"the zygote did not answer in {seconds} s")
        return json.loads(line)

    def log_tail(self):
        try:
            return (self.root / "zygote.log").read_text(errors="replace")[-800:].strip() or "(no output)"
        except OSError:
            return "(no log)"

    # ---------------------------------------------------------------- this process's connection

    def _after_fork(self):
        """In a forked process: a lock of its own; its connection is opened when needed."""
        self.lock = threading.Lock()

    def _connection(self):
        """This process's socket to the zygote (a forked process opens its own)."""
        if self._connect_as != os.getpid():
            self.sock, self.buffer, self.exits = None, b"", {}
            self._connect_as = os.getpid()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.control / "zygote.sock"))
            except OSError as exc:
                sock.close()
                self.gone = f"the zygote cannot be reached ({exc.strerror})"
                return None
            self.sock, self.gone = sock, None
        return self.sock

    @property
    def alive(self):
        if os.getpid() == self.owner and (self.process is None or self.process.poll() is not None):
            return False
        return self._connection() is not None and self.gone is None

    def _read_until(self, wanted, seconds):
        """Read messages until one satisfies ``wanted`` (returned); exit reports are kept.

        With ``seconds`` 0, reads only what has arrived and returns None.
        """
        sock = self._connection()
        if sock is None:
            raise ZygoteFailed(self.gone)
        deadline = time.monotonic() + seconds
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                message = json.loads(line)
                if "exit" in message:
                    self.exits[message["id"]] = message["exit"]
                if wanted(message):
                    return message
            left = deadline - time.monotonic()
            ready, _, _ = select.select([sock], [], [], max(0.0, left))
            if not ready:
                if left <= 0:
                    if seconds == 0:
                        return None
                    raise ZygoteFailed(f"no answer from the zygote in {seconds} s")
                continue
            chunk = sock.recv(65536)
            if not chunk:
                self.gone = "the zygote died: " + self.log_tail()
                raise ZygoteFailed(self.gone)
            self.buffer += chunk

    def _send(self, **request):
        sock = self._connection()
        try:
            if sock is None:
                raise OSError
            sock.sendall(json.dumps(request).encode() + b"\n")
        except OSError:
            self.gone = "the zygote died: " + self.log_tail()
            raise ZygoteFailed(self.gone) from None

    # ---------------------------------------------------------------- kernels

    def new_box(self, limits=None):
        """A new kernel's box (host folder under ``boxes``), its kernel/ and home/ folders made.

        Under a root grader the box is a tmpfs of its own (:func:`autograder.sandbox.bound`),
        sized by ``limits`` (the kernel's Sandbox; default: the zygote's): what the kernel
        writes in its private folder is bounded in bytes and files, and goes with one unmount.
        """
        from .sandbox import bound
        box = Path(tempfile.mkdtemp(prefix="rnn-kernel-", dir=self.boxes))
        if self.bounded:
            bound(box, limits or self.sandbox)
        (box / "kernel").mkdir(mode=0o700)
        (box / "home").mkdir()
        return box

    def spawn(self, box, home, env, limits, cgroups=()):
        """Fork a kernel for ``box`` (see :meth:`new_box`); returns its :class:`ForkedKernel`.

        home: name of the notebook's folder copied in ``box/home``; env: the kernel's
        environment; limits: the kernel's Sandbox (its sizes of /tmp and of a file);
        cgroups: controllers whose cgroup named like the box it must join.
        """
        request = {"op": "spawn", "id": box.name, "home": home, "env": env, "cgroups": list(cgroups),
                   "tmp_bytes": limits.tmp_bytes, "file_bytes": limits.max_file_bytes, "inodes": limits.max_inodes,
                   "uid": self.sandbox.uid if self.sandbox.separate_user() else None}
        with self.lock:
            self._send(**request)
            answer = self._read_until(lambda m: m.get("id") == box.name and "pid" in m, ANSWER_SECONDS)
        return ForkedKernel(self, box.name, answer["pid"])

    def exit_status(self, name):
        """The kernel's exit status, or None while it runs (reads the zygote's reports)."""
        with self.lock:
            if name not in self.exits:
                try:
                    self._read_until(lambda m: False, 0)   # what has arrived, without waiting
                except ZygoteFailed:
                    return -signal.SIGKILL   # its kernels died with it
            return self.exits.pop(name, None)

    def signal(self, name, signum):
        with self.lock:
            try:
                self._send(op="signal", id=name, signal=int(signum))
            except ZygoteFailed:
                pass   # the kernel died with the zygote

    def close(self):
        """The owner stops the zygote (its kernels die with it) and removes its folder;
        another process only closes its connection."""
        if os.getpid() != self.owner:
            if self._connect_as == os.getpid() and self.sock is not None:
                self.sock.close()
                self.sock, self.gone = None, "closed"
            return
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.bounded:
            zygote.unmount(self.boxes)   # the boxes' own file systems with it
        trees.remove(self.root)


class ForkedKernel:
    """What jupyter_client's provisioner needs of a process, for a forked kernel."""

    stdin = stdout = stderr = None

    def __init__(self, server, name, pid):
        self.server, self.name, self.pid = server, name, pid
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            self.returncode = self.server.exit_status(self.name)
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.name, timeout)
            time.sleep(0.01)
        return self.returncode

    def send_signal(self, signum):
        if self.poll() is None:
            self.server.signal(self.name, signum)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def terminate(self):
        self.send_signal(signal.SIGTERM)


_servers = {}
_servers_lock = threading.Lock()


def server_for(sandbox, cgroup_parents, private_root):
    """The ForkServer for ``sandbox``'s jail: this process's, or the one of the process it was
    forked from; started (again) if there is none alive."""
    key = (sandbox.bwrap, sandbox.uid, tuple(sandbox.readable_paths()), tuple(sandbox.blocked_packages),
           sandbox.separate_user(), tuple(sorted((c, str(p)) for c, p in cgroup_parents.items())))
    with _servers_lock:
        server = _servers.get(key)
        if server is None or not server.alive:
            if server is not None:
                server.close()
            server = _servers[key] = ForkServer(sandbox, cgroup_parents, private_root)
        return server


def close_all():
    """Stop this process's zygotes (called at exit; a forked process only disconnects)."""
    with _servers_lock:
        for server in _servers.values():
            server.close()
        _servers.clear()


def _after_fork():
    global _servers_lock
    _servers_lock = threading.Lock()
    for server in _servers.values():
        server._after_fork()


atexit.register(close_all)
os.register_at_fork(after_in_child=_after_fork)

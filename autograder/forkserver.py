"""The grader's side of the zygote (:mod:`autograder.zygote`): jailed kernels, forked.

One :class:`ForkServer` per grader process and jail configuration starts the zygote in
bubblewrap (the same jail as a kernel: :meth:`autograder.sandbox.Sandbox.options`), then
asks it for one kernel per student. A kernel's box (connection file, sockets, a copy of
the notebook's folder) lies in the folder the zygote sees as ``/run/boxes``; the kernel
itself sees only its own. :class:`ForkedKernel` is the ``subprocess.Popen`` look-alike
that jupyter_client's provisioner holds.

If the zygote dies, the kernels it forked die with it and the next kernel starts a new
one; only the students whose kernels were running are affected.
"""
import atexit
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import zygote

SCRIPT = Path(zygote.__file__).resolve()
SCRIPT_IN_JAIL = "/opt/rnn-grader/zygote.py"
START_SECONDS = 120   # the zygote imports numpy, ipykernel, matplotlib: slow on a busy machine


class ZygoteFailed(RuntimeError):
    """The zygote did not start, or died."""


class ForkServer:
    """A zygote in its jail, for kernels configured by ``sandbox`` (a Sandbox)."""

    def __init__(self, sandbox, cgroup_parents, private_root):
        self.sandbox = sandbox
        self.root = Path(tempfile.mkdtemp(prefix=f"rnn-zygote-{os.getpid()}-", dir=private_root))
        self.boxes = self.root / "boxes"
        self.boxes.mkdir()
        if sandbox.separate_user():
            os.chown(self.boxes, sandbox.uid, sandbox.uid)
        self.cgroup_parents = dict(cgroup_parents)   # controller -> host folder of the kernels' cgroups
        self.lock = threading.Lock()
        self.exits = {}   # kernel id -> exit status
        self.buffer = b""
        self.process = None
        self.started = threading.Event()
        self.failure = None
        # A thread of its own starts bubblewrap and outlives the caller's thread:
        # --die-with-parent follows the thread that started it.
        threading.Thread(target=self._run, name="rnn-zygote", daemon=True).start()
        if not self.started.wait(START_SECONDS) or self.failure:
            self.close()
            raise ZygoteFailed(self.failure or f"the zygote did not start in {START_SECONDS} s")
        try:
            ready = self._read_until(lambda m: "ready" in m, START_SECONDS)
        except ZygoteFailed:
            self.close()
            raise
        if not ready["namespaces"]:
            self.close()
            raise ZygoteFailed("this system does not let an unprivileged process create user namespaces")
        atexit.register(self.close)

    def _run(self):
        try:
            options = self.sandbox.options(None, None, self._environment(), zygote=self)
            # root in its jail (it mounts, then makes each kernel the user ``uid``) when the
            # grader is root; else the grader's user in a user namespace, like a kernel
            argv = self.sandbox.wrap([sys.executable, SCRIPT_IN_JAIL], None, None, self._environment(),
                                     self.root / "bwrap-args", options=options, zygote=True)
            self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=open(self.root / "zygote.log", "wb"),
                                            env={"PATH": os.defpath}, start_new_session=True)
        except Exception as exc:   # reported by __init__
            self.failure = f"the zygote could not start: {exc}"
            self.started.set()
            return
        self.started.set()
        self.process.wait()

    def _environment(self):
        return dict(os.environ)

    @property
    def alive(self):
        return self.process is not None and self.process.poll() is None

    def _read_until(self, wanted, seconds):
        """Read messages until one satisfies ``wanted`` (returned); exit reports are kept.

        With ``seconds`` 0, reads only what has arrived and returns None.
        """
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
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, left))
            if not ready:
                if left <= 0:
                    if seconds == 0:
                        return None
                    raise ZygoteFailed(f"no answer from the zygote in {seconds} s")
                continue
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                raise ZygoteFailed("the zygote died: " + self.log_tail())
            self.buffer += chunk

    def log_tail(self):
        try:
            return (self.root / "zygote.log").read_text(errors="replace")[-800:].strip() or "(no output)"
        except OSError:
            return "(no log)"

    def _send(self, **request):
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise ZygoteFailed("the zygote died: " + self.log_tail()) from None

    def new_box(self):
        """A new kernel's box (host folder under ``boxes``), its kernel/ folder made."""
        box = Path(tempfile.mkdtemp(prefix="rnn-kernel-", dir=self.boxes))
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
                   "tmp_bytes": limits.tmp_bytes, "file_bytes": limits.max_file_bytes,
                   "uid": self.sandbox.uid if self.sandbox.separate_user() else None}
        with self.lock:
            self.exits.pop(box.name, None)
            self._send(**request)
            answer = self._read_until(lambda m: m.get("id") == box.name and "pid" in m, 30)
        return ForkedKernel(self, box.name, answer["pid"])

    def exit_status(self, name):
        """The kernel's exit status, or None while it runs (reads the zygote's reports)."""
        with self.lock:
            if name not in self.exits:
                try:
                    self._read_until(lambda m: False, 0)   # what has arrived, without waiting
                except ZygoteFailed:
                    pass
                if name not in self.exits and not self.alive:
                    return -signal.SIGKILL   # its kernels died with it
            return self.exits.get(name)

    def signal(self, name, signum):
        with self.lock:
            if self.alive:
                self._send(op="signal", id=name, signal=int(signum))

    def close(self):
        """Stop the zygote (its kernels die with it) and remove its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


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
            time.sleep(0.02)
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
    """This process's ForkServer for ``sandbox``'s jail, started (again) if needed."""
    key = (sandbox.bwrap, sandbox.uid, tuple(sandbox.readable_paths()), tuple(sandbox.blocked_packages),
           sandbox.separate_user(), tuple(sorted(cgroup_parents.items())))
    with _servers_lock:
        server = _servers.get(key)
        if server is None or not server.alive:
            if server is not None:
                server.close()
            server = _servers[key] = ForkServer(sandbox, cgroup_parents, private_root)
        return server

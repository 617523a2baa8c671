"""The grading kernel's jail: bubblewrap for what it can see, cgroups for what it can take.

:class:`SandboxedKernelManager` is a jupyter_client kernel manager whose kernel

* sees a read-only system (``/usr``, ``/etc``, the Python installation and this
  package), an empty private ``/tmp`` and, read-only, the folder of the notebook it
  runs; not the course directory, the gradebook, the sources or other students;
* runs as ``nobody`` in its own user, PID, network (loopback only), IPC and UTS
  namespaces: every process it starts dies with it;
* talks to the grader over IPC sockets in a private folder (no TCP port);
* is held by a pids and a memory cgroup (fork bombs and memory bombs hit a wall,
  numpy still works), which the grader empties when the kernel ends.

Where bubblewrap or writable cgroups are missing, the kernel still runs and the
grader logs a warning naming what is not enforced; ``Sandbox.required = True``
turns that into an error instead.
"""
import os
import shutil
import signal
import site
import sys
import time
import tempfile
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Integer, List, Unicode
from traitlets.config import Configurable

import rnnkit

CGROUP_ROOT = Path("/sys/fs/cgroup")
PACKAGE = Path(__file__).resolve().parent

#: What a grading kernel imports of the course: the student package only (check(), tasks,
#: the wire format); this package, with the references and the verifier, stays out.
KIT = Path(rnnkit.__file__).resolve().parent

#: Variables of the grader's environment that reach the kernel (with RNN_COURSE_*).
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def kernel_modules():
    return [str(KIT)]


def installed_copies():
    """Other copies of this package on the interpreter's path (a non-editable install)."""
    copies = []
    for folder in site.getsitepackages() + [site.getusersitepackages()]:
        copy = Path(folder) / PACKAGE.name
        if copy.is_dir() and copy.resolve() != PACKAGE:
            copies.append(str(copy))
    return copies


class SandboxUnavailable(RuntimeError):
    """Isolation was required but cannot be set up on this machine."""


class Sandbox(Configurable):
    """Limits and visibility of a grading kernel (configure as ``c.Sandbox.*``)."""

    enabled = Bool(True, help="Run grading kernels in the sandbox at all").tag(config=True)
    required = Bool(False, help="Refuse to grade if bubblewrap or cgroups are unavailable").tag(config=True)
    bwrap = Unicode("bwrap", help="The bubblewrap executable").tag(config=True)
    memory_bytes = Integer(2 * 1024 ** 3, help="Memory limit of a kernel and its children").tag(config=True)
    max_processes = Integer(64, help="Limit on processes and threads of a kernel").tag(config=True)
    uid = Integer(65534, help="User id inside the sandbox (nobody)").tag(config=True)
    extra_ro_paths = List(Unicode(), help="More paths the kernel may read").tag(config=True)
    max_file_bytes = Integer(64 * 1024 ** 2, help="Largest file a kernel may write").tag(config=True)

    def problems(self):
        """What this machine cannot enforce, in words; empty when all is well."""
        missing = []
        if not shutil.which(self.bwrap):
            missing.append("bubblewrap is not installed (apt-get install bubblewrap): "
                           "the kernel can read the course directory and keep processes alive")
        if not cgroup_controllers():
            missing.append("no writable cgroups: no memory or process limits")
        return missing

    def readable_paths(self):
        """Paths bound read-only into the jail: the system and Python."""
        paths = ["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32",
                 sys.base_prefix, sys.prefix, *self.extra_ro_paths]
        return [p for p in dict.fromkeys(paths) if os.path.exists(p)]

    def wrap(self, argv, private, workdir, env):
        """The kernel command ``argv`` inside bubblewrap.

        private: folder of the connection file and IPC sockets (read-write);
        workdir: the notebook's folder, the kernel's working directory (read-only);
        env: the environment the kernel was given, of which only ``PASSED_ENV`` gets in.
        """
        cmd = [self.bwrap, "--die-with-parent", "--new-session", "--unshare-all", "--clearenv",
               "--uid", str(self.uid), "--gid", str(self.uid), "--cap-drop", "ALL",
               "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
        for path in self.readable_paths():
            cmd += ["--ro-bind", path, path]
        for path in installed_copies():
            cmd += ["--tmpfs", path]  # another copy of the package would hold the references
        for path in kernel_modules():
            cmd += ["--ro-bind", path, path]
        cmd += ["--bind", str(private), str(private)]
        if workdir:
            cmd += ["--ro-bind", str(workdir), str(workdir), "--chdir", str(workdir)]
        settings = {name: env[name] for name in env if name in PASSED_ENV or name.startswith("RNN_COURSE_")}
        settings.update({
            "PYTHONPATH": str(KIT.parent), "HOME": "/tmp", "TMPDIR": "/tmp",
            "MPLCONFIGDIR": "/tmp/matplotlib", "IPYTHONDIR": "/tmp/ipython",
            "JUPYTER_RUNTIME_DIR": "/tmp/runtime", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
            # The kernel's parent is bubblewrap's reaper, PID 1: ipykernel must not poll the
            # grader's PID (it would quit); --die-with-parent ends the kernel with the grader.
            "JPY_PARENT_PID": "1",
        })
        for name, value in settings.items():
            cmd += ["--setenv", name, value]
        limit = ["prlimit", f"--fsize={self.max_file_bytes}", "--"]  # no file may fill the disk
        return cmd + ["--"] + limit + list(argv)


def cgroup_controllers():
    """Writable cgroup v1 controllers {"pids": dir, "memory": dir}, or {} if there are none."""
    found = {}
    for name in ("pids", "memory"):
        base = CGROUP_ROOT / name
        if base.is_dir() and os.access(base, os.W_OK):
            found[name] = base
    return found if len(found) == 2 else {}


class Cgroup:
    """A pids + memory cgroup for one kernel; ``remove()`` ends everything inside it."""

    STALE_SECONDS = 600  # an empty cgroup this old was left by a grader that crashed

    def __init__(self, name, memory_bytes, max_processes):
        self.dirs = []
        for controller, base in cgroup_controllers().items():
            _sweep(base / "rnn-course", self.STALE_SECONDS)
            path = base / "rnn-course" / name
            path.mkdir(parents=True, exist_ok=True)
            self.dirs.append(path)
            if controller == "pids":
                (path / "pids.max").write_text(str(max_processes))
            else:
                (path / "memory.limit_in_bytes").write_text(str(memory_bytes))

    def enter_command(self, argv):
        """``argv`` prefixed with a shell that first moves itself into the cgroup."""
        moves = " && ".join(f'echo $$ > "{d / "cgroup.procs"}"' for d in self.dirs)
        return ["/bin/sh", "-c", f'{moves} && exec "$@"', "sh", *argv] if self.dirs else list(argv)

    def kill(self):
        """SIGKILL everything inside, once."""
        for d in self.dirs:
            for pid in _procs(d):
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def remove(self, seconds=5.0):
        """Kill until empty, then remove the cgroups; False if a process would not go in time."""
        deadline = time.monotonic() + seconds
        while any(_procs(d) for d in self.dirs) and time.monotonic() < deadline:
            self.kill()
            time.sleep(0.02)
        for d in list(self.dirs):
            try:
                d.rmdir()
                self.dirs.remove(d)
            except OSError:
                pass
        return not self.dirs


def _procs(cgroup):
    try:
        return (cgroup / "cgroup.procs").read_text().split()
    except OSError:
        return []


def _sweep(parent, older_than):
    """Remove empty cgroups under ``parent`` untouched for ``older_than`` seconds."""
    if not parent.is_dir():
        return
    for d in parent.iterdir():
        try:
            if not _procs(d) and time.time() - d.stat().st_mtime > older_than:
                d.rmdir()
        except OSError:
            pass


class SandboxedKernelManager(AsyncKernelManager):
    """Starts the kernel jailed (see module docstring); interrupts by message, not signal."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sandbox = Sandbox(parent=self)
        self.private = Path(tempfile.mkdtemp(prefix="rnn-kernel-"))
        # 0700: the kernel (root outside its namespace, without capabilities) writes its
        # sockets here; no other host user can reach what it writes.
        os.chmod(self.private, 0o700)
        self.transport = "ipc"
        self.connection_file = str(self.private / "kernel.json")
        self.ip = str(self.private / "ipc")
        self.cgroup = None
        self.workdir = None
        self.kernel_env = dict(os.environ)

    @property
    def kernel_spec(self):
        spec = super().kernel_spec
        if spec is not None:
            spec.interrupt_mode = "message"  # a signal would reach bubblewrap, not the kernel
        return spec

    async def _async_pre_start_kernel(self, **kw):
        self.workdir = kw.get("cwd")
        self.kernel_env = kw.get("env") or dict(os.environ)
        return await super()._async_pre_start_kernel(**kw)

    pre_start_kernel = _async_pre_start_kernel

    def format_kernel_cmd(self, extra_arguments=None):
        argv = super().format_kernel_cmd(extra_arguments)
        if not self.sandbox.enabled:
            return argv
        problems = self.sandbox.problems()
        if problems and self.sandbox.required:
            raise SandboxUnavailable("; ".join(problems))
        for problem in problems:
            self.log.warning("grading kernel not fully isolated: %s", problem)
        if shutil.which(self.sandbox.bwrap):
            argv = self.sandbox.wrap(argv, self.private, self.workdir, self.kernel_env)
        if cgroup_controllers():
            self.cgroup = Cgroup(self.private.name, self.sandbox.memory_bytes, self.sandbox.max_processes)
            argv = self.cgroup.enter_command(argv)
        return argv

    def kill_all(self):
        """End the kernel and every process it started (used by the wall-clock limit)."""
        if self.cgroup:
            self.cgroup.kill()
        elif self.provisioner and self.provisioner.process:
            self.provisioner.process.kill()

    def release(self):
        """Kill what is left of the kernel and remove its cgroups and private folder (idempotent)."""
        if self.cgroup and self.cgroup.remove():
            self.cgroup = None
        shutil.rmtree(self.private, ignore_errors=True)

    async def _async_cleanup_resources(self, restart=False):
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            self.release()

    cleanup_resources = _async_cleanup_resources

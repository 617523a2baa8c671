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
import sys
import tempfile
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Integer, List, Unicode
from traitlets.config import Configurable

CGROUP_ROOT = Path("/sys/fs/cgroup")


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
        """Paths bound read-only into the jail: the system, Python, and this package."""
        package = Path(__file__).resolve().parent
        paths = ["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32",
                 sys.base_prefix, sys.prefix, str(package), *self.extra_ro_paths]
        return [p for p in dict.fromkeys(paths) if os.path.exists(p)]

    def wrap(self, argv, private, workdir):
        """The kernel command ``argv`` inside bubblewrap.

        private: folder of the connection file and IPC sockets (read-write);
        workdir: the notebook's folder, the kernel's working directory (read-only).
        """
        cmd = [self.bwrap, "--die-with-parent", "--new-session", "--unshare-all",
               "--uid", str(self.uid), "--gid", str(self.uid), "--cap-drop", "ALL",
               "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
        for path in self.readable_paths():
            cmd += ["--ro-bind", path, path]
        cmd += ["--bind", str(private), str(private)]
        if workdir:
            cmd += ["--ro-bind", str(workdir), str(workdir), "--chdir", str(workdir)]
        # The kernel imports this very copy of the package (the only one it can see),
        # whatever copy the environment's installation points at.
        package_parent = str(Path(__file__).resolve().parent.parent)
        for name, value in {"PYTHONPATH": package_parent, "HOME": "/tmp", "TMPDIR": "/tmp",
                            "MPLCONFIGDIR": "/tmp/matplotlib",
                            "IPYTHONDIR": "/tmp/ipython", "JUPYTER_RUNTIME_DIR": "/tmp/runtime",
                            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}.items():
            cmd += ["--setenv", name, value]
        # The kernel's parent is bubblewrap's reaper, PID 1: ipykernel must not poll the
        # grader's PID (it would quit); --die-with-parent ends the kernel with the grader.
        cmd += ["--setenv", "JPY_PARENT_PID", "1"]
        return cmd + ["--"] + list(argv)


def cgroup_controllers():
    """Writable cgroup v1 controllers {"pids": dir, "memory": dir}, or {} if there are none."""
    found = {}
    for name in ("pids", "memory"):
        base = CGROUP_ROOT / name
        if base.is_dir() and os.access(base, os.W_OK):
            found[name] = base
    return found if len(found) == 2 else {}


class Cgroup:
    """A pids + memory cgroup for one kernel; ``kill()`` ends everything inside it."""

    def __init__(self, name, memory_bytes, max_processes):
        self.dirs = []
        for controller, base in cgroup_controllers().items():
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
        for d in self.dirs:
            for _ in range(3):
                pids = (d / "cgroup.procs").read_text().split() if (d / "cgroup.procs").exists() else []
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass

    def remove(self):
        self.kill()
        for d in self.dirs:
            try:
                d.rmdir()
            except OSError:
                pass  # a process still exiting; the next kernel's cleanup retries nothing, cgroups are cheap


class SandboxedKernelManager(AsyncKernelManager):
    """Starts the kernel jailed (see module docstring); interrupts by message, not signal."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sandbox = Sandbox(parent=self)
        self.private = Path(tempfile.mkdtemp(prefix="rnn-kernel-"))
        os.chmod(self.private, 0o777)  # the jailed user writes its sockets here
        self.transport = "ipc"
        self.connection_file = str(self.private / "kernel.json")
        self.ip = str(self.private / "ipc")
        self.cgroup = None
        self.workdir = None

    @property
    def kernel_spec(self):
        spec = super().kernel_spec
        if spec is not None:
            spec.interrupt_mode = "message"  # a signal would reach bubblewrap, not the kernel
        return spec

    async def _async_pre_start_kernel(self, **kw):
        self.workdir = kw.get("cwd")
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
            argv = self.sandbox.wrap(argv, self.private, self.workdir)
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
        if self.cgroup:
            self.cgroup.remove()
            self.cgroup = None
        shutil.rmtree(self.private, ignore_errors=True)

    async def _async_cleanup_resources(self, restart=False):
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            self.release()

    cleanup_resources = _async_cleanup_resources

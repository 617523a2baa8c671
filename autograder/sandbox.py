"""The grading kernel's jail: bubblewrap for what it can see, cgroups for what it can take.

:class:`SandboxedKernelManager` is a jupyter_client kernel manager whose kernel

* sees a read-only system (``/usr``, ``/etc``, the Python installation, a venv at
  ``/opt/venv``), the student kit at ``/opt/rnn-course/rnnkit``, a small private
  ``/tmp`` (RAM) and, read-only at ``/home/student/<its name>``, a copy of the folder
  of the notebook it runs; not the course directory, the gradebook, the sources, other
  students or this package;
* imports only from the system and the kit: not from its working directory
  (``PYTHONSAFEPATH``), and never an autograd framework (``Sandbox.blocked_packages``:
  a stub that raises an error containing :data:`BLOCKED_MARKER` hides each one);
* is an unprivileged host user: when the grader is root, the host user ``Sandbox.uid``
  (``nobody``) without capabilities, in its own PID, network (loopback only), IPC and
  UTS namespaces; otherwise the grader's own user, in a user namespace too;
  every process it starts dies with it;
* talks to the grader over IPC sockets in a private folder (no TCP port), on
  ``/dev/shm`` (RAM, charged to its memory cgroup), the only place besides its
  ``/tmp`` it can write to, with a per-file size limit; under a root grader the
  folder is a tmpfs of its own, bounded in bytes and files (``Sandbox.tmp_bytes``,
  ``Sandbox.max_inodes``) and taken away by one unmount, and every clean-up removes
  trees without recursion or following a link (:mod:`autograder.trees`);
* cannot use the kernel keyring (seccomp refuses its syscalls: every kernel is the
  same user) and, under a root grader, finds no host path of the grader's venv, kit
  or package (bound from overlays that name no host path, files naming one masked:
  :func:`neutral`);
* is held by a pids and a memory cgroup (fork bombs and memory bombs hit a wall,
  numpy still works), which the grader empties when the kernel ends.

bubblewrap reads its options from a file the jail cannot see (``--args``): what the
kernel reads of its PID 1 is only the command it runs.

By default (``Sandbox.fork_kernels``) bubblewrap starts not each kernel but, once per
batch, a zygote (:mod:`autograder.zygote`, driven by :mod:`autograder.forkserver`) in
this jail, which forks each kernel into namespaces, mounts and cgroups of its own with
the same view and limits as above; where it cannot, each kernel gets its own bubblewrap.

Where bubblewrap, setpriv (for a root grader), writable cgroups or ``/dev/shm`` are
missing, the kernel still runs and the grader logs a warning naming what is not
enforced; ``Sandbox.required = True`` turns that into an error instead.
"""
import atexit
import errno
import importlib.util
import json
import os
import queue
import shutil
import signal
import site
import struct
import sys
import time
import tempfile
import threading
from pathlib import Path

import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.utils import run_sync
from traitlets import Bool, DottedObjectName, Integer, List, Type, Unicode
from traitlets.config import Configurable

import rnnkit

from . import trees

CGROUP_ROOT = Path("/sys/fs/cgroup")
PACKAGE = Path(__file__).resolve().parent

#: What a grading kernel imports of the course: the student package only (check(), tasks,
#: the wire format); this package, with the references and the verifier, stays out.
KIT = Path(rnnkit.__file__).resolve().parent

#: In the jail: the kit's parent folder (on the kernel's PYTHONPATH), the grader's virtual
#: environment (if it runs in one), and the parent of the notebook's folder (the kernel's
#: working directory).
KIT_ROOT = "/opt/rnn-course"
VENV = "/opt/venv"
STUDENT_HOME = "/home/student"

#: Bound over a blocked package's folder: importing the package then fails with an error
#: whose message contains ``BLOCKED_MARKER`` (by which the grader recognises it).
STUB = PACKAGE / "blocked_module"
BLOCKED_MARKER = "is not available while grading"

#: Frameworks that compute gradients for the student, numerically or symbolically: the
#: exercises are from scratch.
BLOCKED_PACKAGES = ("torch", "functorch", "torchgen", "torchvision", "torchaudio", "torchtext",
                    "lightning", "pytorch_lightning", "jax", "jaxlib", "flax", "tensorflow", "keras",
                    "tf_keras", "autograd", "mxnet", "paddle", "chainer", "theano", "pytensor",
                    "aesara", "tinygrad", "micrograd", "mlx", "dynet",
                    "sympy", "symengine", "casadi", "numdifftools", "findiff", "jacobi", "autograd_minimize",
                    "ad")

SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/bin")

#: Variables of the grader's environment that reach the kernel (with RNN_COURSE_*).
PASSED_ENV = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


#: Syscalls of the kernel keyring (add_key, request_key, keyctl) by architecture: refused in
#: the jail, so no key one kernel stores reaches another (they would share the user's keyring).
KEYRING_SYSCALLS = {"x86_64": (0xC000003E, (248, 249, 250)), "aarch64": (0xC00000B7, (217, 218, 219))}
X32_SYSCALL_BIT = 0x40000000


def keyring_filter(machine=None):
    """A seccomp program (classic BPF, as bubblewrap's ``--seccomp`` reads it) that refuses the
    keyring's syscalls with EPERM, and every syscall of another architecture's ABI; None on
    an architecture not listed in :data:`KEYRING_SYSCALLS`."""
    arch, numbers = KEYRING_SYSCALLS.get(machine or os.uname().machine, (None, ()))
    if arch is None:
        return None
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | errno.EPERM
    tests = [(jge, X32_SYSCALL_BIT)] if arch == 0xC000003E else []
    tests += [(jeq, n) for n in numbers]
    # arch is checked first; each test jumps to the final "deny" when it holds
    program = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, deny), (ld, 0, 0, 0)]
    for i, (op, k) in enumerate(tests):
        program.append((op, len(tests) - i, 0, k))
    program += [(ret, 0, 0, allow), (ret, 0, 0, deny)]
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


def kernel_modules():
    """Host folder -> folder in the jail, of what a grading kernel imports of the course."""
    return {str(KIT): f"{KIT_ROOT}/{KIT.name}"}


def relocated():
    """Host folder -> neutral folder in the jail: the kit, and the grader's venv (its path
    would name the course's repository)."""
    moves = kernel_modules()
    if sys.prefix != sys.base_prefix:
        moves[sys.prefix] = VENV
    return moves


def jail_path(path):
    """Where the host's ``path`` is seen in the jail (unmoved unless in a relocated folder)."""
    path = str(path)
    for host, inside in sorted(relocated().items(), key=lambda item: -len(item[0])):
        if path == host or path.startswith(host.rstrip("/") + "/"):
            return inside + path[len(host):]
    return path


def blocked_locations(names):
    """Folders (or module files) of the installed packages among ``names``, found without
    importing them."""
    found = []
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        if spec.submodule_search_locations is not None:
            found += [p for p in spec.submodule_search_locations if os.path.isdir(p)]
        elif spec.origin and os.path.isfile(spec.origin):
            found.append(spec.origin)
    return found


def private_root():
    """Where kernels' private folders go: ``/dev/shm`` (RAM) if usable, else None (the
    temporary folder, on disk)."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def installed_copies():
    """Other copies of this package on the interpreter's path (a non-editable install)."""
    copies = []
    for folder in site.getsitepackages() + [site.getusersitepackages()]:
        copy = Path(folder) / PACKAGE.name
        if copy.is_dir() and copy.resolve() != PACKAGE:
            copies.append(str(copy))
    return copies


def bound(folder, sandbox):
    """Mount a tmpfs of its own on ``folder`` (a kernel's box): ``sandbox.tmp_bytes`` bytes and
    ``sandbox.max_inodes`` files and folders for the kernel (more for the copy of its
    notebook's folder), which one unmount takes away, whatever it holds. Needs a root
    grader; False where it cannot be done."""
    from . import zygote
    if os.geteuid() != 0:
        return False
    try:
        zygote.tmpfs(str(folder), sandbox.tmp_bytes, "0700", sandbox.max_inodes + 4096,
                     sandbox.uid if sandbox.separate_user() else None)
    except OSError:
        return False
    return True


def remove_box(folder):
    """Remove a kernel's box: its own file system unmounted (with anything mounted below),
    the rest removed without recursion or following a link; never raises."""
    from . import zygote
    try:
        for point in sorted(_mounts_under(folder), key=len, reverse=True):
            zygote.unmount(point)
        return trees.remove(folder)
    except Exception:   # one kernel's leftovers never stop another's grading
        return False


def _mounts_under(folder):
    """Mount points at or under ``folder`` in this process's mount table."""
    folder = os.path.realpath(folder)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        point = line.split(" ")[4].encode().decode("unicode_escape")
        if point == folder or point.startswith(folder.rstrip("/") + "/"):
            points.append(point)
    return points


_views = {}   # host folder -> its neutral view (see neutral), this process's
_views_lock = threading.Lock()


def neutral(folder):
    """A read-only view of the host's ``folder`` whose entry in a mount table names no host
    path: bound into the jail from here, ``/proc/self/mountinfo`` there does not show where
    the grader's venv, kit or package are. An overlay given its layer by file descriptor,
    made once per process (root grader); ``folder`` itself where it cannot be made."""
    folder = str(folder)
    with _views_lock:
        if folder in _views:
            return _views[folder]
        view = folder
        if os.geteuid() == 0:
            try:
                view = _overlay(folder)
            except OSError:   # no overlayfs here: the folder itself (its path is then in the mount table)
                pass
        _views[folder] = view
        return view


def _host_paths():
    """(host path, where the jail sees it, or a path that is nowhere) that files of a view may
    name, longest first."""
    moves = {**relocated(), str(PACKAGE.parent): f"{KIT_ROOT}/grader"}
    moves.update({os.path.realpath(host): inside for host, inside in moves.items()})
    return sorted(moves.items(), key=lambda item: -len(item[0]))


def _masks(folder, layer):
    """A layer over ``folder`` (made at ``layer``) replacing the files of it that name a host path
    (:func:`_host_paths`): where a venv or an editable install writes them (pyvenv.cfg, the
    scripts in bin/, .pth files and their finders, direct_url.json, compiled modules). A
    text file gets the jail's paths instead; a compiled module is emptied (Python compiles
    its source again, in memory)."""
    folder, moves = Path(folder), _host_paths()
    found = [p for p in folder.glob("*") if p.is_file()] + list(folder.glob("bin/*"))
    for site_dir in folder.glob("lib/python*/site-packages"):
        found += [p for p in site_dir.glob("*") if p.is_file()]
        found += list(site_dir.glob("__pycache__/*")) + list(site_dir.glob("*/direct_url.json"))
    if not (folder / "pyvenv.cfg").exists():   # a small tree (the kit, the package): all of it
        found += [folder / rel for rel in trees.files(folder)[:5000]]
    os.mkdir(layer)
    for path in dict.fromkeys(found):
        try:
            if not path.is_file() or path.is_symlink() or path.stat().st_size > 1024 ** 2:
                continue
            data = path.read_bytes()
            if not any(host.encode() in data for host, _ in moves):
                continue
            if path.suffix != ".pyc":
                for host, inside in moves:
                    data = data.replace(host.encode(), inside.encode())
            else:
                data = b""
            copy = Path(layer) / path.relative_to(folder)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(data)
            shutil.copymode(path, copy)
        except OSError:
            continue
    return layer


def _views_after_fork():
    global _views_lock
    _views_lock = threading.Lock()


os.register_at_fork(after_in_child=_views_after_fork)


def _overlay(folder):
    """``folder`` mounted read-only in this process's views' folder, :func:`_masks` over it."""
    from . import zygote
    if "" not in _views:   # the views' folder, removed when this process ends
        _views[""] = tempfile.mkdtemp(prefix=f"rnn-views-{os.getpid()}-", dir=private_root())
        os.mkdir(f"{_views['']}/empty")
        atexit.register(_remove_views, os.getpid())
    target = f"{_views['']}/{len(_views)}"
    os.mkdir(target)
    masks = _masks(folder, f"{target}-masks")
    layers = [os.open(p, os.O_PATH | os.O_DIRECTORY) for p in (masks, folder, f"{_views['']}/empty")]
    try:
        zygote.mount("overlay", target, "overlay", zygote.MS_RDONLY | zygote.MS_NOSUID | zygote.MS_NODEV,
                     "lowerdir=" + ":".join(f"/proc/self/fd/{fd}" for fd in layers))
    finally:
        for fd in layers:
            os.close(fd)
    return target


def _remove_views(owner):
    if os.getpid() == owner and _views.get(""):
        remove_box(_views.pop(""))
        _views.clear()


class SandboxUnavailable(RuntimeError):
    """Isolation was required but cannot be set up on this machine."""


class Sandbox(Configurable):
    """Limits and visibility of a grading kernel (configure as ``c.Sandbox.*``)."""

    enabled = Bool(True, help="Run grading kernels in the sandbox at all").tag(config=True)
    required = Bool(False, help="Refuse to grade if bubblewrap or cgroups are unavailable").tag(config=True)
    bwrap = Unicode("bwrap", help="The bubblewrap executable").tag(config=True)
    memory_bytes = Integer(2 * 1024 ** 3, help="Memory limit of a kernel and its children").tag(config=True)
    max_processes = Integer(64, help="Limit on processes and threads of a kernel").tag(config=True)
    uid = Integer(65534, help="Host user id of the kernel when the grader is root "
                              "(the user id inside the sandbox otherwise); nobody").tag(config=True)
    extra_ro_paths = List(Unicode(), help="More paths the kernel may read").tag(config=True)
    max_file_bytes = Integer(64 * 1024 ** 2, help="Largest file a kernel may write").tag(config=True)
    tmp_bytes = Integer(256 * 1024 ** 2, help="Size of the kernel's /tmp, /dev/shm and private folder "
                                              "(each in RAM)").tag(config=True)
    max_inodes = Integer(16384, help="Files and folders the kernel may make in each of its /tmp, /dev/shm "
                                     "and private folder").tag(config=True)
    blocked_packages = List(Unicode(), default_value=list(BLOCKED_PACKAGES),
                            help="Packages the kernel cannot import (autograd frameworks)").tag(config=True)
    fork_kernels = Bool(True, help="Fork kernels from a zygote that has imported numpy and ipykernel "
                                   "in the jail (see autograder.zygote), rather than start each "
                                   "one in bubblewrap from nothing").tag(config=True)
    setpriv = Unicode("setpriv", help="util-linux setpriv: makes the kernel of a root grader "
                                      "the host user `uid`").tag(config=True)

    def separate_user(self):
        """True if the kernel runs as its own host user ``uid``: the grader is root."""
        return os.geteuid() == 0 and bool(shutil.which(self.setpriv))

    def problems(self):
        """What this machine cannot enforce, in words; empty when all is well."""
        missing = []
        if not shutil.which(self.bwrap):
            missing.append("bubblewrap is not installed (apt-get install bubblewrap): "
                           "the kernel can read the course directory and keep processes alive")
        if os.geteuid() == 0 and not shutil.which(self.setpriv):
            missing.append("setpriv (util-linux) is not installed: the kernel of this root grader "
                           "is root on the host and can read every file the jail shows")
        if not cgroup_controllers():
            missing.append("no writable cgroups: no memory or process limits, and the kernel's "
                           "private folder is not bounded in size (only each file is)")
        elif not private_root():
            missing.append("no writable /dev/shm: the kernel's private folder is on disk, "
                           "not bounded in size (only each file is)")
        return missing

    def notes(self):
        """What is weaker than it could be, by choice of the user running the grader."""
        if os.geteuid() != 0:
            return ["the kernel runs as the grader's own host user (uid %d): a separate host user, "
                    "a private folder bounded in files and host paths hidden from its mount table "
                    "need a root grader" % os.geteuid()]
        return []

    def readable_paths(self):
        """Paths bound read-only into the jail: the system and Python."""
        paths = ["/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32",
                 sys.base_prefix, sys.prefix, *self.extra_ro_paths]
        return [p for p in dict.fromkeys(paths) if os.path.exists(p)]

    def environment(self, env):
        """The kernel's environment: of the grader's ``env``, only ``PASSED_ENV`` and
        ``RNN_COURSE_*``, plus the jail's own settings."""
        settings = {name: env[name] for name in env if name in PASSED_ENV or name.startswith("RNN_COURSE_")}
        settings.update({
            # the grader's PATH would name host folders
            "PATH": ":".join(dict.fromkeys([os.path.dirname(jail_path(sys.executable)), *SYSTEM_PATH])),
            "PYTHONPATH": KIT_ROOT, "PYTHONSAFEPATH": "1",  # nothing imported from the working directory
            "HOME": "/tmp", "TMPDIR": "/tmp",
            "MPLCONFIGDIR": "/tmp/matplotlib", "IPYTHONDIR": "/tmp/ipython",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",   # what ipykernel would choose
            "JUPYTER_RUNTIME_DIR": "/tmp/runtime", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
            # The kernel's parent is PID 1, a reaper (bubblewrap's, or the zygote's fork):
            # ipykernel must not poll it (it would quit).
            "JPY_PARENT_PID": "1",
        })
        return settings

    def options(self, private, workdir, env, zygote=None):
        """bubblewrap's options for a kernel, or for a zygote that forks kernels.

        private: folder of the connection file and IPC sockets (read-write, same path inside);
        workdir: the notebook's folder, the kernel's working directory (read-only);
        env: the environment the kernel was given, of which only ``PASSED_ENV`` gets in;
        zygote: a :class:`autograder.forkserver.ForkServer`: its kernels' boxes and cgroups
        are bound instead of ``private`` and ``workdir`` (each kernel then hides all but its own).
        """
        opts = ["--die-with-parent", "--new-session", "--clearenv"]
        opts += ["--seccomp", "4"] if keyring_filter() else []
        if self.separate_user():  # no user namespace: setpriv makes the kernel a real host user
            opts += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
            opts += ["--unshare-cgroup-try"] if zygote is None else []   # kernels join their cgroups
        else:
            opts += ["--unshare-all", "--uid", str(self.uid), "--gid", str(self.uid), "--cap-drop", "ALL"]
        opts += ["--proc", "/proc", "--dev", "/dev"]
        box = Path(private).parent if private else None
        if box is not None and os.path.ismount(box):   # its /tmp shares the box's bounds (see bound)
            (box / "tmp").mkdir(exist_ok=True)
            (box / "tmp").chmod(0o1777)
            opts += ["--bind", str(box / "tmp"), "/tmp"]
        else:
            opts += ["--perms", "1777", "--size", str(self.tmp_bytes), "--tmpfs", "/tmp"]
        mounts = [("--ro-bind", neutral(path) if path in relocated() else path, jail_path(path))
                  for path in self.readable_paths()]
        # another copy of this package would hold the references
        mounts += [("--tmpfs", jail_path(path)) for path in installed_copies()]
        mounts += [("--ro-bind", neutral(STUB) if os.path.isdir(path) else f"{neutral(STUB)}/__init__.py",
                    jail_path(path))
                   for path in blocked_locations(self.blocked_packages)]
        mounts += [("--ro-bind", neutral(path), inside) for path, inside in kernel_modules().items()]
        if zygote is not None:
            from . import forkserver, zygote as script
            mounts += [("--ro-bind", f"{neutral(forkserver.SCRIPT.parent)}/{forkserver.SCRIPT.name}",
                        forkserver.SCRIPT_IN_JAIL),
                       ("--bind", str(zygote.boxes), script.BOXES),
                       ("--bind", str(zygote.control), str(Path(script.CONTROL).parent)),
                       ("--dir", script.HOME), ("--dir", script.KERNEL_DIR)]
            mounts += [("--bind", str(path), f"{script.CGROUPS}/{controller}")
                       for controller, path in zygote.cgroup_parents.items()]
        else:
            mounts += [("--bind", str(private), str(private))]
        if workdir:
            inside = f"{STUDENT_HOME}/{Path(workdir).name or 'notebook'}"
            mounts += [("--ro-bind", str(workdir), inside)]
            opts += ["--chdir", inside]
        for mount in mounts:
            # bubblewrap would make missing parents 0700 (root's): made here 0755, they
            # let the kernel's user through
            parent = str(Path(mount[-1]).parent)
            opts += ["--dir", parent, *mount] if parent != "/" else list(mount)
        for name, value in self.environment(env).items():
            opts += ["--setenv", name, value]
        return opts

    def wrap(self, argv, private, workdir, env, args_file, options=None, zygote=False):
        """The kernel command ``argv`` inside bubblewrap, whose options (default: those of
        :meth:`options`) go to ``args_file`` (a file outside the jail, read through file
        descriptor 3), its seccomp program (:func:`keyring_filter`) beside it (descriptor 4).
        zygote: ``argv`` is the zygote, which sets each kernel's user and
        file size limit itself (it stays root in its jail when the grader is root)."""
        options = options or self.options(private, workdir, env)
        seccomp = Path(f"{args_file}-seccomp")
        for path, data in ((args_file, b"".join(arg.encode() + b"\0" for arg in options)),
                           (seccomp, keyring_filter() or b"")):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        user = []
        if self.separate_user() and not zygote:
            user = [shutil.which(self.setpriv), f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
                    "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        limit = [] if zygote else ["prlimit", f"--fsize={self.max_file_bytes}", "--"]  # no file may fill the memory
        return ["/bin/sh", "-c", 'f="$1"; shift; exec "$@" 3<"$0" 4<"$f"', str(args_file), str(seccomp),
                shutil.which(self.bwrap), "--args", "3", "--", *user, *limit, jail_path(argv[0]), *argv[1:]]


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


def _sweep_boxes(root, older_than):
    """Remove kernels' folders (in RAM on /dev/shm) left by a grader that crashed: untouched
    for ``older_than`` seconds, with no process in their cgroups; and zygotes' folders whose
    grader process (named in the folder's name) is gone. Whatever they hold (a tree of any
    depth, mounts) and whatever fails, the new batch goes on."""
    try:
        zygotes, boxes = list(Path(root).glob("rnn-zygote-*")), list(Path(root).glob("rnn-kernel-*"))
    except OSError:
        return
    for folder in zygotes + list(Path(root).glob("rnn-views-*")):
        pid = folder.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            remove_box(folder)
    for box in boxes:
        try:
            alive = any(_procs(base / "rnn-course" / box.name) for base in cgroup_controllers().values())
            if not alive and time.time() - box.lstat().st_mtime > older_than:
                remove_box(box)
        except OSError:
            pass


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


def zygote_for(sandbox, log):
    """This process's zygote for ``sandbox``'s jail (see :mod:`autograder.forkserver`), started
    if needed; None if kernels are not forked, or if the zygote cannot run here (``log``
    warns: each kernel then starts in bubblewrap from nothing)."""
    if not (sandbox.enabled and sandbox.fork_kernels and shutil.which(sandbox.bwrap)):
        return None
    from . import forkserver
    parents = {}
    for controller, base in cgroup_controllers().items():
        parents[controller] = base / "rnn-course"
        parents[controller].mkdir(exist_ok=True)
    try:
        return forkserver.server_for(sandbox, parents, private_root())
    except forkserver.ZygoteFailed as exc:
        log.warning("grading kernels start one by one, not forked: %s", exc)
        return None


#: A client connects before its kernel has bound its sockets: it retries after this many
#: milliseconds, not zmq's 100 (a forked kernel binds them a few tens of ms after its fork).
RECONNECT_MS = 10


class GradingKernelClient(AsyncKernelClient):
    """A kernel client that knows a kernel is ready as soon as it is, without the fixed
    waits of jupyter_client's ``wait_for_ready`` (0.2 s for IOPub, then 0.2 s to flush it)."""

    def _context_default(self):
        """Its own context, whose sockets retry a connection after :data:`RECONNECT_MS`."""
        context = super()._context_default()
        context.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
        return context

    async def _async_wait_for_ready(self, timeout=None):
        """Ready once a kernel_info request is answered on the shell channel and the
        kernel's idle status for it reached IOPub (else IOPub is not connected yet: ask again)."""
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while True:
            msg_id = self.kernel_info()
            reply = await self._next(self.shell_channel, lambda m: m["msg_type"] == "kernel_info_reply"
                                     and m["parent_header"].get("msg_id") == msg_id, 1.0)
            if reply is not None and await self._next(self.iopub_channel, lambda m: (
                    m["msg_type"] == "status" and m["content"].get("execution_state") == "idle"
                    and m["parent_header"].get("msg_id") == msg_id), 0.05) is not None:
                self._handle_kernel_info_reply(reply)
                return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")

    wait_for_ready = _async_wait_for_ready

    @staticmethod
    async def _next(channel, wanted, seconds):
        """The first message of ``channel`` satisfying ``wanted`` within ``seconds``, else None."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await channel.get_msg(timeout=left)
            except queue.Empty:
                return None
            if wanted(msg):
                return msg
        return None


class SandboxedKernelManager(AsyncKernelManager):
    """Starts the kernel jailed (see module docstring); interrupts by message, not signal.

    With ``Sandbox.fork_kernels`` (the default), the kernel is forked by this process's
    zygote (:mod:`autograder.forkserver`) and enters its own jail there; where the zygote
    cannot run (no user namespaces), each kernel starts in bubblewrap from nothing.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sandbox = Sandbox(parent=self)
        _sweep_boxes(private_root() or tempfile.gettempdir(), Cgroup.STALE_SECONDS)
        self.server = zygote_for(self.sandbox, self.log)
        # box (0700): the kernel's private folder (0700, the kernel's: it writes its sockets
        # there; no other host user can reach them), and what only the grader reads: bubblewrap's
        # options, or with a zygote the grader's connection file and the notebook folder's copy.
        if self.server:
            self.box = self.server.new_box(self.sandbox)
            self.private = self.box / "kernel"
            self.connection_file = str(self.box / "grader.json")
        else:
            self.box = Path(tempfile.mkdtemp(prefix="rnn-kernel-", dir=private_root()))
            if self.jailed:
                bound(self.box, self.sandbox)
            self.private = self.box / "kernel"
            self.private.mkdir(mode=0o700)
            self.connection_file = str(self.private / "kernel.json")
        self.transport = "ipc"
        self.ip = str(self.private / "ipc")
        self.context.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)   # its control socket
        self.cgroup = None
        self.workdir = None
        self.kernel_env = dict(os.environ)

    client_class = DottedObjectName(f"{__name__}.GradingKernelClient")
    client_factory = Type(klass=GradingKernelClient)

    async def _async_wait(self, pollinterval=0.01):
        """Until the kernel has exited, checked every 10 ms (not 100: a forked kernel's
        exit is known at once)."""
        await super()._async_wait(pollinterval=pollinterval)

    @property
    def kernel_spec(self):
        spec = super().kernel_spec
        if spec is not None:
            spec.interrupt_mode = "message"  # a signal would reach bubblewrap, not the kernel
        return spec

    async def _async_pre_start_kernel(self, **kw):
        self.workdir = kw.get("cwd")
        self.kernel_env = kw.get("env") or dict(os.environ)
        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
        if self.jailed:  # bubblewrap itself gets no secret of the grader's environment
            kw["env"] = {"PATH": os.defpath}
        return kernel_cmd, kw

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
        for note in self.sandbox.notes():
            self.log.info("grading kernel: %s", note)
        if self.server:
            self._prepare_forked_kernel()
            return argv
        if self.jailed:
            if self.sandbox.separate_user():
                for path in (self.private, Path(self.connection_file)):
                    os.chown(path, self.sandbox.uid, self.sandbox.uid)
            argv = self.sandbox.wrap(argv, self.private, self._copy_of_workdir(), self.kernel_env,
                                     self.box / "bwrap-args")
        if cgroup_controllers():
            self.cgroup = Cgroup(self.box.name, self.sandbox.memory_bytes, self.sandbox.max_processes)
            argv = self.cgroup.enter_command(argv)
        return argv

    def _prepare_forked_kernel(self):
        """The box of a kernel the zygote will fork: its connection file (sockets named as
        the kernel sees them), the notebook folder's copy, its cgroups (which it joins itself)."""
        from . import zygote
        info = json.loads(Path(self.connection_file).read_text())
        info["ip"] = f"{zygote.KERNEL_DIR}/ipc"
        (self.private / "kernel.json").write_text(json.dumps(info))
        self._copy_of_workdir()
        if cgroup_controllers():
            self.cgroup = Cgroup(self.box.name, self.sandbox.memory_bytes, self.sandbox.max_processes)
        if self.sandbox.separate_user():
            for path in (self.box, self.private, self.private / "kernel.json", Path(self.connection_file)):
                os.chown(path, self.sandbox.uid, self.sandbox.uid)

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        if not self.server:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        home = (Path(self.workdir).name if self.workdir else "") or "notebook"
        (self.box / "home" / home).mkdir(exist_ok=True)   # copied there, if there is a notebook folder
        cgroups = [d.parent.parent.name for d in self.cgroup.dirs] if self.cgroup else []
        process = self.server.spawn(self.box, home, self.sandbox.environment(self.kernel_env), self.sandbox, cgroups)
        provisioner = self.provisioner
        provisioner.process, provisioner.pid, provisioner.pgid = process, process.pid, None
        provisioner.cwd = self.workdir
        self._reconcile_connection_info(provisioner.connection_info)

    _launch_kernel = run_sync(_async_launch_kernel)

    def _copy_of_workdir(self):
        """The notebook's folder copied into the kernel's box (links as links, never followed).

        Bound from there, the jail's mount table (/proc/self/mountinfo) names the box, not
        the course directory and the student's folder.
        """
        if not self.workdir:
            return self.workdir
        copy = self.box / "home" / (Path(self.workdir).name or "notebook")
        shutil.copytree(self.workdir, copy, symlinks=True, dirs_exist_ok=True)
        return copy

    @property
    def private_in_jail(self):
        """The kernel's private folder as the kernel sees it."""
        from . import zygote
        return zygote.KERNEL_DIR if self.server else str(self.private)

    @property
    def jailed(self):
        return self.sandbox.enabled and bool(shutil.which(self.sandbox.bwrap))

    def kill_all(self):
        """End the kernel and every process it started (used by the wall-clock limit)."""
        if self.cgroup:
            self.cgroup.kill()
        elif self.provisioner and self.provisioner.process:
            self.provisioner.process.kill()

    def release(self):
        """Kill what is left of the kernel, remove its folder, then its cgroups (idempotent).

        The folder goes first: one beside an empty cgroup (or none) was left behind. What
        fails here is logged, never raised: it is this kernel's alone (a later sweep removes
        what is left).
        """
        try:
            if self.cgroup:
                self.cgroup.kill()
            remove_box(self.box)
            if self.cgroup and self.cgroup.remove():
                self.cgroup = None
            if not remove_box(self.box):   # what was written while the kill took effect
                self.log.warning("the folder of a grading kernel could not be removed: %s", self.box)
        except Exception as exc:
            self.log.warning("cleaning up after a grading kernel: %s: %s", type(exc).__name__, exc)

    async def _async_cleanup_resources(self, restart=False):
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            self.release()

    cleanup_resources = _async_cleanup_resources

"""The zygote: runs inside the grading jail and forks one fresh kernel per student.

Started by :class:`autograder.forkserver.ForkServer` inside bubblewrap (the jail of
:mod:`autograder.sandbox`: read-only system, the venv, the kit), it imports what every
grading kernel needs (numpy, the kit, ipykernel: :data:`PRELOAD`), then serves the grader's
processes (a batch's workers share it) on a socket, one JSON object per line each way:

* ``{"op": "spawn", "id": ..., "home": ..., "env": {...}, "tmp_bytes": n, "file_bytes": n,
  "inodes": n, "uid": n or null, "cgroups": [...]}`` forks a kernel for the box ``/run/boxes/<id>``;
  answers ``{"id": ..., "pid": ...}``;
* ``{"op": "signal", "id": ..., "signal": n}`` signals that kernel;
* when a kernel ends: ``{"id": ..., "exit": status}``.

It lives while its stdin is open; a grader process that disconnects loses its kernels.
No student code ever runs in the zygote. Between the fork and the kernel's first line,
the child (see :func:`enter_jail`) takes new mount, PID, network, IPC and UTS namespaces
(and a user namespace, unless the zygote is root), joins its cgroups (then a cgroup
namespace: it sees no cgroup's name), mounts a fresh ``/proc``, ``/tmp`` and ``/dev/shm``
(bounded in bytes and files) and ``/run``, shows itself only its own box (``/run/kernel``:
connection file and sockets; ``/home/student/<home>``: the notebook's folder, read-only)
and unmounts the others (as root), drops every capability and closes every file the
zygote had open. It leaves :func:`serve` before it becomes the kernel
(:class:`BecomeKernel`): the zygote's tables (other kernels, their requests) go with its
frames.
Every process the kernel starts ends with it (its PID namespace ends). A forked copy of
the zygote's memory is all it shares with the zygote; nothing of one kernel reaches the
next.

This file is self-contained (standard library only, until it imports the kernel's
modules): the jail shows it alone, not the grader's package.
"""
import ctypes
import fcntl
import gc
import json
import os
import resource
import selectors
import signal
import socket
import struct
import sys

BOXES = "/run/boxes"        # the kernels' boxes, bound read-write by the grader
CGROUPS = "/run/cgroups"    # <controller>/<id>/cgroup.procs, writable for the kernel's user
CONTROL = "/run/control/zygote.sock"   # where grader processes ask for kernels
KERNEL_DIR = "/run/kernel"  # where a kernel sees its own box's kernel/ folder
HOME = "/home/student"

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWCGROUP = 0x00020000, 0x04000000, 0x08000000, 0x02000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE, MS_SHARED = 32, 4096, 16384, 1 << 18, 1 << 20
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
CAPABILITY_VERSION_3 = 0x20080522
SIOCSIFFLAGS, IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x8914, 0x1, 0x8, 0x40

libc = ctypes.CDLL(None, use_errno=True)


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source, target, fstype=None, flags=0, data=None):
    _check(libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(),
                      ctypes.c_ulong(flags), data and data.encode()), f"mount {target}")


def tmpfs(target, size, mode="0755", inodes=None, uid=None):
    """A tmpfs of ``size`` bytes and at most ``inodes`` files and folders, owned by ``uid``."""
    options = f"size={size},mode={mode}" + (f",nr_inodes={inodes}" if inodes else "")
    options += f",uid={uid},gid={uid}" if uid is not None else ""
    mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options)


def unmount(target):
    """Detach the mount at ``target`` and every mount below it (lazily: what is still open
    stays usable until closed); False if there is none or it cannot be."""
    return libc.umount2(str(target).encode(), MNT_DETACH) == 0


def read_only(target, flags=MS_NOSUID | MS_NODEV):
    mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)


def become(uid):
    """The kernel's user, for good: ``uid`` (from root), or the user it already is; no
    capability, now or after an exec; no privilege gained by exec either."""
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no new privileges")
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    for cap in range(last + 1):
        _check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop bounding set")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    header = (ctypes.c_uint32 * 2)(CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(libc.capset(header, data), "capset")


def loopback_up():
    """The new network namespace's loopback interface, up (as bubblewrap does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING))


def fork_into_new_pid_namespace():
    """``os.fork()``; as root, the child is PID 1 of a new PID namespace and this process stays
    in its own. Otherwise the child takes a PID namespace itself (see :func:`take_namespaces`)."""
    if os.getuid():
        return os.fork()
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    pid = -1
    try:
        _check(libc.unshare(CLONE_NEWPID), "unshare")
        pid = os.fork()
    finally:
        if pid:   # not in the child: this process's next children are in its own namespace again
            _check(libc.setns(own, CLONE_NEWPID), "setns")
            os.close(own)
    return pid


def take_namespaces():
    """New mount, network, IPC and UTS namespaces; afterwards this process is PID 1 of a PID
    namespace of its own (the kernel's reaper).

    As root, the zygote forked it there (:func:`fork_into_new_pid_namespace`). Otherwise it
    takes a user namespace (mapping this user to itself: it gets the capabilities it needs to
    mount, there only) and a PID namespace, then forks: it waits outside and exits with the
    child's status; the child, PID 1, returns.
    """
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    _check(libc.unshare(flags | (CLONE_NEWUSER | CLONE_NEWPID if uid else 0)), "unshare")
    if uid:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    if uid:
        wait_for(os.fork())
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def enter_jail(request):
    """In the forked child: the kernel's own namespaces and mounts (see module docstring).

    PID 1 of the kernel's PID namespace, a reaper as in bubblewrap (see
    :func:`take_namespaces`), sets up the mounts, becomes the kernel's user and waits; it
    forks the kernel, for which this function returns. When the kernel ends, the reaper
    ends, and every process left in the namespace with it.
    """
    box = f"{BOXES}/{request['id']}"
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    take_namespaces()
    for controller in request.get("cgroups", ()):   # not a waiting parent: it is the zygote's
        with open(f"{CGROUPS}/{controller}/{request['id']}/cgroup.procs", "w") as f:
            f.write("0")
    _check(libc.unshare(CLONE_NEWCGROUP), "unshare cgroup")   # its cgroups' names: "/"
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    own = os.open(f"{box}/kernel", os.O_PATH | os.O_DIRECTORY)
    home = os.open(f"{box}/home/{request['home']}", os.O_PATH | os.O_DIRECTORY)
    # Covered below, then out of its mount table: the boxes (under a root grader each a mount
    # of its own, named like the kernel), the cgroups, the zygote's socket. (Mounts that a user
    # namespace inherited are locked: under a grader that is not root they stay, covered.)
    covered = [os.open(path, os.O_PATH | os.O_DIRECTORY) for path in
               (BOXES, os.path.dirname(CONTROL), *(f"{CGROUPS}/{n}" for n in _listing(CGROUPS)))]
    tmpfs("/run", "64k")                      # hides every box and the cgroups
    os.mkdir(KERNEL_DIR)
    mount(f"/proc/self/fd/{own}", KERNEL_DIR, None, MS_BIND)
    tmpfs(HOME, "64k")
    os.mkdir(f"{HOME}/{request['home']}")
    mount(f"/proc/self/fd/{home}", f"{HOME}/{request['home']}", None, MS_BIND | MS_REC)
    read_only(f"{HOME}/{request['home']}")
    os.close(own)
    os.close(home)
    for fd in covered:
        unmount(f"/proc/self/fd/{fd}")
        os.close(fd)
    read_only("/run", 0)
    read_only(HOME, 0)
    tmpfs("/tmp", request["tmp_bytes"], "1777", request.get("inodes"))
    tmpfs("/dev/shm", request["tmp_bytes"], "1777", request.get("inodes"))
    loopback_up()
    resource.setrlimit(resource.RLIMIT_FSIZE, (request["file_bytes"], request["file_bytes"]))
    become(request.get("uid"))
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)   # a change of user cleared it
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(f"{HOME}/{request['home']}")
    reap_until(os.fork())   # the kernel goes on
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # its /proc/self belongs to its user, as after an exec (the change of user in PID 1
    # left it to root); PID 1, not dumpable, stays out of its reach
    libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)


def _listing(folder):
    return os.listdir(folder) if os.path.isdir(folder) else []


def exit_code(status):
    """A wait status as an exit code: the code, or 128 + the signal that ended the process
    (as shells and bubblewrap say it; the grader reads which signal, see preprocessors.death_of)."""
    code = os.waitstatus_to_exitcode(status)
    return code & 0xFF if code >= 0 else 128 - code


def wait_for(child):
    """In the parent (``child`` > 0): exit with ``child``'s status once it ends."""
    if child:
        _, status = os.waitpid(child, 0)
        os._exit(exit_code(status))


def reap_until(kernel):
    """In PID 1 (``kernel`` > 0): reap every orphan; exit with the kernel's status."""
    while kernel:
        pid, status = os.wait()
        if pid == kernel:
            os._exit(exit_code(status))


def run_kernel(request):
    """The child's life after the fork: never returns.

    Until the jail is entered, errors go to the zygote's log (stderr); the kernel itself
    keeps no file of the zygote's, and writes to /dev/null.
    """
    status = 1
    try:
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])   # the zygote's pipes too
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        try:
            enter_jail(request)
        except Exception as exc:
            os.write(2, f"kernel {request['id']}: {type(exc).__name__}: {exc}\n".encode())
            raise
        null = os.open("/dev/null", os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
        np.random.seed()   # fresh entropy, as in a new process
        # no history database (nor its thread): a grading kernel keeps In and Out in memory
        IPKernelApp.launch_instance(argv=["-f", f"{KERNEL_DIR}/kernel.json", "--HistoryManager.enabled=False"])
        status = 0
    except BaseException:   # the grader sees the exit status
        status = 70
    finally:
        os._exit(status)


def can_jail():
    """Whether a child may take the namespaces of :func:`enter_jail` and mount its own
    ``/proc`` (some systems forbid unprivileged user namespaces)."""
    pid = fork_into_new_pid_namespace()
    if pid == 0:
        try:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            take_namespaces()
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            os._exit(0)
        except BaseException:
            os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


class BecomeKernel(BaseException):
    """Raised in a forked child: it leaves :func:`serve` and becomes the kernel of ``request``."""

    def __init__(self, request):
        super().__init__()
        self.request = request


class Client:
    """One grader process's connection: its requests, and the kernels it asked for."""

    def __init__(self, sock):
        self.sock, self.buffer, self.kernels = sock, b"", set()

    def say(self, **message):
        try:
            self.sock.sendall(json.dumps(message).encode() + b"\n")
        except OSError:   # the grader process is gone: its kernels are killed when that is seen
            pass


def serve():
    """Answer the grader processes that connect to ``CONTROL`` (its first line on stdout says
    it listens); a client's kernels are killed when it goes; all ends when stdin closes."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(CONTROL)
    os.chmod(CONTROL, 0o600)   # the grader's user alone may ask for kernels
    listener.listen(64)
    kernels = {}   # pid -> (id, client)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(sys.stdin, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    selector.register(listener, selectors.EVENT_READ)
    sys.stdout.write(json.dumps({"ready": os.getpid(), "namespaces": can_jail()}) + "\n")
    sys.stdout.flush()

    def handle(client, request):
        if request["op"] == "spawn":
            pid = fork_into_new_pid_namespace()
            if pid == 0:   # out of serve(): its tables (other kernels, requests) go with its frames
                raise BecomeKernel(request)
            kernels[pid] = (request["id"], client)
            client.kernels.add(pid)
            client.say(id=request["id"], pid=pid)
        elif request["op"] == "signal":
            signal_kernel(next((p for p, (i, c) in kernels.items() if i == request["id"] and c is client),
                               None), request["signal"])

    while True:
        for key, _ in selector.select():
            if key.fileobj is sys.stdin:
                if not sys.stdin.readline():
                    return
            elif key.fileobj == wake_r:
                os.read(wake_r, 4096)
            elif key.fileobj is listener:
                sock, _ = listener.accept()
                selector.register(sock, selectors.EVENT_READ, Client(sock))
            else:
                client = key.data
                data = client.sock.recv(65536)
                if not data:
                    selector.unregister(client.sock)
                    client.sock.close()
                    for pid in client.kernels:
                        signal_kernel(pid, signal.SIGKILL)
                    continue
                client.buffer += data
                while b"\n" in client.buffer:
                    line, client.buffer = client.buffer.split(b"\n", 1)
                    handle(client, json.loads(line))
        while kernels:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if not pid:
                break
            name, client = kernels.pop(pid)
            client.kernels.discard(pid)
            client.say(id=name, exit=os.waitstatus_to_exitcode(status))


def signal_kernel(pid, signum):
    if pid is not None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


#: What every kernel imports, imported once here (measured: what IPKernelApp.initialize
#: imports, and what a notebook's first cell does). Not matplotlib: no graded cell plots
#: (plots are tagged to be skipped), and it would make every fork dearer (87 MB to copy,
#: not 54; 0.25 s more to start); a student whose own code plots imports it in the kernel.
PRELOAD = ("numpy", "rnnkit", "rnnkit.probe", "ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.debugger",
           "IPython.core.completerlib", "IPython.core.debugger", "IPython.core.oinspect",
           "IPython.extensions.storemagic", "IPython.utils.wildcard", "sqlite3", "pdb", "faulthandler",
           "tornado.gen", "tornado.locks", "tornado.queues", "tornado.platform.asyncio",
           "psutil", "unicodedata")

if __name__ == "__main__":
    import importlib
    sys.modules["debugpy"] = None   # no debugger in a grading kernel (its import costs 0.08 s each)
    for name in PRELOAD:
        importlib.import_module(name)
    np = sys.modules["numpy"]
    IPKernelApp = importlib.import_module("ipykernel.kernelapp").IPKernelApp
    # What is here now, the garbage collector of a kernel leaves alone: else its first full
    # collection writes to every object, and the kernel copies the zygote's memory (50 ms).
    gc.collect()
    gc.freeze()
    try:
        serve()
        request = None
    except BecomeKernel as child:
        request = child.request
    if request is not None:
        run_kernel(request)

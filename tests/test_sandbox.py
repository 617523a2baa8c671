"""The grading kernel's jail, tested directly: a SandboxedKernelManager kernel, code sent to it.

Each test starts a jailed kernel with jupyter_client in a small course directory laid out
like nbgrader's (the kernel's working directory is ``autograded/alice/01_rnn``), runs
code in it and reads what it prints; what the kernel cannot be trusted to report (its
host user, its processes, its cgroups) is checked from outside. Every kernel is shut
down by the test, which then checks that its cgroups and private folder are gone.

Without bubblewrap (or writable cgroups) these tests are skipped, except under CI=true,
where an untested jail is a failure.
"""
import asyncio
import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import zmq
from traitlets.config import Config

from rnnkit.probe import GRADING_ENV
from autograder import sandbox as sandbox_module
from autograder.forkserver import SCRIPT_IN_JAIL
from autograder.sandbox import (BLOCKED_MARKER, KIT, KIT_ROOT, RECONNECT_MS, STUDENT_HOME,
                                Sandbox, SandboxedKernelManager, SandboxUnavailable, cgroup_controllers,
                                jail_path, kernel_modules)

from jail_support import (AS_ROOT, BOTH_WAYS, KERNEL_START, KERNEL_UID, NOBODY, REPO, Jail, cmdline, gone, host_uid,
                          in_jail, jailed_kernel, remove_cgroups, require, workdir)

pytestmark = [pytest.mark.xdist_group("grading"), pytest.mark.usefixtures("kernel_start")]

def test_the_grader_retries_connecting_to_a_starting_kernel_every_few_milliseconds():
    """The grader's client connects before the kernel has bound its sockets: every one of its
    sockets (and the manager's control socket) retries after RECONNECT_MS, not zmq's 100 ms."""
    km = SandboxedKernelManager(kernel_name="python3")
    try:
        kc = km.client()
        kc.start_channels(hb=False)   # no kernel yet: zmq keeps retrying in the background
        try:
            channels = (kc.shell_channel, kc.iopub_channel, kc.stdin_channel, kc.control_channel)
            assert {c.socket.getsockopt(zmq.RECONNECT_IVL) for c in channels} == {RECONNECT_MS}
        finally:
            kc.stop_channels()
            kc.context.destroy(linger=0)
        control = km.connect_control()
        try:
            assert control.getsockopt(zmq.RECONNECT_IVL) == RECONNECT_MS
        finally:
            control.close(linger=0)
    finally:
        km.context.destroy(linger=0)
        km.release()


# ---------------------------------------------------------------- who the kernel is

@BOTH_WAYS
def test_kernel_runs_as_nobody_without_capabilities(needs_cgroups, jail_course):
    async def scenario(jail):
        inside = (await jail.run("""
            import json, os
            status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
            print(json.dumps({"uid": [os.getuid(), os.geteuid()], "gid": [os.getgid(), os.getegid()],
                              "cap": status["CapEff"].strip(), "nnp": status["NoNewPrivs"].strip()}))
        """)).json()
        return inside, jail.host_pids()

    inside, pids = in_jail(workdir(jail_course), scenario)
    assert inside["uid"] == [NOBODY, NOBODY] and inside["gid"] == [NOBODY, NOBODY], inside
    assert int(inside["cap"], 16) == 0 and inside["nnp"] == "1", inside
    assert pids, "no process in the kernel's cgroups"


@BOTH_WAYS
def test_kernel_is_not_root_on_the_host(needs_cgroups, jail_course):
    """On the host, the kernel's processes and the files it makes belong to an unprivileged
    user (nobody under a root grader), which alone can enter its private folder."""
    async def scenario(jail):
        made = jail.km.private / "made-by-the-kernel"
        await jail.run(f"open({jail.km.private_in_jail + '/' + made.name!r}, 'w').write('x')")
        owner = made.stat().st_uid if made.exists() else None
        folder = jail.km.private.stat()
        processes = {pid: (host_uid(pid), cmdline(pid)) for pid in jail.host_pids()}
        return processes, owner, (folder.st_uid, folder.st_mode & 0o777)

    processes, owner, folder = in_jail(workdir(jail_course), scenario)
    # bubblewrap (the jailer, root) runs no student code; everything else is the kernel's user.
    kernel = {pid: uid for pid, (uid, argv) in processes.items() if not argv[:1] or not argv[0].endswith(b"bwrap")}
    assert kernel and set(kernel.values()) == {KERNEL_UID} and KERNEL_UID != 0, processes
    assert owner == KERNEL_UID, f"a file the kernel created on the host belongs to uid {owner}"
    assert folder == (KERNEL_UID, 0o700), f"private folder's owner and mode: {folder}"


@BOTH_WAYS
def test_kernel_cannot_read_root_only_files(needs_bwrap, jail_course):
    """A 0600 root-owned canary in a folder the jail binds (/etc) stays unreadable."""
    require(AS_ROOT, "the grader is not root: the kernel is the grader's own user")
    fd, canary = tempfile.mkstemp(prefix="rnn-canary-", dir="/etc")
    try:
        os.write(fd, b"root-only canary")
        os.close(fd)
        os.chmod(canary, 0o600)

        async def scenario(jail):
            return (await jail.run(f"""
                import json, os
                def attempt(path):
                    try:
                        with open(path, "rb") as f:
                            return "read " + f.read(40).decode(errors="replace")
                    except OSError as err:
                        return type(err).__name__
                print(json.dumps({{"canary": attempt({canary!r}), "shadow": attempt("/etc/shadow"),
                                   "access": os.access("/etc/shadow", os.R_OK),
                                   "init environ": attempt("/proc/1/environ")}}))
            """)).json()
        seen = in_jail(workdir(jail_course), scenario)
    finally:
        os.unlink(canary)
    assert seen == {"canary": "PermissionError", "shadow": "PermissionError", "access": False,
                    "init environ": "PermissionError"}, seen


@BOTH_WAYS
def test_user_namespace_form_of_a_grader_that_is_not_root(needs_cgroups, jail_course, monkeypatch):
    """A grader that is not root cannot give its kernel another host user: the jail is then a
    user namespace (nobody inside, the grader's uid outside), with the same view and imports.
    Simulated here when the grader is root."""
    monkeypatch.setattr(Sandbox, "separate_user", lambda self: False)
    command = Sandbox().wrap(["python"], jail_course, None, {}, jail_course / "args")
    options = (jail_course / "args").read_bytes().split(b"\0")
    assert b"--unshare-all" in options and b"--uid" in options and not any("setpriv" in a for a in command)

    async def scenario(jail):
        return (await jail.run("""
            import json, os
            status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
            try:
                import torch
                torch = "imported"
            except ImportError as err:
                torch = str(err)
            import numpy
            print(json.dumps({"uid": os.getuid(), "cap": status["CapEff"].strip(), "cwd": os.getcwd(),
                              "torch": torch}))
        """)).json()

    seen = in_jail(workdir(jail_course), scenario)
    assert seen["uid"] == NOBODY and int(seen["cap"], 16) == 0 and seen["cwd"] == f"{STUDENT_HOME}/01_rnn", seen
    assert BLOCKED_MARKER in seen["torch"] or importlib.util.find_spec("torch") is None, seen


# ---------------------------------------------------------------- what the kernel can see

@BOTH_WAYS
def test_kernel_sees_only_its_notebook_folder_read_only(needs_bwrap, jail_course):
    here = workdir(jail_course)
    secrets = [jail_course / "gradebook.db", here.parent / "gradebook.db", jail_course / "source" / "01_rnn" / "01_rnn.ipynb",
               jail_course / "release" / "01_rnn", jail_course / "submitted" / "alice" / "01_rnn" / "01_rnn.ipynb",
               jail_course / "autograded" / "bob" / "01_rnn" / "01_rnn.ipynb",
               REPO / "solutions", REPO / "solutions" / "01_rnn" / "01_rnn.ipynb",
               REPO / "tests", REPO / "tests" / "test_sandbox.py", REPO / ".git", REPO / "README.md"]
    relative = ["../gradebook.db", "../../../gradebook.db", "../../../source/01_rnn/01_rnn.ipynb",
                "../../bob/01_rnn/01_rnn.ipynb", "../../../submitted/bob/01_rnn/01_rnn.ipynb"]
    before = {p: p.read_bytes() for p in here.iterdir()}

    async def scenario(jail):
        return (await jail.run(f"""
            import json, os
            def attempt(path):
                try:
                    if os.path.isdir(path):
                        return "listed " + ",".join(sorted(os.listdir(path)))
                    with open(path, "rb") as f:
                        return "read %d bytes" % len(f.read())
                except OSError as err:
                    return type(err).__name__
            def write(fn):
                try:
                    fn()
                    return "written"
                except OSError as err:
                    return os.strerror(err.errno)
            print(json.dumps({{
                "secrets": {{p: attempt(p) for p in {[str(p) for p in secrets] + relative!r}}},
                "ancestors": {{p: attempt(p) for p in {[str(jail_course), str(jail_course / "autograded"),
                                                        str(here.parent), str(REPO)]!r}}},
                "here": attempt("."), "notebook": attempt("01_rnn.ipynb"), "cwd": os.getcwd(),
                "writes": {{
                    "append to the notebook": write(lambda: open("01_rnn.ipynb", "a").write("x")),
                    "new file": write(lambda: open("new.txt", "w").write("x")),
                    "mkdir": write(lambda: os.mkdir("folder")),
                    "remove the notebook": write(lambda: os.remove("01_rnn.ipynb")),
                }},
                "above": write(lambda: open("../new.txt", "w").write("x")),
            }}))
        """)).json()

    seen = in_jail(here, scenario)
    readable = {p: r for p, r in seen["secrets"].items() if r not in ("FileNotFoundError", "PermissionError")}
    assert not readable, f"the kernel can reach {readable}"
    # The notebook's folder is at a neutral path: no folder of the course is in the jail.
    repo = seen["ancestors"].pop(str(REPO))
    assert set(seen["ancestors"].values()) == {"FileNotFoundError"}, seen["ancestors"]
    # Nothing of the repository is there: the kit and the venv are at neutral paths.
    assert repo == "FileNotFoundError", repo
    assert seen["cwd"] == f"{STUDENT_HOME}/01_rnn" and seen["here"] == "listed 01_rnn.ipynb", seen
    assert seen["notebook"].startswith("read ") and seen["notebook"] != "read 0 bytes", seen
    assert set(seen["writes"].values()) <= {"Read-only file system", "Permission denied"}, seen["writes"]
    assert {p: p.read_bytes() for p in here.iterdir()} == before
    # The folders above exist only in the jail's own tmpfs: what is written there stays there.
    assert not (here.parent / "new.txt").exists(), seen["above"]


@BOTH_WAYS
def test_tmp_is_private_and_empty(needs_bwrap, jail_course, tmp_path):
    host_marker = Path(tempfile.mkstemp(prefix="rnn-sandbox-host-", dir="/tmp")[1])
    try:
        async def scenario(jail):
            listing = (await jail.run("""
                import json, os
                print(json.dumps(sorted(os.listdir("/tmp"))))
                open("/tmp/written-in-the-jail", "w").write("x")
            """)).json()
            return listing, jail.km.private
        listing, private = in_jail(workdir(jail_course), scenario)
    finally:
        host_marker.unlink()
    # Besides what the kernel made itself (its IPython folder), only mount points of its own
    # binds: the venv of a checkout in /tmp, its private folder if there is no /dev/shm.
    bound = [Path(jail_path(p)) for p in (private, *Sandbox().readable_paths())]
    own = {"ipython"} | {p.relative_to("/tmp").parts[0] for p in bound if p.is_relative_to("/tmp")}
    assert host_marker.name not in listing
    assert set(listing) <= own, f"host files in the jail's /tmp: {sorted(set(listing) - own)}"
    assert not Path("/tmp/written-in-the-jail").exists()


@BOTH_WAYS
def test_kernel_sees_no_host_command_line_or_environment(needs_bwrap, jail_course, monkeypatch):
    """bubblewrap's options (host paths of the course, the kit, the private folder's box) come
    from a file the jail cannot see; what the jail's processes show names none of them, nor
    the folders on the grader's PATH."""
    monkeypatch.setenv("PATH", f"{REPO / '.venv' / 'bin'}:{jail_course / 'bin'}:{os.environ['PATH']}")
    async def scenario(jail):
        seen = (await jail.run(f"""
            import json, os
            def attempt(path):
                try:
                    return open(path, "rb").read().decode(errors="replace")
                except OSError as err:
                    return type(err).__name__
            pids = [p for p in os.listdir("/proc") if p.isdigit()]
            print(json.dumps({{"pid": os.getpid(), "cmdlines": [attempt(f"/proc/{{p}}/cmdline") for p in pids],
                               "environs": [attempt(f"/proc/{{p}}/environ") for p in pids],
                               "mounts": attempt("/proc/self/mountinfo"),
                               "args file": os.path.exists({str(jail.km.box / "bwrap-args")!r})}}))
        """)).json()
        return seen, jail.km.box, jail.km.server

    seen, box, forked = in_jail(workdir(jail_course), scenario)
    init = seen["cmdlines"][0].split("\0") if seen["cmdlines"] else []
    if forked:   # PID 1 is the jail's reaper, forked by the zygote; the kernel, its child, is not
        # PID 1 (which ignores its own signals: a kernel that kills itself must die)
        assert seen["pid"] == 2 and init[:2] == [jail_path(sys.executable), SCRIPT_IN_JAIL], (seen["pid"], init)
    else:        # PID 1 is bubblewrap's reaper, which shows how it was started
        assert any(arg.endswith("bwrap") for arg in init) and "--args" in init, init
    shown = "\n".join(seen["cmdlines"] + seen["environs"])
    hidden = [str(jail_course), str(KIT), str(REPO), sys.prefix, "--ro-bind", "--setenv", str(box / "bwrap-args")]
    assert not [h for h in hidden if h in shown], [h for h in hidden if h in shown]
    assert not seen["args file"]
    # The notebook's folder is mounted from a copy in the kernel's box: no course path there either.
    assert f"{STUDENT_HOME}/01_rnn" in seen["mounts"] and str(jail_course) not in seen["mounts"], seen["mounts"][:2000]


@BOTH_WAYS
def test_imports_come_from_the_system_and_the_kit(needs_bwrap, jail_course):
    """A numpy package and a numpy.py beside the notebook shadow nothing; autograd frameworks
    installed for the grader cannot be imported; numpy, scipy, matplotlib and the kit can."""
    here = workdir(jail_course)
    (here / "numpy").mkdir()
    (here / "numpy" / "__init__.py").write_text("array_equal = lambda *a, **k: True\nSHADOW = True\n")
    (here / "scipy.py").write_text("SHADOW = True\n")
    blocked = [name for name in ("torch", "functorch", "torchgen")
               if importlib.util.find_spec(name) is not None]
    require(blocked, "torch is not installed for the grader: nothing to block")

    async def scenario(jail):
        return (await jail.run(f"""
            import importlib, json, os, sys
            import numpy, scipy, scipy.linalg, matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot
            import rnnkit
            errors = {{}}
            for name in {blocked + ["torch.nn", "torch.autograd"]!r}:
                try:
                    importlib.import_module(name)
                    errors[name] = "imported"
                except ImportError as err:
                    errors[name] = f"{{type(err).__name__}}: {{err}}"
            print(json.dumps({{
                "shadowed": [m.__name__ for m in (numpy, scipy) if hasattr(m, "SHADOW")],
                "numpy": numpy.__file__, "rnnkit": rnnkit.__file__,
                "path": [p for p in sys.path if p in ("", ".", os.getcwd())], "errors": errors}}))
        """)).json()

    seen = in_jail(here, scenario)
    assert seen["shadowed"] == [] and seen["path"] == [], seen
    assert not seen["numpy"].startswith(STUDENT_HOME), seen["numpy"]
    assert seen["rnnkit"] == f"{kernel_modules()[str(KIT)]}/__init__.py" and seen["rnnkit"].startswith(KIT_ROOT)
    for name, error in seen["errors"].items():
        assert error.startswith("ModuleNotFoundError") and BLOCKED_MARKER in error, (name, error)


@BOTH_WAYS
def test_no_network(needs_bwrap, jail_course):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        async def scenario(jail):
            return (await jail.run(f"""
                import json, socket
                def connect(address):
                    try:
                        socket.create_connection(address, timeout=3).close()
                        return "connected"
                    except OSError as err:
                        return type(err).__name__
                interfaces = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]
                print(json.dumps({{"loopback": connect(("127.0.0.1", {port})), "outside": connect(("192.0.2.1", 80)),
                                   "interfaces": interfaces}}))
            """)).json()
        seen = in_jail(workdir(jail_course), scenario)
        with pytest.raises(socket.timeout):
            server.accept()
    finally:
        server.close()
    assert seen["loopback"] == "ConnectionRefusedError", seen   # its own loopback, not the host's
    assert seen["outside"] != "connected" and seen["interfaces"] == ["lo"], seen


# ---------------------------------------------------------------- what the kernel can take

@BOTH_WAYS
def test_background_processes_die_with_the_kernel(needs_cgroups, jail_course):
    # Durations of this run alone: other runs on the machine (or the other kernel start) leave theirs.
    first, second = (f"{n}.{os.getpid()}{secrets.randbelow(10 ** 6)}" for n in (1717, 1718))

    async def scenario(jail):
        await jail.run(f"""
            import os, subprocess, time
            subprocess.Popen(["sleep", "{first}"], start_new_session=True)
            child = os.fork()
            if child == 0:                      # double fork + setsid: a daemon
                os.setsid()
                if os.fork() == 0:
                    os.execv("/bin/sleep", ["sleep", "{second}"])
                os._exit(0)
            os.waitpid(child, 0)
            time.sleep(0.5)
        """)
        found = {pid: cmdline(pid) for pid in jail.host_pids()}
        return {pid for pid, argv in found.items() if argv in ([b"sleep", first.encode()], [b"sleep", second.encode()])}, found

    sleepers, found = in_jail(workdir(jail_course), scenario)
    assert len(sleepers) == 2, f"both sleepers should be in the kernel's cgroup: {found}"
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in sleepers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(gone(pid) for pid in sleepers), [cmdline(pid) for pid in sleepers]
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
    assert not [line for line in ps if line.strip() in (f"sleep {first}", f"sleep {second}")]


@BOTH_WAYS
def test_fork_bomb_hits_the_process_limit(needs_cgroups, jail_course):
    limit = Sandbox().max_processes

    async def scenario(jail):
        started = (await jail.run("""
            import json, subprocess
            children, error = [], None
            for _ in range(500):
                try:
                    children.append(subprocess.Popen(["sleep", "30"]))
                except OSError as err:
                    error = type(err).__name__
                    break
            for child in children:
                child.kill()
                child.wait()
            print(json.dumps({"started": len(children), "error": error}))
        """)).json()
        events = jail.cgroup_file("pids", "pids.events")
        alive = await jail.run("print('still here')")
        return started, events, alive

    started, events, alive = in_jail(workdir(jail_course), scenario)
    assert 0 < started["started"] < limit and started["error"] == "BlockingIOError", started
    assert int(events.split()[1]) > 0, events           # the cgroup refused forks
    assert alive.text == "still here\n"                 # the kernel survived its bomb
    assert subprocess.run(["true"]).returncode == 0      # and the host can still start processes


@BOTH_WAYS
def test_memory_bomb_fails_while_numpy_works(needs_cgroups, jail_course):
    async def scenario(jail):
        matmul = await jail.run("""
            import numpy as np
            a = np.ones((1000, 1000))
            print(float((a @ a)[0, 0]))
        """)
        bomb = await jail.run("hog = np.ones(3 * 1024 ** 3 // 8)  # 3 GB, every page touched")
        return matmul, bomb

    matmul, bomb = in_jail(workdir(jail_course), scenario)
    assert matmul.text == "1000.0\n" and not matmul.ename, matmul
    assert bomb.dead or bomb.ename == "MemoryError", bomb
    assert subprocess.run(["true"]).returncode == 0


def test_private_space_is_bounded_and_off_the_disk(needs_cgroups, jail_course):
    """Files under the per-file cap written in a loop to /tmp and to the private folder stop at
    the jail's limits (the size of /tmp, the memory cgroup), in RAM: the host disk is untouched,
    a file over the cap is cut, and the grader goes on with the next kernel."""
    require(sandbox_module.private_root(), "no writable /dev/shm: the private folder is on disk")
    mb = 1024 ** 2
    limits = {"tmp_bytes": 32 * mb, "max_file_bytes": 8 * mb, "memory_bytes": 512 * mb}

    def filesystem(path):
        """The type of the file system ``path`` is on (the longest mount point above it)."""
        mounts = [line.split()[1:3] for line in Path("/proc/self/mounts").read_text().splitlines()]
        path = os.path.realpath(path)
        return max(((point, kind) for point, kind in mounts
                    if path == point or path.startswith(point.rstrip("/") + "/")), key=lambda m: len(m[0]))[1]

    async def scenario(jail):
        big = await jail.run(f"""
            try:
                open("/tmp/big", "wb").write(b"x" * {16 * mb})
            except OSError as err:
                print(err.strerror)
        """)
        fill = f"""
            import os
            block = os.urandom({4 * mb})
            n = 0
            try:
                while True:
                    with open(os.path.join(FOLDER, f"filler-{{n}}"), "wb") as f:
                        f.write(block)
                    n += 1
            except OSError as err:
                print(n, err.strerror)
        """
        tmp = await jail.run(fill.replace("FOLDER", repr("/tmp")))
        private = await jail.run(fill.replace("FOLDER", repr(jail.km.private_in_jail)), timeout=120)
        written = sum(f.stat().st_size for f in jail.km.private.glob("filler-*"))
        return big, tmp, private, written, filesystem(jail.km.private)

    big, tmp, private, written, where = in_jail(workdir(jail_course), scenario, **limits)
    assert big.text == "File too large\n", big
    assert tmp.text.endswith(" No space left on device\n"), tmp
    assert int(tmp.text.split()[0]) * 4 * mb <= limits["tmp_bytes"], tmp
    if private.text.endswith(" No space left on device\n"):   # a root grader: a tmpfs of its own
        assert written <= limits["tmp_bytes"], written   # (shared with /tmp when kernels start one by one)
    else:   # else the memory cgroup stops it (an error, or the kernel killed)
        assert private.dead or private.text.endswith(" Cannot allocate memory\n"), private
        assert 64 * mb < written < limits["memory_bytes"], written
    # what the kernel wrote is not on the disk: its private folder is in RAM
    assert where == "tmpfs", f"the kernel's private folder is on a {where} file system"

    async def next_student(jail):
        return (await jail.run("print('next')")).text
    assert in_jail(workdir(jail_course), next_student) == "next\n"


def test_releasing_a_running_kernel_leaves_no_cgroup(needs_cgroups, jail_course):
    async def scenario(jail):
        await jail.run("""
            import subprocess
            import numpy as np
            sleepers = [subprocess.Popen(["sleep", "60"]) for _ in range(20)]
            held = np.ones(2 ** 27)   # 1 GB: a kernel that takes a moment to die
        """)
        dirs = list(jail.km.cgroup.dirs)
        jail.km.release()
        left = [str(d) for d in dirs if d.exists()]
        return dirs, left

    async def main():
        km = SandboxedKernelManager(kernel_name="python3")
        await km.start_kernel(cwd=str(workdir(jail_course)), env={**os.environ, GRADING_ENV: "1"})
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=60)
            return await scenario(Jail(km, kc))
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)

    dirs, left = asyncio.run(main())
    remove_cgroups(dirs)
    assert not left, f"cgroups left by release(): {left}"


def test_folders_left_by_a_crashed_grader_are_swept():
    """A kernel's folder (in RAM) that no kernel uses any more is removed by the next kernel
    manager; a recent one (perhaps another grader's live kernel) stays."""
    root = Path(sandbox_module.private_root() or tempfile.gettempdir())
    stale, recent = (Path(tempfile.mkdtemp(prefix="rnn-kernel-", dir=root)) for _ in range(2))
    (stale / "kernel").mkdir()
    (stale / "kernel" / "filler").write_bytes(b"x" * 4096)
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    km = SandboxedKernelManager(kernel_name="python3")
    try:
        assert not stale.exists() and recent.exists() and km.box.exists()
    finally:
        km.release()
        shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(recent, ignore_errors=True)
    assert not km.box.exists()


# ---------------------------------------------------------------- when the jail cannot be built

def test_problems_name_what_is_missing(needs_cgroups):
    assert Sandbox().problems() == []
    problems = Sandbox(bwrap="/nonexistent/bwrap").problems()
    assert len(problems) == 1 and "bubblewrap" in problems[0], problems


def test_problems_name_what_is_not_bounded_or_not_separate(needs_bwrap, monkeypatch):
    if AS_ROOT:
        problems = Sandbox(setpriv="/nonexistent/setpriv").problems()
        assert len(problems) == 1 and "root on the host" in problems[0], problems
        assert Sandbox().notes() == []
    else:
        assert "need a root grader" in " ".join(Sandbox().notes())
    monkeypatch.setattr(sandbox_module, "private_root", lambda: None)
    problems = Sandbox().problems()
    assert len(problems) == 1 and "on disk, not bounded" in problems[0], problems
    monkeypatch.setattr(sandbox_module, "cgroup_controllers", lambda: {})
    problems = Sandbox().problems()
    assert len(problems) == 1 and "private folder is not bounded" in problems[0], problems


def test_required_sandbox_refuses_to_start_without_bubblewrap(jail_course):
    config = Config({"Sandbox": {"bwrap": "/nonexistent/bwrap", "required": True}})
    km = SandboxedKernelManager(kernel_name="python3", config=config)
    try:
        with pytest.raises(SandboxUnavailable, match="bubblewrap"):
            asyncio.run(km.start_kernel(cwd=str(workdir(jail_course)), env={**os.environ, GRADING_ENV: "1"}))
        assert not km.has_kernel and km.cgroup is None
    finally:
        km.release()


# ---------------------------------------------------------------- one student after another

LEAVE_BEHIND = """
    import os, subprocess, threading, time
    import numpy as np
    import rnnkit
    left_by_alice = 42
    np.allclose = lambda *args, **kwargs: True
    rnnkit.check = "patched by alice"
    os.environ["ALICE"] = "was here"
    for folder in ("/tmp", "/dev/shm"):   # (/dev/shm is not writable in a kernel of bubblewrap's)
        try:
            open(f"{folder}/from-alice", "w").write("answers")
        except PermissionError:
            assert folder == "/dev/shm"
    threading.Thread(target=time.sleep, args=(3600,), name="alice-thread", daemon=True).start()
    subprocess.Popen(["sleep", "1719"], start_new_session=True)
"""

LOOK_AROUND = """
    import json, os, threading
    import numpy as np
    import rnnkit
    print(json.dumps({
        "variable": "left_by_alice" in globals(),
        "numpy patched": np.allclose(0.0, 1.0),
        "kit patched": rnnkit.check == "patched by alice",
        "environment": os.environ.get("ALICE"),
        "files": [f for d in ("/tmp", "/dev/shm") if os.path.isdir(d) for f in os.listdir(d) if "alice" in f],
        "threads": [t.name for t in threading.enumerate() if t.name == "alice-thread"],
        # besides itself and PID 1 (the jail's reaper)
        "processes": sorted(open(f"/proc/{p}/cmdline").read().replace("\\0", " ").strip()
                            for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, os.getpid())),
    }))
"""


@BOTH_WAYS
def test_nothing_of_one_student_reaches_the_next(needs_cgroups, jail_course):
    """A variable, a patched numpy function and kit, an environment variable, files in /tmp
    and /dev/shm, a thread and a process left by one kernel: the next kernel (same zygote)
    sees none of them, and its only process is itself."""
    async def alice(jail):
        assert (await jail.run(LEAVE_BEHIND)).ename == ""
        return jail.host_pids()

    async def bob(jail):
        return (await jail.run(LOOK_AROUND)).json()

    alices = in_jail(workdir(jail_course), alice)
    seen = in_jail(workdir(jail_course), bob)
    assert seen == {"variable": False, "numpy patched": False, "kit patched": False, "environment": None,
                    "files": [], "threads": [], "processes": []}, seen
    assert all(gone(pid) for pid in alices), [cmdline(pid) for pid in alices]


@BOTH_WAYS
def test_two_kernels_at_once_cannot_see_each_other(needs_cgroups, jail_course, tmp_path):
    """Two students graded at the same time by one grader process: neither sees the other's
    files or processes."""
    other = tmp_path / "other" / "autograded" / "bob" / "01_rnn"
    other.mkdir(parents=True)

    async def main():
        async with jailed_kernel(workdir(jail_course)) as first, jailed_kernel(other) as second:
            assert (await first.run(LEAVE_BEHIND)).ename == ""
            return (await second.run(LOOK_AROUND)).json(), first.km.server is second.km.server

    seen, shared = asyncio.run(main())
    assert seen["files"] == [] and seen["processes"] == [], seen
    assert shared or not KERNEL_START["forked"], "each kernel manager started its own zygote"


def test_a_dead_kernel_or_zygote_costs_only_its_own_student(needs_cgroups, jail_course):
    """A kernel that kills itself ends its own run only; if the zygote itself is killed, its
    kernels die with it and the next kernel gets a new zygote."""

    async def suicide(jail):
        return await jail.run("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", timeout=30)

    async def works(jail):
        return (await jail.run("print(sum(range(4)))")).text, jail.km.server

    assert in_jail(workdir(jail_course), suicide).dead
    text, server = in_jail(workdir(jail_course), works)
    assert text == "6\n"

    async def zygote_killed(jail):
        jail.km.server.process.kill()
        return await jail.run("import time; time.sleep(20)", timeout=30)

    assert in_jail(workdir(jail_course), zygote_killed).dead
    text, again = in_jail(workdir(jail_course), works)
    assert text == "6\n" and again is not server and not server.alive


@BOTH_WAYS
def test_a_namespace_of_its_own_uncovers_nothing(needs_bwrap, jail_course):
    """A kernel that makes itself root of a new user namespace may unmount in its own view,
    but the jail's mounts are locked there: what they cover (other kernels' boxes, the
    host's folders) stays covered."""
    async def scenario(jail):
        return (await jail.run("""
            import ctypes, json, os
            libc = ctypes.CDLL(None, use_errno=True)
            seen = {"unshare": libc.unshare(0x10000000 | 0x00020000)}   # user + mount
            for target in (b"/run", b"/tmp", b"/home/student", b"/proc"):
                seen[target.decode()] = libc.umount2(target, 2)          # MNT_DETACH
            seen["run"] = sorted(os.listdir("/run")) if os.path.isdir("/run") else None
            print(json.dumps(seen))
        """)).json()

    seen = in_jail(workdir(jail_course), scenario)
    assert all(seen[t] == -1 for t in ("/run", "/tmp", "/home/student", "/proc")), seen
    assert "boxes" not in (seen["run"] or []) and "cgroups" not in (seen["run"] or []), seen


def test_a_forked_grader_process_shares_the_zygote_and_takes_its_kernels_when_it_dies(
        needs_cgroups, jail_course):
    """A batch's workers are forked from the process that started the zygote: they ask the same
    zygote, each on a connection of its own; a worker that dies (here without any clean-up,
    its kernel still running) takes its kernels with it, and the zygote serves on."""

    async def server(jail):
        return jail.km.server

    parent_server = in_jail(workdir(jail_course), server)
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:   # a worker: starts a kernel, reports, and dies with it running
        try:
            async def crash():
                km = SandboxedKernelManager(kernel_name="python3", config=Config({"Sandbox": {}}))
                await km.start_kernel(cwd=str(workdir(jail_course)), env={**os.environ, GRADING_ENV: "1"})
                kc = km.client()
                kc.start_channels()
                await kc.wait_for_ready(timeout=60)
                jail = Jail(km, kc)
                await jail.run("import subprocess; subprocess.Popen(['sleep', '1720'])")
                os.write(writing, json.dumps({"root": str(km.server.root), "owner": km.server.owner,
                                              "pids": sorted(jail.host_pids())}).encode())
            asyncio.run(crash())
        finally:
            os._exit(0)
    os.close(writing)
    with os.fdopen(reading) as f:
        seen = json.loads(f.read() or "{}")
    os.waitpid(child, 0)
    assert seen.get("root") == str(parent_server.root) and seen["owner"] == os.getpid(), seen
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in seen["pids"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert seen["pids"] and all(gone(pid) for pid in seen["pids"]), [cmdline(p) for p in seen["pids"]]

    async def works(jail):
        return (await jail.run("print(6 * 7)")).text, jail.km.server

    text, again = in_jail(workdir(jail_course), works)
    assert text == "42\n" and again is parent_server
    for box in parent_server.boxes.glob("rnn-kernel-*"):   # the dead worker's: swept by the grader later
        remove_cgroups([base / "rnn-course" / box.name for base in cgroup_controllers().values()])
        shutil.rmtree(box, ignore_errors=True)

"""Kernels share nothing: no keyring, no view of other kernels' boxes or of the zygote's
tables, no host path of the grader's venv or repository.

Jail tests in the manner of test_sandbox.py (its helpers: a jailed kernel in a small course
directory, both ways of starting kernels); skipped without bubblewrap, except under CI=true.
"""
import asyncio
import errno
import os
import sys

import pytest

from ci import unavailable
from autograder import sandbox
from jail_support import AS_ROOT, REPO, in_jail, jailed_kernel, require, workdir

pytestmark = [pytest.mark.xdist_group("grading"), pytest.mark.usefixtures("kernel_start")]

#: add_key, request_key and keyctl of this machine, in the order of KEYRING_SYSCALLS.
KEYRING = {"x86_64": (248, 249, 250), "aarch64": (217, 218, 219)}

KEYS = """
    import ctypes, json, os
    libc = ctypes.CDLL(None, use_errno=True)
    ADD_KEY, REQUEST_KEY, KEYCTL = {numbers}
    USER, SESSION, PROCESS = -4, -3, -2          # KEY_SPEC_* keyrings
    def call(*args):
        result = libc.syscall(*args)
        return "ok %d" % result if result >= 0 else os.strerror(ctypes.get_errno())
    seen = {{}}
    for name, ring in (("user", USER), ("session", SESSION), ("process", PROCESS)):
        seen["add to " + name] = call(ADD_KEY, b"user", b"rnn-answers", b"42", 2, ctypes.c_int(ring))
    seen["request"] = call(REQUEST_KEY, b"user", b"rnn-answers", None, ctypes.c_int(0))
    seen["join session"] = call(KEYCTL, 1, None)                  # KEYCTL_JOIN_SESSION_KEYRING
    seen["search user"] = call(KEYCTL, 10, ctypes.c_int(USER), b"user", b"rnn-answers", 0)   # KEYCTL_SEARCH
    seen["x32 keyctl"] = call(KEYCTL | 0x40000000, 1, None)
    print(json.dumps(seen))
"""


def test_a_key_stored_by_one_student_cannot_be_read_by_the_next(needs_bwrap, jail_course):
    """The keyring's syscalls (per user: every kernel is the same user) are refused in the jail,
    whatever the keyring and however they are reached."""
    numbers = KEYRING.get(os.uname().machine)
    if numbers is None:
        unavailable(f"no keyring syscall numbers for {os.uname().machine}", "add them to the sandbox's seccomp table")

    async def student(jail):
        return (await jail.run(KEYS.format(numbers=numbers))).json()

    alice = in_jail(workdir(jail_course), student)
    bob = in_jail(workdir(jail_course), student)
    refused = os.strerror(errno.EPERM)
    for seen in (alice, bob):
        assert set(seen.values()) == {refused}, seen


LOOK = """
    import gc, json, os, socket, sys
    def read(path):
        try:
            with open(path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError as err:
            return type(err).__name__
    def listing(top):
        found, stack = [], [top]
        while stack and len(found) < 5000:
            folder = stack.pop()
            try:
                names = os.listdir(folder)
            except OSError:
                continue
            for name in names:
                path = os.path.join(folder, name)
                found.append(path)
                if os.path.isdir(path) and not os.path.islink(path):
                    stack.append(path)
        return found
    texts = {p: read(p) for p in ("/proc/self/mountinfo", "/proc/self/mounts", "/proc/self/mountstats",
                                  "/proc/self/cgroup", "/proc/self/maps", "/proc/self/environ",
                                  "/proc/net/unix", "/etc/hostname", "/proc/self/cmdline", "/proc/1/cmdline")}
    texts["hostname"] = socket.gethostname()
    import glob
    places = ["/opt/venv/*", "/opt/venv/bin/*", "/opt/venv/lib/python*/site-packages/*",
              "/opt/venv/lib/python*/site-packages/__pycache__/*",
              "/opt/venv/lib/python*/site-packages/*/direct_url.json",
              "/opt/rnn-course/**/*", "/opt/rnn-grader/*"]
    texts["files"] = "\\n".join(read(p) for place in places for p in glob.glob(place, recursive=True)
                               if os.path.isfile(p) and os.path.getsize(p) < 1 << 20)
    texts["run"] = "\\n".join(listing("/run"))
    texts["proc"] = " ".join(sorted(os.listdir("/proc")))
    texts["python"] = json.dumps([sys.prefix, sys.exec_prefix, sys.executable, sys.path, dict(os.environ),
                                  sorted(str(getattr(m, "__file__", "")) for m in list(sys.modules.values()))])
    # what the zygote knew when it forked this kernel: its tables, its requests
    strings = []
    for obj in gc.get_objects():
        if isinstance(obj, dict):
            strings += [x for kv in obj.items() for x in kv if isinstance(x, (str, bytes))]
        elif isinstance(obj, (list, tuple, set)):
            strings += [x for x in obj if isinstance(x, (str, bytes))]
    frame = sys._getframe()
    while frame is not None:
        strings += [repr(v)[:10000] for v in frame.f_locals.values()]
        frame = frame.f_back
    texts["memory"] = "\\n".join(s.decode(errors="replace") if isinstance(s, bytes) else s for s in strings)
    print(json.dumps(texts))
"""


def test_a_kernel_sees_neither_other_boxes_nor_host_paths(needs_bwrap, jail_course, tmp_path, kernel_start):
    """Two kernels graded beside each other (the second forked after the first): the second
    finds the first's box name nowhere (mount table, cgroups, /run, /proc, sockets, hostname,
    environment, the objects and frames it inherited from the zygote), nor the host path of
    the grader's venv, of the repository or of the course (nor in the files of the venv and
    the kit that name them on the host: scripts, pyvenv.cfg, editable installs, compiled modules)."""
    other = tmp_path / "other" / "autograded" / "bob" / "01_rnn"
    other.mkdir(parents=True)

    async def main():
        async with jailed_kernel(workdir(jail_course)) as first, jailed_kernel(other) as second:
            assert (await first.run("x = 1")).ename == ""
            return first.km.box.name, (await second.run(LOOK)).json()

    first_box, texts = asyncio.run(main())
    secrets = {"the other kernel's box": first_box, "the grader's venv": sys.prefix, "the repository": str(REPO),
               "the course": str(jail_course)}
    if sys.prefix == sys.base_prefix:
        secrets.pop("the grader's venv")
    if not AS_ROOT:   # the grader's own user cannot mount the neutral views: box names only
        secrets = {"the other kernel's box": first_box}
    else:
        require(sandbox.neutral(REPO / "kit") != str(REPO / "kit"), "overlayfs cannot be mounted here")
    found = {(what, where) for what, secret in secrets.items() for where, text in texts.items() if secret in text}
    assert not found, found
    assert texts["memory"] and "/proc/self/mountinfo" in texts["memory"]   # the scan saw this very code

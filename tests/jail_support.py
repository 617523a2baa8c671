"""A jailed grading kernel for tests (tests/test_sandbox.py, test_bounds.py, test_isolation.py):
start one in a small course directory, run code in it, read what it printed, and check
from outside what it left. The fixtures that go with it (``needs_bwrap``, ``needs_cgroups``,
``kernel_start``, ``jail_course``) are in tests/conftest.py.
"""
import asyncio
import contextlib
import json
import os
import queue
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from traitlets.config import Config

import ci

from rnnkit.probe import GRADING_ENV
from autograder.sandbox import SandboxedKernelManager, cgroup_controllers

REPO = Path(__file__).resolve().parent.parent
NOBODY = 65534
AS_ROOT = os.geteuid() == 0
#: The kernel's host user: nobody when the grader is root, else the grader's own user.
KERNEL_UID = NOBODY if AS_ROOT else os.getuid()


def require(ok, what):
    """Skip when this machine cannot enforce ``what``; on CI (CI=true) fail instead."""
    ci.require(ok, f"{what}: the sandbox cannot be tested on this machine",
               "bash scripts/system-deps.sh as root (bubblewrap), cgroup v1 pids and memory controllers")


#: How kernels start in this test: forked by the zygote (the default), or each in bubblewrap
#: from nothing (``Sandbox.fork_kernels = False``, and where the zygote cannot run).
KERNEL_START = {"forked": True}


#: Tests whose jail, limits or isolation depend on how the kernel started run both ways; the
#: rest (no kernel, or the zygote's own behaviour) run once.
BOTH_WAYS = pytest.mark.parametrize("kernel_start", ["forked", "one by one"], indirect=True)


# ---------------------------------------------------------------- a course directory and a kernel in it

def workdir(course):
    return course / "autograded" / "alice" / "01_rnn"


@dataclass
class Run:
    """What one execution printed; ``dead`` if the kernel died during it."""
    text: str = ""
    ename: str = ""
    dead: bool = False

    def json(self):
        assert not self.ename and not self.dead, self
        return json.loads(self.text.strip().splitlines()[-1])


class Jail:
    def __init__(self, km, kc):
        self.km, self.kc = km, kc

    async def run(self, code, timeout=60):
        """Execute ``code``; its stdout, and the error name if it raised."""
        msg_id = self.kc.execute(textwrap.dedent(code))
        run, deadline = Run(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = await self.kc.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                if not await self.km.is_alive():
                    run.dead = True
                    return run
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                run.text += content["text"]
            elif kind == "error":
                run.ename = content["ename"]
            elif kind == "status" and content["execution_state"] == "idle":
                return run
        raise TimeoutError(f"no answer from the kernel in {timeout} s to:\n{code}")

    def host_pids(self):
        """Host pids of every process in the kernel's cgroups."""
        pids = set()
        for d in self.km.cgroup.dirs if self.km.cgroup else ():
            pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        return pids

    def cgroup_file(self, controller, name):
        d = next(d for d in self.km.cgroup.dirs if d.parent.parent.name == controller)
        return (d / name).read_text()


@contextlib.asynccontextmanager
async def jailed_kernel(cwd, **sandbox):
    """A started, ready kernel in ``cwd``; shut down on exit, then checked for leftovers."""
    config = Config({"Sandbox": {"fork_kernels": KERNEL_START["forked"], **sandbox}})
    km = SandboxedKernelManager(kernel_name="python3", config=config)
    await km.start_kernel(cwd=str(cwd), env={**os.environ, GRADING_ENV: "1"})
    cgroups, box = list(km.cgroup.dirs) if km.cgroup else [], km.box
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=60)
        yield Jail(km, kc)
    finally:
        kc.stop_channels()
        await km.shutdown_kernel()   # graceful, as nbclient does; now=True races (see test_releasing_...)
    assert cgroups or not cgroup_controllers(), "the kernel was not put in cgroups"
    leftovers = [str(d) for d in cgroups if d.exists()] + [str(box)] * box.exists()
    remove_cgroups(cgroups)
    assert not leftovers, f"left after the kernel shut down: {leftovers}"


def remove_cgroups(dirs, wait=10):
    """A test cleans up after a failed check: the cgroups left by a kernel are removed once empty."""
    deadline = time.monotonic() + wait
    for d in dirs:
        while d.exists() and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                d.rmdir()
                break
            time.sleep(0.05)


def in_jail(cwd, scenario, **sandbox):
    """Run ``await scenario(jail)`` against a fresh kernel; return what it returns."""
    async def main():
        async with jailed_kernel(cwd, **sandbox) as jail:
            return await scenario(jail)
    return asyncio.run(main())


def host_uid(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def gone(pid):
    """True once ``pid`` has exited (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:
        return []

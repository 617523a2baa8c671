"""The benchmark (benchmarks/grading_speed.py): its submissions, its CPU accounting of the processes
below a worker, and one small run of the three graders."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from autograder import forkserver
from benchmarks import grading_speed as benchmark
from benchmarks.grading_speed import KernelSide

# CPU is counted over this process's whole tree: the module goes first to a fresh worker
# (SLOW_FIRST in tests/conftest.py), before any other test leaves a process in its tree.
pytestmark = pytest.mark.xdist_group("test_benchmark")

BURN = 0.3   # CPU seconds each fake process burns
TICK = 2 / os.sysconf("SC_CLK_TCK")   # /proc counts in clock ticks

# A stand-in for a zygote: burns CPU as it starts, then for each line "fork" on stdin forks a
# "kernel" that burns CPU and waits; "end" ends the kernel (which the zygote reaps); "quit".
# It reports the kernel's pid, and "reaped" once it has waited for it.
ZYGOTE = textwrap.dedent(f"""
    import os, sys, time
    def burn(seconds):
        start = time.process_time()
        while time.process_time() - start < seconds:
            pass
    burn({BURN})
    kernel = None
    for line in sys.stdin:
        if line.strip() == "fork":
            r, w = os.pipe()
            kernel = os.fork()
            if kernel == 0:
                os.close(w)
                burn({BURN})
                os.read(r, 1)
                os._exit(0)
            os.close(r)
            print(kernel, flush=True)
        elif line.strip() == "end":
            os.close(w)
            os.waitpid(kernel, 0)
            print("reaped", flush=True)
        else:
            break
    os._exit(0)   # no interpreter tear-down: its CPU would come after the last reading
""")


def cpu_of(pid):
    """utime + stime + cutime + cstime of a live process, in seconds."""
    return benchmark.proc_stat(pid).cpu


def wait_for_cpu(pid, seconds):
    """Until ``pid`` has used ``seconds`` of CPU (to a tick), at most 30 s."""
    deadline = time.monotonic() + 30
    while cpu_of(pid) < seconds - TICK and time.monotonic() < deadline:
        time.sleep(0.02)


def test_every_variant_is_a_change_and_the_mix_has_every_kind(tmp_path):
    for assignment in ("01_rnn", "04_bptt"):
        found = benchmark.variants(assignment)
        names = [name for name, *_ in benchmark.MUTATIONS[assignment]]
        assert set(names) <= set(found), assignment
        assert any(k.startswith("missing_") for k in found), assignment
        solution = found["solution"].cells
        for name, nb in found.items():
            if name != "solution":
                assert [c.source for c in nb.cells] != [c.source for c in solution], name
        kinds = benchmark.write_submissions(tmp_path / assignment, assignment, 10)
        assert sorted(kinds) == [f"student{i:03d}" for i in range(1, 11)]
        assert list(kinds.values()).count("solution") == 4 and list(kinds.values()).count("blank") == 1
        assert len(set(kinds.values())) == 2 + 5   # five wrong variants, all different
        assert all((tmp_path / assignment / s / assignment / f"{assignment}.ipynb").is_file() for s in kinds)


def test_a_mutation_that_no_longer_applies_is_an_error(monkeypatch):
    monkeypatch.setitem(benchmark.MUTATIONS, "01_rnn", [("gone", "rnn_step_forward", "not in the cell", "x")])
    with pytest.raises(ValueError, match="gone"):
        benchmark.variants("01_rnn")


@pytest.fixture
def only_this_tree():
    """KernelSide counts this process's whole tree: no zygote left by an earlier test in it
    (one that reaps its last kernels meanwhile would add their CPU)."""
    forkserver.close_all()


def test_a_zygote_and_the_kernels_it_forks_and_reaps_are_counted_once(only_this_tree):
    side = KernelSide()
    side.sample()
    zygote = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        wait_for_cpu(zygote.pid, BURN)
        for submission in range(3):
            before = side.sample()
            zygote.stdin.write("fork\n")
            zygote.stdin.flush()
            kernel = int(zygote.stdout.readline())
            wait_for_cpu(kernel, BURN)
            side.sample()                     # the kernel alive: its own CPU
            zygote.stdin.write("end\n")
            zygote.stdin.flush()
            assert zygote.stdout.readline().strip() == "reaped"
            counted = side.sample() - before  # reaped: in the zygote's cutime, not again
            assert BURN - TICK <= counted < 1.5 * BURN, (submission, counted)
        truth = cpu_of(zygote.pid)            # the zygote's own CPU and its reaped kernels'
        assert abs(side.sample() - truth) <= 2 * TICK + 1e-9, (side.counted, truth)
        assert truth >= 4 * BURN - TICK
    finally:
        zygote.stdin.close()
        zygote.wait()
    # reaped by this process now: in its RUSAGE_CHILDREN, which the count follows: no change
    assert abs(side.sample() - truth) <= 2 * TICK + 1e-9, (side.counted, truth)
    assert side.peak_process_kb > 0 and side.peak_together_kb >= side.peak_process_kb


def test_a_kernel_that_leaves_the_tree_keeps_what_was_counted(only_this_tree):
    # bubblewrap killed with its kernel: the kernel is reparented outside, its CPU leaves the tree
    side = KernelSide()
    side.sample()
    wrapper = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import subprocess, sys
        kernel = subprocess.Popen([sys.executable, "-c", "import time\\nstart = time.process_time()\\n"
                                   "while time.process_time() - start < {BURN}: pass\\ntime.sleep(600)"])
        print(kernel.pid, flush=True)
        kernel.wait()
    """)], stdout=subprocess.PIPE, text=True)
    kernel = int(wrapper.stdout.readline())
    try:
        wait_for_cpu(kernel, BURN)
        seen = side.sample()
        assert seen >= BURN - TICK
        wrapper.kill()
        wrapper.wait()
        time.sleep(0.1)
        assert kernel not in {p.pid for p in benchmark.process_tree()}
        assert side.sample() == pytest.approx(seen, abs=2 * TICK)   # not subtracted, not counted again
    finally:
        os.kill(kernel, signal.SIGKILL)


def test_the_benchmark_runs_the_three_graders(tmp_path, capsys):
    assert benchmark.main(["--students", "2", "--assignment", "01_rnn", "--keep", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("stock", "stock parallel", "ours"):
        assert any(line.startswith(f"{name} ") and "cores" in line for line in out.splitlines()), (name, out)
    for bar in ("throughput ours / stock: ", "throughput ours / stock parallel: ", "CPU per notebook, ours: ",
                "peak memory, ours: a worker process "):
        line = next((ln for ln in out.splitlines() if ln.startswith(bar)), "")
        assert line.count(": met") + line.count(": NOT met") == 1, (bar, out)
    assert "solution 10.00 | 10.00 | 10.00" in out
    assert "the notebook's cells alone" in out and "remaining gap" in out
    assert f"stock parallel: {benchmark.scheduling.default_workers()} `nbgrader autograde 01_rnn --student S`" in out
    if os.access(benchmark.CPUACCT, os.W_OK):   # ours' CPU counted by a cgroup, which is gone
        assert "counted by a cpuacct cgroup holding this process and all it started" in out
        assert not list(benchmark.CPUACCT.glob(f"rnn-benchmark-{os.getpid()}-*"))
        assert f"/rnn-benchmark-{os.getpid()}-" not in Path("/proc/self/cgroup").read_text()


def test_generate_assignment_and_what_it_started_are_taken_out_of_ours_cpu():
    # the step: 10 s counted by the cgroup, of which generate_assignment used 0.5 s itself
    # and its alembic child 2 s; this process 1 s in all, its tree 6 s more by /proc
    setup = benchmark.Measure(wall=3.0, cpu=2.5, own=0.5)
    graded = benchmark.Measure(wall=9.0, cpu=3.0, own=1.0)
    assert benchmark.step_cpu(10.0, graded, 6.0, setup) == pytest.approx(7.5)
    assert benchmark.step_cpu(None, graded, 6.0, setup) == pytest.approx(6.5)


@pytest.mark.parametrize("command", [["benchmarks/grading_speed.py"], ["-m", "benchmarks.grading_speed"]])
def test_the_benchmark_is_a_command_of_the_repository(command):
    """Run from the repository root as the README says, not from the installed package."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, *command, "--help"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "usage: python benchmarks/grading_speed.py" in done.stdout
    assert not (root / "autograder" / "benchmark.py").exists()

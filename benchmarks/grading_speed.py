"""Throughput of the course's grader against stock nbgrader, on the same submissions.

    python benchmarks/grading_speed.py [--students 40] [--assignment 01_rnn --assignment 04_bptt]
        [--workers N] [--stock-jobs N] [--rounds 1] [--quiet-wait SECONDS]
        [--only stock|stock-parallel|ours] [--experiment NAME] [--keep DIR] [--profile]

For each ``--assignment`` (repeatable; default 01_rnn and 04_bptt) it generates
``--students`` submissions (the solution, the blank release and wrong variants, round
robin: :data:`MUTATIONS` and one function left as released) and grades the same
submissions, on the same machine in the same run, three ways:

* stock: a separate course directory with a stock ``nbgrader_config.py`` (default
  autograde pipeline, default ``Execute``, no custom preprocessor), graded by one plain
  ``nbgrader autograde ASSIGNMENT --CourseDirectory.root=...`` subprocess. There
  ``check()`` runs in "local mode": it verifies inside the student's kernel;
* stock parallel: the same, the way a user would parallelise it: ``--stock-jobs``
  (default: cores + 1, as ours) ``nbgrader autograde ASSIGNMENT --student S`` processes
  at a time until every student is graded. Each one writes stock's SQLite gradebook,
  where a writer waits at most 5 s (SQLite's default) for the others before failing with
  "database is locked". With 3 processes and 40 submissions on 2 cores that did not
  happen; a user who met it would give a longer wait on the command line, as done here
  (``--CourseDirectory.db_url=sqlite:///.../gradebook.db?timeout=120``: no cost without
  contention). A process that fails anyway is counted in the report and run again,
  alone, after the others (timed);
* ours: :func:`autograder.batch.autograde` with ``--workers`` processes (default: cores
  + 1), ``force=True``.

Only the autograde step is timed: ``generate_assignment`` runs before and untimed (ours
runs it inside ``batch.autograde``: its time is measured and taken out), and feedback is
generated afterwards, timed apart and left out of the ratios (stock: one
``generate_feedback``; stock parallel: none; ours: ``batch.autograde``'s per-submission
``generate_feedback`` is deferred to a second parallel pass).

CPU time. Stock: ``resource.getrusage`` of this process and its children (nbgrader and
its kernels are waited-for children). Ours: where cgroup v1's cpuacct is writable (a root
grader), this process joins a cpuacct cgroup for the autograde step, so everything it
and every process it starts uses (forked workers, the kernels' zygote, bubblewrap, the
kernels) is counted whole, whoever reaps whom; generate_assignment's CPU is taken out,
with its children's (:func:`step_cpu`).
Elsewhere: this process's own CPU plus the increase of its process tree read from /proc
by :class:`KernelSide` (bubblewrap's PID namespace keeps the kernels out of every
getrusage), which misses what a process used after the last sample if it then left the
tree unreaped (a kernel killed with the init of its PID namespace). Each worker also
reads its kernels' own CPU (the processes of the kernel's cgroups, just before it ends)
for "where the time goes". "load of others" is the machine's busy CPU (/proc/stat) not
ours: other jobs sharing the cores make every number worse, so ``--quiet-wait`` waits
for them before each timed step and ``--rounds`` repeats.

Memory (ours): the peak RSS of each worker process (its ``ru_maxrss``) and of its
kernels (VmHWM and VmRSS of each kernel's processes, sampled just before it ends).

The report gives, per assignment and in all, wall and CPU seconds per notebook, the
throughput ratios of ours against stock and stock parallel, and the issue's bars
(:data:`BARS`, "met" or "NOT met"). Inside our workers every phase (kernel start, cells,
nbgrader sanitize / overwrite / save, gradebook) is timed and printed as "where the time
goes", with the remaining gap to the cost of the notebook's cells alone (the sum of
their execution times); ``--experiment`` grades ours with a configuration change under
study (see EXPERIMENTS); ``--profile`` also grades a few submissions in this process
under cProfile.

Exits 0 unless the grading itself went wrong (a solution short of full marks in any
grader, a failed nbgrader run); a bar not met is reported, not an error.
"""
import argparse
import contextlib
import copy
import cProfile
import dataclasses
import functools
import io
import os
import pstats
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from autograder import batch, forkserver, gradescsv, grader, layout, scheduling
from autograder.outcome import Outcome

REPO = Path(__file__).resolve().parent.parent
STOCK_CONFIG = '''\
# Stock nbgrader: default autograde pipeline, default Execute, no custom preprocessors.
c = get_config()
c.CourseDirectory.course_id = "stock-benchmark"
'''
DEFAULT_ASSIGNMENTS = ("01_rnn", "04_bptt")
#: Graders, in the order they run: name on the command line (--only) -> name in the report.
GRADERS = {"stock": "stock", "stock-parallel": "stock parallel", "ours": "ours"}
#: Seconds a stock parallel nbgrader process waits for SQLite's lock (its default: 5).
LOCK_TIMEOUT = 120
LOCKED = "database is locked"
#: The issue's bars: ours' throughput against stock and stock parallel, CPU per notebook,
#: peak RSS of a worker process.
BARS = {"vs stock": 8.0, "vs stock parallel": 4.0, "cpu_per_notebook": 0.25, "worker_mb": 300}

# ---------------------------------------------------------------------------- submissions

#: Wrong variants with known bugs: (name, grade id, anchor in the solution cell, replacement).
MUTATIONS = {
    "01_rnn": [
        ("sigmoid_activation", "rnn_step_forward", "np.tanh(x @ Wx + prev_h @ Wh + b)",
         "1 / (1 + np.exp(-(x @ Wx + prev_h @ Wh + b)))"),
        ("no_recurrent_term", "rnn_step_forward", "np.tanh(x @ Wx + prev_h @ Wh + b)", "np.tanh(x @ Wx + b)"),
        ("no_accumulation", "rnn_backward", "dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t",
         "dWx, dWh, db = dWx_t, dWh_t, db_t"),
    ],
    "04_bptt": [
        ("dprev_c_without_f", "lstm_step_backward", "dprev_c = dc * f", "dprev_c = dc"),
        ("no_dc_carry", "lstm_backward", "lstm_step_backward(dh[:, t] + dprev_h, dprev_c, cache[t])",
         "lstm_step_backward(dh[:, t] + dprev_h, np.zeros((N, H)), cache[t])"),
        ("gru_dz_sign", "gru_step_backward", "dz = dnext_h * (prev_h - n) * z * (1 - z)",
         "dz = dnext_h * (n - prev_h) * z * (1 - z)"),
    ],
}
#: One cycle of the mix: S solution, B blank release, W the next wrong variant.
MIX = "SWSWBSWSWW"


def _grade_id(cell):
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _read(folder, assignment):
    return nbformat.read(REPO / folder / assignment / f"{assignment}.ipynb", as_version=4)


def variants(assignment):
    """name -> notebook: "solution", "blank" and the wrong variants of ``assignment``.

    A mutation whose anchor is not in the solution any more is an error: it would test nothing.
    """
    solution, blank = _read("solutions", assignment), _read("exercises", assignment)
    stubs = {_grade_id(c): c.source for c in blank.cells if _grade_id(c)}
    found = {"solution": solution, "blank": blank}

    def replaced(gid, source):
        nb = copy.deepcopy(solution)
        for cell in nb.cells:
            if _grade_id(cell) == gid:
                cell.source = source
        return nb

    sources = {_grade_id(c): c.source for c in solution.cells
               if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    for name, gid, old, new in MUTATIONS.get(assignment, []):
        if old not in sources.get(gid, ""):
            raise ValueError(f"benchmark mutation {name}: {old!r} is not in {assignment}'s {gid} cell")
        found[name] = replaced(gid, sources[gid].replace(old, new, 1))
    # Generic wrong variants: one function left as released (not implemented).
    for gid in sources:
        if gid in stubs:
            found[f"missing_{gid}"] = replaced(gid, stubs[gid])
    return found


def write_submissions(root, assignment, students):
    """Writes ``root/<student>/<assignment>/<assignment>.ipynb``; returns {student: kind}."""
    pool = variants(assignment)
    wrong = [k for k in pool if k not in ("solution", "blank")]
    kinds, w = {}, 0
    for i in range(students):
        letter = MIX[i % len(MIX)]
        if letter == "W" and wrong:
            kind, w = wrong[w % len(wrong)], w + 1
        else:
            kind = "blank" if letter == "B" else "solution"
        student = f"student{i + 1:03d}"
        path = Path(root) / student / assignment / f"{assignment}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(pool[kind], path)
        kinds[student] = kind
    return kinds


# ---------------------------------------------------------------------------- measuring

def _cpu():
    """CPU seconds (user + system) of this process and of its waited-for children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _own_cpu():
    """CPU seconds (user + system) of this process alone, every thread."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


@dataclasses.dataclass
class Measure:
    wall: float = 0.0
    cpu: float = 0.0        # ours and our children's
    own: float = 0.0        # this process's alone
    machine: float = 0.0    # every process on the machine (/proc/stat): others' jobs = machine - cpu

    @contextlib.contextmanager
    def running(self):
        wall, cpu, own, machine = time.perf_counter(), _cpu(), _own_cpu(), _machine_cpu()
        try:
            yield self
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += _cpu() - cpu
            self.own += _own_cpu() - own
            self.machine += _machine_cpu() - machine

    def others(self):
        """Cores used on average by other processes while this ran."""
        return max(0.0, self.machine - self.cpu) / self.wall if self.wall else 0.0


def _machine_cpu():
    """Busy CPU seconds of the whole machine since boot (all but idle and iowait), from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:9]]
    except OSError:
        return 0.0
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_until_quiet(limit, cores=0.3, window=5.0):
    """Wait (at most ``limit`` seconds) until other processes use under ``cores`` cores over ``window`` s."""
    deadline = time.monotonic() + limit
    while True:
        before = _machine_cpu()
        time.sleep(window)
        busy = (_machine_cpu() - before) / window
        if busy < cores or time.monotonic() >= deadline:
            return busy


# ---------------------------------------------------------------------------- processes below a worker

@dataclasses.dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    start: int      # clock ticks after boot: with the pid, names the process across samples
    cpu: float      # seconds: utime + stime + cutime + cstime (cutime: its reaped children's)
    reaped: float   # seconds: cutime + cstime alone


def proc_stat(pid):
    """Proc of ``pid`` from /proc/<pid>/stat, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return Proc(int(pid), int(fields[1]), int(fields[19]), (utime + stime + cutime + cstime) / tick,
                (cutime + cstime) / tick)


def process_tree(root=None):
    """The processes below ``root`` (default: this process), read from /proc; not ``root`` itself.

    Processes in bubblewrap's PID namespaces are there too, under their host PIDs.
    """
    root = root or os.getpid()
    children = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            proc = proc_stat(entry)
            if proc is not None:
                children[proc.ppid].append(proc)
    found, stack = [], [root]
    while stack:
        for proc in children.get(stack.pop(), []):
            found.append(proc)
            stack.append(proc.pid)
    return found


def memory_kb(pid):
    """(VmHWM, VmRSS) of ``pid`` in kB: its peak and current resident memory; (0, 0) if gone."""
    found = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    found[line[:5]] = int(line.split()[1])
    except OSError:
        pass
    return found.get("VmHWM", 0), found.get("VmRSS", 0)


class KernelSide:
    """CPU and memory of the processes below one process (a grading worker): kernels, bubblewrap,
    a zygote that forks kernels.

    ``sample()`` reads ``total = (CPU of every process below root, each with its reaped
    children's) + (root's own reaped children's)`` and counts its increase since the last
    sample. So a live process counts with its own CPU, one reaped by a process below root
    in its reaper's cutime, one reaped by root in root's: a long-lived zygote's start-up and
    idle CPU and every kernel it forks are each counted once, whenever they happen. A
    process that leaves the tree otherwise (killed together with the bubblewrap that would
    have reaped it, or reparented outside) takes its CPU with it: the total drops, and a
    drop is not subtracted, as that CPU was counted while the process was seen. A kernel's
    last moments before it leaves so are lost: sample just before a kernel is ended.

    Processes alive at the first sample are counted whole (root started them); what root
    reaped before it is not.
    """

    def __init__(self, root=None):
        self.root = root or os.getpid()
        self.counted = 0.0          # seconds of CPU counted so far
        self.last = None            # total at the last sample
        self.peak_process_kb = 0    # the largest VmHWM of a process below root
        self.peak_together_kb = 0   # the largest sum of their VmRSS at one sample

    def sample(self):
        """Read the tree; returns the CPU seconds counted so far."""
        procs = process_tree(self.root)
        mine = proc_stat(self.root)
        reaped = mine.reaped if mine else 0.0
        total = reaped + sum(p.cpu for p in procs)
        if self.last is None:
            self.last = reaped
        self.counted += max(0.0, total - self.last)
        self.last = total
        together = 0
        for proc in procs:
            hwm, rss = memory_kb(proc.pid)
            self.peak_process_kb = max(self.peak_process_kb, hwm)
            together += rss
        self.peak_together_kb = max(self.peak_together_kb, together)
        return self.counted


#: cgroup v1 CPU accounting: where a batch's worker processes and everything below them are
#: counted whole (a cgroup's processes' children stay in it), whoever reaps what.
CPUACCT = Path("/sys/fs/cgroup/cpuacct")


def cpuacct_seconds(cgroup):
    """CPU seconds used so far by the processes in ``cgroup`` and its children."""
    return int((Path(cgroup) / "cpuacct.usage").read_text()) / 1e9


def _cpuacct_batch():
    """A new cpuacct cgroup for one batch's workers, or None if this machine has none writable."""
    if not os.access(CPUACCT, os.W_OK):
        return None
    try:
        folder = Path(tempfile.mkdtemp(prefix=f"rnn-benchmark-{os.getpid()}-", dir=CPUACCT))
        cpuacct_seconds(folder)
        return folder
    except OSError:
        return None


def _remove_cgroups(folder, seconds=10.0):
    """Remove ``folder`` and its child cgroups, once the processes that were in them are gone."""
    deadline = time.monotonic() + seconds
    for cgroup in [*sorted(p for p in folder.iterdir() if p.is_dir()), folder]:
        while True:
            try:
                cgroup.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    print(f"warning: cgroup {cgroup} still busy, left behind", file=sys.stderr)
                    break
                time.sleep(0.1)


def _env():
    """PATH with this interpreter's tools first: the kernel spec runs ``python``, nbgrader ``alembic``."""
    tools = os.path.dirname(sys.executable)
    return {**os.environ, "PATH": tools + os.pathsep + os.environ.get("PATH", "")}


def _run_nbgrader(root, *args):
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}", "--log-level=WARN"]
    return subprocess.run(cmd, cwd=root, env=_env(), capture_output=True, text=True)


def _nbgrader(root, *args, measure=None):
    with (measure.running() if measure else contextlib.nullcontext()):
        done = _run_nbgrader(root, *args)
    if done.returncode != 0:
        raise SystemExit(f"stock nbgrader failed: {' '.join(args[:2])}\n{done.stderr[-3000:]}")
    return done


# ---------------------------------------------------------------------------- stock

@dataclasses.dataclass
class Graded:
    """How one grader did on one assignment's submissions."""
    graded: Measure                  # the autograde step
    rows: list                       # gradescsv.grade_rows of its gradebook
    feedback: Measure = None         # feedback, timed apart (None: not run)
    outcomes: list = dataclasses.field(default_factory=list)   # ours: one TimedOutcome per submission
    setup: float = 0.0               # ours: generate_assignment's wall seconds, taken out
    workers: list = dataclasses.field(default_factory=list)    # ours: the last snapshot of each worker
    kernel_cpu: float = 0.0          # ours: CPU seconds of the kernels' own processes
    notes: list = dataclasses.field(default_factory=list)      # lines for the report
    start: float = 0.0               # ours: the workers' CPU seconds before their first submission
    cgroup: bool = False             # ours: CPU counted by a cpuacct cgroup (else from /proc)
    main_cpu: float = 0.0            # ours: this process's own CPU seconds in the step
    worker_cpu: float = 0.0          # ours: the workers' own CPU seconds, from their first submission


def _stock_course(root, submissions, assignment):
    """A stock nbgrader course directory with the submissions, its assignment generated (untimed)."""
    root = Path(root)
    shutil.copytree(REPO / "solutions" / assignment, root / "source" / assignment)
    shutil.copytree(submissions, root / "submitted")
    (root / "nbgrader_config.py").write_text(STOCK_CONFIG)
    _nbgrader(root, "generate_assignment", assignment)
    return root


def grade_stock(root, submissions, assignment):
    """Stock nbgrader, one ``nbgrader autograde`` process for every submission."""
    root = _stock_course(root, submissions, assignment)
    graded, feedback = Measure(), Measure()
    _nbgrader(root, "autograde", assignment, measure=graded)
    _nbgrader(root, "generate_feedback", assignment, measure=feedback)
    return Graded(graded, gradescsv.grade_rows(root, f"sqlite:///{root / 'gradebook.db'}"), feedback)


def grade_stock_parallel(root, submissions, assignment, jobs):
    """Stock nbgrader, ``jobs`` ``nbgrader autograde ASSIGNMENT --student S`` processes at a time.

    With SQLite's lock wait raised to LOCK_TIMEOUT on the command line; a process that
    fails anyway is run again, alone, after the others.
    """
    root = _stock_course(root, submissions, assignment)
    db = f"--CourseDirectory.db_url=sqlite:///{root / 'gradebook.db'}?timeout={LOCK_TIMEOUT}"
    students = sorted(p.name for p in Path(submissions).iterdir() if p.is_dir())

    def one(student):
        return _run_nbgrader(root, "autograde", assignment, "--student", student, db)

    graded = Measure()
    with graded.running():
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            done = dict(zip(students, pool.map(one, students)))
        failed = [s for s, run in done.items() if run.returncode != 0]
        again = {s: one(s) for s in failed}
    locked = sum(run.stderr.count(LOCKED) for run in [*done.values(), *again.values()])
    still = [s for s, run in again.items() if run.returncode != 0]
    if still:
        raise SystemExit(f"stock nbgrader failed twice for {', '.join(still)}:\n{again[still[0]].stderr[-3000:]}")
    notes = [f"stock parallel: {jobs} `nbgrader autograde {assignment} --student S` processes at a time, "
             f"SQLite lock wait {LOCK_TIMEOUT} s given on the command line; "
             + (f"{len(failed)} process(es) failed ({', '.join(sorted(failed)[:5])}) and were run again; "
                if failed else "no process failed; ")
             + f"'{LOCKED}' {locked} time(s) in their logs"]
    return Graded(graded, gradescsv.grade_rows(root, f"sqlite:///{root / 'gradebook.db'}"), notes=notes)


# ---------------------------------------------------------------------------- ours, instrumented

_phases = defaultdict(float)   # in a worker: phase -> seconds, for the submission being graded
_counts = defaultdict(int)
_installed = False
_kernels = None                # in a worker: its kernels' CPU and memory, read as each ends
_done = 0                      # in a worker: submissions graded so far
_start_cpu = 0.0               # in a worker: its own CPU before its first submission (start-up, imports)


def _timed(name, fn, key=None):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        label = key(*args, **kwargs) if key else name
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _phases[label] += time.perf_counter() - start
            _counts[label] += 1
    return wrapper


def _patch(owner, attr, name, key=None):
    """Time ``owner.attr`` as phase ``name``; a method the grader no longer has is left out."""
    if hasattr(owner, attr):
        setattr(owner, attr, _timed(name, getattr(owner, attr), key))


def kernel_usage(km):
    """CPU seconds, largest VmHWM and summed VmRSS (kB) of the processes in a kernel
    manager's cgroups (the kernel and what it started); zeros without cgroups."""
    pids = set()
    for folder in (km.cgroup.dirs if getattr(km, "cgroup", None) else ()):
        try:
            pids.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
        except OSError:
            pass
    cpu, peak, together = 0.0, 0, 0
    for pid in pids:
        stat = proc_stat(pid)
        hwm, rss = memory_kb(pid)
        cpu += stat.cpu if stat else 0.0
        peak, together = max(peak, hwm), together + rss
    return cpu, peak, together


class KernelsSeen:
    """A worker's kernels, each read just before it ends: CPU, and peak memory."""

    def __init__(self):
        self.cpu, self.peak_process_kb, self.peak_together_kb = 0.0, 0, 0

    def read(self, km):
        cpu, peak, together = kernel_usage(km)
        self.cpu += cpu
        self.peak_process_kb = max(self.peak_process_kb, peak)
        self.peak_together_kb = max(self.peak_together_kb, together)


def _read_kernel_before(owner, attr):
    """Read the kernel just before ``owner.attr`` (which ends it) runs."""
    if not hasattr(owner, attr):
        return
    real = getattr(owner, attr)

    @functools.wraps(real)
    def read(self, *args, **kwargs):
        if _kernels is not None and getattr(self, "km", None) is not None:
            _kernels.read(self.km)
        return real(self, *args, **kwargs)
    setattr(owner, attr, read)


@contextlib.contextmanager
def _replaced(owner, attr, value):
    """``owner.attr`` is ``value`` while the block runs."""
    own = attr in vars(owner)
    real = getattr(owner, attr)
    setattr(owner, attr, value)
    try:
        yield real
    finally:
        if own:
            setattr(owner, attr, real)
        else:
            delattr(owner, attr)


def _install(api_class):
    """Time the phases of grading, in this (worker) process only; ``api_class``: the grader's nbgrader API."""
    global _installed
    if _installed:
        return
    _installed = True
    from nbconvert.preprocessors.base import Preprocessor
    from nbgrader.api import Gradebook
    from nbgrader.converters.autograde import Autograde
    from nbgrader.converters.base import BaseConverter

    from autograder.preprocessors import GradingExecute
    from autograder.sandbox import SandboxedKernelManager

    _patch(batch, "check_submission", "ours: check the notebook is valid")
    _patch(batch, "review_flags", "ours: read review flags back")
    _patch(batch, "_record_zero", "ours: record a zero")
    _patch(api_class, "autograde", "nbgrader autograde (all)")
    _patch(Autograde, "init_assignment", "  init: gradebook student/submission, copy files")
    _patch(BaseConverter, "write_single_notebook", "  write autograded notebook")
    _patch(Preprocessor, "__call__", "", key=lambda self, *a, **k: f"  pp {type(self).__name__}")
    _patch(GradingExecute, "start_new_kernel", "    kernel: start (jailed: forked by the zygote, or bwrap)")
    _patch(GradingExecute, "start_new_kernel_client", "    kernel: wait until ready")
    _patch(GradingExecute, "wait_for_reply", "    kernel: kernel_info")
    _patch(GradingExecute, "execute_cell", "", key=lambda self, cell, *a, **k:
           f"    cell {_grade_id(cell) or 'without grade id'}")
    _patch(GradingExecute, "_cleanup_kernel", "    kernel: shutdown")
    _patch(SandboxedKernelManager, "release", "    kernel: sandbox release (cgroup, folder)")
    _read_kernel_before(GradingExecute, "_cleanup_kernel")
    _patch(Gradebook, "__init__", "Gradebook() opened (engine, schema check)")


EXPERIMENT_ENV = "RNN_BENCHMARK_EXPERIMENTS"
#: Configuration changes to ours under study: name -> (config section, trait, value).
EXPERIMENTS = {
    "immediate-shutdown": ("GradingExecute", "shutdown_kernel", "immediate"),
    "no-sandbox": ("Sandbox", "enabled", False),
}


def _apply_experiments(grading):
    for name in filter(None, os.environ.get(EXPERIMENT_ENV, "").split(",")):
        section, trait, value = EXPERIMENTS[name]
        setattr(getattr(grading.api().config, section), trait, value)


def _no_feedback(self, assignment_id, student_id=None, force=True):
    """Stands in for generate_feedback while the autograde step is timed (feedback comes after)."""
    return {"success": True, "log": "", "error": ""}


def _snapshot():
    """This worker so far: its own CPU and peak RSS, its kernels' CPU and memory."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return {"pid": os.getpid(), "done": _done, "own_cpu": me.ru_utime + me.ru_stime, "start_cpu": _start_cpu,
            "maxrss_kb": me.ru_maxrss, "rss_kb": memory_kb(os.getpid())[1],
            "kernel_cpu": _kernels.cpu, "kernel_process_kb": _kernels.peak_process_kb,
            "kernel_together_kb": _kernels.peak_together_kb}


@dataclasses.dataclass
class TimedOutcome(Outcome):
    phases: dict = dataclasses.field(default_factory=dict)
    counts: dict = dataclasses.field(default_factory=dict)
    wall: float = 0.0
    cpu: float = 0.0          # this worker's own CPU, during the submission
    kernel_cpu: float = 0.0   # its kernel's own processes', read just before it ended
    pid: int = 0
    worker: dict = dataclasses.field(default_factory=dict)   # _snapshot() after the submission


def grade_timed(grading, student, assignment):
    """batch.grade_submission with its phases timed and feedback deferred (runs in a worker)."""
    global _kernels, _done, _start_cpu
    if _kernels is None:
        _start_cpu = _own_cpu()
        _kernels = KernelsSeen()
    api_class = type(grading.api())
    _install(api_class)
    _apply_experiments(grading)
    _phases.clear()
    _counts.clear()
    kernel = _kernels.cpu
    wall, cpu = time.perf_counter(), time.process_time()
    with _replaced(api_class, "generate_feedback", _no_feedback):
        outcome = batch.grade_submission(grading, student, assignment)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    _done += 1
    fields = {f.name: getattr(outcome, f.name) for f in dataclasses.fields(Outcome)}
    return TimedOutcome(**fields, phases=dict(_phases), counts=dict(_counts), wall=wall, cpu=cpu,
                        kernel_cpu=_kernels.cpu - kernel, pid=os.getpid(), worker=_snapshot())


def feedback_one(grading, student, assignment):
    return grading.api().generate_feedback(assignment, student, force=True).get("success", False)


def _workers(outcomes):
    """pid -> the snapshot of each worker after its last submission."""
    last = {}
    for o in outcomes:
        if isinstance(o, TimedOutcome) and o.worker.get("done", 0) >= last.get(o.pid, {}).get("done", 0):
            last[o.pid] = o.worker
    return last


@contextlib.contextmanager
def _counted_whole():
    """While the block runs, this process and all it starts are in a new cpuacct cgroup;
    yields a function giving the CPU seconds counted so far, or None where no cgroup can
    be made (then read /proc)."""
    folder = _cpuacct_batch()
    if folder is None:
        yield None
        return
    home = next((line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
                 if "cpuacct" in line.split(":")[1].split(",")), "/")
    (folder / "cgroup.procs").write_text(str(os.getpid()))
    try:
        yield lambda: cpuacct_seconds(folder)
    finally:
        (CPUACCT / home.lstrip("/") / "cgroup.procs").write_text(str(os.getpid()))
        _remove_cgroups(folder)


def step_cpu(whole, graded, tree, setup):
    """CPU seconds of ours' autograde step, less generate_assignment's (``setup``, a Measure).

    whole: the cpuacct cgroup's count of the step, setup included (None: no cgroup); then
    setup's own CPU and its children's (nbgrader runs ``alembic`` for a new gradebook) are
    taken out. Else this process's own (``graded.own``) plus ``tree``, the increase of its
    process tree counted from /proc, where setup's children, gone, never were.
    """
    if whole is not None:
        return whole - setup.cpu
    return graded.own + tree - setup.own


def grade_ours(course, submissions, workers):
    """batch.autograde on ``submissions``, its phases timed, its kernels' CPU and memory read.

    CPU of the autograde step (see the module's docstring): a cpuacct cgroup's count of
    this process and all it starts, or this process's own CPU and its process tree's
    increase from /proc (read last as the batch stops its kernels' zygote); less
    generate_assignment's.
    """
    global _kernels
    course = Path(course)
    pairs = layout.prepare_course(course, submissions)
    grading = grader.Grading(str(course.resolve()), "", grader.resolve_cell_timeout(None), 0)
    setup = Measure()
    real_generate, real_run = type(grading.api()).generate_assignment, scheduling.run

    def generate(self, *args, **kwargs):
        with setup.running():
            return real_generate(self, *args, **kwargs)

    def run(fn, arglist, **kwargs):
        assert fn is batch.grade_submission, fn
        return real_run(grade_timed, arglist, **kwargs)

    tree = KernelSide()
    real_close = forkserver.close_all

    def close_all():   # the batch stops its zygote: read the process tree while it is whole
        tree.sample()
        real_close()

    graded = Measure()
    _kernels = None   # graded here if one worker: counted from this batch's first submission
    with _counted_whole() as counter, _replaced(type(grading.api()), "generate_assignment", generate), \
            _replaced(scheduling, "run", run), _replaced(forkserver, "close_all", close_all), graded.running():
        tree.sample()
        outcomes = batch.autograde(course, pairs, workers=workers, force=True)
        whole = counter() if counter else None
    graded.wall -= setup.wall
    graded.machine -= setup.machine
    graded.cpu = step_cpu(whole, graded, tree.counted, setup)
    per_worker = {pid: w for pid, w in _workers(outcomes).items() if pid != os.getpid()}
    here = _kernels.cpu if _kernels is not None else 0.0
    kernel = here + sum(w["kernel_cpu"] for w in per_worker.values())
    start = sum(w["start_cpu"] for w in per_worker.values())
    worker_cpu = sum(w["own_cpu"] - w["start_cpu"] for w in per_worker.values())
    feedback = Measure()
    with feedback.running():
        done = scheduling.run(feedback_one, [(grading, s, a) for s, a in pairs], workers=workers)
    if not all(done):
        raise SystemExit("ours: generate_feedback failed")
    return Graded(graded, gradescsv.grade_rows(course), feedback, outcomes, setup.wall, list(per_worker.values()),
                  kernel, start=start, cgroup=whole is not None, main_cpu=graded.own - setup.own,
                  worker_cpu=worker_cpu)


# ---------------------------------------------------------------------------- report

def _scores(rows, kinds):
    by_kind = defaultdict(list)
    for r in rows:
        by_kind[kinds.get(r["student"], "?")].append(r["score"])
    return {k: statistics.mean(v) for k, v in sorted(by_kind.items())}


def _met(ok):
    return "met" if ok else "NOT met"


def where_time_goes(outcomes, workers, wall, n, cores):
    """Lines: mean seconds per notebook of each phase inside a worker, what is outside, and the
    gap to the cells alone."""
    timed = [o for o in outcomes if isinstance(o, TimedOutcome)]
    if not timed:
        return ["  (no worker timings: every submission was skipped)"]
    phases = defaultdict(float)
    for o in timed:
        for name, seconds in o.phases.items():
            phases[name] += seconds
    per = {k: v / len(timed) for k, v in phases.items()}
    task = statistics.mean(o.wall for o in timed)
    pps = [k for k in per if k.startswith("  pp ")]
    sanitize = [k for k in pps if "GradingExecute" not in k]
    kernel = sorted(k for k in per if k.startswith("    kernel"))
    cells = sorted((k for k in per if k.startswith("    cell")), key=lambda k: -per[k])
    lines = [f"  one submission in a worker: {task:.2f} s wall; CPU: {statistics.mean(o.cpu for o in timed):.2f} s "
             f"in the worker, {statistics.mean(o.kernel_cpu for o in timed):.2f} s in its kernel (its processes, "
             f"counted while the submission was graded)"]

    def line(name, value, note=""):
        lines.append(f"  {name:<58} {value:6.3f} s  {100 * value / task:5.1f}%{note}")

    line("ours: check the notebook is valid", per.get("ours: check the notebook is valid", 0))
    line("nbgrader autograde (all)", per.get("nbgrader autograde (all)", 0))
    for k in sorted(k for k in per if k.startswith("  init") or k.startswith("  write")):
        line(k, per[k])
    execute = per.get("  pp GradingExecute", 0)
    line("  pp GradingExecute (run the notebook)", execute)
    for k in kernel:
        line(k, per[k])
    for k in cells:
        if per[k] >= 0.001:
            line(k, per[k])
    small = [k for k in cells if per[k] < 0.001]
    if small:
        line(f"    {len(small)} other cells (markdown)", sum(per[k] for k in small))
    inside = sum(per[k] for k in kernel + cells)
    line("    (rest of GradingExecute: nbclient/nbgrader bookkeeping)", execute - inside)
    for k in sorted(sanitize, key=lambda k: -per[k]):
        line(k, per[k])
    known = sum(per.get(k, 0) for k in pps) + sum(per[k] for k in per if k.startswith("  init") or k.startswith("  write"))
    line("  (rest of nbgrader autograde: app setup, reading, exporting)", per.get("nbgrader autograde (all)", 0) - known)
    line("ours: read review flags back", per.get("ours: read review flags back", 0))
    line("ours: record a zero", per.get("ours: record a zero", 0))
    gb = per.get("Gradebook() opened (engine, schema check)", 0)
    opened = statistics.mean(o.counts.get("Gradebook() opened (engine, schema check)", 0) for o in timed)
    lines.append(f"  {'(across the above) Gradebook() opened':<58} {gb:6.3f} s  {100 * gb / task:5.1f}%"
                 f"  ({opened:.1f} times per submission)")
    busy = sum(o.wall for o in timed)
    pool = len({o.pid for o in timed})
    outside = wall - busy / max(1, min(workers, pool))
    lines.append(f"  outside the tasks (spawning {pool} worker process(es), imports, scheduling): "
                 f"~{outside:.1f} s of wall in all, ~{outside / n:.3f} s/notebook")
    alone = sum(per[k] for k in cells)
    lines.append(f"  the notebook's cells alone (every cell's execution, summed): {alone:.3f} s/notebook")
    if alone:
        lines.append(f"  remaining gap: a submission takes {task / alone:.1f}x its cells' time in a worker; "
                     f"the batch's {wall / n:.3f} s of wall per notebook is {wall / n / (alone / cores):.1f}x the "
                     f"{alone / cores:.3f} s the cells alone would take on {cores} core(s)")
    return lines


def _combined(results):
    """One grader's results on several assignments, as if one: sums, and every outcome and worker."""
    def total(measures):
        if any(m is None for m in measures):
            return None
        return Measure(*(sum(getattr(m, f.name) for m in measures) for f in dataclasses.fields(Measure)))
    return Graded(total([r.graded for r in results]), [row for r in results for row in r.rows],
                  total([r.feedback for r in results]), [o for r in results for o in r.outcomes],
                  sum(r.setup for r in results), [w for r in results for w in r.workers],
                  sum(r.kernel_cpu for r in results), start=sum(r.start for r in results),
                  cgroup=all(r.cgroup for r in results), main_cpu=sum(r.main_cpu for r in results),
                  worker_cpu=sum(r.worker_cpu for r in results))


def _table(n, results):
    lines = [f"{'':<16}{'wall s':>9}{'s/notebook':>12}{'CPU s/notebook':>16}{'notebooks/s':>13}"
             f"{'load of others':>16}"]
    for name, g in results.items():
        m = g.graded
        lines.append(f"{name:<16}{m.wall:9.1f}{m.wall / n:12.3f}{m.cpu / n:16.3f}{n / m.wall:13.2f}"
                     f"{m.others():10.2f} cores")
    return lines


def _bars(n, results):
    """Lines: ours against the two stock graders, its CPU and memory, each bar met or NOT met."""
    ours, lines = results.get("ours"), []
    if ours is None:
        return lines
    m = ours.graded
    rest = m.cpu - ours.kernel_cpu - ours.start - ours.main_cpu - ours.worker_cpu
    lines.append("  (ours' CPU per notebook, " + ("counted by a cpuacct cgroup holding this process and all it "
                 "started" if ours.cgroup else "from getrusage and /proc (no cpuacct cgroup: a kernel's last "
                 "moments may be missed)") + f": {ours.kernel_cpu / n:.3f} s in the kernels' own processes, "
                 f"{ours.start / n:.3f} s for the workers to start, {ours.worker_cpu / n:.3f} s in the "
                 f"workers' grading, {ours.main_cpu / n:.3f} s in this process, {rest / n:.3f} s in the rest: "
                 f"the kernels' zygote, their start and end outside their cgroups, bubblewrap)")
    for against in ("stock", "stock parallel"):
        if against in results:
            other = results[against].graded
            ratio, bar = other.wall / m.wall, BARS[f"vs {against}"]
            cpu_ratio = other.cpu / m.cpu if m.cpu else float("nan")
            lines.append(f"throughput ours / {against}: {ratio:.2f}x (bar >= {bar:g}x: {_met(ratio >= bar)}); "
                         f"CPU per notebook, {against} / ours: {cpu_ratio:.2f}x")
    cpu = m.cpu / n
    lines.append(f"CPU per notebook, ours: {cpu:.3f} s (bar <= {BARS['cpu_per_notebook']:g} s: "
                 f"{_met(cpu <= BARS['cpu_per_notebook'])})")
    if ours.workers:
        worker = max(w["maxrss_kb"] for w in ours.workers) / 1024
        biggest = max(w["kernel_process_kb"] for w in ours.workers) / 1024
        together = max(w["kernel_together_kb"] for w in ours.workers) / 1024
        lines.append(f"peak memory, ours: a worker process {worker:.0f} MB (bar < {BARS['worker_mb']} MB: "
                     f"{_met(worker < BARS['worker_mb'])}); a kernel: the largest process {biggest:.0f} MB, "
                     f"at most {together:.0f} MB together (RSS: pages a forked kernel shares with the "
                     f"zygote count in both)")
    return lines


def summary(n, kinds, workers, cores, results):
    """The report's lines for one assignment (``kinds``: student -> kind) or, ``kinds`` None, in all."""
    lines = _table(n, results) + _bars(n, results)
    for g in results.values():
        lines += g.notes
    fb = [f"{name} {g.feedback.wall / n:.3f} s/notebook ({g.feedback.cpu / n:.3f} CPU)"
          for name, g in results.items() if g.feedback is not None]
    if fb:
        lines.append("not timed above: feedback: " + ", ".join(fb)
                     + (f"; ours' generate_assignment {results['ours'].setup:.1f} s" if "ours" in results else ""))
    if kinds is not None:
        scores = {name: _scores(g.rows, kinds) for name, g in results.items()}
        lines.append(f"mean score by kind ({' | '.join(scores)}): " + "; ".join(
            f"{k} " + " | ".join(f"{s.get(k, float('nan')):.2f}" for s in scores.values())
            for k in sorted({k for s in scores.values() for k in s})))
    if "ours" in results:
        lines += ["", "where the time goes (ours; mean wall seconds per notebook inside a worker):"]
        lines += where_time_goes(results["ours"].outcomes, workers, results["ours"].graded.wall, n, cores)
    return lines


def wrong_solutions(results, kinds):
    """One line per grader that gave a solution less than full marks."""
    return [f"{name} gave the solution {r['score']} of {r['max_score']}" for name, g in results.items()
            for r in g.rows if kinds.get(r["student"]) == "solution" and r["score"] != r["max_score"]]


def profile(course, pairs, count):
    """cProfile, in CPU seconds of this process, of ``count`` submissions graded here as in the
    timed step (feedback deferred), after one graded unprofiled (start-up once per batch).
    The kernels' own CPU is not in it."""
    grading = grader.Grading(str(Path(course).resolve()), "", grader.resolve_cell_timeout(None), 0)
    api_class = type(grading.api())
    profiler = cProfile.Profile(time.process_time)
    with _replaced(api_class, "generate_feedback", _no_feedback):
        for i, (student, assignment) in enumerate(pairs[:count + 1]):
            if i:
                profiler.enable()
            batch.grade_submission(grading, student, assignment)
            profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative")
    stats.print_stats(45)
    text = re.sub(r"\n\s*\n", "\n", out.getvalue())
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(25)
    return text + "\n--- by own time ---\n" + re.sub(r"\n\s*\n", "\n", out.getvalue())


def grade_round(folder, subs, assignment, graders, args):
    """Every grader in ``graders`` (names of --only) once on ``subs``: report name -> Graded."""
    results = {}
    for name in graders:
        if args.quiet_wait:
            print(f"  others use {wait_until_quiet(args.quiet_wait):.2f} cores", file=sys.stderr)
        print(f"{assignment} {folder.name}: {GRADERS[name]} ...", file=sys.stderr, flush=True)
        if name == "stock":
            results[GRADERS[name]] = grade_stock(folder / "stock", subs, assignment)
        elif name == "stock-parallel":
            results[GRADERS[name]] = grade_stock_parallel(folder / "stock-parallel", subs, assignment, args.stock_jobs)
        else:
            results[GRADERS[name]] = grade_ours(folder / "ours", subs, args.workers)
    return results


def _ratio(results):
    """ours / stock throughput (the rounds' median is reported), else the first grader's wall."""
    if "ours" in results and "stock" in results:
        return results["stock"].graded.wall / results["ours"].graded.wall
    return next(iter(results.values())).graded.wall


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python benchmarks/grading_speed.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=40, help="submissions per assignment")
    parser.add_argument("--assignment", action="append", help="repeatable (default: 01_rnn and 04_bptt)")
    parser.add_argument("--workers", type=int, default=scheduling.default_workers(),
                        help="our worker processes (default: cores + 1)")
    parser.add_argument("--stock-jobs", type=int, default=scheduling.default_workers(),
                        help="stock parallel: nbgrader processes at a time (default: cores + 1)")
    parser.add_argument("--rounds", type=int, default=1, help="grade with each this many times; "
                        "the round with the median ratio ours/stock is reported")
    parser.add_argument("--only", action="append", choices=tuple(GRADERS),
                        help="grade with these only (repeatable; default: all three)")
    parser.add_argument("--experiment", action="append", default=[], choices=sorted(EXPERIMENTS),
                        help="ours with a configuration change under study (repeatable)")
    parser.add_argument("--quiet-wait", type=float, default=0, metavar="SECONDS",
                        help="before each timed step, wait up to this long for the other processes "
                             "on the machine to go quiet (under 0.3 cores)")
    parser.add_argument("--keep", type=Path, help="keep the course directories here")
    parser.add_argument("--profile", action="store_true", help="also cProfile a few submissions in-process")
    args = parser.parse_args(argv)
    assignments = list(dict.fromkeys(args.assignment or DEFAULT_ASSIGNMENTS))
    unknown = [a for a in assignments if a not in layout.assignments_in()]
    if unknown:
        parser.error(f"no such assignment {unknown[0]!r} (known: {', '.join(layout.assignments_in())})")
    if min(args.students, args.workers, args.stock_jobs, args.rounds) < 1:
        parser.error("--students, --workers, --stock-jobs and --rounds must be at least 1")
    graders = [g for g in GRADERS if g in (args.only or GRADERS)]
    os.environ["PATH"] = _env()["PATH"]
    os.environ[EXPERIMENT_ENV] = ",".join(args.experiment)   # worker processes inherit it

    work = Path(tempfile.mkdtemp(prefix="rnn-benchmark-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    n, cores = args.students, len(os.sched_getaffinity(0))
    try:
        kinds = {}
        for assignment in assignments:
            subs = work / assignment / "submissions"
            shutil.rmtree(subs, ignore_errors=True)
            kinds[assignment] = write_submissions(subs, assignment, n)
        print(f"benchmark: {n} submissions of each of {', '.join(assignments)}, graded by "
              f"{', '.join(GRADERS[g] for g in graders)}")
        for assignment, found in kinds.items():
            mix = defaultdict(int)
            for k in found.values():
                mix[k] += 1
            print(f"  {assignment}: " + ", ".join(f"{v} {k}" for k, v in sorted(mix.items(), key=lambda kv: -kv[1])))
        print(f"machine: {cores} core(s) for this process, load average {os.getloadavg()[0]:.2f} at start")
        print("timed: the autograde step only (not generate_assignment, not feedback)")
        print("  stock: one `nbgrader autograde` subprocess, stock config (default pipeline and Execute), "
              "check() verifies inside the kernel")
        print(f"  stock parallel: the same as {args.stock_jobs} `nbgrader autograde --student S` processes at a time")
        print(f"  ours: batch.autograde(workers={args.workers}, force=True); its generate_assignment is timed "
              f"and taken out, its feedback deferred to a second pass"
              + (f"; experiments: {', '.join(args.experiment)}" if args.experiment else ""))

        chosen, bad = {}, []
        for assignment in assignments:
            subs = work / assignment / "submissions"
            rounds = [grade_round(work / assignment / f"round{r + 1}", subs, assignment, graders, args)
                      for r in range(args.rounds)]
            if args.rounds > 1:
                print(f"{assignment}, {args.rounds} rounds: " + "; ".join(
                    ", ".join(f"{name} {g.graded.wall / n:.3f} s/notebook ({g.graded.cpu / n:.3f} CPU s)"
                              for name, g in res.items())
                    for res in rounds))
            rounds.sort(key=_ratio)
            chosen[assignment] = rounds[len(rounds) // 2]
            print(f"\n== {assignment}: {n} submissions" + (" (the median round)" if args.rounds > 1 else "") + " ==")
            for line in summary(n, kinds[assignment], args.workers, cores, chosen[assignment]):
                print(line)
            bad += [f"{assignment}: {b}" for b in wrong_solutions(chosen[assignment], kinds[assignment])]
        if len(assignments) > 1:
            together = {name: _combined([chosen[a][name] for a in assignments]) for name in chosen[assignments[0]]}
            print(f"\n== in all: {n * len(assignments)} submissions ({', '.join(assignments)}) ==")
            for line in _table(n * len(assignments), together) + _bars(n * len(assignments), together):
                print(line)
        print(f"load average {os.getloadavg()[0]:.2f} at the end (others' jobs may share these cores)")
        if bad:
            print("error: " + "; ".join(bad), file=sys.stderr)
            return 1
        if args.profile:
            print("\ncProfile of 8 submissions graded in this process (ours, CPU seconds, feedback deferred):")
            course = work / "ours-profile"
            pairs = layout.prepare_course(course, work / assignments[0] / "submissions")
            grader.Grading(str(course.resolve())).api().generate_assignment(assignments[0], force=True)
            print(profile(course, pairs, 8))
        return 0
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

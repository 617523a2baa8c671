"""Throughput of the course's grader against stock nbgrader, on the same submissions.

    python -m autograder.benchmark [--students 40] [--assignment 01_rnn] [--workers N]
        [--rounds 1] [--quiet-wait SECONDS] [--only stock|ours] [--experiment NAME] [--keep DIR] [--profile]

Generates ``--students`` submissions of one assignment (the solution, the blank release
and wrong variants, round robin) and grades them twice:

* stock: a separate course directory with a stock ``nbgrader_config.py`` (default
  autograde pipeline, default ``Execute``, no custom preprocessor), graded by a plain
  ``nbgrader autograde ASSIGNMENT --CourseDirectory.root=...`` subprocess. There
  ``check()`` runs in "local mode": it verifies inside the student's kernel;
* ours: :func:`autograder.batch.autograde` with ``--workers`` processes (default: cores
  + 1), ``force=True``.

Only the autograde step is timed, for both: ``generate_assignment`` runs before and
untimed (ours runs it inside ``batch.autograde``: its time is measured and taken out),
and feedback is generated afterwards, timed apart and left out of the ratio (ours:
``batch.autograde``'s per-submission ``generate_feedback`` is deferred to a second
parallel pass).

CPU time is ``resource.getrusage`` (self + children) plus, for ours, the CPU of the
sandboxed kernels read from /proc just before each kernel ends (bubblewrap's PID
namespace keeps it out of RUSAGE_CHILDREN). "load of others" is the machine's busy
CPU (/proc/stat) not ours: other jobs sharing the cores make every number worse, so
``--quiet-wait`` waits for them before each timed step and ``--rounds`` repeats.

Inside our workers every phase (kernel start, cells, nbgrader sanitize / overwrite /
save, gradebook) is timed and printed as "where the time goes"; ``--experiment``
grades ours with a configuration change under study (see EXPERIMENTS); ``--profile``
also grades a few submissions in this process under cProfile.

Exits 0 unless the grading itself went wrong (a solution short of full marks in either
grader, a failed nbgrader run).
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
from pathlib import Path

import nbformat

from . import batch, scheduling

REPO = Path(__file__).resolve().parent.parent
STOCK_CONFIG = '''\
# Stock nbgrader: default autograde pipeline, default Execute, no custom preprocessors.
c = get_config()
c.CourseDirectory.course_id = "stock-benchmark"
'''

# ---------------------------------------------------------------------------- submissions

#: Wrong variants of 01_rnn with known bugs (anchor in the solution -> replacement).
MUTATIONS = {
    "01_rnn": [
        ("sigmoid_activation", "rnn_step_forward", "np.tanh(x @ Wx + prev_h @ Wh + b)",
         "1 / (1 + np.exp(-(x @ Wx + prev_h @ Wh + b)))"),
        ("no_recurrent_term", "rnn_step_forward", "np.tanh(x @ Wx + prev_h @ Wh + b)", "np.tanh(x @ Wx + b)"),
        ("no_accumulation", "rnn_backward", "dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t",
         "dWx, dWh, db = dWx_t, dWh_t, db_t"),
    ],
}
#: One cycle of the mix: S solution, B blank release, W the next wrong variant.
MIX = "SWSWBSWSWW"


def _grade_id(cell):
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _read(folder, assignment):
    return nbformat.read(REPO / folder / assignment / f"{assignment}.ipynb", as_version=4)


def variants(assignment):
    """name -> notebook: "solution", "blank" and the wrong variants of ``assignment``."""
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
        if gid in sources and old in sources[gid]:
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


@dataclasses.dataclass
class Measure:
    wall: float = 0.0
    cpu: float = 0.0        # ours and our children's
    machine: float = 0.0    # every process on the machine (/proc/stat): others' jobs = machine - cpu

    @contextlib.contextmanager
    def running(self):
        wall, cpu, machine = time.perf_counter(), _cpu(), _machine_cpu()
        try:
            yield self
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += _cpu() - cpu
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


def _env():
    """PATH with this interpreter's tools first: the kernel spec runs ``python``, nbgrader ``alembic``."""
    tools = os.path.dirname(sys.executable)
    return {**os.environ, "PATH": tools + os.pathsep + os.environ.get("PATH", "")}


def _nbgrader(root, *args, measure=None):
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}", "--log-level=WARN"]
    with (measure.running() if measure else contextlib.nullcontext()):
        done = subprocess.run(cmd, cwd=root, env=_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"stock nbgrader failed: {' '.join(cmd[2:4])}\n{done.stderr[-3000:]}")
    return done


# ---------------------------------------------------------------------------- stock

def grade_stock(root, submissions, assignment):
    """Stock nbgrader on ``submissions``: (autograde Measure, feedback Measure, rows)."""
    root = Path(root)
    shutil.copytree(REPO / "solutions" / assignment, root / "source" / assignment)
    shutil.copytree(submissions, root / "submitted")
    (root / "nbgrader_config.py").write_text(STOCK_CONFIG)
    _nbgrader(root, "generate_assignment", assignment)
    graded, feedback = Measure(), Measure()
    _nbgrader(root, "autograde", assignment, measure=graded)
    _nbgrader(root, "generate_feedback", assignment, measure=feedback)
    rows = batch.grade_rows(root, f"sqlite:///{root / 'gradebook.db'}")
    return graded, feedback, rows


# ---------------------------------------------------------------------------- ours, instrumented

_phases = defaultdict(float)   # in a worker: phase -> seconds, for the submission being graded
_counts = defaultdict(int)
_installed = False
_kernel_cpu = 0.0


def descendants_cpu(root=None):
    """CPU seconds so far of the processes below ``root`` (this process), read from /proc.

    The sandboxed kernel runs in bubblewrap's own PID namespace: its CPU time never
    reaches this process's RUSAGE_CHILDREN, so it is read here before the kernel ends.
    """
    root, tick = root or os.getpid(), os.sysconf("SC_CLK_TCK")
    children = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children[int(fields[1])].append((int(entry), sum(int(f) for f in fields[11:15]) / tick))
    total, stack = 0.0, [root]
    while stack:
        for pid, cpu in children.get(stack.pop(), []):
            total += cpu
            stack.append(pid)
    return total


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
    setattr(owner, attr, _timed(name, getattr(owner, attr), key))


def _install():
    """Time the phases of grading, in this (worker) process only."""
    global _installed
    if _installed:
        return
    _installed = True
    from nbconvert.preprocessors.base import Preprocessor
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI
    from nbgrader.converters.autograde import Autograde
    from nbgrader.converters.base import BaseConverter

    from .preprocessors import GradingExecute
    from .sandbox import SandboxedKernelManager

    _patch(batch, "check_submission", "ours: check the notebook is valid")
    _patch(batch, "review_flags", "ours: read review flags back")
    _patch(batch, "_record_zero", "ours: record a zero")
    _patch(NbGraderAPI, "autograde", "nbgrader autograde (all)")
    _patch(Autograde, "init_assignment", "  init: gradebook student/submission, copy files")
    _patch(BaseConverter, "write_single_notebook", "  write autograded notebook")
    _patch(Preprocessor, "__call__", "", key=lambda self, *a, **k: f"  pp {type(self).__name__}")
    _patch(GradingExecute, "start_new_kernel", "    kernel: spawn (sandbox, bwrap)")
    _patch(GradingExecute, "start_new_kernel_client", "    kernel: wait until ready")
    _patch(GradingExecute, "wait_for_reply", "    kernel: kernel_info")
    _patch(GradingExecute, "execute_cell", "", key=lambda self, cell, *a, **k:
           f"    cell {_grade_id(cell) or 'without grade id'}")
    _patch(GradingExecute, "_cleanup_kernel", "    kernel: shutdown")
    cleanup = GradingExecute._cleanup_kernel

    def sample_then_cleanup(self, *args, **kwargs):
        global _kernel_cpu
        sandbox = getattr(self.km, "sandbox", None)
        if sandbox is not None and sandbox.enabled and shutil.which(sandbox.bwrap):
            _kernel_cpu += descendants_cpu()   # else the kernel is a plain child: getrusage counts it
        return cleanup(self, *args, **kwargs)
    GradingExecute._cleanup_kernel = sample_then_cleanup
    _patch(SandboxedKernelManager, "release", "    kernel: sandbox release (cgroup, folder)")
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


@dataclasses.dataclass
class TimedOutcome(batch.Outcome):
    phases: dict = dataclasses.field(default_factory=dict)
    counts: dict = dataclasses.field(default_factory=dict)
    wall: float = 0.0
    cpu: float = 0.0          # this worker's own CPU
    kernel_cpu: float = 0.0   # the kernel's, read from /proc before it ended
    pid: int = 0


def grade_timed(grading, student, assignment):
    """batch.grade_submission with its phases timed and feedback deferred (runs in a worker)."""
    from nbgrader.apps import NbGraderAPI

    global _kernel_cpu
    _install()
    _kernel_cpu = 0.0
    _apply_experiments(grading)
    _phases.clear()
    _counts.clear()
    real, NbGraderAPI.generate_feedback = NbGraderAPI.generate_feedback, _no_feedback
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        outcome = batch.grade_submission(grading, student, assignment)
    finally:
        NbGraderAPI.generate_feedback = real
    fields = {f.name: getattr(outcome, f.name) for f in dataclasses.fields(batch.Outcome)}
    return TimedOutcome(**fields, phases=dict(_phases), counts=dict(_counts), wall=time.perf_counter() - wall,
                        cpu=time.process_time() - cpu, kernel_cpu=_kernel_cpu, pid=os.getpid())


def feedback_one(grading, student, assignment):
    return grading.api().generate_feedback(assignment, student, force=True).get("success", False)


def grade_ours(course, submissions, workers):
    """batch.autograde on ``submissions``: (autograde Measure, feedback Measure, rows, outcomes, setup seconds)."""
    from nbgrader.apps import NbGraderAPI

    course = Path(course)
    pairs = batch.prepare_course(course, submissions)
    setup = Measure()
    real_generate, real_run = NbGraderAPI.generate_assignment, scheduling.run

    def generate(self, *args, **kwargs):
        with setup.running():
            return real_generate(self, *args, **kwargs)

    def run(fn, arglist, **kwargs):
        assert fn is batch.grade_submission, fn
        return real_run(grade_timed, arglist, **kwargs)

    graded = Measure()
    NbGraderAPI.generate_assignment, scheduling.run = generate, run
    try:
        with graded.running():
            outcomes = batch.autograde(course, pairs, workers=workers, force=True)
    finally:
        NbGraderAPI.generate_assignment, scheduling.run = real_generate, real_run
    graded.wall -= setup.wall
    graded.machine -= setup.machine
    graded.cpu += sum(o.kernel_cpu for o in outcomes if isinstance(o, TimedOutcome)) - setup.cpu
    grading = batch.Grading(str(course.resolve()), "", batch.resolve_cell_timeout(None), 0)
    feedback = Measure()
    with feedback.running():
        done = scheduling.run(feedback_one, [(grading, s, a) for s, a in pairs], workers=workers)
    if not all(done):
        raise SystemExit("ours: generate_feedback failed")
    return graded, feedback, batch.grade_rows(course), outcomes, setup.wall


# ---------------------------------------------------------------------------- report

def _per(m, n):
    return m.wall / n, m.cpu / n


def _scores(rows, kinds):
    by_kind = defaultdict(list)
    for r in rows:
        by_kind[kinds.get(r["student"], "?")].append(r["score"])
    return {k: statistics.mean(v) for k, v in sorted(by_kind.items())}


def where_time_goes(outcomes, workers, wall, n):
    """Lines: mean seconds per notebook of each phase inside a worker, and what is outside."""
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
    kernel_cpu = statistics.mean(o.kernel_cpu for o in timed)
    lines = [f"  one submission in a worker: {task:.2f} s wall; CPU: {statistics.mean(o.cpu for o in timed):.2f} s "
             f"in the worker, " + (f"{kernel_cpu:.2f} s in its kernel until shutdown" if kernel_cpu
                                   else "its kernel's in getrusage (not sandboxed)")]

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
                 f"  ({opened:.0f} times per submission)")
    busy = sum(o.wall for o in timed)
    pool = len({o.pid for o in timed})
    outside = wall - busy / max(1, min(workers, pool))
    lines.append(f"  outside the tasks (spawning {pool} worker process(es), imports, scheduling): "
                 f"~{outside:.1f} s of wall in all, ~{outside / n:.3f} s/notebook")
    return lines


def profile(course, pairs, count):
    """cProfile of ``count`` submissions graded in this process (kernel time shows as waiting)."""
    grading = batch.Grading(str(Path(course).resolve()), "", batch.resolve_cell_timeout(None), 0)
    profiler = cProfile.Profile()
    profiler.enable()
    for student, assignment in pairs[:count]:
        batch.grade_submission(grading, student, assignment)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative")
    stats.print_stats(45)
    text = re.sub(r"\n\s*\n", "\n", out.getvalue())
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(25)
    return text + "\n--- by own time ---\n" + re.sub(r"\n\s*\n", "\n", out.getvalue())


def _summary(n, kinds, workers, stock, ours):
    """The report's lines; ``stock`` or ``ours`` may be None (not run)."""
    lines = ["", f"{'':<8}{'wall s':>9}{'s/notebook':>12}{'CPU s/notebook':>16}{'notebooks/s':>13}"
                 f"{'load of others':>16}"]
    for name, result in (("stock", stock), ("ours", ours)):
        if result:
            m = result[0]
            lines.append(f"{name:<8}{m.wall:9.1f}{m.wall / n:12.3f}{m.cpu / n:16.3f}{n / m.wall:13.2f}"
                         f"{m.others():10.2f} cores")
    if ours:
        kernel = sum(getattr(o, "kernel_cpu", 0) for o in ours[3]) / n
        lines.append(f"  (ours' CPU includes {kernel:.3f} s/notebook of sandboxed kernels, read from /proc: "
                     f"bubblewrap's PID namespace hides it from getrusage)")
    if stock and ours:
        ratio = stock[0].wall / ours[0].wall
        cpu_ratio = stock[0].cpu / ours[0].cpu if ours[0].cpu else float("nan")
        lines.append(f"throughput ratio ours/stock: {ratio:.2f}x (target >= 3x: {'met' if ratio >= 3 else 'NOT met'}); "
                     f"CPU per notebook, stock/ours: {cpu_ratio:.2f}x")
    fb = [f"{name} {r[1].wall / n:.3f} s/notebook ({r[1].cpu / n:.3f} CPU)"
          for name, r in (("stock", stock), ("ours", ours)) if r]
    lines.append("not timed above: feedback: " + ", ".join(fb)
                 + (f"; ours' generate_assignment {ours[4]:.1f} s" if ours else ""))
    scores = {name: _scores(r[2], kinds) for name, r in (("stock", stock), ("ours", ours)) if r}
    lines.append(f"mean score by kind ({' | '.join(scores)}): " + "; ".join(
        f"{k} " + " | ".join(f"{s.get(k, float('nan')):.2f}" for s in scores.values())
        for k in sorted({k for s in scores.values() for k in s})))
    if ours:
        lines += ["", "where the time goes (ours; mean wall seconds per notebook inside a worker):"]
        lines += where_time_goes(ours[3], workers, ours[0].wall, n)
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--assignment", default="01_rnn")
    parser.add_argument("--workers", type=int, default=scheduling.default_workers(),
                        help="our worker processes (default: cores + 1)")
    parser.add_argument("--rounds", type=int, default=1, help="grade with both this many times, alternating; "
                        "the round with the median ratio is reported")
    parser.add_argument("--only", choices=("stock", "ours"), help="grade with one of the two only")
    parser.add_argument("--experiment", action="append", default=[], choices=sorted(EXPERIMENTS),
                        help="ours with a configuration change under study (repeatable)")
    parser.add_argument("--quiet-wait", type=float, default=0, metavar="SECONDS",
                        help="before each timed step, wait up to this long for the other processes "
                             "on the machine to go quiet (under 0.3 cores)")
    parser.add_argument("--keep", type=Path, help="keep the course directories here")
    parser.add_argument("--profile", action="store_true", help="also cProfile a few submissions in-process")
    args = parser.parse_args(argv)
    if args.assignment not in batch.assignments_in():
        parser.error(f"no such assignment {args.assignment!r}")
    if args.students < 1 or args.workers < 1 or args.rounds < 1:
        parser.error("--students, --workers and --rounds must be at least 1")
    os.environ["PATH"] = _env()["PATH"]
    os.environ[EXPERIMENT_ENV] = ",".join(args.experiment)   # worker processes inherit it

    work = Path(tempfile.mkdtemp(prefix="rnn-benchmark-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    n, cores = args.students, len(os.sched_getaffinity(0))
    try:
        subs = work / "submissions"
        shutil.rmtree(subs, ignore_errors=True)
        kinds = write_submissions(subs, args.assignment, n)
        mix = defaultdict(int)
        for k in kinds.values():
            mix[k] += 1
        print(f"benchmark: {n} submissions of {args.assignment} "
              f"({', '.join(f'{v} {k}' for k, v in sorted(mix.items(), key=lambda kv: -kv[1]))})")
        print(f"machine: {cores} core(s) for this process, load average {os.getloadavg()[0]:.2f} at start")
        print("timed: the autograde step only, for both (not generate_assignment, not feedback)")
        print("  stock: `nbgrader autograde` subprocess, stock config (default pipeline and Execute), "
              "check() verifies inside the kernel")
        print(f"  ours:  batch.autograde(workers={args.workers}, force=True); its generate_assignment is timed "
              f"and taken out, its feedback deferred to a second pass"
              + (f"; experiments: {', '.join(args.experiment)}" if args.experiment else ""))
        rounds = []
        for r in range(args.rounds):
            stock = ours = None
            for name in ("stock", "ours"):
                if args.only in (None, name):
                    if args.quiet_wait:
                        busy = wait_until_quiet(args.quiet_wait)
                        print(f"round {r + 1}/{args.rounds}: others use {busy:.2f} cores", file=sys.stderr)
                    print(f"round {r + 1}/{args.rounds}: {name} ...", file=sys.stderr, flush=True)
                if args.only in (None, "stock") and name == "stock":
                    stock = grade_stock(work / f"stock{r}", subs, args.assignment)
                elif args.only in (None, "ours") and name == "ours":
                    ours = grade_ours(work / f"ours{r}", subs, args.workers)
            rounds.append((stock, ours))
            if args.rounds > 1:
                print(f"  round {r + 1}: " + ", ".join(f"{name} {res[0].wall / n:.3f} s/notebook "
                                                       f"(others used {res[0].others():.2f} cores)"
                                                       for name, res in (("stock", stock), ("ours", ours)) if res)
                      + (f", ratio {stock[0].wall / ours[0].wall:.2f}x" if stock and ours else "")
                      + f" (load average {os.getloadavg()[0]:.2f})")
        if args.only is None:
            rounds.sort(key=lambda so: so[0][0].wall / so[1][0].wall)
        else:
            rounds.sort(key=lambda so: (so[0] or so[1])[0].wall)
        stock, ours = rounds[len(rounds) // 2]
        for line in _summary(n, kinds, args.workers, stock, ours):
            print(line)
        if args.rounds > 1 and args.only is None:
            print(f"ratios over {args.rounds} rounds: "
                  + ", ".join(f"{s[0].wall / o[0].wall:.2f}x" for s, o in rounds) + " (the median is shown)")
        print(f"load average {os.getloadavg()[0]:.2f} at the end (others' jobs may share these cores)")

        bad = [f"{name} gave the solution {score}" for name, res in (("stock", stock), ("ours", ours)) if res
               for score in {r["score"] for r in res[2] if kinds[r["student"]] == "solution"} if score != 10]
        if bad:
            print("error: " + "; ".join(bad), file=sys.stderr)
            return 1
        if args.profile:
            print("\ncProfile of 4 submissions graded in this process (ours, feedback included):")
            course = work / "ours-profile"
            pairs = batch.prepare_course(course, subs)
            batch.Grading(str(course.resolve())).api().generate_assignment(args.assignment, force=True)
            print(profile(course, pairs, 4))
        return 0
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

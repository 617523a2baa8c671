"""200 submissions in one batch finish without growth (issue 13).

One ``batch.autograde`` of 200 submissions of exercise 1 (the benchmark's mix: solution,
blank release, wrong variants) with the default worker processes. After every submission
the test reads, from /proc, each worker process's resident and private memory and open
files, the processes below this one but the workers (kernels, bubblewrap, the kernels'
zygote), their cgroups and the kernels' folders in /dev/shm; late in the batch none of
these may exceed what it was early on by more than a small margin, no worker may hold
more than the memory bar alone (forked, it shares the rest with the batch's process),
and once the batch is done nothing of its kernels may be left. Every score must be what
its kind of submission earns.
"""
import multiprocessing
import os
import time
from pathlib import Path

from autograder import batch, gradescsv, layout, scheduling
from benchmarks import grading_speed as benchmark
from autograder.sandbox import CGROUP_ROOT, private_root
from points import cell_points

A = "01_rnn"
N = 200
EARLY, LATE = range(25, 76), range(N - 50, N + 1)   # submissions done, around 50 and up to 200
RSS_MARGIN_KB = 5 * 1024         # a worker's resident memory may grow this much from early to late
WORKER_LIMIT_KB = benchmark.BARS["worker_mb"] * 1024   # for what a worker holds alone (below)


def _private_kb(pid):
    """What ``pid`` holds alone (its unique set: private pages). A worker is forked from the
    batch's process: its resident set also counts every page it still shares with that
    process (here pytest's, with all it has imported), which costs the machine nothing more."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0
    return sum(int(line.split()[1]) for line in lines if line.startswith(("Private_Clean:", "Private_Dirty:")))


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _open_files(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _cgroups(pid):
    """The course's cgroups of ``pid``: paths below a controller's rnn-course folder."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return set()
    found = set()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "/rnn-course/" in path and controllers:
            found |= {CGROUP_ROOT / c / path.lstrip("/") for c in controllers.split(",")}
    return found


def _entries(path, depth=3):
    """Files and folders at ``path`` and below it, ``depth`` levels down."""
    if not os.path.lexists(path):
        return 0
    count = 1
    if depth and os.path.isdir(path) and not os.path.islink(path):
        try:
            count += sum(_entries(os.path.join(path, name), depth - 1) for name in os.listdir(path))
        except OSError:
            pass
    return count


class Watch:
    """Samples the batch's worker processes and what lies below them after each submission."""

    def __init__(self):
        self.done = 0
        self.samples = {}           # submissions done -> {what: number}
        self.workers = set()
        self.processes = set()      # (pid, start) of every process the batch started, but its workers
        self.before = {(p.pid, p.start) for p in benchmark.process_tree()}   # this process's, from before
        self.cgroups = set()
        self.shm = Path(private_root() or "/nonexistent")

    def kernel_folders(self):
        """The folders in /dev/shm of this batch's kernels: named after one of their cgroups,
        or after this process or a worker (a zygote's)."""
        names = {c.name for c in self.cgroups}
        pids = {str(pid) for pid in self.workers | {os.getpid()}}
        mine = f"rnn-views-{os.getpid()}-"   # this process's read-only views: kept until it exits
        return [p for p in self.shm.glob("rnn-*") if not p.name.startswith(mine)
                and (p.name in names or any(f"-{pid}-" in p.name for pid in pids))]

    def __call__(self, outcome):
        self.done += 1
        workers = {p.pid for p in multiprocessing.active_children()}
        sample = {"open files": 0}
        for pid in workers:
            self.workers.add(pid)
            sample[f"rss {pid}"], sample[f"private {pid}"] = benchmark.memory_kb(pid)[1], _private_kb(pid)
            sample["open files"] += _open_files(pid)
        below = [p for p in benchmark.process_tree() if p.pid not in workers and (p.pid, p.start) not in
                 self.before and "resource_tracker" not in _cmdline(p.pid)]   # multiprocessing's own helper
        sample["processes below"] = len(below)
        for proc in below:
            self.processes.add((proc.pid, proc.start))
            self.cgroups |= _cgroups(proc.pid)
        sample["cgroups"] = sum(c.is_dir() for c in self.cgroups)
        sample["kernel folder entries"] = sum(_entries(p) for p in self.kernel_folders())
        self.samples[self.done] = sample

    def most(self, key, window):
        return max(self.samples[i].get(key, 0) for i in window if i in self.samples)


def expected(kind, cells, points):
    """Whether the per-cell scores ``cells`` are what a submission of ``kind`` earns: all for the
    solution, nothing for the blank release, less than all in the test of a wrong function."""
    if kind == "solution":
        return cells == points
    if kind == "blank":
        return not any(cells.values())
    gid = kind[len("missing_"):] if kind.startswith("missing_") else \
        next(gid for name, gid, *_ in benchmark.MUTATIONS[A] if name == kind)
    return cells[f"test_{gid}"] < points[f"test_{gid}"]


def test_200_submissions_in_one_batch_finish_without_growth(tmp_path):
    kinds = benchmark.write_submissions(tmp_path / "submissions", A, N)
    course = tmp_path / "course"
    pairs = layout.prepare_course(course, tmp_path / "submissions")
    watch = Watch()
    workers = scheduling.default_workers()
    outcomes = batch.autograde(course, pairs, workers=workers, progress=watch)

    assert len(outcomes) == N and all(o.ok and not o.retry for o in outcomes), \
        [o for o in outcomes if not o.ok or o.retry][:3]
    points = cell_points(A)
    rows = {r["student"]: r for r in gradescsv.grade_rows(course)}
    assert sorted(rows) == sorted(kinds)
    wrong = [(s, kinds[s], rows[s]["cells"]) for s in kinds if not expected(kinds[s], rows[s]["cells"], points)]
    assert not wrong, wrong[:3]
    by_kind = {}
    for student, kind in kinds.items():   # the same notebook, the same grade, first to last
        assert by_kind.setdefault(kind, rows[student]["cells"]) == rows[student]["cells"], (student, kind)
    assert len(by_kind) == len(benchmark.variants(A))

    assert len(watch.workers) == workers, watch.workers   # one process each, the whole batch long
    assert watch.processes, "no kernel process was seen"
    for pid in watch.workers:
        early, late = watch.most(f"rss {pid}", EARLY), watch.most(f"rss {pid}", LATE)
        assert late <= early + RSS_MARGIN_KB, f"worker {pid}: {early} kB after ~50 submissions, {late} kB by 200"
        assert 0 < watch.most(f"private {pid}", range(N + 1)) < WORKER_LIMIT_KB
    slack = {"open files": 8 * workers, "processes below": 4 * workers, "cgroups": 2 * workers,
             "kernel folder entries": 12 * workers}
    for key, more in slack.items():
        early, late = watch.most(key, EARLY), watch.most(key, LATE)
        assert late <= early + more, f"{key}: at most {early} after ~50 submissions, {late} by 200"

    def left():   # what the workers' exit takes a moment to clear (bubblewrap dies with its parent)
        alive = [(pid, _cmdline(pid)) for pid, start in watch.processes
                 if (proc := benchmark.proc_stat(pid)) and proc.start == start]
        return alive, [c for c in watch.cgroups if c.is_dir()], watch.kernel_folders()

    deadline = time.monotonic() + 10
    while any(left()) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive, cgroups, folders = left()
    assert not alive and not cgroups and not folders, (alive[:3], cgroups[:3], folders[:3])

"""Bounded by construction: whatever a submission or its kernel makes, the batch grades the rest.

One batch of exercise 01 (2 workers) holds, beside a correct student, submissions that are
too deep, too wide, too large (a sparse file), that have too many cells, that flood every
kind of kernel message (stream, display, execute result, display update, clear, error,
widget comm) or send malformed ones, and students whose ids are glob patterns or odd
characters; a leftover of a failed clean-up (a very deep tree, a mount) waits in /dev/shm
from an earlier batch. Kernels that fill their private space with files and a deep tree
are tested in the jail (test_sandbox.py's helpers); a worker killed mid-batch through the CLI.
"""
import copy
import os
import signal
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from ci import unavailable
from autograder import batch, gradescsv, grader, layout, markers, notebookcheck, sandbox as sandbox_module, trees, verdicts
from autograder.sandbox import Sandbox, SandboxedKernelManager, cgroup_controllers
from points import total_points
from submissions import solution_cells, student_notebook, write_submissions
from jail_support import AS_ROOT, KERNEL_START, in_jail, require, workdir

pytestmark = pytest.mark.xdist_group("test_bounds")   # its module-scoped fixture grades once: every test of the module on one worker

A = "01_rnn"
NB = f"{A}.ipynb"
TOTAL = total_points(A)
SOL = solution_cells(A)
RIGHT = student_notebook(A)
BLANK = student_notebook(A, released=True)
MB = 1024 ** 2


def with_last_cell(code):
    nb = copy.deepcopy(RIGHT)
    nb.cells.append(new_code_cell(code))
    return nb


SEND = """
kernel = get_ipython().kernel
def send(kind, content):
    kernel.session.send(kernel.iopub_socket, kind, content, parent=kernel.get_parent())
"""
PIECE = "x" * 100_000
#: Every kind of message a kernel sends about a cell, 3 MB of each (the limit is 1 MB a notebook).
FLOODS = {
    "stream": f"for _ in range(30): print({PIECE!r})",
    "display_data": "from IPython.display import display\n"
                    f"for _ in range(30): display({{'text/plain': {PIECE!r}}}, raw=True)",
    "execute_result": SEND + f"for n in range(30): send('execute_result', {{'data': {{'text/plain': {PIECE!r}}}, "
                             f"'metadata': {{}}, 'execution_count': n}})",
    # a small display shown 300 times, then updated: kept, each update would be copied 300 times
    "update_display_data": "from IPython.display import display, update_display\n"
                           "for _ in range(300): display({'text/plain': 'small'}, raw=True, display_id='d')\n"
                           f"for _ in range(30): update_display({{'text/plain': {PIECE!r}}}, raw=True, display_id='d')",
    "clear_output": f"from IPython.display import clear_output\nfor _ in range(30):\n    print({PIECE!r})\n"
                    f"    clear_output()",
    "error": SEND + f"for _ in range(30): send('error', {{'ename': 'E', 'evalue': {PIECE!r}, "
                    f"'traceback': [{PIECE!r}]}})",
    "comm": SEND + "send('comm_open', {'comm_id': 'w', 'target_name': 'jupyter.widget', 'data': {'state': {}}})\n"
                   f"for _ in range(30): send('comm_msg', {{'comm_id': 'w', 'data': {{'method': 'update', "
                   f"'state': {{'value': {PIECE!r}}}, 'buffer_paths': []}}}})",
}
MALFORMED = SEND + """
send('comm_msg', {'comm_id': 'w'})                      # no data
send('comm_open', {'data': None})                       # no id, data not a dict
send('comm_msg', {'comm_id': 'w', 'data': {'state': 'not a dict', 'buffer_paths': 'nor this'}})
send('update_display_data', {'data': 'not a dict', 'transient': {'display_id': 7}})
send('display_data', {'data': {'text/plain': 'shown'}, 'transient': None})
send('stream', {'text': 'a stream without a name'})
send('clear_output', 'not a dict')
print("malformed sent")
"""

#: Ids that are glob patterns beside the ids they match, odd characters, a decomposed name.
NFD = unicodedata.normalize("NFD", "zoë-ñ")
IDS = {"*": RIGHT, "bo?": RIGHT, "bob": BLANK, "[ab]": RIGHT, "a": BLANK, "with space": RIGHT, NFD: RIGHT}
REFUSED = {"new\nline": "a control character", " lead": "begins or ends with a space"}
STUDENTS = {"solution": RIGHT, "deep_tree": RIGHT, "many_entries": RIGHT, "sparse": RIGHT,
            "many_cells": RIGHT, "malformed": with_last_cell(MALFORMED),
            **{f"flood_{kind}": with_last_cell(code) for kind, code in FLOODS.items()}, **IDS}


def deep_tree(top, depth):
    """``depth`` folders, one in the other, under ``top`` (made through relative paths: the
    whole path would be too long for one system call)."""
    here = os.getcwd()
    top.mkdir(parents=True, exist_ok=True)
    os.chdir(top)
    try:
        for _ in range(depth):
            os.mkdir("d")
            os.chdir("d")
        Path("bottom.txt").write_text("at the bottom")
    finally:
        os.chdir(here)


def dead_pid():
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    if Sandbox().problems():
        unavailable(f"the grading sandbox is incomplete ({Sandbox().problems()})", "run as root with bubblewrap: bash scripts/system-deps.sh")
    root = tmp_path_factory.mktemp("bounds")
    subs = write_submissions(root / "submissions", A, {k: v for k, v in STUDENTS.items()})
    for name in REFUSED:
        write_submissions(subs, A, {name: RIGHT})
    many = nbformat.read(subs / "many_cells" / A / NB, as_version=4)
    many.cells += [new_code_cell("") for _ in range(30_000)]
    nbformat.write(many, subs / "many_cells" / A / NB)
    deep_tree(subs / "deep_tree" / A / "data", 1500)   # deeper than Python's recursion limit
    (subs / "many_entries" / A / "data").mkdir()
    for n in range(3000):
        (subs / "many_entries" / A / "data" / f"{n}.txt").write_text(str(n))
    with open(subs / "sparse" / A / "big.npy", "wb") as f:
        f.truncate(64 * 1024 ** 3)   # 64 GB that take no room
    # What a crashed batch left: a zygote's folder (its grader is gone) holding a very deep
    # tree and a mount, and an old kernel box holding another.
    shm = Path(sandbox_module.private_root() or "/tmp")
    left = shm / f"rnn-zygote-{dead_pid()}-leftover"
    deep_tree(left / "boxes" / "rnn-kernel-old" / "kernel", 5000)
    if AS_ROOT:
        (left / "boxes" / "mounted").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(left / "boxes" / "mounted")], check=True)
    stale = Path(f"{shm}/rnn-kernel-leftover{os.getpid()}")
    deep_tree(stale, 3000)
    os.utime(stale, (time.time() - 3600,) * 2)

    course_dir = root / "course"
    problems = []
    try:
        pairs = layout.prepare_course(course_dir, subs, problems=problems)
        outcomes = {o.student: o for o in batch.autograde(course_dir, pairs, cell_timeout=30, workers=2)}
        rows = {r["student"]: r for r in gradescsv.grade_rows(course_dir)}
        csv_path = root / "grades.csv"
        gradescsv.export_csv(list(rows.values()), csv_path)
        yield {"course": course_dir, "subs": subs, "problems": problems, "outcomes": outcomes, "rows": rows,
               "leftovers": (left, stale), "csv": csv_path}
    finally:
        for tree in (subs / "deep_tree", left, stale):
            sandbox_module.remove_box(tree)   # pytest's own clean-up recurses


def flags(graded, student):
    return verdicts.review_flags(graded["course"], student, A)


def test_the_correct_student_is_graded_as_usual(graded):
    assert graded["rows"]["solution"]["score"] == TOTAL and flags(graded, "solution") == []


@pytest.mark.parametrize("student, words", [
    ("deep_tree", "data/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d (a folder more than 16 levels deep)"),
    ("many_entries", "(over the limit of 2000 files and folders) and "),
    ("sparse", f"big.npy ({64 * 1024 ** 3} bytes, over the limit of 64 MB in all)"),
])
def test_what_is_over_a_bound_is_left_out_flagged_and_the_rest_graded(graded, student, words):
    course, row = graded["course"], graded["rows"][student]
    assert graded["outcomes"][student].ok and row["score"] == TOTAL, graded["outcomes"][student]
    said = flags(graded, student)
    assert len(said) == 1 and said[0].startswith("left out of the submission, over the grader's limits: "), said
    assert words in said[0] and len(said[0]) < 2000, said
    copied = course / "submitted" / student / A
    assert sum(info.st_size for _, info, why in trees.walk(copied) if why is None) < layout.LIMITS.bytes


def test_a_notebook_with_too_many_cells_is_refused_before_any_work(graded):
    outcome, row = graded["outcomes"]["many_cells"], graded["rows"]["many_cells"]
    assert not outcome.ok and not outcome.retry and row["score"] == 0, outcome
    assert outcome.message == f"{NB} is too large to grade: {30_000 + len(RIGHT.cells)} cells (the limit is " \
                              f"{notebookcheck.MAX_CELLS})", outcome
    assert not (graded["course"] / "autograded" / "many_cells").exists()


@pytest.mark.parametrize("kind", list(FLOODS))
def test_every_kind_of_message_counts_against_the_output_limit(graded, kind):
    student = f"flood_{kind}"
    course, outcome = graded["course"], graded["outcomes"][student]
    assert outcome.ok and graded["rows"][student]["score"] == TOTAL, outcome
    # (print's pieces may reach the grader as one message over its limit: refused undecoded)
    assert any(f.startswith(("output over 1000000 bytes dropped in ", "a message over 2000000 bytes refused"))
               for f in flags(graded, student)), flags(graded, student)
    autograded = course / "autograded" / student / A / NB
    page = course / "feedback" / student / A / f"{A}.html"
    assert autograded.stat().st_size < 3 * MB and page.stat().st_size < 5 * MB, \
        (autograded.stat().st_size, page.stat().st_size)
    assert "widgets" not in nbformat.read(autograded, as_version=4).metadata


def test_malformed_messages_never_make_a_submission_ungradable(graded):
    outcome = graded["outcomes"]["malformed"]
    assert outcome.ok and graded["rows"]["malformed"]["score"] == TOTAL, outcome
    nb = nbformat.read(graded["course"] / "autograded" / "malformed" / A / NB, as_version=4)
    assert "malformed sent" in "".join(o.get("text", "") for o in nb.cells[-1].outputs)


def test_student_ids_are_data_never_patterns(graded):
    rows, problems = graded["rows"], graded["problems"]
    nfc = unicodedata.normalize("NFC", NFD)
    expected = {"*": TOTAL, "bo?": TOTAL, "bob": 0, "[ab]": TOTAL, "a": 0, "with space": TOTAL, nfc: TOTAL}
    assert {s: rows[s]["score"] for s in expected} == expected
    assert NFD not in rows and nfc in graded["outcomes"]
    for name, why in REFUSED.items():
        line = next(p for p in problems if p.startswith(ascii(name)))
        assert why in line and "\n" not in line, problems
        assert name not in rows
    assert len(graded["csv"].read_text().splitlines()) == len(rows) + 1


def test_a_rerun_with_ids_that_are_patterns_grades_nothing_twice(graded):
    course = graded["course"]
    grading = grader.Grading(str(course.resolve()))
    assert all(markers.finished(grading, s, A) for s in IDS if s != NFD)


def test_leftovers_of_a_failed_clean_up_do_not_stop_a_later_batch(graded):
    left, stale = graded["leftovers"]
    assert not left.exists() and not stale.exists()
    assert str(left) not in Path("/proc/self/mountinfo").read_text()
    assert all(o.ok or not o.retry for o in graded["outcomes"].values()), graded["outcomes"]


def test_a_tree_of_any_depth_is_removed_without_recursion(tmp_path):
    deep = Path(sandbox_module.private_root() or tmp_path) / f"rnn-test-deep-{os.getpid()}"   # in RAM: quick
    deep_tree(deep, 20_000)
    (tmp_path / "outside.txt").write_text("kept")
    os.symlink(tmp_path / "outside.txt", deep / "link")
    os.symlink(tmp_path, deep / "d" / "folder link")
    assert trees.remove(deep) and not deep.exists()
    assert (tmp_path / "outside.txt").read_text() == "kept"


def test_a_kernel_manager_starts_whatever_a_clean_up_left_or_failed(tmp_path, monkeypatch):
    """Start-up sweeps what crashed graders left; where removing it fails, it goes on."""
    shm = Path(sandbox_module.private_root() or "/tmp")
    left = shm / f"rnn-zygote-{dead_pid()}-unremovable"
    left.mkdir()

    def failing(path):
        raise RecursionError("maximum recursion depth exceeded")
    monkeypatch.setattr(trees, "remove", failing)
    km = SandboxedKernelManager(kernel_name="python3")
    monkeypatch.undo()
    km.release()
    trees.remove(left)
    assert not km.box.exists()


@pytest.mark.parametrize("forked", [True, False], ids=["forked", "one by one"])
def test_a_kernel_that_fills_its_spaces_costs_only_itself(needs_cgroups, jail_course, forked, monkeypatch):
    """Files until no more can be made in its private folder, /tmp and /dev/shm, and a tree
    5000 folders deep: each space stops it at its own bound (a file system of its own), the
    kernel's box goes with it (checked by jailed_kernel), and the next kernel works."""
    require(AS_ROOT, "a grader that is not root bounds the private folder in bytes only")
    monkeypatch.setitem(KERNEL_START, "forked", forked)
    inodes = 3000

    async def filler(jail):
        return (await jail.run(f"""
            import json, os
            seen = {{}}
            os.chdir({jail.km.private_in_jail!r})
            depth = 0
            while depth < 5000:
                os.mkdir("d")
                os.chdir("d")
                depth += 1
            seen["depth"] = depth
            for folder in ({jail.km.private_in_jail!r}, "/tmp", "/dev/shm"):
                n, error = 0, None
                try:
                    while n < 100_000:
                        open(f"{{folder}}/f{{n}}", "w").close()
                        n += 1
                except OSError as err:
                    error = err.strerror
                seen[folder] = [n, error]
            print(json.dumps(seen))
        """, timeout=300)).json()

    seen = in_jail(workdir(jail_course), filler, max_inodes=inodes)
    assert seen.pop("depth") == 5000
    for folder, (made, error) in seen.items():
        assert error in ("No space left on device", "Permission denied"), (folder, made, error)
        assert made < inodes + 4096, (folder, made)

    async def next_student(jail):
        return (await jail.run("print('next')")).text
    assert in_jail(workdir(jail_course), next_student) == "next\n"


# ---------------------------------------------------------------- a worker killed mid-batch

# Sleepers: in flight from their kernels' start (the kill comes then) until 4 s after it; the
# survivor's sleep and the lost one's again (the rerun) are the test's idle time.
SLOW = {name: student_notebook(A, {"rnn_step_forward": "import time; time.sleep(4)\n" + SOL["rnn_step_forward"]})
        for name in ("slow_a", "slow_b")}


def workers_of(pid):
    """The grading workers of the CLI process ``pid``: its children running its own command."""
    own = Path(f"/proc/{pid}/cmdline").read_bytes()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] == str(pid) \
                    and (entry / "cmdline").read_bytes() == own:
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def test_a_worker_killed_mid_batch_costs_only_its_student(tmp_path):
    require(cgroup_controllers(), "no cgroups")
    subs = write_submissions(tmp_path / "subs", A, {**SLOW, "quick_a": RIGHT, "quick_b": BLANK})
    course_dir = tmp_path / "course"
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    command = [sys.executable, "-m", "autograder", "grade", str(subs), "--course", str(course_dir), "--workers", "2"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    inflight = course_dir / ".rnn-course" / "inflight"
    deadline = time.monotonic() + 300
    while not ((inflight / "slow_a" / A).exists() and (inflight / "slow_b" / A).exists()):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.05)
    victim = workers_of(run.pid)[0]
    os.kill(victim, signal.SIGKILL)
    out, err = run.communicate(timeout=600)
    assert run.returncode == 1, err   # a grade is missing: the command says so, and its exit status too
    assert "error: 1 submission(s) not graded (see above); run the same command again" in err, err
    died = [line for line in err.splitlines() if ": not graded: the grading process died (killed by SIGKILL" in line]
    assert len(died) == 1 and died[0].split("/")[0] in SLOW, err
    lost = died[0].split("/")[0]
    rows = {r["student"]: r["score"] for r in gradescsv.grade_rows(course_dir)}
    assert rows == {s: score for s, score in {"slow_a": TOTAL, "slow_b": TOTAL, "quick_a": TOTAL,
                                              "quick_b": 0}.items() if s != lost}, (rows, err)
    assert len((course_dir / "grades.csv").read_text().splitlines()) == 4
    assert not any(inflight.glob("*/*"))

    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert {r["student"]: r["score"] for r in gradescsv.grade_rows(course_dir)} == {
        "slow_a": TOTAL, "slow_b": TOTAL, "quick_a": TOTAL, "quick_b": 0}


def test_grading_in_place_removes_what_is_over_a_bound_and_normalises_ids(tmp_path):
    """nbgrader's own layout (the submissions are the course's submitted/): what is over a bound
    is removed there, and a decomposed name is renamed to its NFC form."""
    course_dir = tmp_path / "course"
    subs = write_submissions(course_dir / "submitted", A, {NFD: RIGHT, "deep": RIGHT})
    deep_tree(subs / "deep" / A / "data", 40)
    pairs = layout.prepare_course(course_dir, subs, problems=[])
    nfc = unicodedata.normalize("NFC", NFD)
    assert pairs == sorted([(nfc, A), ("deep", A)]) and not (subs / NFD).exists()
    assert "(a folder more than 16 levels deep)" in layout.layout_flags(course_dir, "deep", A)[0]
    assert max(rel.count("/") for rel in trees.files(subs / "deep" / A)) < layout.LIMITS.depth

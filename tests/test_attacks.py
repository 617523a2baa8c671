"""Cheating attempts against the grader, through the real batch pipeline.

Every attacker is the *honest wrong* student of exercise 01 (the solution, with
``rnn_step_forward`` returning zeros) plus attack code: in a solution cell, in a cell of
its own, or in the notebook's nbgrader metadata. All of them are graded in one batch,
in one course directory, beside an honest correct student ("solution") and the honest
wrong one, with small limits (5 s a cell, 20 s a notebook, 2 workers). Each attack must

(a) score no more than the honest wrong answer,
(b) be flagged for review (verdicts.review_flags), with the words saying why,
(c) leave the other students alone: "solution" keeps 10/10 and no flags.

An attack that gets through is marked ``xfail(strict=True)`` with the reason: it is a
hole in the grader, not a test to weaken (``strict=False`` only where the outcome depends
on timing). ``pytest -s`` prints the summary table. Without bubblewrap and cgroups the
module is skipped (most attacks would work), unless CI=true, where that is a failure.
"""
import contextlib
import copy
import hashlib
import json
import os
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from autograder import batch, gradescsv, layout, verdicts
from autograder.preprocessors import expected_checks
from autograder.sandbox import CGROUP_ROOT, Sandbox
from ci import require
from page_text import assert_no_leak
from points import cell_points
from submissions import REPO, mutate, solution_cells, student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("test_attacks")   # its module-scoped fixture grades once: every test of the module on one worker

A = "01_rnn"
NB = f"{A}.ipynb"
SOL = solution_cells(A)
CELL_TIMEOUT, NOTEBOOK_TIMEOUT, WORKERS = 5, 20, 2
MARKER = "rnn-attack-"   # in the argv of processes the attackers leave behind

HONEST_STEP = mutate(SOL["rnn_step_forward"], "next_h = np.tanh(x @ Wx + prev_h @ Wh + b)",
                     "next_h = np.zeros_like(prev_h)")
HONEST = student_notebook(A, {"rnn_step_forward": HONEST_STEP})


def cases(task):
    """Every case of ``task`` that the test cells of 01 run: public and hidden (as the kernel sees them)."""
    source = next(c.source for c in student_notebook(A).cells
                  if c.metadata.get("nbgrader", {}).get("grade_id") == f"test_{task}")
    return [case for _, some in expected_checks(source) for case in some]


LAST = "<the end of the notebook>"


@dataclass(frozen=True)
class Link:
    """A symbolic link to ``target``, placed in the submission folder."""
    target: str


@dataclass(frozen=True)
class Attack:
    name: str
    code: str = ""                   # attack code, added to ``cell``
    cell: str = "rnn_step_forward"   # grade_id of the solution cell to append to; None: a cell of its own
                                     # after the setup cell; LAST: a cell of its own at the very end
    edit: object = None              # notebook -> None, for attacks on the notebook itself
    files: tuple = ()                # (path in the submission folder, text | Link(target)) beside the notebook
    flags: tuple = ()                # words, each expected in one of the review flags
    what: str = ""
    holes: dict = field(default_factory=dict)   # "score" / "flagged" -> why the attack gets through
    flaky: tuple = ()                # aspects whose outcome depends on timing (xfail, not strict)
    ran: str = ""                    # printed by the attack cell when its code ran (not a typo contained)

    def notebook(self):
        nb = copy.deepcopy(HONEST)
        code = textwrap.dedent(self.code).strip()
        if code and self.cell is LAST:
            nb.cells.append(new_code_cell(code))
        elif code and self.cell:
            cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == self.cell)
            cell.source = cell.source.rstrip() + "\n\n\n" + code + "\n"
        elif code:   # a cell the student added, right after the setup cell
            at = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
            nb.cells.insert(at + 1, new_code_cell(code))
        if self.edit:
            self.edit(nb)
        return nb


def grade_cell(nb, gid):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def raise_points(nb):
    grade_cell(nb, "test_rnn_step_forward").metadata["nbgrader"]["points"] = 200


FORGED = f"""
import base64, json
import numpy as np
from IPython.display import display

def made_up(shape):
    a = np.full(shape, 0.5)
    return {{"dtype": "<f8", "shape": list(shape), "data": base64.b64encode(a.tobytes()).decode()}}

results = {{json.dumps(case, sort_keys=True):
               {{"outputs": {{"next_h": made_up((case["N"], case["H"]))}}, "modified": []}}
           for case in {cases("rnn_step_forward")!r}}}
display({{"application/vnd.rnn-course.results+json": {{"task": "rnn_step_forward", "results": results}},
         "text/plain": "rnn_step_forward: all results recorded"}}, raw=True)
print("forged", len(results), "results")
"""


def mark_test_cell_as_solution(nb):
    """The test cell marked as a (student-owned) solution cell, its check replaced by forged results."""
    cell = grade_cell(nb, "test_rnn_step_forward")
    cell.metadata["nbgrader"].update(solution=True, locked=False)
    cell.source = textwrap.dedent(FORGED).strip()


def extra_test_cell(nb):
    """A test cell of the student's own, worth 100 points, that the honest wrong code half passes."""
    at = nb.cells.index(grade_cell(nb, "test_rnn_step_forward"))
    nb.cells.insert(at + 1, new_code_cell('check("rnn_step_forward")', metadata={"nbgrader": {
        "grade": True, "grade_id": "test_bonus", "locked": True, "points": 100, "schema_version": 3,
        "solution": False}}))


def joined(*parts):
    """Pieces of code, each indented as it likes, one after the other."""
    return "\n\n".join(textwrap.dedent(p).strip() for p in parts)


EXEC_SOLUTION = """
    def steal(nb):
        for cell in nb["cells"]:
            source = "".join(cell["source"])
            if "def rnn_step_forward" in source:
                exec(source, globals())
"""

ATTACKS = [
    Attack("patch_allclose", """
        np.allclose = lambda *args, **kwargs: True
        np.isclose = lambda a, b, *args, **kwargs: np.ones(np.broadcast(a, b).shape, dtype=bool)
        np.testing.assert_allclose = lambda *args, **kwargs: None
        np.testing.assert_array_almost_equal = lambda *args, **kwargs: None
        print("numpy patched:", np.allclose(0, 1))
    """, flags=("patches functions",), what="numpy's comparisons always pass", ran="numpy patched: True"),
    Attack("ndarray_always_equal", """
        class AlwaysEqual(np.ndarray):
            \"\"\"Equal, and close, to anything it is compared with.\"\"\"
            def __eq__(self, other):
                return np.ones(self.shape, dtype=bool)
            def __ne__(self, other):
                return np.zeros(self.shape, dtype=bool)
            __le__ = __ge__ = __eq__
            __lt__ = __gt__ = __ne__
            def __sub__(self, other):
                return np.zeros(self.shape).view(AlwaysEqual)
            __rsub__ = __sub__
            def __abs__(self):
                return np.zeros(self.shape).view(AlwaysEqual)

        _honest_step_forward = rnn_step_forward

        def rnn_step_forward(x, prev_h, Wx, Wh, b):
            next_h, cache = _honest_step_forward(x, prev_h, Wx, Wh, b)
            return next_h.view(AlwaysEqual), cache

        print("always equal:", bool((rnn_step_forward(*[np.ones((1, 1))] * 4, np.ones(1))[0] == 42).all()))
    """, ran="always equal: True", flags=("redefines how arrays compare",),
       what="returns an ndarray whose comparisons always succeed"),
    Attack("read_source", joined(EXEC_SOLUTION, f"""
        import json
        for path in ["../../../source/01_rnn/01_rnn.ipynb", "../../../release/01_rnn/01_rnn.ipynb",
                     "{REPO}/solutions/01_rnn/01_rnn.ipynb"]:
            try:
                steal(json.load(open(path)))
            except OSError as err:
                print("cannot read", path, type(err).__name__)
    """), flags=("reads or writes files", "runs generated code"), what="execs the instructor's source notebook",
       ran="cannot read ../../../source/01_rnn/01_rnn.ipynb FileNotFoundError"),
    Attack("read_gradebook", """
        import sqlite3
        try:
            db = sqlite3.connect("file:../../../gradebook.db?mode=ro", uri=True)
            for (source,) in db.execute("select source from source_cell"):
                if "def rnn_step_forward" in source:
                    exec(source)
        except sqlite3.Error as err:
            print("no gradebook:", err)
    """, flags=("mentions the grader's internals", "runs generated code"), what="execs solution code from gradebook.db",
       ran="no gradebook: unable to open database file"),
    Attack("input_transformer", """
        get_ipython().input_transformers_post.append(lambda lines: ["pass\\n"])
    """, cell=None, flags=("talks to IPython", "missing results"), what="turns every later cell into `pass`"),
    Attack("detached_process", f"""
        import os, sys
        LATER = '''
        import sqlite3, time
        time.sleep(4)
        for path in ["../../../gradebook.db"]:
            try:
                db = sqlite3.connect(path)
                db.execute("update grade set auto_score = max_score")
                db.commit()
            except sqlite3.Error:
                pass
        for path in ["01_rnn.ipynb", "../../../autograded/detached_process/01_rnn/01_rnn.ipynb"]:
            try:
                open(path, "w").write("{{}}")
            except OSError:
                pass
        '''
        child = os.fork()
        if child == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", LATER, "{MARKER}detached"])
            os._exit(0)
        os.waitpid(child, 0)
        import subprocess
        subprocess.Popen([sys.executable, "-c", LATER, "{MARKER}popen"], start_new_session=True)
        print("daemons started")
    """, ran="daemons started", flags=("uses os process/file calls", "imports a module the exercises do not use"),
       what="a daemon that later rewrites gradebook.db and the autograded notebook"),
    Attack("other_student", joined(EXEC_SOLUTION, """
        import json
        for path in ["../../solution/01_rnn/01_rnn.ipynb", "../../../submitted/solution/01_rnn/01_rnn.ipynb"]:
            try:
                steal(json.load(open(path)))
            except OSError as err:
                print("cannot read", path, type(err).__name__)
    """), flags=("reads or writes files",), what="execs another student's notebook",
       ran="cannot read ../../solution/01_rnn/01_rnn.ipynb FileNotFoundError"),
    Attack("sys_exit", "import sys\nsys.exit()", flags=("reaches into the interpreter",), what="sys.exit()",
           ran="SystemExit"),
    Attack("os_exit", "import os\nos._exit(0)", flags=("kernel died in", "uses os process/file calls"),
           what="os._exit(0)"),
    Attack("kill_own_kernel", "import os\nos.kill(os.getpid(), 9)", flags=("kernel died in",),
           what="os.kill(os.getpid(), 9)"),
    Attack("sigint_ignored_loop", """
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        while True:
            pass
    """, flags=("timed out in rnn_step_forward (the kernel ignored the interrupt)",
                "imports a module the exercises do not use"),
       what="an uninterruptible infinite loop"),
    Attack("memory_bomb", "hog = np.ones(3 * 1024 ** 3 // 8)   # 3 GB, every page touched",
           flags=("rnn_step_forward",), what="allocates 3 GB (the cgroup's OOM kill, or the cell timeout)"),
    Attack("fork_bomb", """
        import os, time
        children = []
        for _ in range(200):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(60)
                os._exit(0)
            children.append(pid)
        print(len(children), "children")
    """, flags=("uses os process/file calls",), what="forks up to 200 sleeping children", ran=" children"),
    Attack("huge_output", 'print("x" * 50_000_000)', flags=(" in rnn_step_forward",),
           what="prints 50 MB"),
    Attack("write_submission", """
        for path in ["../../../submitted/write_submission/01_rnn/01_rnn.ipynb", "01_rnn.ipynb", "hacked.txt",
                     "../../../gradebook.db"]:
            try:
                with open(path, "a") as f:
                    f.write("hacked")
                print("wrote", path)
            except OSError as err:
                print("cannot write", path, type(err).__name__)
    """, flags=("reads or writes files",), what="writes into its submission, its folder, the gradebook",
       ran="cannot write 01_rnn.ipynb PermissionError"),
    Attack("metadata_points", edit=raise_points,
           flags=("changed nbgrader metadata of test_rnn_step_forward: points",), what="test cell points 2 -> 200"),
    Attack("metadata_solution", edit=mark_test_cell_as_solution,
           flags=("changed nbgrader metadata of test_rnn_step_forward: solution",),
           what="test cell marked as a solution cell, forged results in it"),
    Attack("extra_test_cell", edit=extra_test_cell, flags=("test_bonus",),
           what="adds a 100-point test cell of its own"),
    Attack("forged_results", FORGED, flags=("mentions the grader's internals",),
           what="displays a made-up results bundle in a solution cell", ran="forged 5 results"),
    Attack("import_reference", """
        from autograder.reference import rnn as _reference
        rnn_step_forward = _reference.rnn_step_forward
        print("borrowed", rnn_step_forward.__module__)
    """, ran="ModuleNotFoundError", flags=("imports the grader's references",),
       what="uses the grader's reference rnn_step_forward (not in the jail)"),
    Attack("import_reference_quietly", """
        from autograder import verify
        rnn_step_forward = verify.REFERENCES["rnn_step_forward"]
        print("borrowed", rnn_step_forward.__module__)
    """, ran="ModuleNotFoundError", flags=("imports the grader's references",),
       what="the same, through `from autograder import verify` (not in the jail)"),
]
ATTACKS += [
    Attack("replace_check", """
        from rnnkit import probe as _probe
        from rnnkit.tasks import TASKS as _TASKS

        def check(task_name, cases=None):
            task = _TASKS[task_name]
            cases = list(task.public if cases is None else cases)
            results = _probe.collect(task, cases, globals(), task.make_inputs)
            for result in results.values():
                result["modified"] = []
            _probe._emit(task_name, results)

        print("check replaced")
    """, flags=("redefines check()", "imports a module the exercises do not use"), ran="check replaced",
       what="its own check(): the real collection and emission, the list of modified inputs emptied"),
    Attack("patch_collect", """
        import rnnkit.probe
        _collect = rnnkit.probe.collect
        def _quiet(*args, **kwargs):
            results = _collect(*args, **kwargs)
            for result in results.values():
                result.get("modified", []).clear()
            return results
        rnnkit.probe.collect = _quiet
        print("collect patched")
    """, flags=("patches functions",), ran="collect patched", what="empties the modified inputs inside check()"),
    Attack("patch_numpy_vars", """
        vars(np)["array_equal"] = lambda *args, **kwargs: True
        setattr(np.random, "default_rng", np.random.default_rng)
        print("array_equal patched:", np.array_equal(1, 2))
    """, flags=("patches functions",), ran="array_equal patched: True",
       what="numpy's array_equal patched through vars(np), numpy.random through setattr"),
    Attack("fake_numpy_package", 'print("real numpy:", not getattr(np, "FAKE", False))',
           files=(("numpy/__init__.py", "FAKE = True\narray_equal = lambda *args, **kwargs: True\n"),
                  ("rnnkit.py", "FAKE = True\n")),
           flags=("ships Python code beside the notebook",), ran="real numpy: True",
           what="a numpy/ package and an rnnkit.py beside the notebook, to be imported instead of the real ones"),
    Attack("symlinked_notebook", files=((NB, Link(f"../../../source/{A}/{NB}")),),
           flags=("left out of the submission, not regular files: 01_rnn.ipynb (a symbolic link)",),
           what="the submitted notebook is a link to the instructor's source notebook"),
    Attack("input_history", 'print("\\n".join(In))\nprint(_ih[-3:], Out)', cell=LAST,
           flags=("reads the kernel's input history",),
           # hidden cases run after the last cell (SealTests): In holds none (tests/test_hidden_cases.py)
           what="prints the kernel's input history (every test cell) in a last cell"),
    Attack("import_torch", """
        try:
            import torch
            print("torch", torch.__version__)
        except ImportError as err:
            print("ImportError", err)
        _t = __import__("to" + "rch")
    """, flags=("imports a module the exercises do not use",), ran="is not available while grading",
       what="imports torch (autograd would do the backward passes)"),
    Attack("huge_result", """
        _calls = []
        def rnn_step_forward(x, prev_h, Wx, Wh, b):
            _calls.append(1)
            return (np.ones(10_000_000) if len(_calls) == 1 else np.zeros((x.shape[0], Wh.shape[0]))), None
    """, flags=("bytes refused in test_rnn_step_forward",),
       what="returns an 80 MB array once: the grader must refuse the message undecoded"),
    Attack("read_root_only_files", """
        for path in ["/etc/shadow", "/proc/1/cmdline", "/proc/1/environ"]:
            try:
                print(path, open(path, "rb").read()[:300])
            except OSError as err:
                print(path, type(err).__name__)
    """, flags=("reads or writes files",), ran="/etc/shadow PermissionError",
       what="reads root-only host files and the jail's PID 1"),
]
BY_NAME = {a.name: a for a in ATTACKS}
#: Correct code written in unusual but ordinary ways: full marks and no flag.
UNUSUAL = student_notebook(A, {"rnn_step_forward": textwrap.dedent("""
    import math
    from dataclasses import dataclass

    from scipy.special import expit


    class StepCache:
        \"\"\"What the backward pass needs, set by name, and read back in order.\"\"\"
        def __init__(self, **arrays):
            for name, value in arrays.items():
                setattr(self, name, value)

        def __iter__(self):
            return iter((self.x, self.prev_h, self.Wx, self.Wh, self.next_h))

        def __getitem__(self, index):
            return tuple(self)[index]


    def rnn_step_forward(x, prev_h, Wx, Wh, b):
        a = np.einsum("nd,dh->nh", x, Wx) + np.einsum("nk,kh->nh", prev_h, Wh) + b
        next_h = (2 * expit(2 * a.astype(np.longdouble)) - 1).astype(np.float32)   # tanh, in other words
        assert math.isfinite(float(np.sum(next_h)))
        return next_h, StepCache(x=x, prev_h=prev_h, Wx=Wx, Wh=Wh, next_h=np.tanh(a))
""").strip()})
STUDENTS = {"solution": student_notebook(A), "honest": HONEST, "unusual": UNUSUAL,
            **{a.name: a.notebook() for a in ATTACKS}}


def procs_of(root):
    """Host processes started under this test's course: argv or cwd inside ``root``, or an attacker's marker."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if argv and (str(root) in argv or cwd.startswith(str(root)) or MARKER in argv):
            found[int(entry.name)] = f"{argv} (in {cwd})"
    return found


def kernel_cgroups():
    return {d.name for c in ("pids", "memory") if (CGROUP_ROOT / c / "rnn-course").is_dir()
            for d in (CGROUP_ROOT / c / "rnn-course").iterdir() if d.is_dir()}


@contextlib.contextmanager
def kernel_boxes_recorded(record):
    """While inside, the name of every kernel's box made by this process or the workers it forks
    (autograder.sandbox, autograder.forkserver: ``mkdtemp(prefix="rnn-kernel-")``) is appended to
    ``record``. A kernel's cgroups are named like its box: the record tells this batch's cgroups
    from those of a batch another test runs at the same time."""
    real = tempfile.mkdtemp

    def mkdtemp(suffix=None, prefix=None, dir=None):
        path = real(suffix, prefix, dir)
        if prefix == "rnn-kernel-":
            fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)   # one write: whole lines
            try:
                os.write(fd, f"{os.path.basename(path)}\n".encode())
            finally:
                os.close(fd)
        return path
    tempfile.mkdtemp = mkdtemp
    try:
        yield
    finally:
        tempfile.mkdtemp = real


def _cgroup_procs(name):
    try:
        return (CGROUP_ROOT / "pids" / "rnn-course" / name / "cgroup.procs").read_text().split()
    except OSError:
        return []


def orphans(names):
    """Empty kernel cgroups among ``names`` with no private folder: not a live kernel of another run."""
    return {name for name in names
            if not any(Path(d, name).exists() for d in ("/tmp", "/dev/shm")) and not _cgroup_procs(name)}


def remove_orphan_cgroups(names):
    """Clean up after the grader: empty cgroups it left (see test_no_kernel_leaves_cgroups_...)."""
    for name in orphans(names):
        for controller in ("pids", "memory"):
            try:
                (CGROUP_ROOT / controller / "rnn-course" / name).rmdir()
            except OSError:
                pass


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    missing = Sandbox().problems()   # without the jail most of these attacks work: nothing to learn
    require(not missing, f"the grading sandbox is incomplete here ({'; '.join(missing)})",
            "bash scripts/system-deps.sh as root (bubblewrap), cgroup v1 pids and memory controllers")
    root = tmp_path_factory.mktemp("attacks")
    subs = write_submissions(root / "submissions", A, STUDENTS)
    for attack in ATTACKS:
        for relative, content in attack.files:
            path = subs / attack.name / A / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            if isinstance(content, Link):
                path.symlink_to(content.target)
            else:
                path.write_text(content)
    course = root / "course"
    pairs = layout.prepare_course(course, subs)
    assert len(pairs) == len(STUDENTS)
    # The kernels' private folders (and so their argv) under root: their processes can be told apart.
    (root / "tmp").mkdir()
    cgroups_before, saved = kernel_cgroups(), (os.environ.get("TMPDIR"), tempfile.tempdir)
    os.environ["TMPDIR"] = tempfile.tempdir = str(root / "tmp")   # workers, and this process
    boxes = root / "kernel-boxes"
    start = time.monotonic()
    try:
        with kernel_boxes_recorded(boxes):
            outcomes = {o.student: o for o in batch.autograde(course, pairs, cell_timeout=CELL_TIMEOUT,
                                                              notebook_timeout=NOTEBOOK_TIMEOUT, workers=WORKERS)}
    finally:
        tempfile.tempdir = saved[1]
        os.environ.pop("TMPDIR") if saved[0] is None else os.environ.__setitem__("TMPDIR", saved[0])
    seconds = time.monotonic() - start
    own = set(boxes.read_text().split()) if boxes.exists() else set()
    assert own, "no kernel box recorded: the check of cgroups left behind would look at none"
    rows = {r["student"]: r for r in gradescsv.grade_rows(course)}
    flags = {s: verdicts.review_flags(course, s, A) for s in STUDENTS}
    right_after = {"gradebook": sha(course / "gradebook.db"), "rows": rows,
                   "notebook": sha(course / "autograded" / "detached_process" / A / NB),
                   "procs": procs_of(root), "cgroups": (kernel_cgroups() - cgroups_before) & own}
    time.sleep(6)   # the daemons of "detached_process" would act 4 s after they started
    remove_orphan_cgroups(right_after["cgroups"])
    graded = {"course": course, "root": root, "outcomes": outcomes, "rows": rows, "flags": flags,
              "seconds": seconds, "right_after": right_after, "subs": subs}
    print_summary(graded)
    return graded


def print_summary(graded):
    rows, flags, honest = graded["rows"], graded["flags"], graded["rows"]["honest"]["score"]
    lines = [f"\nattacks on 01_rnn: {len(STUDENTS)} submissions graded in {graded['seconds']:.0f} s "
             f"(cell {CELL_TIMEOUT} s, notebook {NOTEBOOK_TIMEOUT} s, {WORKERS} workers)",
             f"{'attack':<26} {'score':>6} {'honest':>6}  {'verdict':<9} flags", "-" * 110]
    for name in ["solution", "honest", *BY_NAME]:
        row = rows.get(name, {"score": None})
        score = "-" if row["score"] is None else f"{row['score']:.2f}"
        attack = BY_NAME.get(name)
        if attack is None:
            verdict = ""
        elif row["score"] is not None and row["score"] > honest:
            verdict = "HOLE"
        elif not all(any(w in f for f in flags[name]) for w in attack.flags):
            verdict = "unflagged"
        else:
            verdict = "contained"
        said = "; ".join(flags[name]) or (graded["outcomes"][name].message if name in graded["outcomes"] else "")
        lines.append(f"{name:<26} {score:>6} {honest:>6.2f}  {verdict:<9} {said[:160]}")
    print("\n".join(lines))


def params(aspect):
    return [pytest.param(a.name, id=a.name,
                         marks=[pytest.mark.xfail(strict=aspect not in a.flaky, reason="HOLE: " + a.holes[aspect])]
                         if aspect in a.holes else []) for a in ATTACKS]


# ---------------------------------------------------------------- the baseline

def test_honest_students_are_graded_as_usual(graded):
    rows, flags, course = graded["rows"], graded["flags"], graded["course"]
    assert rows["solution"]["score"] == rows["solution"]["max_score"] == 10
    # The honest wrong answer: rnn_step_forward returns zeros, so it earns nothing; rnn_forward
    # chains it right (its run with a stand-in step shows it), the two backward passes are graded
    # on caches the grader builds (one mistake, one penalty) and the gradient checker stands
    # alone: 4 cells of 2 points. An attack that earns more is a hole.
    honest_points = sum(p for cell, p in cell_points(A).items() if cell != "test_rnn_step_forward")
    assert rows["honest"]["score"] == honest_points, verdicts.failures(course, "honest", A)
    assert flags["honest"] == [] and flags["solution"] == [], flags
    assert rows["unusual"]["score"] == 10 and flags["unusual"] == [], (flags["unusual"],
                                                                       verdicts.failures(course, "unusual", A))


def test_every_submission_gets_a_row_within_the_time_limits(graded):
    assert set(graded["rows"]) == set(graded["outcomes"]) == set(STUDENTS)
    assert all(r["max_score"] == 10 for r in graded["rows"].values())
    # Bounded by the limits, not by a stopwatch: a submission left for a rerun is one whose kernel a
    # limit stopped or that died (its flags say which), and the endless loop was stopped by a limit.
    stopped = ("timed out", "time limit", "kernel died")
    rerun = {s: graded["flags"][s] for s, o in graded["outcomes"].items() if o.retry}
    assert all(any(w in f for f in flags for w in stopped) for flags in rerun.values()), rerun
    assert any("timed out" in f or "time limit" in f for f in graded["flags"]["sigint_ignored_loop"])


# ---------------------------------------------------------------- (a), (b): per attack

@pytest.mark.parametrize("name", params("score"))
def test_attack_scores_no_more_than_the_honest_wrong_answer(graded, name):
    rows = graded["rows"]
    assert name in rows, graded["outcomes"].get(name)
    assert rows[name]["max_score"] == 10, rows[name]
    assert rows[name]["score"] <= rows["honest"]["score"], (BY_NAME[name].what, rows[name])


@pytest.mark.parametrize("name", params("flagged"))
def test_attack_is_flagged(graded, name):
    flags = graded["flags"][name]
    missing = [w for w in BY_NAME[name].flags if not any(w in f for f in flags)]
    assert flags and not missing, f"{BY_NAME[name].what}: flags {flags} lack {missing}"


# ---------------------------------------------------------------- (c) and what attacks leave behind

def test_no_attack_disturbs_the_correct_student(graded):
    row = graded["rows"]["solution"]
    assert row["score"] == 10 and all(row["cells"][c] == p for c, p in
                                      {"test_rnn_step_forward": 2, "test_rnn_step_backward": 2,
                                       "test_rnn_forward": 2, "test_rnn_backward": 2,
                                       "test_numerical_gradient": 2}.items()), row
    assert graded["flags"]["solution"] == [] and graded["outcomes"]["solution"].notes == ()


def test_detached_processes_change_nothing_and_do_not_survive(graded):
    course, after = graded["course"], graded["right_after"]
    assert after["procs"] == {}, f"processes alive right after the batch: {after['procs']}"
    assert procs_of(graded["root"]) == {}
    assert sha(course / "gradebook.db") == after["gradebook"]
    assert {r["student"]: r for r in gradescsv.grade_rows(course)} == after["rows"]
    notebook = course / "autograded" / "detached_process" / A / NB
    assert sha(notebook) == after["notebook"] and nbformat.read(notebook, as_version=4).cells
    assert graded["rows"]["detached_process"]["score"] <= graded["rows"]["honest"]["score"]


def test_no_kernel_leaves_cgroups_or_private_folders(graded):
    # A kernel's folder (in /dev/shm, named like its cgroup) outliving an empty cgroup was left behind.
    idle = [name for name in graded["right_after"]["cgroups"] if not _cgroup_procs(name)]
    assert not [name for name in idle if any(Path(d, name).exists() for d in ("/tmp", "/dev/shm"))], idle
    # This batch's kernel cgroups (kernel_boxes_recorded) still there after it, and empty.
    left = orphans(graded["right_after"]["cgroups"])
    assert not left, f"cgroups left under {CGROUP_ROOT}/*/rnn-course: {sorted(left)}"


def test_submissions_and_notebook_folders_are_not_written(graded):
    course, subs = graded["course"], graded["subs"]
    for student in STUDENTS:
        if (subs / student / A / NB).is_symlink():
            assert not (course / "submitted" / student / A / NB).exists()   # left out, never followed
            continue
        assert sha(course / "submitted" / student / A / NB) == sha(subs / student / A / NB), student
    folder = course / "autograded" / "write_submission" / A
    assert sorted(p.name for p in folder.iterdir()) == [NB]
    # What it printed is in its notebook, but nothing was appended to the files it opened.
    text = (folder / NB).read_text()
    assert text.rstrip().endswith("}") and nbformat.reads(text, as_version=4).cells
    assert "cannot write 01_rnn.ipynb PermissionError" in text and "cannot write hacked.txt OSError" in text
    assert not (course / "gradebook.db").read_bytes().endswith(b"hacked")


def test_tampered_metadata_never_raises_the_stakes(graded):
    course, rows = graded["course"], graded["rows"]
    nb = nbformat.read(course / "autograded" / "metadata_points" / A / NB, as_version=4)
    meta = grade_cell(nb, "test_rnn_step_forward").metadata["nbgrader"]
    assert meta["points"] == 2 and meta["grade"] and not meta["solution"], meta
    for name in ("metadata_points", "metadata_solution", "extra_test_cell"):
        assert rows[name]["max_score"] == 10, rows[name]
        assert set(rows[name]["cells"]) <= set(rows["solution"]["cells"]), rows[name]   # no test_bonus
        assert (rows[name]["cells"].get("test_rnn_step_forward") or 0) <= 2, rows[name]


def printed(course, student, gid="rnn_step_forward"):
    """What the attack cell printed (stdout, error names) in the student's autograded notebook."""
    nb = nbformat.read(Path(course) / "autograded" / student / A / NB, as_version=4)
    return "".join(o.get("text", "") + o.get("ename", "") for o in grade_cell(nb, gid).outputs)


@pytest.mark.parametrize("name", [a.name for a in ATTACKS if a.ran])
def test_attack_code_really_ran(graded, name):
    """An attack that is 'contained' because of a typo in it would prove nothing."""
    assert BY_NAME[name].ran in printed(graded["course"], name), printed(graded["course"], name)


def test_huge_output_and_result_are_refused_for_what_they_are(graded):
    for name in ("huge_output", "huge_result"):
        flags = graded["flags"][name]
        assert any("bytes refused" in f or "bytes dropped" in f for f in flags), flags
        assert not any("timed out" in f or "kernel died" in f for f in flags), flags


def test_feedback_holds_no_hidden_test_and_no_host_path(graded):
    """Whatever a student's cells print: no hidden test text, case or seed on the page a student
    reads (tests/page_text.py), no course path; every submission that was graded has its page."""
    course, subs = graded["course"], graded["subs"]
    left_out = {s for s in STUDENTS if (subs / s / A / NB).is_symlink()}   # never followed, never graded
    assert left_out == {"symlinked_notebook"}, left_out
    pages = {s: course / "feedback" / s / A / f"{A}.html" for s in STUDENTS}
    missing = [s for s, page in pages.items() if s not in left_out and not page.is_file()]
    assert not missing, f"no feedback page written for {missing}"
    assert not [s for s in left_out if pages[s].exists()]
    for student in sorted(set(STUDENTS) - left_out):
        # An attacker that wrote hidden cases into its own cells (forged_results) sees them again, no more.
        own = "\n".join(c.source for c in STUDENTS[student].cells)
        assert_no_leak(pages[student].read_text(), A, f"{student}'s feedback", own=own)
        graded_nb = nbformat.read(course / "autograded" / student / A / NB, as_version=4)
        outputs = json.dumps([c.get("outputs", []) for c in graded_nb.cells])
        code = "\n".join(c.source for c in graded_nb.cells)
        for path in (str(course), str(REPO / "solutions")):
            assert path not in outputs or path in code, (student, path)   # unless the student wrote it


def test_the_jail_shows_no_root_file_and_no_host_path(graded):
    said = printed(graded["course"], "read_root_only_files")
    assert "/etc/shadow PermissionError" in said, said
    # PID 1 shows the kernel's own command (its interpreter), not the jail's bind list.
    assert str(graded["course"]) not in said and "--ro-bind" not in said, said


def test_fork_bomb_hit_the_process_limit(graded):
    said = printed(graded["course"], "fork_bomb")
    assert said.endswith(" children\n") and 0 < int(said.split()[-2]) < Sandbox().max_processes, said

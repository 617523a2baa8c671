"""Bad input to the batch grader: a clear one-line message, never a traceback or a silent zero.

One batch of broken submissions of exercise 01 is graded in-process (cell timeout 5 s):
each must get a row, a score and a message while the rest of the batch goes on. Batch-level
problems (no submissions, wrong layout, bad timeout) are errors of the CLI: exit 2 and
``error: ...`` on stderr. One small batch goes through ``python -m autograder grade``.
"""
import copy
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from autograder import batch, cli, gradescsv, grader, layout, markers, notebookcheck, verdicts
from autograder.outcome import GradingError
from points import cell_points, total_points
from submissions import REPO, solution_cells, strip_solution_markers, student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("test_bad_input")   # its module-scoped fixture grades once: every test of the module on one worker
A = "01_rnn"
TOTAL = total_points(A)
POINTS = cell_points(A)
NB = f"{A}.ipynb"
SOL = solution_cells(A)
TIMEOUT = 5


def without(nb, *grade_ids):
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in grade_ids]
    return nb


def stripped(nb):
    """What a student gets by copying every cell into a fresh notebook: no nbgrader metadata."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        for key in ("nbgrader", "deletable", "editable"):
            cell.metadata.pop(key, None)
    return nb


FILLED_IN = student_notebook(A, {k: strip_solution_markers(v) for k, v in SOL.items()}, released=True)
SOURCE_TEXT = (REPO / "solutions" / A / NB).read_text()
INVALID = json.loads(SOURCE_TEXT)
del INVALID["cells"][3]["source"]

NOTEBOOKS = {
    "deleted_test_cell": without(FILLED_IN, "test_rnn_forward"),
    "deleted_solution_and_test": without(FILLED_IN, "rnn_forward", "test_rnn_forward"),
    "stripped_metadata": stripped(FILLED_IN),
    "infinite_loop": student_notebook(A, {"rnn_step_backward": (
        "def rnn_step_backward(dnext_h, cache):\n    while True:\n        pass\n")}),
    "kernel_dies": student_notebook(A, {"rnn_step_backward": "import os; os._exit(1)\n"}),
}
FILES = {   # student -> {file name in <student>/01_rnn/: text}
    "empty_folder": {},
    "renamed_notebook": {"Copy of 01_rnn.ipynb": SOURCE_TEXT},
    "not_json": {NB: "this is not a notebook\n"},
    "truncated": {NB: SOURCE_TEXT[: len(SOURCE_TEXT) // 2]},
    "invalid_nbformat": {NB: json.dumps(INVALID)},
}


def write_files(root, students):
    for name, files in students.items():
        folder = root / name / A
        folder.mkdir(parents=True, exist_ok=True)
        for filename, text in files.items():
            (folder / filename).write_text(text)
    return root


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    subs = write_submissions(root / "submissions", A, NOTEBOOKS)
    write_files(subs, FILES)
    course = root / "course"
    pairs = layout.prepare_course(course, subs)
    assert len(pairs) == len(NOTEBOOKS) + len(FILES)
    outcomes = {o.student: o for o in batch.autograde(course, pairs, cell_timeout=TIMEOUT, workers=2)}
    rows = {r["student"]: r for r in gradescsv.grade_rows(course)}
    return course, outcomes, rows


def table_line(graded, student):
    course, outcomes, rows = graded
    table = cli.format_table(list(rows.values()), course, list(outcomes.values()))
    return next(line for line in table.splitlines() if line.startswith(student + " "))


# --- 2, 3: submissions that cannot be graded: 0, a row, and why -----------------------------

@pytest.mark.parametrize("student, message", [
    ("empty_folder", "missing notebook 01_rnn.ipynb"),
    ("renamed_notebook", "missing notebook 01_rnn.ipynb (found: Copy of 01_rnn.ipynb)"),
    ("not_json", "01_rnn.ipynb is not a valid notebook: not JSON (Expecting value at line 1, column 1)"),
    ("truncated", "01_rnn.ipynb is not a valid notebook: truncated (the JSON stops at line"),
    ("invalid_nbformat", "01_rnn.ipynb is not a valid notebook: 'source' is a required property (at cells[3])"),
])
def test_ungradable_submission_scores_zero_and_says_why(graded, student, message):
    course, outcomes, rows = graded
    outcome = outcomes[student]
    assert not outcome.ok and outcome.message.startswith(message), outcome
    assert "\n" not in outcome.message and "Traceback" not in outcome.message
    assert rows[student]["score"] == 0 and rows[student]["max_score"] == TOTAL   # a row, not a gap in the CSV
    line = table_line(graded, student)
    assert f" 0.00 / {TOTAL:g} " in line and message in line, line


# --- 4: deleted cells, stripped metadata ---------------------------------------------------

def test_deleted_test_cell_is_readded_and_earns_its_points(graded):
    course, outcomes, rows = graded
    row, outcome = rows["deleted_test_cell"], outcomes["deleted_test_cell"]
    assert outcome.ok, outcome
    assert row["cells"]["test_rnn_forward"] == POINTS["test_rnn_forward"] and row["score"] == TOTAL, \
        verdicts.failures(course, "deleted_test_cell", A)
    assert "test cell test_rnn_forward was missing: re-added" in outcome.notes, outcome
    assert "re-added" in table_line(graded, "deleted_test_cell")


def test_deleted_solution_and_test_cells_are_graded_not_crashed(graded):
    # nbgrader 0.9.6 alone fails here (KeyError: the test's preceding cell is gone too).
    course, outcomes, rows = graded
    row, outcome = rows["deleted_solution_and_test"], outcomes["deleted_solution_and_test"]
    assert outcome.ok, outcome
    assert "test cell test_rnn_forward was missing: re-added" in outcome.notes, outcome
    for cell in ("test_rnn_step_forward", "test_rnn_step_backward"):
        assert row["cells"][cell] == POINTS[cell]
    assert row["cells"]["test_rnn_forward"] == 0
    assert any("rnn_forward is not defined" in m for m in verdicts.failures(course, "deleted_solution_and_test", A))


def test_stripped_metadata_is_graded_not_silently_zero(graded):
    course, outcomes, rows = graded
    row, outcome = rows["stripped_metadata"], outcomes["stripped_metadata"]
    assert outcome.ok, outcome
    assert row["score"] == TOTAL, (outcome, verdicts.failures(course, "stripped_metadata", A))
    assert re.match(r"nbgrader metadata missing from \d+ cells: restored", outcome.notes[0]), outcome
    assert "metadata missing" in table_line(graded, "stripped_metadata")


# --- 5, 6: a cell that never ends, a kernel that dies ----------------------------------------

def test_infinite_loop_times_out_and_the_rest_goes_on(graded):
    course, outcomes, rows = graded
    row, outcome = rows["infinite_loop"], outcomes["infinite_loop"]
    assert outcome.ok, outcome
    assert outcome.notes[0] == "timed out in test_rnn_step_backward", outcome
    assert row["cells"]["test_rnn_step_backward"] == 0
    # The cells before and after the interrupted one ran: rnn_forward's test passes.
    for cell in ("test_rnn_step_forward", "test_rnn_forward"):
        assert row["cells"][cell] == POINTS[cell]
    assert "timed out in test_rnn_step_backward" in table_line(graded, "infinite_loop")


def test_dead_kernel_is_recorded_and_costs_only_its_cell(graded):
    course, outcomes, rows = graded
    row, outcome = rows["kernel_dies"], outcomes["kernel_dies"]
    assert outcome.ok, outcome
    assert outcome.notes[0].startswith("kernel died in rnn_step_backward "), outcome
    # The grader restarted the kernel: the other functions earn their visible and hidden points
    # (tests/test_dead_kernel.py); rnn_backward too, which chains the step that never got defined
    # right (its run with a stand-in step shows it). The cell that died earns nothing.
    for cell in ("test_rnn_step_forward", "test_rnn_forward", "test_rnn_backward", "test_numerical_gradient"):
        assert row["cells"][cell] == POINTS[cell], row
    assert row["cells"]["test_rnn_step_backward"] == 0
    assert "kernel died in " in table_line(graded, "kernel_dies")


def test_timeouts_are_graded_again_by_a_plain_rerun(graded):
    # They may be the machine's fault (load), not the student's: never a final grade. A kernel
    # that ended itself (os._exit) is graded fairly with a new kernel: final.
    course, outcomes, _ = graded
    grading = grader.Grading(str(course.resolve()))
    retried = {s for s, o in outcomes.items() if o.retry}
    assert retried == {"infinite_loop"}
    assert {s for s in outcomes if markers.finished(grading, s, A) is None} == retried
    assert all(not o.retry for s, o in outcomes.items() if not o.ok)   # the student's own problems are final


def test_every_submission_was_graded_in_one_batch(graded):
    course, outcomes, rows = graded
    assert set(outcomes) == set(rows) == set(NOTEBOOKS) | set(FILES)
    assert (course / "feedback" / "infinite_loop" / A / f"{A}.html").exists()
    assert not (course / "feedback" / "not_json" / A).exists()


# --- 1, 7: layout and batch-level errors -----------------------------------------------------

def test_wrong_layout_is_skipped_with_a_reason(tmp_path):
    subs = write_submissions(tmp_path / "subs", A, {"alice": FILLED_IN})
    (subs / "bob").mkdir()
    (subs / "bob" / NB).write_text(SOURCE_TEXT)                 # no assignment folder
    (subs / "carol" / "homework1").mkdir(parents=True)          # not an assignment
    (subs / "dave.ipynb").write_text(SOURCE_TEXT)               # loose notebook
    (subs / ".DS_Store").write_text("")                         # ignored
    problems = []
    pairs = layout.prepare_course(tmp_path / "c", subs, problems=problems)
    assert pairs == [("alice", A)]
    assert problems == [
        "bob: no assignment folder; found 01_rnn.ipynb directly in it, expected bob/<assignment>/<notebook>.ipynb",
        f"carol/homework1: no such assignment (known: {', '.join(layout.assignments_in())})",
        "dave.ipynb: a notebook directly in the submissions folder "
        "(expected <student>/<assignment>/<notebook>.ipynb)",
    ]
    with pytest.raises(GradingError, match="bob: no assignment folder"):
        layout.prepare_course(tmp_path / "c2", subs)             # without a problems list: strict


def test_a_resubmission_replaces_the_old_copy(tmp_path):
    first = write_submissions(tmp_path / "first", A, {"alice": FILLED_IN})
    layout.prepare_course(tmp_path / "c", first)
    second = write_files(tmp_path / "second", {"alice": {}})
    layout.prepare_course(tmp_path / "c", second)
    assert notebookcheck.check_submission(tmp_path / "c", "alice", A) == "missing notebook 01_rnn.ipynb"


@pytest.mark.parametrize("make, args, message", [
    (lambda d: None, [], "error: no submissions folder at "),
    (lambda d: d.mkdir(), [], "error: no submissions found in "),
    (lambda d: d.write_text("x"), [], "is not a folder"),
    (lambda d: (d / A / "alice").mkdir(parents=True), [],
     "01_rnn: a folder named like an assignment where a student's folder should be"),
    (lambda d: d.mkdir(), ["--timeout", "soon"], "error: the cell timeout must be a whole number of seconds > 0"),
])
def test_batch_level_problems_exit_2_with_one_error(tmp_path, capsys, make, args, message):
    subs = tmp_path / "subs"
    make(subs)
    assert cli.main(["grade", str(subs), "--course", str(tmp_path / "c"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err, err


def test_cell_timeout_from_argument_environment_or_default(monkeypatch):
    monkeypatch.delenv(grader.CELL_TIMEOUT_ENV, raising=False)
    assert grader.resolve_cell_timeout() == grader.nbgrader_config.CELL_TIMEOUT
    assert grader.resolve_cell_timeout("7") == 7
    monkeypatch.setenv(grader.CELL_TIMEOUT_ENV, "9")
    assert grader.resolve_cell_timeout() == 9 and grader.resolve_cell_timeout(3) == 3
    monkeypatch.setenv(grader.CELL_TIMEOUT_ENV, "-1")
    with pytest.raises(GradingError, match=f"{grader.CELL_TIMEOUT_ENV} must be a whole number"):
        grader.resolve_cell_timeout()


def test_grade_command_reports_without_traceback_or_kernel_noise(tmp_path):
    subs = write_submissions(tmp_path / "subs", A, {"deleted_test_cell": NOTEBOOKS["deleted_test_cell"]})
    write_files(subs, {"not_json": FILES["not_json"]})
    (subs / "erin" / "homework1").mkdir(parents=True)
    env = {**os.environ, grader.CELL_TIMEOUT_ENV: str(TIMEOUT)}
    out = subprocess.run([sys.executable, "-m", "autograder", "grade", str(subs), "--course", str(tmp_path / "c")],
                         capture_output=True, text=True, env=env)
    both = out.stdout + out.stderr
    assert out.returncode == 0, both
    for noise in ("Traceback", "without encryption", "NOTE: When using", "Warning"):
        assert noise not in both, both
    assert "erin/homework1: no such assignment" in out.stderr
    assert "not_json/01_rnn: not graded, scored 0: 01_rnn.ipynb is not a valid notebook: not JSON" in out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    assert f"{TOTAL:.2f} / {TOTAL:g}" in lines["deleted_test_cell"] and "re-added" in lines["deleted_test_cell"]
    assert f"0.00 / {TOTAL:g}" in lines["not_json"] and "not JSON" in lines["not_json"]
    assert len((tmp_path / "c" / "grades.csv").read_text().splitlines()) == 3


# --- links and special files: never followed, left out, flagged for their student alone -------

def test_links_and_special_files_are_left_out_and_flagged(tmp_path):
    subs = write_submissions(tmp_path / "subs", A, {"alice": FILLED_IN, "bob": FILLED_IN, "eve": FILLED_IN,
                                                    "zoe": FILLED_IN})
    eve = subs / "eve" / A
    (eve / "data").mkdir()
    os.symlink(f"../../../source/{A}/{NB}", eve / "answers.ipynb")          # the instructor's source
    os.symlink("../../nowhere/at/all", eve / "dangling")
    os.symlink("loop_b", eve / "data" / "loop_a")
    os.symlink("loop_a", eve / "data" / "loop_b")
    os.mkfifo(eve / "pipe")
    os.symlink("/dev/zero", eve / "zeros.npy")
    (eve / "data" / "notes.txt").write_text("kept")
    os.symlink(subs / "alice", subs / "mallory")                             # a whole student folder
    (subs / "zoe" / "03_gates").symlink_to(subs / "alice" / A)               # an assignment folder

    problems = []
    course = tmp_path / "c"
    pairs = layout.prepare_course(course, subs, problems=problems)
    assert pairs == [("alice", A), ("bob", A), ("eve", A), ("zoe", A)]
    assert problems == ["mallory: a symbolic link, not a folder: left out",
                        "zoe/03_gates: a symbolic link, not a folder: left out"]
    copied = course / "submitted" / "eve" / A
    assert sorted(str(p.relative_to(copied)) for p in copied.rglob("*")) == ["01_rnn.ipynb", "data", "data/notes.txt"]
    assert not any(p.is_symlink() for p in (course / "submitted").rglob("*"))
    assert layout.layout_flags(course, "eve", A) == [
        "left out of the submission, not regular files: answers.ipynb (a symbolic link), dangling (a symbolic "
        "link), data/loop_a (a symbolic link), data/loop_b (a symbolic link), pipe (a named pipe), "
        "zeros.npy (a symbolic link)"]
    assert verdicts.review_flags(course, "eve", A) == layout.layout_flags(course, "eve", A)
    for student in ("alice", "bob", "zoe"):
        assert verdicts.review_flags(course, student, A) == []
    assert notebookcheck.check_submission(course, "eve", A) is None
    hashed = markers.submission_hash(course, "eve", A)              # reads no pipe, follows no link
    assert hashed == markers.submission_hash(course, "eve", A)

    # The same folder graded in place (nbgrader collect's submitted/): links and pipes removed, flagged.
    in_place = tmp_path / "in_place"
    shutil.copytree(subs, in_place / "submitted", symlinks=True, ignore=shutil.ignore_patterns("pipe", "mallory"))
    os.mkfifo(in_place / "submitted" / "eve" / A / "pipe")
    assert ("eve", A) in layout.prepare_course(in_place, in_place / "submitted", problems=[])
    assert not any(p.is_symlink() or p.is_fifo() for p in (in_place / "submitted" / "eve").rglob("*"))
    assert "pipe (a named pipe)" in layout.layout_flags(in_place, "eve", A)[0]
    # A resubmission without them: the flag goes.
    shutil.rmtree(subs / "eve")
    write_submissions(subs, A, {"eve": FILLED_IN})
    layout.prepare_course(course, subs, problems=[])
    assert layout.layout_flags(course, "eve", A) == []


def test_the_course_directory_gets_the_course_nbgrader_config(tmp_path):
    subs = write_submissions(tmp_path / "subs", A, {"alice": FILLED_IN})
    course = tmp_path / "c"
    layout.prepare_course(course, subs)
    config = (course / "nbgrader_config.py").read_text()
    assert "from autograder.nbgrader_config import configure" in config
    (course / "nbgrader_config.py").write_text("c = get_config()  # the instructor's own\n")
    layout.prepare_course(course, subs)
    assert (course / "nbgrader_config.py").read_text() == "c = get_config()  # the instructor's own\n"

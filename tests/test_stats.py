"""Class statistics (autograder/stats.py) on a small graded class, and its parts on their own.

The class: nine students of 04_bptt, built from the solution and the mutants of
tests/mutants.py, graded through the real pipeline. Three of the planted bugs sit in the
LSTM's gates, and the forget gate is in all three: it must come out as the gate the class
gets wrong most.
"""
import base64
import csv
import re
import statistics

import nbformat
import pytest

from autograder import batch, cli, gradescsv, layout, stats, verdicts
from mutants import MUTANTS, notebook
from submissions import REPO, solution_cells, student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("test_stats")   # its module-scoped fixture grades once: every test of the module on one worker

A = "04_bptt"
BY_NAME = {m.name: m for m in MUTANTS}
GATE_BUGS = ("bwd_forget_on_prev_h",          # forget gate only
             "bwd_swapped_input_forget",      # input and forget gates
             "bwd_no_tanh_derivative_on_c")   # input, forget gates and candidate: o does not see dc
OTHER_BUGS = ("bwd_db_mean",                  # every gate block of db: blames no gate
              "lstm_backward_no_dWh_accumulation")
DEBUG = "import subprocess  # left over from timing my code\n"
SOURCE = nbformat.read(REPO / "solutions" / A / f"{A}.ipynb", as_version=4)
TEST_POINTS = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"] for c in SOURCE.cells
               if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")}


def debugging_student():
    """A right solution with a leftover import the grader flags for review."""
    return student_notebook(A, {"lstm_step_backward": DEBUG + solution_cells(A)["lstm_step_backward"]})


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("stats")
    students = {"solution": student_notebook(A), "blank": student_notebook(A, released=True),
                "debug_subprocess": debugging_student()}
    students.update({name: notebook(BY_NAME[name]) for name in GATE_BUGS + OTHER_BUGS})
    subs = write_submissions(root / "submissions", A, students)
    misnamed = subs / "wrong_filename" / A / "my_copy.ipynb"       # cannot be graded: scores 0
    misnamed.parent.mkdir(parents=True)
    nbformat.write(student_notebook(A), misnamed)
    course = root / "course"
    outcomes = batch.autograde(course, layout.prepare_course(course, subs), workers=2)
    assert [o.student for o in outcomes if not o.ok] == ["wrong_filename"]
    (found,) = stats.class_stats(course)
    return course, found


# ---------------------------------------------------------------- the graded class

def test_scores_are_the_gradebook_s(graded):
    course, s = graded
    rows = {r["student"]: r["score"] for r in gradescsv.grade_rows(course)}
    assert s.name == A and s.max_score == sum(TEST_POINTS.values()) and s.scores == rows and len(rows) == 9
    assert s.scores["solution"] == s.scores["debug_subprocess"] == s.max_score
    assert s.scores["blank"] == s.scores["wrong_filename"] == 0
    assert list(s.ungraded) == ["wrong_filename"]
    assert s.ungraded["wrong_filename"].startswith("missing notebook 04_bptt.ipynb (found: my_copy.ipynb)")
    assert f"mean {statistics.mean(rows.values()):.2f}" in stats.summary(s)


def test_pass_rate_per_test_cell(graded):
    _, s = graded
    right = {"solution", "debug_subprocess"}
    step_bugs = set(GATE_BUGS) | {"bwd_db_mean"}   # the layers chain the wrong step right (rnnkit.standins)
    assert set(s.passed("test_lstm_step_backward")) == right | {"lstm_backward_no_dWh_accumulation"}
    assert set(s.passed("test_lstm_backward")) == right | step_bugs
    assert set(s.passed("test_lstm_truncated_backward")) == right | step_bugs | {"lstm_backward_no_dWh_accumulation"}
    assert s.pass_rate("test_lstm_backward") == pytest.approx(6 / 9)
    assert s.pass_rate("test_lstm_step_backward") == pytest.approx(3 / 9)
    assert {c: points for c, (points, _) in s.cells.items()} == TEST_POINTS


def test_the_most_failed_gate_is_the_planted_one(graded):
    _, s = graded
    ranked = s.gates.ranked()
    assert ranked[0][0] == "forget gate (f)"
    assert {gate: n for gate, n, _ in ranked} == {"forget gate (f)": 3, "input gate (i)": 2, "candidate (g)": 1}
    assert s.gates.students["forget gate (f)"] == set(GATE_BUGS)
    assert s.gates.students["candidate (g)"] == {"bwd_no_tanh_derivative_on_c"}


def test_failures_per_task_and_output(graded):
    _, s = graded
    who = s.outputs.students
    assert who[("lstm_step_backward", "dprev_c")] == {"bwd_no_tanh_derivative_on_c"}
    assert who[("lstm_step_backward", "db")] == set(GATE_BUGS) | {"bwd_db_mean"}
    assert who[("lstm_backward", "dWh")] == {"lstm_backward_no_dWh_accumulation"}
    assert who[("lstm_step_backward", stats.NO_OUTPUTS)] == {"blank"}
    assert ("lstm_truncated_backward", "dWh") not in [k for k, v in who.items() if "solution" in v]


def test_messages_are_normalised_and_counted_per_student(graded):
    _, s = graded
    assert s.messages.students["lstm_step_backward: not implemented yet (raises NotImplementedError)"] == {"blank"}
    key = "lstm_step_backward: dWx: wrong in the forget gate (f) block (error #x the tolerance)"
    assert s.messages.students[key] == {"bwd_forget_on_prev_h"}
    assert s.messages.cases[key] >= 2          # the public case and the hidden ones
    for message in s.messages.students:
        assert not message.split(": ", 1)[1].startswith("[") and not re.search(r"\d\.\d|e\+\d", message), message


def test_review_flags_are_read_from_the_autograded_notebooks(graded):
    course, s = graded
    graded_ones = [st for st in s.scores if st not in s.ungraded]  # an ungraded one's reason is listed apart
    expected = {st: verdicts.review_flags(course, st, A) for st in graded_ones if verdicts.review_flags(course, st, A)}
    assert s.flags == expected
    assert any(f.startswith("suspicious code in lstm_step_backward: imports a module the exercises do not use")
               for f in s.flags["debug_subprocess"])
    assert not any("suspicious" in f for f in s.flags.get("solution", []))
    assert s.flag_counts()["suspicious code in lstm_step_backward: imports a module the exercises do not use "
                          "(import subprocess)"] == 1


def test_html_report_is_self_contained_with_plots(graded, tmp_path):
    course, _ = graded
    out = stats.report(course, tmp_path / "report" / "stats.html")
    page = out.read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 3      # scores, test cells, gates
    assert all(base64.b64decode(i).startswith(b"\x89PNG\r\n\x1a\n") for i in images)
    assert "forget gate (f)" in page and "debug_subprocess" in page and "wrong_filename" in page
    assert "http://" not in page and "https://" not in page     # nothing fetched when opened


def test_command_line_writes_report_and_canvas_csv(graded, tmp_path, capsys):
    course, _ = graded
    roster = tmp_path / "canvas_export.csv"
    roster.write_text("\ufeffStudent,ID,SIS User ID,SIS Login ID,Section,Quiz 1 (11)\n"
                      "    Points Possible,,,,,5\n"
                      "\"Doe, Jane\",1001,S1001,solution,LSTM 101 A,4\n"
                      "\"Roe, Zed\",1002,S1002,zed,LSTM 101 A,3\n", encoding="utf-8")
    code = cli.main(["stats", str(course), "--out", str(tmp_path / "s.html"), "--canvas", str(tmp_path / "canvas.csv"),
                       "--points", f"{A}=20", "--canvas-id", f"{A}=4242", "--roster", str(roster)])
    assert code == 0
    out, err = capsys.readouterr()
    assert "Most blamed gate: forget gate (f)" in out
    assert "warning: blank: graded but not in the roster" in err      # 8 graded students the roster lacks
    assert len(re.findall(r"graded but not in the roster", err)) == 8 and "solution:" not in err
    with open(tmp_path / "canvas.csv", newline="") as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", f"{A} (4242)"]
    assert lines[1] == ["    Points Possible", "", "", "", "", "20.0"]
    by_login = {line[3]: line for line in lines[2:]}
    assert by_login["solution"] == ["Doe, Jane", "1001", "S1001", "solution", "LSTM 101 A", "20.0"]
    assert by_login["blank"] == ["blank", "", "", "blank", "", "0.0"]
    assert by_login["zed"] == ["Roe, Zed", "1002", "S1002", "zed", "LSTM 101 A", ""]   # no submission: empty
    assert len(by_login) == 10


def test_canvas_alone_leaves_the_report_alone(graded, tmp_path, capsys):
    course, _ = graded
    report = course / "stats.html"
    report.write_text("the instructor's report")
    assert cli.main(["stats", str(course), "--canvas", str(tmp_path / "canvas.csv")]) == 0
    assert report.read_text() == "the instructor's report" and (tmp_path / "canvas.csv").is_file()
    assert "report written" not in capsys.readouterr().out


def test_command_line_errors(graded, tmp_path, capsys):
    course, _ = graded
    assert cli.main(["stats", str(tmp_path)]) == 2
    assert "no gradebook" in capsys.readouterr().err
    out = ["--out", str(tmp_path / "s.html"), "--canvas", str(tmp_path / "c.csv")]
    assert cli.main(["stats", str(course), *out, "--points", "04_bpt=20"]) == 2
    assert "no graded assignment named 04_bpt (graded: 04_bptt)" in capsys.readouterr().err
    assert cli.main(["stats", str(course), *out, "--points", "04_bptt"]) == 2
    assert "--points expects ASSIGNMENT=VALUE" in capsys.readouterr().err


# ---------------------------------------------------------------- the parts, without grading

@pytest.mark.parametrize("message, normalised", [
    ("[N=2, D=3, H=4] dWx: wrong in the forget gate (f) block (error 4.5e+03x the tolerance)",
     "dWx: wrong in the forget gate (f) block (error #x the tolerance)"),
    ("[N=1, T=7] dx: first wrong at t=5 (error 12x the tolerance); from t=1",
     "dx: first wrong at t=# (error #x the tolerance); from t=#"),
    ("[case 3] next_h: has shape (3, 4), expected (4, 3)", "next_h: has shape (#, #), expected (#, #)"),
    ("[N=2] next_h: wrong (error 2x the tolerance); the recurrent term h_{t-1} @ Wh looks wrong",
     "next_h: wrong (error #x the tolerance); the recurrent term h_{t-1} @ Wh looks wrong"),
    ("[N=2] clipped_0: wrong (error 3.5x the tolerance)", "clipped_0: wrong (error #x the tolerance)"),
])
def test_normalise(message, normalised):
    assert stats.normalise(message) == normalised


@pytest.mark.parametrize("task, message, gates", [
    ("lstm_step_backward", "dWx: wrong in the forget gate (f) block (error #x the tolerance)", ["forget gate (f)"]),
    ("lstm_step_backward", "db: wrong in the input gate (i), forget gate (f) block", ["input gate (i)", "forget gate (f)"]),
    ("lstm_step_backward", "db: wrong in the input gate (i), forget gate (f), candidate (g), output gate (o) block", []),
    ("lstm_step_forward", "next_c: wrong (error #x the tolerance); the candidate looks wrong", ["candidate (g)"]),
    ("gru_step_forward", "next_h: wrong; the candidate looks wrong", ["candidate (n)"]),
    ("lstm_step_forward", "next_h: wrong; the input gate and the forget gate look wrong",
     ["input gate (i)", "forget gate (f)"]),
    ("lstm_step_forward", "next_h: wrong; the recurrent term h_{t-1} @ Wh looks wrong", []),
    ("lstm_backward", "dh0: wrong (error #x the tolerance); from t=#", []),
])
def test_gates_named(task, message, gates):
    assert stats.gates_named(task, message) == gates


def test_output_of():
    assert stats.output_of("lstm_backward", "dWh: wrong") == "dWh"
    assert stats.output_of("lstm_backward", "raised ValueError: shapes (#,) and (#,)") == stats.NO_OUTPUTS


def test_canvas_csv_scales_subtracts_late_penalty_and_leaves_out_unknown(tmp_path):
    rows = [{"student": "ann", "assignment": "01_rnn", "score": 5.0, "max_score": 10.0, "cells": {}},
            {"student": "ann", "assignment": "03_gates", "score": 11.0, "max_score": 11.0, "cells": {},
             "late_penalty": 2.0},
            {"student": "bob", "assignment": "01_rnn", "score": 10.0, "max_score": 10.0, "cells": {}}]
    path = stats.canvas_csv(rows, tmp_path / "c.csv", {"01_rnn": 100, "03_gates": 11}, canvas_ids={"01_rnn": 7})
    lines = list(csv.reader(path.open(newline="")))
    assert lines[0][5:] == ["01_rnn (7)", "03_gates"]
    assert lines[2] == ["ann", "", "", "ann", "", "50.0", "9.0"]
    assert lines[3] == ["bob", "", "", "bob", "", "100.0", ""]      # no submission: blank, not 0


def test_canvas_csv_leaves_points_awaiting_hand_grading_empty(tmp_path):
    rows = [{"student": "ann", "assignment": "02_long_term", "score": 5.0, "max_score": 7.0, "cells": {},
             "awaiting": {"answer_plot": 2.0}},
            {"student": "bob", "assignment": "02_long_term", "score": 7.0, "max_score": 7.0, "cells": {}}]
    problems = []
    path = stats.canvas_csv(rows, tmp_path / "c.csv", {"02_long_term": 7}, problems=problems)
    lines = list(csv.reader(path.open(newline="")))
    assert lines[2] == ["ann", "", "", "ann", "", ""] and lines[3] == ["bob", "", "", "bob", "", "7.0"]
    assert problems == ["ann/02_long_term: 2 points await hand grading: its Canvas cell is left empty "
                        "until they are graded"]


def test_summary_counts_awaiting_points_apart_from_zeros():
    s = stats.AssignmentStats("02_long_term", 7.0, scores={"ann": 0.0, "bob": 0.0, "cy": 7.0},
                              awaiting={"ann": 2.0})
    text = stats.summary(s)
    assert "1 with full marks, 1 with zero." in text
    assert "1 have answers awaiting hand grading (2 points in all)" in text


def test_report_escapes_what_students_wrote():
    s = stats.AssignmentStats("01_rnn", 10.0, scores={"<b>eve</b>": 1.0})
    s.messages.add("rnn_forward: raised ValueError: <script>alert(1)</script>", "<b>eve</b>")
    s.flags["<b>eve</b>"] = ["suspicious code in rnn_forward: runs generated code (eval(<img>)"]
    page = stats.render(".", [s])
    assert "<script>" not in page and "<b>eve" not in page and "<img>" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;eve&lt;/b&gt;" in page

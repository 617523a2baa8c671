"""What a submission can put in an instructor's terminal or spreadsheet is inert (autograder/inert.py).

The functions on their own, then the real CLI: a class of 01_rnn whose student ids
(folder names) are formulas, terminal escapes (OSC, C1 CSI), a bidirectional override
and wide characters, and whose code raises an exception carrying escapes and a formula
into the failure messages. The grade table, the stats summary, grades.csv and the Canvas
CSV hold no control character and no cell a spreadsheet would evaluate, and the table's
columns line up in terminal columns.
"""
import csv
import re

import pytest

from autograder import cli, inert
from submissions import solution_cells, student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("test_inert")   # its module-scoped fixture grades once: every test of the module on one worker
A = "01_rnn"
LIVE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
EVIL = "\x1b[2J\x1b[1;31m=cmd|' /C calc'!A0\u202e"


@pytest.mark.parametrize("text, shown", [
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),                 # CSI
    ("\x1b]0;title\x07x", "\\x1b]0;title\\x07x"),                   # OSC, ended by BEL
    ("\x9b2J", "\\x9b2J"),                                          # C1 CSI
    ("a\rforged line\nb\tc\x00\x7f", "a\\x0dforged line\\x0ab\\x09c\\x00\\x7f"),
    ("mallory\u202etxt.exe\u2066\u2069\u200f\u061c", "mallory\\u202etxt.exe\\u2066\\u2069\\u200f\\u061c"),
    ("line\u2028sep", "line\\u2028sep"),
    ("José 张伟 ok", "José 张伟 ok"),                                # kept as they are
])
def test_terminal_shows_controls_as_escapes(text, shown):
    assert inert.terminal(text) == shown


def test_terminal_bounds_length():
    assert inert.terminal("x" * 10_000, limit=20) == "x" * 20 + "…"


def test_width_and_pad_count_terminal_columns():
    assert inert.width("张伟") == 4 and inert.width("José") == 4 and inert.width("e\u0301") == 1
    assert inert.pad("张伟", 6) == "张伟  " and inert.pad("ab", 4, right=True) == "  ab"
    assert inert.pad("toolong", 3) == "toolong"


@pytest.mark.parametrize("value", ["=1+2", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "  =1", "\uff1d1"])
def test_spreadsheet_neutralises_formulas(value):
    assert inert.spreadsheet(value) == "'" + value


@pytest.mark.parametrize("value", ["ana", "a=b", "José", 1.5, -2.0, None, ""])
def test_spreadsheet_leaves_the_rest(value):
    assert inert.spreadsheet(value) == value


def test_csv_row():
    assert inert.csv_row(["=1", "\x1b[31m", -1.0, 2]) == ["'=1", "\\x1b[31m", -1.0, 2]


# ------------------------------------------------------------------ through the real CLI

STUDENTS = {
    "=1+2": EVIL,                        # a formula id, and a message carrying escapes and a formula
    "@SUM(1;2)": None,
    "-2+3": None,
    "\x1b]0;owned\x07eve": None,         # sets the terminal's title
    "\x9b2Jcsi": None,                   # clears the screen (C1 CSI)
    "mallory\u202etxt.exe": None,        # reads backwards from the override on
    "张伟": None,                         # wide characters
}
#: Ids with a control character are refused, in one inert line (autograder.batch.id_problem).
REFUSED = {"\x1b]0;owned\x07eve", "\x9b2Jcsi"}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("inert")
    forward = solution_cells(A)["rnn_step_forward"]
    raising = forward.replace('    """One RNN step.', f'    raise ValueError({EVIL!r})\n    """One RNN step.', 1)
    assert raising != forward
    students = {sid: student_notebook(A, {"rnn_step_forward": raising} if message else None)
                for sid, message in STUDENTS.items()}
    subs = write_submissions(root / "submissions", A, students)
    return root, subs, root / "course"


def test_table_and_csvs_are_inert(graded, capsys):
    root, subs, course = graded
    assert cli.main(["grade", str(subs), "--course", str(course), "--workers", "1"]) == 0
    out, err = capsys.readouterr()
    err = "\n".join(line for line in err.splitlines() if "autograding" not in line)   # tqdm's own \r
    assert not LIVE.search(out + err), [m.group() for m in LIVE.finditer(out + err)]
    refused = [line for line in err.splitlines() if "not a student id" in line]
    assert len(refused) == len(REFUSED) and all("\\x1b" in line or "\\x9b" in line for line in refused), err
    table = out.split("\n\ngrades written")[0].splitlines()
    rows = [line for line in table[2:] if f" {A} " in line]
    assert len(rows) == len(STUDENTS) - len(REFUSED), table
    # Aligned: the assignment column starts at the same terminal column on every line.
    starts = {inert.width(line[:line.index(f" {A} ") + 1]) for line in rows}
    assert len(starts) == 1, table
    assert any(line.startswith("张伟") for line in rows)
    evil = next(line for line in rows if line.startswith("=1+2"))
    assert "raised ValueError" in evil and "\\x1b[2J" in evil and "\\u202e" in evil   # shown, not obeyed

    with open(course / "grades.csv", newline="", encoding="utf-8") as fh:
        lines = list(csv.reader(fh))
    canvas = root / "canvas.csv"
    assert cli.main(["stats", str(course), "--canvas", str(canvas)]) == 0
    out, err = capsys.readouterr()
    assert not LIVE.search(out + err)
    with open(canvas, newline="", encoding="utf-8") as fh:
        canvas_lines = list(csv.reader(fh))
    for name, written in (("grades.csv", lines), ("canvas.csv", canvas_lines)):
        cells = [c for line in written for c in line]
        assert not any(LIVE.search(c) for c in cells), name
        assert not any(c.lstrip(" ").startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells), name
    ids = {line[0] for line in lines[1:]}
    assert ids == {"'=1+2", "'@SUM(1;2)", "'-2+3", "mallory\\u202etxt.exe", "张伟"}
    assert {line[3] for line in canvas_lines[2:]} == ids

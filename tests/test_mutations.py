"""Mutation test of the grader: every seeded bug of tests/mutants.py must lose points.

The bugs that only change a function's inputs in place (mutants.IN_PLACE) must not:
they are reported and flagged, since only the student's kernel sees them.

All mutants of the four exercises, plus the unmodified solution of each as a control,
are graded in one course directory through the real pipeline (layout.prepare_course,
batch.autograde); each mutant is one student whose id is the mutant's name.
Run with ``-s`` to see the kill-rate summary.
"""
import re
import time
from collections import Counter

import nbformat
import pytest

from autograder import batch, gradescsv, layout, verdicts
from rnnkit.tasks import TASKS
from mutants import ASSIGNMENTS, IN_PLACE, MUTANTS, notebook, source
from submissions import REPO, solution_cells, student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("test_mutations")   # its module-scoped fixture grades once: every test of the module on one worker

CONTROL = "solution"
GRADIENT_TASKS = ("lstm_step_backward", "lstm_backward", "lstm_truncated_backward")
TIMED_TASKS = ("lstm_backward", "lstm_truncated_backward")
GATE_WORDS = ("input gate", "forget gate", "candidate", "output gate")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("mutations")
    for a in ASSIGNMENTS:
        students = {CONTROL: student_notebook(a)}
        students.update({m.name: notebook(m) for m in MUTANTS + IN_PLACE if m.assignment == a})
        write_submissions(root / "submissions", a, students)
    course = root / "course"
    pairs = layout.prepare_course(course, root / "submissions")
    assert len(pairs) == len(MUTANTS) + len(IN_PLACE) + len(ASSIGNMENTS)
    started = time.monotonic()
    outcomes = batch.autograde(course, pairs, workers=2)   # a worker waits on its kernel half the time
    elapsed = time.monotonic() - started
    assert all(o.ok for o in outcomes), [o for o in outcomes if not o.ok]
    rows = {(r["student"], r["assignment"]): r for r in gradescsv.grade_rows(course)}
    print(f"\nautograded {len(pairs)} notebooks in {elapsed:.0f} s")
    return course, rows


def messages_of(course, mutant):
    return verdicts.failures(course, mutant.name, mutant.assignment)


def autograded_points(assignment):
    """grade_id -> points of the autograded test cells (manually graded answers left out)."""
    nb = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"]["points"]) for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")}


def autograded(row):
    """(score, max) over the autograded test cells only: a manual answer scores 0 until graded."""
    points = autograded_points(row["assignment"])
    return sum(row["cells"][gid] for gid in points), sum(points.values())


def killed(row):
    score, top = autograded(row)
    return score < top


# ---------------------------------------------------------------- the catalogue itself (no grading)

def test_catalogue_is_big_enough_and_unique():
    assert len(MUTANTS) >= 20
    names = [m.name for m in MUTANTS + IN_PLACE]
    assert len(set(names)) == len(names) and CONTROL not in names
    assert set(m.assignment for m in MUTANTS) == set(ASSIGNMENTS)


@pytest.mark.parametrize("mutant", MUTANTS + IN_PLACE, ids=lambda m: m.name)
def test_mutation_applies_to_a_solution_cell(mutant):
    """Every anchor is found (mutate fails loudly otherwise) and the code really changes."""
    original = solution_cells(mutant.assignment)[mutant.cell]
    assert source(mutant) != original
    assert mutant.task in TASKS and mutant.expect


# ---------------------------------------------------------------- grading

@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_control_gets_full_marks(graded, assignment):
    course, rows = graded
    row = rows[(CONTROL, assignment)]
    score, top = autograded(row)
    assert top > 0
    assert score == top, verdicts.failures(course, CONTROL, assignment)
    assert row["score"] == score  # the manually graded answers (02's answer_plot) score 0 until graded
    assert verdicts.failures(course, CONTROL, assignment) == []


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_loses_points_with_a_specific_message(graded, mutant):
    course, rows = graded
    row, control = rows[(mutant.name, mutant.assignment)], rows[(CONTROL, mutant.assignment)]
    messages = messages_of(course, mutant)
    score, top = autograded(row)
    detail = f"{mutant.name} ({mutant.bug}): autograded score {score}/{top}, messages {messages}"
    assert killed(row), "SURVIVED: " + detail
    cell = f"test_{mutant.task}"
    assert row["cells"][cell] < control["cells"][cell], detail
    # The targeted task reports a named output (or a returned cache's layout) as wrong.
    outputs = "|".join(map(re.escape, TASKS[mutant.task].outputs))
    specific = re.compile(rf"^{mutant.task}: \[[^]]*\] ({outputs}: |\w+'s cache\S* must be )")
    assert any(specific.match(m) for m in messages), detail
    for words in mutant.expect:
        assert any(words in m for m in messages), f"no message says {words!r}: {detail}"
    # LSTM gradient bugs are located where the grader can: a wrong dWx/dWh/db in its gate block,
    # a wrong sequence gradient at its first wrong time step.
    own = [m for m in messages if m.startswith(mutant.task + ":")]
    if mutant.task in GRADIENT_TASKS:
        for m in own:
            if re.search(r"\] (dWx|dWh|db): wrong", m):
                assert " block" in m and any(g in m for g in GATE_WORDS), f"no gate named in {m!r}"
        if mutant.task in TIMED_TASKS and any(": wrong" in m for m in own):
            assert any("step t=" in m for m in own), f"no time step named: {detail}"
    assert not any("BEGIN HIDDEN" in m or "check(" in m for m in messages), detail


def notes_of(course, mutant):
    nb = nbformat.read(course / "autograded" / mutant.name / mutant.assignment / f"{mutant.assignment}.ipynb",
                       as_version=4)
    return [f"{check['task']}: {note}" for cell in nb.cells
            for check in cell.metadata.get("rnn_course", {}).get("checks", []) for note in check.get("notes", [])]


@pytest.mark.parametrize("mutant", IN_PLACE, ids=lambda m: m.name)
def test_in_place_change_is_reported_and_flagged_not_scored(graded, mutant):
    course, rows = graded
    row, control = rows[(mutant.name, mutant.assignment)], rows[(CONTROL, mutant.assignment)]
    assert autograded(row) == autograded(control), messages_of(course, mutant)
    assert f"modified its inputs in place in test_{mutant.task}" in row["flags"], row["flags"]
    notes = notes_of(course, mutant)
    for words in mutant.expect:
        assert any(words in n and "not scored" in n for n in notes), notes


def test_kill_rate_is_100_percent(graded):
    """Printed with -s: killed/total overall and per assignment."""
    _, rows = graded
    dead, total = Counter(), Counter()
    survivors = []
    for m in MUTANTS:
        row = rows[(m.name, m.assignment)]
        total[m.assignment] += 1
        if killed(row):
            dead[m.assignment] += 1
        else:
            survivors.append("{} {}/{}".format(m.name, *autograded(row)))
    per = ", ".join(f"{a} {dead[a]}/{total[a]}" for a in ASSIGNMENTS)
    k, n = sum(dead.values()), sum(total.values())
    print(f"\nmutation kill rate: {k}/{n} ({100 * k / n:.0f} %) -- {per}")
    if survivors:
        print("surviving mutants: " + "; ".join(survivors))
    assert k == n, survivors

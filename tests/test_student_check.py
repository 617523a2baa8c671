"""What a student sees equals what the grader decides: check() in the notebook, nbgrader validate, the grade."""
import time

import nbformat
import pytest
from nbgrader.validator import Validator

from autograder import batch, gradescsv, layout, verdicts
from rnnkit.probe import check
from rnnkit.tasks import TASKS
from autograder.verify import REFERENCES
from mutants import MUTANTS, notebook
from submissions import student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("test_student_check")   # its module-scoped fixture grades once: every test of the module on one worker

# One localised bug and one that spreads, in two exercises; wrong steps whose layers chain them
# right (rnnkit.standins: the layer keeps its points on both sides), and a wrong chaining.
PICKED = ["rnn_backward_no_dWh_accumulation", "rnn_no_recurrent_term", "lstm_candidate_sigmoid",
          "gru_update_swapped", "rnn_no_tanh_derivative", "rnn_forward_h0_every_step"]


@pytest.mark.parametrize("task", sorted(TASKS))
def test_check_answers_within_a_second(task):
    namespace = dict(REFERENCES)
    exec("from rnnkit.probe import check", namespace)
    exec(f"check({task!r})", namespace)  # warm: the first call loads the references
    start = time.perf_counter()
    exec(f"check({task!r})", namespace)
    assert time.perf_counter() - start < 1.0


def test_check_reports_what_is_wrong(capsys):
    def rnn_step_forward(x, prev_h, Wx, Wh, b):
        return REFERENCES["rnn_step_forward"](x, prev_h, Wx, Wh, 0 * b)
    with pytest.raises(AssertionError) as failure:
        exec('check("rnn_step_forward")', {"check": check, "rnn_step_forward": rnn_step_forward})
    assert "rnn_step_forward: 0/2 checks passed" in str(failure.value) and "next_h: wrong" in str(failure.value)
    exec('check("rnn_step_forward")', {"check": check, "rnn_step_forward": REFERENCES["rnn_step_forward"]})
    assert capsys.readouterr().out.strip() == "rnn_step_forward: 2/2 checks passed"


def failed_test_cells(path):
    """grade_ids of the test cells nbgrader validate reports as failing."""
    nb = nbformat.read(path, as_version=4)
    by_source = {c.source.strip(): c.metadata["nbgrader"]["grade_id"] for c in nb.cells
                 if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")}
    results = Validator(ignore_checksums=True).validate(str(path))
    return {by_source[f["source"]] for f in results.get("failed", [])}, results


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("agree")
    mutants = {m.name: m for m in MUTANTS if m.name in PICKED}
    assert set(mutants) == set(PICKED)
    by_assignment = {}
    for m in mutants.values():
        by_assignment.setdefault(m.assignment, {})[m.name] = notebook(m)
    for a in by_assignment:
        by_assignment[a]["solution"] = student_notebook(a)
        write_submissions(root / "subs", a, by_assignment[a])
    course = root / "course"
    outcomes = batch.autograde(course, layout.prepare_course(course, root / "subs"), workers=2)
    assert all(o.ok for o in outcomes)
    return root, course, {(r["student"], r["assignment"]): r for r in gradescsv.grade_rows(course)}, mutants


@pytest.mark.parametrize("name", PICKED + ["solution"])
def test_validate_check_and_grade_agree(graded, name):
    root, course, rows, mutants = graded
    assignments = [mutants[name].assignment] if name in mutants else sorted({m.assignment for m in mutants.values()})
    for a in assignments:
        path = root / "subs" / name / a / f"{a}.ipynb"
        failed, results = failed_test_cells(path)
        full = rows[("solution", a)]["cells"]
        lost = {cell for cell, score in rows[(name, a)]["cells"].items() if cell in full and score < full[cell]}
        assert failed == lost, (failed, lost)
        if name in mutants:
            assert failed, "the bug must be visible to the student before submitting"
            graded_messages = verdicts.failures(course, name, a)
            first_words = graded_messages[0].split("] ", 1)[1].split(" (error")[0]
            assert any(first_words in " ".join(f["raw_error"].split()) for f in results["failed"]), (first_words, results)

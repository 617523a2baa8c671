"""exercises/ is exactly what nbgrader generates from solutions/, and leaks nothing."""
import json
import re

import nbformat
import numpy as np
import pytest
from rnnkit.expected import ShippedData
from rnnkit.tasks import TASKS

from autograder import batch, layout
from autograder.preprocessors import expected_checks
from hidden import REGION, hidden_lines, hidden_specs, shown_specs
from submissions import REPO

ASSIGNMENTS = layout.assignments_in()


def cells(nb, **flags):
    return [c for c in nb.cells
            if all(c.metadata.get("nbgrader", {}).get(k) == v for k, v in flags.items())]


def load(folder, a):
    return nbformat.read(REPO / folder / a / f"{a}.ipynb", as_version=4)


def test_every_exercise_has_a_solution_and_back():
    assert ASSIGNMENTS == ["01_rnn", "02_long_term", "03_gates", "04_bptt", "05_language_model", "06_seq2seq"]
    assert sorted(p.name for p in (REPO / "exercises").iterdir() if p.is_dir()) == ASSIGNMENTS


def test_exercises_and_kit_data_are_up_to_date(tmp_path):
    batch.release(ASSIGNMENTS, exercises=tmp_path, kit_data=tmp_path / "expected.npz")
    for a in ASSIGNMENTS:
        fresh = (tmp_path / a / f"{a}.ipynb").read_text()
        committed = (REPO / "exercises" / a / f"{a}.ipynb").read_text()
        assert fresh == committed, f"exercises/{a} is stale: run `make release` and commit"
    fresh, committed = ShippedData(tmp_path / "expected.npz"), ShippedData()
    assert fresh.stamps == committed.stamps, "kit/rnnkit/expected.npz is stale: run `make release` and commit"
    assert set(fresh.stamps) == set(ASSIGNMENTS)
    for name, task in TASKS.items():
        for case in task.public:
            assert fresh.probe_names(name, case) == committed.probe_names(name, case)
            for probe in [None] + committed.probe_names(name, case):
                for a, b in zip(fresh.outputs(name, case, probe), committed.outputs(name, case, probe)):
                    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_every_released_notebook_names_its_release():
    stamps = ShippedData().stamps
    for a in ASSIGNMENTS:
        (setup,) = [c for c in load("exercises", a).cells if c.metadata.get("nbgrader", {}).get("grade_id") == "setup"]
        assert setup.source.splitlines()[-1] == f"check.release({a!r}, {stamps[a]!r})"
        assert "pip install" in setup.source   # what to do when the kit is missing


@pytest.mark.parametrize("a", ASSIGNMENTS)
def test_exercise_contains_no_solution_and_no_hidden_test(a):
    source, released = load("solutions", a), load("exercises", a)
    text = "\n".join(c.source for c in released.cells)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "cases=" not in text
    assert not re.search(r"\bhidden\s*=\s*\[", text)   # check(task, hidden=[...]); `hidden=16` is a layer size
    for cell in cells(source, solution=True):
        for region in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, flags=re.S):
            for line in region.splitlines():
                if len(line.strip()) > 12:
                    assert line.strip() not in text, f"solution line leaked: {line.strip()!r}"
    specs = hidden_specs(a)   # never empty: it fails when it finds no hidden case
    assert not shown_specs(text, specs), shown_specs(text, specs)
    assert not [line for line in hidden_lines(a) if line in text]


@pytest.mark.parametrize("a", ASSIGNMENTS)
def test_source_notebook_is_well_formed(a):
    nb = load("solutions", a)
    nbformat.validate(nb)
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), "grade_ids must be unique"
    assert all(c.metadata["nbgrader"].get("schema_version") == 3 for c in nb.cells if "nbgrader" in c.metadata)
    tests = cells(nb, grade=True, solution=False)
    assert tests and all(c.metadata["nbgrader"]["locked"] and c.metadata["nbgrader"]["points"] > 0 for c in tests)


@pytest.mark.parametrize("a", ASSIGNMENTS)
def test_hidden_cases_are_new_and_varied(a):
    """Every test cell: a public check and hidden cases the student never saw, T=1 among them."""
    for cell in cells(load("solutions", a), grade=True, solution=False):
        (hidden,) = REGION.findall(cell.source)
        (task, public), (task2, cases) = expected_checks(cell.source)
        assert task == task2 and public == list(TASKS[task].public)
        # hidden cases are specs: their seeds come from the course's secret (autograder.secret)
        shapes = [{k: v for k, v in c.items() if k != "seed"} for c in public]
        assert len(cases) >= 3 and not any(c in shapes for c in cases) and not any("seed" in c for c in cases)
        assert len({json.dumps(c, sort_keys=True) for c in cases}) == len(cases)
        if "T" in cases[0]:
            assert any(c["T"] == 1 for c in cases), f"{task}: no hidden case with T=1"
        for c in cases:
            dims = [c[k] for k in ("N", "D", "H", "T") if k in c]
            if len(dims) == 4 and min(dims) > 1:
                assert len(set(dims)) >= 3, f"{task}: hidden case {c} barely varies its shapes"


def test_every_task_is_graded_somewhere():
    used = {task for a in ASSIGNMENTS for c in cells(load("solutions", a), grade=True, solution=False)
            for task, _ in expected_checks(c.source)}
    assert used == set(TASKS)


@pytest.mark.parametrize("a", ASSIGNMENTS)
def test_released_code_fits_79_columns(a):
    """Exercise pages are pages of the book: no code line scrolls sideways."""
    wide = [line for c in load("exercises", a).cells if c.cell_type == "code"
            for line in c.source.splitlines() if len(line) > 79]
    assert not wide, wide

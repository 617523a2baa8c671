"""The student kit as a student gets it: a fresh virtualenv with the wheel and what it declares.

The notebooks run cell by cell in a kernel of that virtualenv, with the repository
nowhere on its path: filled with the solution every check passes; blank, the first
check says "not implemented"; wrong code gets exactly the report the grader computes
on the same public cases. Every byte of the zip and of the installed package is read:
no solution, no reference, no hidden case.
"""
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell
from nbgrader import utils
from rnnkit.expected import ShippedData
from rnnkit.probe import collect
from rnnkit.tasks import TASKS

from autograder import batch, studentkit
from autograder.preprocessors import SKIP_TAG, expected_checks
from autograder.verify import grade_check
from mutants import MUTANTS, source
from submissions import REPO, strip_solution_markers

ASSIGNMENTS = batch.assignments_in()
#: Three wrong implementations per assignment, for the report comparison.
WRONG = {a: [m for m in MUTANTS if m.assignment == a][:3] for a in ASSIGNMENTS}
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "MARK SCHEME")


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """(unzipped kit folder, virtualenv python) with only the kit's wheel and a Jupyter kernel installed."""
    root = tmp_path_factory.mktemp("kit")
    zip_path = studentkit.build(root / "student-kit.zip")
    unzipped = root / "unzipped"
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(unzipped)
    (wheel,) = unzipped.glob("rnnkit-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel), "ipykernel"],
                   check=True, cwd=root)
    kernels = root / "share" / "jupyter" / "kernels" / "kit"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "student kit", "language": "python"}))
    return {"zip": zip_path, "dir": unzipped, "python": python, "jupyter_path": root / "share" / "jupyter"}


def run_notebook(kit, nb, workdir, extra=(), demos=True):
    """Execute ``nb`` cell by cell in the kit's kernel, errors allowed; ``extra`` cells appended.

    ``demos=False`` leaves out the cells the grader skips too (plots, training runs).
    """
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # a copy
    if not demos:
        nb.cells = [c for c in nb.cells if SKIP_TAG not in c.metadata.get("tags", [])]
    nb.cells.extend(new_code_cell(code) for code in extra)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    client = NotebookClient(nb, kernel_name="kit", allow_errors=True, timeout=300,
                            resources={"metadata": {"path": str(workdir)}})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(kit["jupyter_path"]))   # where the kernel "kit" is found
        client.execute(env=env)
    return nb


def released(kit, a):
    return nbformat.read(kit["dir"] / "exercises" / a / f"{a}.ipynb", as_version=4)


def solved(kit, a, replacements=None):
    """The released notebook with every solution cell filled from the source (or ``replacements``)."""
    nb = released(kit, a)
    solutions = {c.metadata["nbgrader"]["grade_id"]: c.source
                 for c in nbformat.read(REPO / "solutions" / a / f"{a}.ipynb", as_version=4).cells
                 if utils.is_solution(c)}
    solutions.update(replacements or {})
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in solutions:
            cell.source = strip_solution_markers(solutions[gid])
    return nb


def graded_cells(nb):
    return [c for c in nb.cells if utils.is_grade(c) and not utils.is_solution(c) and c.cell_type == "code"]


def error_of(cell):
    errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
    return errors[0] if errors else None


def grader_report(a, replacements, task):
    """What the grader's process says of ``task`` on its public cases, for the solution with ``replacements``."""
    namespace = {}
    for cell in solved_source(a, replacements):
        exec(cell, namespace)
    cases = list(TASKS[task].public)
    return grade_check(task, cases, collect(TASKS[task], cases, namespace, TASKS[task].make_inputs)).text()


def solved_source(a, replacements):
    nb = nbformat.read(REPO / "solutions" / a / f"{a}.ipynb", as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "code" and (gid == "setup" or utils.is_solution(cell)):
            yield strip_solution_markers((replacements or {}).get(gid, cell.source))


def test_the_instructor_package_is_not_there(kit, tmp_path):
    probe = subprocess.run([str(kit["python"]), "-c", "import autograder"], cwd=tmp_path,
                           capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'autograder'" in probe.stderr
    probe = subprocess.run([str(kit["python"]), "-c", "import torch"], cwd=tmp_path, capture_output=True, text=True)
    assert probe.returncode != 0


@pytest.mark.parametrize("a", ASSIGNMENTS)
def test_solution_passes_every_check_within_a_second(kit, a, tmp_path):
    tasks = sorted({t for c in graded_cells(released(kit, a)) for t, _ in expected_checks(c.source)})
    timing = ("import json, time\nseconds = {}\nfor t in %r:\n    start = time.perf_counter()\n"
              "    check(t)\n    seconds[t] = time.perf_counter() - start\nprint(json.dumps(seconds))" % tasks)
    nb = run_notebook(kit, solved(kit, a), tmp_path, extra=[timing])
    for cell in graded_cells(nb):
        assert error_of(cell) is None, (cell.source, error_of(cell))
        printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        for task, _ in expected_checks(cell.source):
            assert re.search(rf"{task}: (\d+)/\1 checks passed", printed), printed
    assert all(error_of(c) is None for c in nb.cells), [error_of(c) for c in nb.cells if error_of(c)]
    seconds = json.loads(nb.cells[-1].outputs[-1]["text"].splitlines()[-1])
    assert max(seconds.values()) < 1.0, seconds
    if a == "05_language_model":
        language_model_bars(nb)


def printed_by(nb, gid):
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid]
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def language_model_bars(nb):
    """Exercise 5 as a student runs it: the LSTM made of the student's functions beats the bigram
    clearly on unseen poems, and writes lines of verse: half-lines of 5 or 7 characters, ， then 。."""
    lstm, bigram = map(int, re.search(r"LSTM (\d+), bigram (\d+)", printed_by(nb, "train")).groups())
    assert lstm < 0.9 * bigram, (lstm, bigram)
    verses = re.findall(r"^[^，。\n]{5}，[^，。\n]{5}。|^[^，。\n]{7}，[^，。\n]{7}。", printed_by(nb, "sample_poems"), re.M)
    assert len(verses) >= 2, printed_by(nb, "sample_poems")


@pytest.mark.parametrize("a", ASSIGNMENTS)
def test_blank_notebook_says_not_implemented(kit, a, tmp_path):
    nb = run_notebook(kit, released(kit, a), tmp_path)
    first = graded_cells(nb)[0]
    error = error_of(first)
    assert error is not None and error.ename == "CheckFailed"
    assert "not implemented yet" in error.evalue
    assert not any("rnnkit" in line or "site-packages" in line for line in error.traceback), error.traceback


@pytest.mark.parametrize("a", ASSIGNMENTS)
def test_wrong_code_gets_the_graders_report(kit, a, tmp_path):
    assert len(WRONG[a]) == 3
    for mutant in WRONG[a]:
        replacements = {mutant.cell: source(mutant)}
        nb = run_notebook(kit, solved(kit, a, replacements), tmp_path, demos=False)
        (cell,) = [c for c in graded_cells(nb) if f'check("{mutant.task}")' in c.source]
        error = error_of(cell)
        assert error is not None, f"{mutant.name}: check() passed"
        assert error.evalue == grader_report(a, replacements, mutant.task), mutant.name
        # Shown as the report alone: no frames of the kit above it.
        assert error.traceback[0].endswith(error.evalue.splitlines()[0]), error.traceback
        assert not any("rnnkit" in line for line in error.traceback)


def test_a_notebook_of_another_release_is_refused_naming_both(kit, tmp_path):
    a = ASSIGNMENTS[0]
    nb = solved(kit, a)
    (setup,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "setup"]
    stamp = ShippedData().stamps[a]
    setup.source = setup.source.replace(stamp, "0123456789")
    nb = run_notebook(kit, nb, tmp_path)
    error = error_of(graded_cells(nb)[0])
    assert error is not None and "release 0123456789 of 01_rnn" in error.evalue and stamp in error.evalue
    assert "checks passed" not in error.evalue   # no verdict at all


def test_a_missing_kit_is_one_clear_sentence(tmp_path):
    (setup,) = [c.source for c in nbformat.read(REPO / "exercises" / "01_rnn" / "01_rnn.ipynb", as_version=4).cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == "setup"]
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(bare)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    run = subprocess.run([str(bare / "bin" / "python"), "-I", "-c", setup.replace("import numpy as np\n", "")],
                         cwd=tmp_path, capture_output=True, text=True, env=env)
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: This notebook needs rnnkit"), run.stderr
    assert "pip install rnnkit-*.whl" in last


# ------------------------------------------------------------------ nothing to find in it

def forbidden_lines():
    """Lines that must not appear anywhere a student can read: solution regions and reference code.

    A line that the released notebooks show anyway (a function's given ``return`` line,
    which exercise 5's pasted LSTM repeats) is not an answer and is left out.
    """
    given = "\n".join(c.source for a in ASSIGNMENTS for c in released_repo(a).cells)
    lines = set()
    for a in ASSIGNMENTS:
        for cell in nbformat.read(REPO / "solutions" / a / f"{a}.ipynb", as_version=4).cells:
            for region in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, flags=re.S):
                lines |= {line.strip() for line in region.splitlines()
                          if len(line.strip()) > 12 and line.strip() not in given}
    for path in (REPO / "autograder" / "reference").glob("*.py"):
        for line in path.read_text().splitlines():
            code = line.strip()
            if len(code) > 24 and ("=" in code or "return" in code) and not code.startswith(("#", '"""')) \
                    and code not in given:
                lines.add(code)
    return lines


def released_repo(a):
    return nbformat.read(REPO / "exercises" / a / f"{a}.ipynb", as_version=4)


def hidden_seeds():
    """The hidden cases of the source notebooks, as written (specs: ``{'N': 4, 'D': 7, 'H': 3}``)."""
    seeds = set()
    for a in ASSIGNMENTS:
        for cell in nbformat.read(REPO / "solutions" / a / f"{a}.ipynb", as_version=4).cells:
            for region in re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cell.source, flags=re.S):
                seeds |= set(re.findall(r"\{[^{}]+\}", region))
    assert seeds
    return seeds


def readable_texts(name, data):
    """(name, text) of every member, unpacking zips (the kit, the wheel, the .npz) all the way down."""
    if name.endswith((".zip", ".whl", ".npz")):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for member in z.namelist():
                yield from readable_texts(f"{name}/{member}", z.read(member))
    elif name.endswith(".npy"):
        array = np.load(io.BytesIO(data), allow_pickle=False)
        assert array.dtype.kind in "fibU", f"{name}: unexpected dtype {array.dtype}"
        if array.dtype.kind == "U":
            yield name, str(array)
    else:
        yield name, data.decode("utf-8", errors="replace")


def installed_files(python):
    site = subprocess.run([str(python), "-c", "import rnnkit, pathlib; print(pathlib.Path(rnnkit.__file__).parent.parent)"],
                          capture_output=True, text=True, check=True, cwd="/").stdout.strip()
    return [p for p in Path(site).glob("rnnkit*/**/*") if p.is_file() and "__pycache__" not in p.parts]


def test_nothing_in_the_kit_or_the_installed_package_gives_an_answer_away(kit):
    members = list(readable_texts("student-kit.zip", kit["zip"].read_bytes()))
    members += [m for p in installed_files(kit["python"]) for m in readable_texts(str(p), p.read_bytes())]
    assert any(n.endswith("expected.npy") or "manifest" in n for n, _ in members)
    bad_lines, seeds = forbidden_lines(), hidden_seeds()
    assert len(bad_lines) > 100
    for name, text in members:
        for marker in MARKERS:
            assert marker not in text, f"{name} holds {marker!r}"
        assert "import torch" not in text, name
        found = [line for line in bad_lines if line in text]
        assert not found, f"{name} holds solution or reference lines: {found[:3]}"
        leaked = [s for s in seeds if s in text]
        assert not leaked, f"{name} holds hidden seeds {leaked}"

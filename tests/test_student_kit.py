"""The student kit as a student gets it: a fresh virtualenv with the wheel and what it declares.

The kernel runs in bubblewrap with /usr/share/games hidden, as on a laptop without
Debian's fortunes-zh: exercise 5 trains on the poems the kit's wheel carries.

The notebooks run cell by cell in a kernel of that virtualenv, with the repository
nowhere on its path: filled with the solution every check passes; blank, the first
check says "not implemented"; wrong code gets exactly the report the grader computes
on the same public cases. Every byte of the zip and of the installed package is read:
no solution, no reference, no hidden case.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell
from nbgrader import utils
from ci import unavailable
from rnnkit.expected import ShippedData
from rnnkit.probe import collect
from rnnkit.tasks import TASKS

from autograder import layout, studentkit
from autograder.preprocessors import SKIP_TAG, expected_checks
from autograder.verify import grade_check, reference_inputs
from leaks import forbidden_lines, hidden_specs, hidden_test_lines, leaks, readable_texts
from mutants import MUTANTS, source
from submissions import REPO, strip_solution_markers

#: The module-scoped fixture builds the kit venv once: every test of the module on one worker.
pytestmark = pytest.mark.xdist_group("test_student_kit")

ASSIGNMENTS = layout.assignments_in()
#: Three wrong implementations per assignment, for the report comparison.
WRONG = {a: [m for m in MUTANTS if m.assignment == a][:3] for a in ASSIGNMENTS}


#: Where Debian installs the Tang poems; hidden from the kit's kernel.
SYSTEM_GAMES = Path("/usr/share/games")


def hiding_system_corpora():
    """The command prefix that runs a program with /usr/share/games empty (bubblewrap)."""
    if not shutil.which("bwrap"):
        unavailable("bubblewrap is missing: cannot hide /usr/share/games from the kit",
                    "bash scripts/system-deps.sh (installs bubblewrap)")
    return ["bwrap", "--dev-bind", "/", "/"] + (["--tmpfs", str(SYSTEM_GAMES)] if SYSTEM_GAMES.is_dir() else [])


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
        "argv": hiding_system_corpora() + [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
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
    return grade_check(task, cases, collect(TASKS[task], cases, namespace,
                                            lambda case: reference_inputs(TASKS[task], case))).text()


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
    # CPU seconds of the kernel (the work a check does), not wall-clock time: the machine may be busy
    timing = ("import json, time\nseconds = {}\nfor t in %r:\n    start = time.process_time()\n"
              "    check(t)\n    seconds[t] = time.process_time() - start\nprint(json.dumps(seconds))" % tasks)
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


def test_the_kernel_trains_on_the_kits_poems_with_the_system_copy_hidden(kit, tmp_path):
    """The kernel the notebooks run in (exercise 5's training included) sees no system corpus."""
    probe = ("from rnnkit import corpus\n"
             "print(corpus.TANG300.is_file(), len(corpus.load_corpus('tang300')), corpus.load_corpus('tang300')[0].title)")
    nb = run_notebook(kit, nbformat.v4.new_notebook(), tmp_path, extra=[probe])
    assert error_of(nb.cells[0]) is None, error_of(nb.cells[0])
    hidden, count, title = nb.cells[0].outputs[0]["text"].split()
    assert hidden == "False" and int(count) > 300
    if corpus_module().TANG300.is_file():   # the kit's copy is Debian's, parsed
        assert title == corpus_module().load_tang300(corpus_module().TANG300)[0].title


def corpus_module():
    from rnnkit import corpus
    return corpus


def run_in_kit(kit, code, tmp_path, hide=()):
    """Run ``code`` with the kit's Python, with /usr/share/games and the paths ``hide`` empty."""
    hiding = hiding_system_corpora() + [arg for path in hide for arg in ("--tmpfs", str(path))]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "OPENBLAS", "OMP"))}
    return subprocess.run(hiding + [str(kit["python"]), "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env=env)


def test_the_pydoc_corpus_comes_from_the_kit_when_python_has_none(kit, tmp_path):
    stdlib = subprocess.run([str(kit["python"]), "-c", "import pydoc_data, os; print(os.path.dirname(pydoc_data.__file__))"],
                            capture_output=True, text=True, check=True, cwd=tmp_path).stdout.strip()
    code = ("from rnnkit import corpus\n"
            "try:\n    import pydoc_data.topics\nexcept ImportError:\n    print('no pydoc_data')\n"
            "print(len(corpus.load_corpus('pydoc')))")
    run = run_in_kit(kit, code, tmp_path, hide=[stdlib])
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:2] == ["no pydoc_data", str(len(corpus_module().load_pydoc()))], run.stdout


def test_training_runs_on_one_blas_thread_and_restores_the_setting(kit, tmp_path):
    """charlm.train and adding.train limit BLAS to one thread while they run, not after."""
    (tmp_path / "functions.py").write_text("\n".join(solved_source("05_language_model", None)))
    code = """
import json
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
from rnnkit import adding, charlm
import functions as f

def blas():
    return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})

seen = {"charlm": [], "adding": []}
fns = {name: getattr(f, name) for name in charlm.FUNCTION_NAMES + ("lstm_forward", "lstm_backward")}
ids = np.arange(200) % 7
with threadpool_limits(limits=2, user_api="blas"):
    before = blas()
    charlm.train("lstm", ids, ids[:50], 7, epochs=1, seed=0, fns=fns, hidden=8, embed=4,
                 callback=lambda update, params: seen["charlm"].append(blas()))
    def forward(*args):
        seen["adding"].append(blas())
        return f.lstm_forward(*args)
    adding.train("lstm", T=4, steps=2, seed=0, forward=forward, backward=f.lstm_backward, hidden=4,
                 batch=4, eval_batch=8)
    after = blas()
print(json.dumps({"before": before, "after": after, **seen}))
"""
    run = run_in_kit(kit, code, tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["before"] == [2] and seen["after"] == [2], seen   # the setting before and after training
    assert seen["charlm"] and seen["adding"], seen
    assert all(threads == [1] for threads in seen["charlm"] + seen["adding"]), seen


def python_of_version(version):
    """An interpreter of that version on this machine (pyenv's, then PATH's; not a shim), or None."""
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))
    found = shutil.which(f"python{version}")
    return str(pyenv[-1]) if pyenv else (found if found and "shims" not in Path(found).parts else None)


@pytest.mark.parametrize("version", ["3.10", "3.12", "3.13"])
def test_the_kit_installs_in_a_venv_of_each_python_the_readme_names(kit, tmp_path, version):
    """The README's steps on the other Pythons it names (3.11 is the kit fixture's), where installed."""
    python = python_of_version(version)
    if not python:
        unavailable(f"no Python {version} on this machine", f"a python{version} on PATH (pyenv install {version})")
    (wheel,) = kit["dir"].glob("rnnkit-*.whl")
    venv = tmp_path / ".venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              str(wheel)], capture_output=True, text=True)
    if install.returncode and "Could not fetch URL" in install.stderr:
        unavailable("no package index reachable", "network access to PyPI")
    assert install.returncode == 0, install.stderr[-2000:]
    run = run_in_kit({"python": venv / "bin" / "python"},
                     "from rnnkit import charlm, check, corpus\n"
                     "print(corpus.TANG300.is_file(), len(corpus.load_corpus('tang300')))", tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    hidden, count = run.stdout.split()
    assert hidden == "False" and int(count) > 300


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

def installed_files(python):
    site = subprocess.run([str(python), "-c", "import rnnkit, pathlib; print(pathlib.Path(rnnkit.__file__).parent.parent)"],
                          capture_output=True, text=True, check=True, cwd="/").stdout.strip()
    return [p for p in Path(site).glob("rnnkit*/**/*") if p.is_file() and "__pycache__" not in p.parts]


def test_nothing_in_the_kit_or_the_installed_package_gives_an_answer_away(kit):
    members = list(readable_texts("student-kit.zip", kit["zip"].read_bytes()))
    members += [m for p in installed_files(kit["python"]) for m in readable_texts(str(p), p.read_bytes())]
    assert any(n.endswith("expected.npy") or "manifest" in n for n, _ in members)
    bad_lines, hidden_lines, specs = forbidden_lines(), hidden_test_lines(), hidden_specs()
    assert len(bad_lines) > 100 and len(hidden_lines) > 20
    for name, text in members:
        assert "import torch" not in text, name
        found = leaks(name, text, bad_lines, hidden_lines, specs)
        assert not found, found[:3]

"""Hidden cases that cannot be read back (issue 19, item 3), without a kernel.

The grader's secret (autograder.secret), the sealed cells that replace hidden checks
(autograder.preprocessors.SealTests), and the words of a report that may not quote
the kernel (rnnkit.compare). Through the real batch: tests/test_generalise.py.
"""
import json
import multiprocessing
import os
import re
import stat

import nbformat
import numpy as np
import pytest
from rnnkit import compare, probe, wire
from rnnkit.conventions import CACHE_PARTS, CACHES
from rnnkit.tasks import CACHE, TASKS, cache_names

from autograder import secret, verify
from autograder.preprocessors import SEALED_MARK, SealTests, check_calls, unseal, verdict
from submissions import REPO

SOLUTIONS = sorted((REPO / "solutions").glob("*/*.ipynb"))
TOKEN = "S3CRET-7f3a"   # what a kernel would smuggle out


# ---------------------------------------------------------------- the secret

def test_secret_is_created_private_once_and_then_stable(tmp_path):
    path = tmp_path / "course" / ".rnn-course" / "secret"
    first = secret.load(path)
    assert len(first) == secret.SECRET_BYTES and secret.load(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.write_text("not a secret\n")
    with pytest.raises(secret.SecretError, match="delete it"):
        secret.load(path)


def _load(path):
    return secret.load(path).hex()


def test_processes_that_create_the_secret_at_once_agree(tmp_path):
    path = tmp_path / "secret"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        seen = pool.map(_load, [path] * 16)
    assert len(set(seen)) == 1 and bytes.fromhex(seen[0]) == secret.load(path)


def test_secret_path_of_a_course_and_of_an_instructor(tmp_path, monkeypatch):
    monkeypatch.delenv(secret.SECRET_ENV, raising=False)
    assert secret.course_secret_path(tmp_path) == tmp_path / ".rnn-course" / "secret"
    (tmp_path / "nbgrader_config.py").write_text("")
    (tmp_path / "solutions" / "01_rnn").mkdir(parents=True)
    assert secret.instructor_secret_path(tmp_path / "solutions" / "01_rnn") == tmp_path / ".rnn-course" / "secret"
    monkeypatch.setenv(secret.SECRET_ENV, str(tmp_path / "elsewhere"))
    assert secret.course_secret_path(tmp_path) == secret.instructor_secret_path() == tmp_path / "elsewhere"
    assert not secret.SECRET_ENV.startswith("RNN_COURSE_")   # those variables reach the kernel


def test_seeds_are_128_bit_and_follow_the_secret_purpose_task_and_spec():
    spec = {"N": 4, "D": 7, "H": 3}
    a, b = b"a" * 32, b"b" * 32
    seed = secret.seeded(a, "hidden", "rnn_step_forward", spec)["seed"]
    assert secret.seeded(a, "hidden", "rnn_step_forward", {**spec, "seed": 5})["seed"] == seed
    others = {secret.seeded(b, "hidden", "rnn_step_forward", spec)["seed"],
              secret.seeded(a, "fresh|ana", "rnn_step_forward", spec)["seed"],
              secret.seeded(a, "fresh|bo", "rnn_step_forward", spec)["seed"],
              secret.seeded(a, "hidden", "rnn_step_backward", spec)["seed"],
              secret.seeded(a, "hidden", "rnn_step_forward", {**spec, "N": 5})["seed"]}
    assert seed not in others and len(others) == 5
    assert all(s < 2 ** 128 for s in others | {seed}) and max(others | {seed}) > 2 ** 100


def test_a_seed_search_finds_nothing():
    """The search a kernel could run on its inputs: every small seed, against a hidden case's x."""
    case = secret.seeded(os.urandom(32), "hidden", "rnn_step_forward", {"N": 4, "D": 7, "H": 3})
    x = TASKS["rnn_step_forward"].make_inputs(case)["x"]
    assert not any(np.array_equal(np.random.default_rng(s).standard_normal(x.shape), x) for s in range(20000))


# ---------------------------------------------------------------- the source notebooks

@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_source_notebooks_name_hidden_cases_by_spec_only(path):
    nb = nbformat.read(path, as_version=4)
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
             and not c.metadata["nbgrader"].get("solution")]
    assert tests
    for cell in tests:
        calls = check_calls(cell.source)
        assert [c.hidden for c in calls] == [False, True], cell.source
        assert all("seed" not in case for case in calls[1].cases)
        assert re.search(r"### BEGIN HIDDEN TESTS\ncheck\(\"\w+\", hidden=\[", cell.source)


# ---------------------------------------------------------------- sealing

def sealed(path, tmp_path, student="ana"):
    nb = nbformat.read(path, as_version=4)
    resources = {"nbgrader": {"student": student}}
    nb, resources = SealTests(secret_file=str(tmp_path / "secret")).preprocess(nb, resources)
    return nb, resources


#: Inputs holding a given cache (rnnkit.conventions.CACHES, CACHE_PARTS): the backward's own inputs' forward values.
GIVEN_CACHES = {CACHE + name for fwd in (*CACHES, *CACHE_PARTS) for name in cache_names(fwd)}


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_what_the_kernel_runs_names_no_hidden_case(path, tmp_path):
    original = nbformat.read(path, as_version=4)
    nb, resources = sealed(path, tmp_path)
    specs = [json.dumps(case, sort_keys=True) for c in original.cells if "BEGIN HIDDEN" in c.source
             for call in check_calls(c.source) if call.hidden for case in call.cases]
    shown = "\n".join(c.source for c in nb.cells if c.source.startswith(SEALED_MARK)
                      or c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution"))
    assert specs and "HIDDEN TESTS" not in shown and "hidden=" not in shown and "seed" not in shown
    for cell in nb.cells:
        if cell.source.startswith(SEALED_MARK):
            for call in cell.source.splitlines()[1:]:
                payload = json.loads(re.fullmatch(r"check\('\w+', sealed='(.*)'\)", call).group(1))
                assert all(set(v) <= {"x", "h0", "c0", "prev_h", "prev_c", "Wx", "Wh", "b", "bx", "bh", "dh",
                                      "dnext_h", "dnext_c", "k", "W", "G", "eps", "g0", "g1", "g2",
                                      "max_norm", "dout", "h", "dscores", "scores", "y", "mask",
                                      "temperature", "u", "Wx_f", "Wh_f", "b_f", "Wx_b", "Wh_b", "b_b",
                                      "q", "enc", "Wq", "Wk", "v", "dcontext"} | GIVEN_CACHES
                           for v in payload.values())
                assert all(re.fullmatch(r"[hf]\d+\.\d+(\|\w+)?", key) for key in payload)
    kinds = [c.source.split()[5] for c in nb.cells if c.source.startswith(SEALED_MARK)]
    # the fresh twins in their test cell, the hidden cases after the notebook's last cell
    assert kinds and set(kinds) == {"hidden"}
    assert all(c.source.startswith(SEALED_MARK) for c in nb.cells[len(nb.cells) - len(kinds):])
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
             and not c.metadata["nbgrader"].get("solution")]
    assert tests and all(re.search(r"^check\('\w+', sealed='\{.f0\.0.", c.source, re.M) for c in tests)
    unseal(nb, resources)
    assert [c.source for c in nb.cells] == [c.source for c in original.cells]


def test_hidden_inputs_are_the_same_for_everyone_fresh_ones_each_submissions(tmp_path):
    path = REPO / "solutions" / "01_rnn" / "01_rnn.ipynb"
    def sealed_calls(nb):
        return [line for c in nb.cells for line in c.source.splitlines() if "sealed=" in line]

    runs = {student: sealed_calls(sealed(path, tmp_path, student)[0]) for student in ("ana", "bo", "ana")}
    body = lambda calls, kind: [c for c in calls if f'sealed=\'{{"{kind[0]}' in c]
    assert body(runs["ana"], "hidden") == body(runs["bo"], "hidden")
    assert body(runs["ana"], "fresh") != body(runs["bo"], "fresh")
    again = sealed_calls(sealed(path, tmp_path, "ana")[0])
    assert body(again, "fresh") == body(runs["ana"], "fresh")   # stable across regrades
    resubmitted = nbformat.read(path, as_version=4)
    resubmitted.cells[-1].source += "\n# one more line"
    nbformat.write(resubmitted, tmp_path / "again.ipynb")
    other = sealed_calls(sealed(tmp_path / "again.ipynb", tmp_path, "ana")[0])
    assert body(runs["ana"], "hidden") and body(runs["ana"], "fresh")
    assert body(other, "fresh") != body(runs["ana"], "fresh") and body(other, "hidden") == body(runs["ana"], "hidden")


def test_sealed_inputs_travel_exactly():
    case = {"N": 2, "T": 3, "V": 5, "D": 4, "H": 3, "seed": 2 ** 127 + 3}
    for task in ("embedding_backward", "temporal_softmax_loss", "lstm_truncated_backward", "sample_next"):
        spec = {**case, "k": 2, "temperature": 0.5}
        inputs = TASKS[task].make_inputs(spec)
        back = wire.unseal_inputs(json.loads(json.dumps(wire.seal_inputs(inputs))))
        assert set(back) == set(inputs)
        for name, value in inputs.items():
            assert np.array_equal(back[name], value) and np.asarray(back[name]).dtype.kind == np.asarray(value).dtype.kind
    for bad in ({"x": {"dtype": "|O", "shape": [1], "data": ""}}, {"x": {"dtype": "<f8", "shape": [2], "data": "AAAA"}},
                {"x": [1, 2]}, {"x": {"dtype": "<f8", "shape": [10 ** 9], "data": ""}}):
        with pytest.raises(wire.WireError):
            wire.unseal_inputs(bad)


def test_a_sealed_check_outside_the_grader_refuses(monkeypatch):
    monkeypatch.delenv(probe.GRADING_ENV, raising=False)
    with pytest.raises(probe.CheckFailed, match="grader only"):
        probe.check("rnn_step_forward", sealed="{}")


def test_a_hidden_check_under_the_grader_runs_nothing(monkeypatch):
    monkeypatch.setenv(probe.GRADING_ENV, "1")
    with pytest.raises(probe.CheckFailed, match="grader only"):
        probe.check("rnn_step_forward", hidden=[{"N": 1, "D": 1, "H": 1}])


def test_the_instructors_check_runs_hidden_cases(tmp_path, monkeypatch):
    """In a source notebook, ``check(task, hidden=[specs])`` uses the references (entry point)."""
    from autograder.reference import rnn
    monkeypatch.delenv(probe.GRADING_ENV, raising=False)
    monkeypatch.setenv(secret.SECRET_ENV, str(tmp_path / "secret"))
    specs = [{"N": 4, "D": 7, "H": 3}, {"N": 1, "D": 1, "H": 6}]
    namespace = {"rnn_step_forward": rnn.rnn_step_forward}
    exec('check("rnn_step_forward", hidden=specs)', {**namespace, "check": probe.check, "specs": specs})
    wrong = {"rnn_step_forward": lambda x, h, Wx, Wh, b: (np.tanh(x @ Wx + b), None)}
    with pytest.raises(probe.CheckFailed, match=r"\[hidden case 1\] next_h: wrong") as failed:
        exec('check("rnn_step_forward", hidden=specs)', {**wrong, "check": probe.check, "specs": specs})
    assert "N=4" not in str(failed.value) and "recurrent term" in str(failed.value)


# ---------------------------------------------------------------- what a report may say

def error(message):
    return {"error": message}


KERNEL_WORDS = [
    f"raised ValueError: {TOKEN}",
    f"raised {TOKEN.replace('-', '_')}: boom",                 # an exception class named after the secret
    f"has dtype [('{TOKEN}', '<f8')], expected a float array",  # a structured dtype
    f"not convertible to an array ({TOKEN.replace('-', '_')})",
    f"rnn_step_forward must return a tuple of 2 values, got {TOKEN.replace('-', '_')}",
    "rnn_step_forward returned 7 values, expected 1",
    f"{TOKEN.replace('-', '_')} is not defined: run the cell that defines it",
]


@pytest.mark.parametrize("said", KERNEL_WORDS)
def test_hidden_reports_are_in_the_graders_words(said):
    case = secret.seeded(b"k" * 32, "hidden", "rnn_step_forward", {"N": 4, "D": 7, "H": 3})
    key = compare.case_key(case)
    for result in (error(said), {"outputs": {"next_h": said}, "modified": [TOKEN, "x"]},
                   {"outputs": {"next_h": {"dtype": said, "shape": [4, 3], "data": ""}}}):
        report = verify.grade_check("rnn_step_forward", [case], {key: result}, hidden=True)
        text = report.text()
        assert TOKEN not in text and TOKEN.replace("-", "_") not in text and "7" not in text, text
        assert report.passed == 0 and "[hidden case 1]" in text and "N=4" not in text


def test_only_python_and_numpy_exceptions_are_named():
    task = TASKS["rnn_step_forward"]
    assert compare.grader_error(task, "raised ZeroDivisionError: x") == \
        "raised ZeroDivisionError (the public cases show its message)"
    assert compare.grader_error(task, "raised LinAlgError: x").startswith("raised LinAlgError")
    assert compare.grader_error(task, "raised N4D7H3Seed1101: x") == \
        "raised an exception (the public cases show its message)"


def test_public_messages_quote_the_kernel_bounded_and_plain():
    case = TASKS["rnn_step_forward"].public[0]
    key = compare.case_key(case)
    said = ("raised ValueError: \x1b[31mred\x1b[0m\x07 and <script>x</script>" + "y" * 5000
            + "\n    line 3 in rnn_step_forward: raise ValueError(...)" * 40)
    report = verify.grade_check("rnn_step_forward", [case], {key: error(said)})
    message = report.failures[0][1]   # text() wraps it at 79 columns for the notebook
    assert " ".join(message.split()) == " ".join(report.text().split("] ", 1)[1].split())
    assert "raised ValueError: red" in message and len(message) <= compare.MAX_KERNEL_CHARS
    assert message.count("\n") < compare.MAX_KERNEL_LINES and not re.search(r"[\x00-\x1f\x7f](?<!\n)", message)
    names = verify.grade_check("rnn_step_forward", [case], {key: {
        "outputs": {"next_h": wire.encode(np.zeros((2, 4)))}, "modified": ["x", TOKEN]}}).text()
    assert "x" in names.split("note: ")[1] and TOKEN not in names


def test_a_cell_checked_alone_gives_hidden_specs_no_points():
    cell = ('check("rnn_step_forward")\n### BEGIN HIDDEN TESTS\n'
            'check("rnn_step_forward", hidden=[{"N": 1, "D": 1, "H": 1}])\n### END HIDDEN TESTS\n')
    public, hidden = verdict(cell, [])
    assert hidden.passed == 0 and hidden.total == 1 and "no result" in hidden.text()
    with pytest.raises(ValueError, match="no seed"):
        check_calls(cell.replace('"H": 1}', '"H": 1, "seed": 3}'))


def test_a_hidden_cells_results_go_back_to_its_test_cell_in_the_graders_words(tmp_path):
    """Results by their keys, a timeout noted; nothing the kernel printed reaches the report."""
    from nbformat.v4 import new_output
    nb, resources = sealed(REPO / "solutions" / "01_rnn" / "01_rnn.ipynb", tmp_path)
    fresh = resources["rnn_course_sealed"]["fresh"]
    hidden_cell = next(c for c in nb.cells if c.source.startswith(SEALED_MARK))
    gid = hidden_cell.source.split("\n", 1)[0].split()[-1]
    hidden_cell.outputs = [
        new_output("stream", name="stdout", text=TOKEN),
        new_output("display_data", data={wire.MIME: {"task": "rnn_step_forward", "results": {
            "h1.0": {"error": f"raised ValueError: {TOKEN}"}, "h1.1": {"error": TOKEN}}}}),
        new_output("error", ename="CellTimeoutError", evalue=TOKEN, traceback=[]),
    ]
    unseal(nb, resources)
    assert not any(c.source.startswith(SEALED_MARK) for c in nb.cells)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)
    assert "BEGIN HIDDEN TESTS" in cell.source and any(o.get("ename") == "CellTimeoutError" for o in cell.outputs)
    public, hidden = verdict(cell.source, cell.outputs, (secret.load(tmp_path / "secret"), fresh))
    text = public.text() + hidden.text()
    assert TOKEN not in text and hidden.passed == 0 and "raised ValueError (the public cases" in text
    assert "[hidden case 3] no result" in text and public.passed == 0   # no fresh twin ran: no point

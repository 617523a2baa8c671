"""No points for answers that do not generalise, and no hidden case read back (issue 19, items 3 and 5),
through the real batch on exercise 01.

* lookups of the kit's shipped expected outputs (through the kit's own loaded data, and
  copied into the notebook) score 0 and are flagged: every public case is rerun on fresh
  inputs of the same spec (autograder.preprocessors.SealTests);
* a backward pass by numerical differentiation of the student's forward is flagged;
  sympy cannot be imported;
* kernels that read their cell source, ``In`` or the execute request and try to get it
  out through an exception message, a dtype description, an exception class name, print
  output or a background thread (output and display updates), or that search for the
  seed of their inputs, get no hidden input into anything a student or an instructor sees;
* correct controls keep full marks, and the student's check() equals the grade on public cases.
"""
import hashlib
import json
import re
import textwrap

import nbformat
import numpy as np
import pytest
from ci import unavailable
from rnnkit.expected import ShippedData
from rnnkit.tasks import TASKS

from autograder import secret, verdicts
from autograder.preprocessors import check_calls
from autograder.sandbox import BLOCKED_MARKER, BLOCKED_PACKAGES, Sandbox
from submissions import grade_students, mutate, solution_cells, student_notebook

pytestmark = pytest.mark.xdist_group("test_generalise")   # its module-scoped fixture grades once: every test of the module on one worker

A = "01_rnn"
NB = f"{A}.ipynb"
SOL = solution_cells(A)
FORWARDS = ("rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward")

# ---------------------------------------------------------------- lookups of the shipped outputs

LOOKUP = '''
def _find(task, name, value):
    for inputs, outputs in _TABLE.get(task, []):
        if name in inputs and np.shape(inputs[name]) == np.shape(value) and np.allclose(inputs[name], value):
            return [np.asarray(o) for o in outputs]
    return None

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    out = _find("rnn_step_forward", "x", x)
    return (out[0] if out is not None else np.zeros_like(prev_h)), (x, prev_h)

def rnn_step_backward(dnext_h, cache):
    out = _find("rnn_step_backward", "dnext_h", dnext_h)
    return tuple(out) if out is not None else tuple(np.zeros(1) for _ in range(5))

def rnn_forward(x, h0, Wx, Wh, b):
    out = _find("rnn_forward", "x", x)
    return (out[0] if out is not None else np.zeros(x.shape[:2] + h0.shape[1:])), None

def rnn_backward(dh, cache):
    out = _find("rnn_backward", "dh", dh)
    return tuple(out) if out is not None else tuple(np.zeros(1) for _ in range(5))

def numerical_gradient(f, x, eps=1e-5):
    out = _find("numerical_gradient", "x", x)
    return out[0] if out is not None else np.zeros_like(x)
'''

LOOKUP_KIT = '''
import json
_data = check._shipped()      # the kit's own loaded data: expected.npz
_TABLE = {}
for _key in list(_data._records):
    _parts = _key.split("|")
    if len(_parts) == 2:
        _case = json.loads(_parts[1])
        _TABLE.setdefault(_parts[0], []).append((_data.inputs(_parts[0], _case), _data.outputs(_parts[0], _case)))
''' + LOOKUP


def lookup_embedded():
    """The lookup with a copy of the kit's data written into the notebook as literals."""
    data = ShippedData()
    table = {t: [({k: np.asarray(v).tolist() for k, v in data.inputs(t, c).items()},
                  [np.asarray(o).tolist() for o in data.outputs(t, c)]) for c in TASKS[t].public]
             for t in (*FORWARDS, "numerical_gradient")}
    return f"_TABLE = {json.dumps(table)}\n" + LOOKUP


def lookup_notebook(code):
    """Every solution cell of 01 emptied but the first, which holds the lookup."""
    return student_notebook(A, {gid: (code if gid == "rnn_step_forward" else "pass") for gid in SOL})


# ---------------------------------------------------------------- numerical differentiation

NUMERICAL_STEP = '''
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, b)
'''

NUMERICAL_STEP_BACKWARD = '''
def rnn_step_backward(dnext_h, cache):
    args = list(cache)
    grads = []
    for k in range(5):
        g = np.zeros_like(args[k])
        for i in range(g.size):
            old = args[k].flat[i]
            args[k].flat[i] = old + 1e-6
            up = np.sum(rnn_step_forward(*args)[0] * dnext_h)
            args[k].flat[i] = old - 1e-6
            down = np.sum(rnn_step_forward(*args)[0] * dnext_h)
            args[k].flat[i] = old
            g.flat[i] = (up - down) / 2e-6
        grads.append(g)
    return tuple(grads)
'''

NUMERICAL_BACKWARD = '''
def rnn_backward(dh, cache):
    x, h0, Wx, Wh, b = cache
    def through(k):
        def f(z):
            args = [x, h0, Wx, Wh, b]
            args[k] = z
            return np.sum(rnn_forward(*args)[0] * dh)
        return f
    return tuple(numerical_gradient(through(k), a, 1e-6) for k, a in enumerate(cache))
'''

NUMERICAL_FORWARD = mutate(SOL["rnn_forward"], "return h, cache", "return h, (x, h0, Wx, Wh, b)")

# ---------------------------------------------------------------- kernels that try to read hidden cases back

SPY = '''
import hashlib

_honest_step = rnn_step_forward

def _seen_text():
    """Whatever the kernel holds of the code it runs: the execute request and In."""
    text = ""
    try:
        ip = get_ipython()
        text += str(ip.kernel.get_parent().get("content", {}).get("code", ""))
    except Exception:
        pass
    try:
        text += "\\n".join(get_ipython().user_ns.get("In", []))
    except Exception:
        pass
    at = text.find("seal" + "ed=")
    return text[at:at + 60] if at >= 0 else ""

def _leak(x):
    return "LE" + "AK:" + hashlib.sha1(np.ascontiguousarray(x, dtype=np.float64).tobytes()).hexdigest()[:12] + _seen_text()
'''

CHANNELS = {
    "leak_exception": '''
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    raise ValueError(_leak(x))
''',
    "leak_dtype": '''
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    return np.zeros(prev_h.shape[0], dtype=[(_leak(x)[:100], "<f8")]), None
''',
    "leak_exception_name": '''
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    raise type("LE" + "AK_" + re.sub(r"\\W", "_", _leak(x)[5:]), (Exception,), {})("boom")
''',
    "leak_print": '''
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    print(_leak(x))
    return _honest_step(x, prev_h, Wx, Wh, b)
''',
    "leak_thread": '''
import threading, time
from IPython.display import display
_handle = display("watching", display_id=True)
_calls = []

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    _calls.append(_leak(x))
    return _honest_step(x, prev_h, Wx, Wh, b)

def _spy():
    while True:
        if _calls:
            print(_calls[-1])
            _handle.update(_calls[-1])
        time.sleep(0.01)

threading.Thread(target=_spy, daemon=True).start()
''',
    "seed_search": '''
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    for s in list(range(8)) + list(range(1100, 1600)):   # the public seeds, and where hidden ones were
        if x.shape[0] * x.shape[1] < 64 and np.array_equal(np.random.default_rng(s).standard_normal(x.shape), x):
            raise ValueError("SE" + f"ED={s}")
    return _honest_step(x, prev_h, Wx, Wh, b)
''',
}


def spy_notebook(channel):
    code = SOL["rnn_step_forward"] + "\n\nimport re\n" + textwrap.dedent(SPY) + textwrap.dedent(CHANNELS[channel])
    return student_notebook(A, {"rnn_step_forward": code})


STUDENTS = {
    "solution": student_notebook(A),
    "lookup_kit": lookup_notebook(LOOKUP_KIT),
    "lookup_embedded": lookup_notebook(lookup_embedded()),
    "numerical": student_notebook(A, {"rnn_step_forward": NUMERICAL_STEP,
                                      "rnn_step_backward": NUMERICAL_STEP_BACKWARD,
                                      "rnn_forward": NUMERICAL_FORWARD, "rnn_backward": NUMERICAL_BACKWARD}),
    "sympy": student_notebook(A, {"rnn_step_backward": "import sympy\n\n" + SOL["rnn_step_backward"]}),
    **{channel: spy_notebook(channel) for channel in CHANNELS},
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    missing = Sandbox().problems()
    if missing:
        unavailable(f"the grading sandbox is incomplete on this machine ({'; '.join(missing)})", "run as root with bubblewrap: bash scripts/system-deps.sh")
    course, outcomes, rows = grade_students(tmp_path_factory.mktemp("generalise"), A, STUDENTS, workers=2)
    flags = {s: verdicts.review_flags(course, s, A) for s in STUDENTS}
    return {"course": course, "rows": rows, "flags": flags, "outcomes": outcomes}


def seen_by(course, student):
    """Everything of a student's grading that a student or an instructor reads as text:
    the feedback page, and the autograded notebook's outputs and review flags."""
    page = (course / "feedback" / student / A / f"{A}.html").read_text()
    nb = nbformat.read(course / "autograded" / student / A / NB, as_version=4)
    return page + json.dumps([c.get("outputs", []) for c in nb.cells]) + json.dumps(nb.metadata.get("rnn_course", {}))


def fingerprint(x):
    return hashlib.sha1(np.ascontiguousarray(x, dtype=np.float64).tobytes()).hexdigest()[:12]


def hidden_fingerprints(course):
    """Fingerprints of every array rnn_step_forward receives as ``x`` in the hidden cases of 01."""
    key = secret.load(course / ".rnn-course" / "secret")
    source = nbformat.read(course / "source" / A / NB, as_version=4)
    found = set()
    for cell in source.cells:
        if "BEGIN HIDDEN" not in cell.source:
            continue
        for call in check_calls(cell.source):
            if not call.hidden or call.task not in FORWARDS:
                continue
            for spec in call.cases:
                x = TASKS[call.task].make_inputs(secret.seeded(key, "hidden", call.task, spec))["x"]
                found |= {fingerprint(x)} if x.ndim == 2 else \
                    {fingerprint(x[:, t]) for t in range(x.shape[1])}
    assert len(found) > 10
    return found


def test_correct_solution_keeps_full_marks(graded):
    assert graded["rows"]["solution"]["score"] == 10 and graded["flags"]["solution"] == []


@pytest.mark.parametrize("student", ["lookup_kit", "lookup_embedded"])
def test_lookups_of_the_shipped_outputs_earn_nothing_and_are_flagged(graded, student):
    row, flags = graded["rows"][student], graded["flags"][student]
    assert row["score"] == 0, verdicts.failures(graded["course"], student, A)
    assert any("answers that do not generalise" in f for f in flags), flags
    failures = "\n".join(verdicts.failures(graded["course"], student, A))
    assert "wrong on fresh inputs of the same shapes" in failures


def test_backward_by_numerical_differentiation_is_flagged(graded):
    flags = graded["flags"]["numerical"]
    for function in ("rnn_step_backward", "rnn_backward"):
        assert any(f.startswith(f"backward pass by numerical differentiation: {function}") for f in flags), flags


def test_sympy_cannot_be_imported(graded):
    assert "sympy" in BLOCKED_PACKAGES
    assert BLOCKED_MARKER in seen_by(graded["course"], "sympy")
    assert graded["rows"]["sympy"]["score"] < 10
    assert any("imports a module the exercises do not use" in f for f in graded["flags"]["sympy"])


@pytest.mark.parametrize("student", [*CHANNELS, "solution"])
def test_no_hidden_input_is_read_back(graded, student):
    course = graded["course"]
    text = seen_by(course, student)
    leaked = [fp for fp in hidden_fingerprints(course) if fp in text]
    assert not leaked, f"{student}: hidden inputs in what people read ({len(leaked)})"
    # the sealed hidden cells never reach text (the fresh twins' may: they are this submission's own)
    assert not re.search(r"grader's sealed cases \w+ hidden|\"h\d+\.\d+", text)
    source = (course / "source" / A / NB).read_text()
    specs = re.findall(r"\{[^{}]+\}", "".join(re.findall(r"BEGIN HIDDEN TESTS(.*?)END HIDDEN TESTS", source, re.S)))
    assert specs and not any(spec in text for spec in specs)


def test_public_cases_still_quote_the_kernel(graded):
    """The channels are real: before any hidden input, a public case's message is the kernel's."""
    course = graded["course"]
    public = TASKS["rnn_step_forward"].make_inputs(TASKS["rnn_step_forward"].public[0])["x"]
    page = (course / "feedback" / "leak_exception" / A / f"{A}.html").read_text()
    assert f"LEAK:{fingerprint(public)}" in page
    assert "SEED=0" in "\n".join(verdicts.failures(course, "seed_search", A))


def test_a_seed_search_finds_only_the_public_seeds(graded):
    course = graded["course"]
    said = set(re.findall(r"SEED=\d+", seen_by(course, "seed_search")))
    assert said and said <= {"SEED=0", "SEED=1"}, said
    # the search fails on every hidden case: the honest forward runs there and earns its points
    row = graded["rows"]["seed_search"]
    assert row["cells"]["test_rnn_step_forward"] > 0, verdicts.failures(course, "seed_search", A)

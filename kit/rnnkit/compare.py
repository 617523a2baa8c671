"""The comparison and the report: one code for the student's check() and the grader.

A caller supplies the expected outputs through ``expected(task, case)``, which
returns ``(outputs, probes)``: the task's outputs as float64 arrays, and a
function that returns ``{probe name: outputs}`` when a diagnosis needs them.
On a student's machine they come from the data shipped with the kit
(:mod:`rnnkit.expected`); in the grader's process from the references.
"""
import builtins
import json
import re
import textwrap
from dataclasses import dataclass, field

import numpy as np

from . import wire
from .conventions import ATOL, GATE_NAMES, GATES, RTOL
from .tasks import TASKS

NO_RESULT = ("no result: the test did not run to the end "
             "(cell skipped, edited, or the kernel stopped)")


def case_key(case):
    """Stable name of a case, identical in the kernel and in the grader."""
    return json.dumps(case, sort_keys=True)


#: Said of a function that changed its inputs: reported, never scored. Whether it did is
#: known only inside the student's kernel, and nothing the kernel says decides a point.
MODIFIED = "modified its inputs in place"
NOT_SCORED = "(not scored, but your instructor sees it)"
#: How to stop changing inputs in place, said after the names of the changed inputs.
IN_PLACE_FIX = "compute new arrays (a = a * s, not a *= s) or work on a copy (a = a.copy())"

#: Width of a report's lines: an 80-column notebook shows each without a break mid-word.
WIDTH = 79


@dataclass
class CheckReport:
    """Outcome of one ``check(task, cases)`` call: passed/total units, what failed, what to know."""
    task: str
    passed: int = 0
    total: int = 0
    failures: list = field(default_factory=list)   # (case description, message): cost units
    notes: list = field(default_factory=list)      # (case description, message): cost nothing
    lost: set = field(default_factory=set)         # (case index, output name) of every lost unit

    def text(self):
        head = f"{self.task}: {self.passed}/{self.total} checks passed"
        return "\n".join([head] + [wrap(f"  [{case}] {msg}") for case, msg in self.failures]
                         + [wrap(f"  [{case}] note: {msg}") for case, msg in self.notes])


def wrap(text):
    """Each line of ``text`` folded at word boundaries to :data:`WIDTH` columns, the
    continuation indented under the message; a word longer than a line stays whole."""
    lines = []
    for line in text.splitlines() or [""]:
        indent = " " * (len(line) - len(line.lstrip()) + 4)
        lines.append(textwrap.fill(line, WIDTH, subsequent_indent=indent, break_long_words=False,
                                   break_on_hyphens=False, drop_whitespace=True) or line)
    return "\n".join(lines)


def error_ratio(got, expected):
    """Largest |got - expected| in units of the course tolerance (<= 1 passes)."""
    return float(np.max(np.abs(got - expected) / (ATOL + RTOL * np.abs(expected)), initial=0.0))


#: Bounds of a kernel's own words (an exception's message and its lines) in a report.
MAX_KERNEL_CHARS = 400
MAX_KERNEL_LINES = 5


def plain(text):
    """A kernel's message made inert and bounded: printable characters only (no escape
    sequences, no control or format characters), at most MAX_KERNEL_LINES lines and
    MAX_KERNEL_CHARS characters."""
    text = re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]", "", str(text)[:4 * MAX_KERNEL_CHARS])
    lines = ["".join(ch if ch.isprintable() else " " for ch in line).rstrip()
             for line in text.splitlines()[:MAX_KERNEL_LINES]]
    text = "\n".join(lines)
    return text if len(text) <= MAX_KERNEL_CHARS else text[:MAX_KERNEL_CHARS - 3] + "..."


def grade_check(task_name, cases, results, expected, hidden=False, kernel_text=True):
    """Compare the results of one check() call with the expected outputs.

    ``results`` maps case keys (and ``key|probe``) to what the kernel returned:
    ``{"outputs": {name: wire payload}, "modified": [...]}`` or ``{"error": msg}``.
    One unit per output per case. A function that changed its inputs earns a note
    (:data:`MODIFIED`), not a lost unit: only its kernel knows, and the kernel is not
    trusted with points. ``hidden`` cases are reported without their shapes, by number
    ("hidden case 2"); a hint from the probes is the grader's own words. ``kernel_text``: whether the kernel's own words
    (an exception's message, a type's name) may be quoted, bounded (:func:`plain`); when
    not (hidden cases, cases run once hidden inputs were in the kernel), every word of
    the report is the grader's (:func:`grader_error`). For a layer with stand-ins
    (:attr:`rnnkit.tasks.Task.standins`) a unit is right if the case's own run or its run
    with the stand-ins (``key|standin``, compared with ``probes()[STANDIN]``) is right: a
    mistake in the function the layer calls costs that function's points only.
    """
    task = TASKS[task_name]
    kernel_text = kernel_text and not hidden
    report = CheckReport(task_name)
    broken = {} if hidden else broken_dependencies(task, results, expected)
    # a given cache comes from the reference forward: the student's forward explains nothing here
    given = getattr(task.derive, "forward", None)
    feeding = [name for name in broken if given not in (name, *TASKS[name].needs)]
    # the functions a stand-in run replaces that fail their own checks
    inner = [name for name in replaced(task) if any(name in TASKS[dep].needs for dep in feeding)]
    rescued = []   # where the stand-in run made a wrong own run's units right
    for i, case in enumerate(cases):
        key, where = case_key(case), f"hidden case {i + 1}" if hidden else task.describe(case)
        units = len(task.outputs)
        report.total += units
        result = results.get(key)
        if not isinstance(result, dict) or not ("error" in result or isinstance(result.get("outputs"), dict)):
            report.failures.append((where, NO_RESULT))
            report.lost |= {(i, name) for name in task.outputs}
            continue
        if "error" in result:
            right = standin_right(task, case, results, expected)
            rescued += [where] if right else []
            lost = {(i, name) for name in task.outputs if name not in right}
            if lost:
                report.failures.append((where, plain(result["error"]) if kernel_text
                                        else grader_error(task, result["error"])))
            report.lost |= lost
            report.passed += units - len(lost)
            continue
        want, probes = expected(task, case)
        wrong = []
        for name, value in zip(task.outputs, want):
            problem = compare(task, name, result["outputs"].get(name), value, not kernel_text)
            if problem:
                wrong.append((name, problem + _holds(task, name, result["outputs"].get(name), want)))
        if wrong and task.standins:
            right = standin_right(task, case, results, expected)
            rescued += [where] if right & {name for name, _ in wrong} else []
            wrong = [(name, problem) for name, problem in wrong if name not in right]
        if wrong:
            if task.standins and inner:   # the probes ran with the wrong inner function: not said
                hint = (f"; wrong with a stand-in {_listed(task.standins)} too, so {task.needs[0]} itself "
                        f"is wrong; {_listed(inner)} also {_fails(inner)}")
            elif feeding and not task.standins:   # with stand-ins, both runs wrong: the layer itself is
                hint = depends_hint(task, feeding)
            else:
                hint = diagnose(task, case, results, key, probes, dict(wrong))
            for name, problem in wrong:
                label = f"{task.labels[name]} differs: " if name in task.labels else ""
                report.failures.append((where, f"{name}: {label}{problem}{hint}"))
        report.lost |= {(i, name) for name, _ in wrong}
        modified = _input_names(task, case, result.get("modified"))
        if modified:
            report.notes.append((where, f"{MODIFIED}: {', '.join(modified)} {NOT_SCORED}: {IN_PLACE_FIX}"
                                 if kernel_text else f"{MODIFIED} {NOT_SCORED}: {IN_PLACE_FIX}"))
        report.passed += units - len(wrong)
    if rescued:
        report.notes.append((rescued[0], standin_note(task, results, broken, inner, not report.lost)))
        broken = {name: said for name, said in broken.items() if not set(TASKS[name].needs) & set(inner)}
    if broken and cases and report.passed == report.total:
        report.notes.append((task.describe(cases[0]), f"your {task.name} is right; {_listed(broken)} "
                             f"{_fails(broken)}: fix {'them' if len(broken) > 1 else 'it'} first"
                             + "".join(f" ({broken[name]})" for name in broken if broken[name])))
    return report


#: Result key suffix of a case's run with stand-ins, and its expected outputs' name among
#: the probes' (:attr:`rnnkit.tasks.Task.standins`).
STANDIN = "standin"


def standin_key(key):
    """Result key of the stand-in run of case ``key``."""
    return f"{key}|{STANDIN}"


def replaced(task):
    """The functions a stand-in run of ``task`` replaces: its stand-ins and, through them,
    what those call (a stand-in rnn_forward replaces the student's rnn_step_forward too)."""
    names, todo = [], list(task.standins)
    while todo:
        name = todo.pop(0)
        if name not in names:
            names.append(name)
            todo += TASKS[name].standins if name in TASKS else ()
    return names


def standin_right(task, case, results, expected):
    """The outputs of ``case`` that its stand-in run got right (compared with the expected
    outputs of the reference layer built on the stand-ins): a set of output names."""
    result = results.get(standin_key(case_key(case)))
    if not task.standins or not isinstance(result, dict) or not isinstance(result.get("outputs"), dict):
        return set()
    want = expected(task, case)[1]().get(STANDIN)
    if want is None:
        return set()
    return {name for name, value in zip(task.outputs, want)
            if compare(task, name, result["outputs"].get(name), value, True) is None}


def _listed(names):
    return " and ".join(names)


def _fails(names):
    return f"{'fail' if len(names) > 1 else 'fails'} {'their' if len(names) > 1 else 'its'} own check"


def standin_note(task, results, broken, inner, everywhere):
    """Said once of a layer whose units a stand-in run made right: its chaining is right
    (``everywhere``: on every case, else where said), and what is known of the function it
    calls (``inner``: those failing their own check). Only the binding of those names
    differs between the two runs."""
    names = _listed(task.standins)
    if not everywhere:
        return (f"right here with a stand-in {names}, wrong with yours"
                + (f": {_listed(inner)} {_fails(inner)}" if inner else ""))
    if inner:
        return (f"your {task.needs[0]} chains {names} right (checked with a stand-in {names}); its "
                f"outputs are wrong because {_listed(inner)} {_fails(inner)}: fix "
                f"{'them' if len(inner) > 1 else 'it'} first")
    checks = [dep for dep in task.depends if set(TASKS[dep].needs) & set(replaced(task))]
    passing = checks and all(dep not in broken and isinstance((results.get(depends_key(dep)) or {}).get("outputs"),
                                                               dict) for dep in checks)
    said = " although it passes its own check" if passing else ""
    return (f"{task.needs[0]} is right with a stand-in {names}, wrong with yours{said}: look at what "
            f"your {names} does with these inputs")


def _holds(task, name, payload, want):
    """For an output that is an element of a cache (:attr:`Task.labels`): which other output's
    right value it holds (elements out of order, h_t stored for h_{t-1}), if one."""
    if name not in task.labels or payload is None:
        return ""
    try:
        got = wire.decode(payload)
    except wire.WireError:
        return ""
    for other, value in zip(task.outputs, want):
        if other != name and value.shape == got.shape and error_ratio(got, value) <= 1:
            return f"; it holds {task.labels.get(other, f'the right {other}')}"
    return ""


def depends_key(name):
    """Result key of the run of a task's dependency ``name`` (on that task's first public case)."""
    return f"depends|{name}"


def broken_dependencies(task, results, expected):
    """The functions of :attr:`Task.depends` that fail their first public case, each with
    what differs in a cache it returns ("" if no cache element or none): reported so that
    one mistake is fixed where it is (the kernel ran them; its word decides no point).
    A dependency with stand-ins fails by the same rule as its own check (:func:`standin_right`)."""
    broken = {}
    for name in task.depends:
        result = results.get(depends_key(name))
        if not isinstance(result, dict):
            continue
        dep, case = TASKS[name], TASKS[name].public[0]
        outputs = result.get("outputs")
        wrong = [n for n, w in zip(dep.outputs, expected(dep, case)[0]) if compare(dep, n, outputs.get(n), w, True)] \
            if isinstance(outputs, dict) else list(dep.outputs)
        if wrong and dep.standins:
            right = standin_right(dep, case, {standin_key(case_key(case)): results.get(standin_key(depends_key(name)))},
                                  expected)
            wrong = [n for n in wrong if n not in right]
        if wrong and not isinstance(outputs, dict):
            broken[name] = ""
        elif wrong:
            cache = [dep.labels[n] for n in wrong if n in dep.labels]
            broken[name] = f"its {cache[0]} differs" if len(cache) == 1 else \
                f"{len(cache)} elements of its cache differ, the first {cache[0]}" if cache else ""
    return broken


def depends_hint(task, broken):
    listed = _listed(broken)
    return f"; it uses {listed}, which {_fails(broken)}: fix {listed} first"


def _input_names(task, case, said):
    """The inputs a kernel said its function changed, among the case's real input names."""
    if not said or not isinstance(said, list):
        return []
    names = set(task.make_inputs(case)) | set(getattr(task.derive, "names", ())) if "seed" in case else set()
    return sorted(name for name in said if isinstance(name, str) and name in names)


#: What may be said of an error the kernel reported, in the grader's words: the kernel's
#: fixed messages (see rnnkit.probe, rnnkit.tasks), recognised, then said again by the grader.
KNOWN_ERRORS = (
    (r"not implemented yet \(raises NotImplementedError\)", "not implemented yet (raises NotImplementedError)"),
    (r"[\w, ]+ is not defined: run the cell that defines it",
     "a function it needs is not defined: run the cell that defines it"),
    (r"\w+ returned \d+ values, expected \d+", "returned the wrong number of values"),
    (r"[\w ]+ must return a tuple of \d+ values, got [\w ]+", "does not return the documented tuple"),
    (r"results were sent more than once", "results were sent more than once"),
    (r"\w+'s cache[\[\]\w]* (must be|changes shape)[^\n]*",
     "returns a cache without the course's layout (the public cases show how)"),
)

#: Exceptions whose names the grader may repeat: Python's own and numpy's.
KNOWN_EXCEPTIONS = frozenset(name for name, obj in vars(builtins).items()
                             if isinstance(obj, type) and issubclass(obj, BaseException)) \
    | {"LinAlgError", "AxisError", "ComplexWarning", "CheckFailed", "StudentError", "WireError"}


def grader_error(task, message):
    """What the grader says of an error on a case whose report may not quote the kernel:
    a known message in its own words, or the exception's name if Python or numpy defines it."""
    message = str(message)
    for pattern, said in KNOWN_ERRORS:
        if re.fullmatch(pattern, message):
            return said
    raised = re.match(r"raised (\w{1,40})", message)
    if raised and raised.group(1) in KNOWN_EXCEPTIONS:
        return f"raised {raised.group(1)} (the public cases show its message)"
    if raised:
        return "raised an exception (the public cases show its message)"
    return "failed (the public cases show the details)"


def compare(task, name, payload, want, hidden=False):
    """None if ``payload`` matches ``want``; otherwise what is wrong, in words: for ``hidden``
    cases (or any whose report may not quote the kernel) no shapes and no kernel text."""
    if payload is None:
        return "missing"
    try:
        got = wire.decode(payload)
    except wire.WireError as exc:
        return "is not a float array of a possible shape" if hidden else plain(exc)
    if got.shape != want.shape:
        if hidden:
            return "has the wrong shape"
        transposed = got.ndim == 2 and got.shape == want.shape[::-1] and error_ratio(got.T, want) <= 1
        return f"has shape {got.shape}, expected {want.shape}" + (
            f": it is the transpose of the right {name}" if transposed else "")
    if not np.all(np.isfinite(got)):
        return "contains NaN or inf"
    ratio = error_ratio(got, want)
    if ratio <= 1.0:
        return None
    if name in task.ids:
        return _ids(got, want, hidden)
    where = []
    if got.ndim == 2 and got.shape[0] == got.shape[1] > 1 and error_ratio(got.T, want) <= 1:
        where.append(f"it is the transpose of the right {name}")
    gates = GATES[task.kind]
    if name in task.gated and len(gates) > 1:
        where.append(_blocks(gates, np.split(got, len(gates), -1), np.split(want, len(gates), -1)))
    if name in task.stepped and want.shape[0] > 1:
        bad = [t for t in range(want.shape[0]) if error_ratio(got[t], want[t]) > 1]
        good = [t for t in range(want.shape[0]) if t not in bad]
        where.append(f"wrong at {_steps(bad)}, right at {_steps(good)}" if good else "wrong at every time step")
        if error_ratio(got[:-1], want[1:]) <= 1:
            where.append("at step t it holds the right value of step t+1, one step early")
        elif error_ratio(got[1:], want[:-1]) <= 1:
            where.append("at step t it holds the right value of step t-1, one step late")
        elif error_ratio(got[::-1], want) <= 1:
            where.append("its steps are in reverse order")
    if name in task.timed and want.shape[1] > 1:
        bad = [t for t in range(want.shape[1]) if error_ratio(got[:, t], want[:, t]) > 1]
        good = [t for t in range(want.shape[1]) if t not in bad]
        where.append(f"wrong at {_steps(bad)}, right at {_steps(good)}" if good else "wrong at every time step")
        where.extend(_shift(name, got, want))
    return (", ".join(where) if where else "wrong") + f" (error {ratio:.2g}x the tolerance)"


def _blocks(gates, got, want):
    """Which gate blocks are wrong, and whether two of them are each other's."""
    bad = [k for k in range(len(gates)) if error_ratio(got[k], want[k]) > 1]
    said = "wrong in the " + ", ".join(f"{GATE_NAMES[gates[k]]} ({gates[k]})" for k in bad) + " block"
    swapped = [(a, b) for a in bad for b in bad if a < b
               and error_ratio(got[a], want[b]) <= 1 and error_ratio(got[b], want[a]) <= 1]
    for a, b in swapped:
        said += (f": the {gates[a]} and {gates[b]} blocks are swapped (the order of the blocks "
                 f"is {', '.join(gates)})")
    return said


def _shift(name, got, want):
    """Index t of a time axis holding the expected value of step t - 1 (late) or t + 1 (early)."""
    if error_ratio(got[:, 1:], want[:, :-1]) <= 1:
        return [f"{name}[:, t] holds the right {name}[:, t-1], one step late: store each step's "
                f"result after computing it"]
    if error_ratio(got[:, :-1], want[:, 1:]) <= 1:
        return [f"{name}[:, t] holds the right {name}[:, t+1], one step early: step t's result "
                f"goes to index t"]
    return []


#: At most this many ids of a case are quoted in a report.
MAX_IDS = 10


def _ids(got, want, hidden):
    """Wrong integer ids, as got against expected (public cases) or as a count (hidden ones)."""
    got, want = np.rint(got).astype(np.int64).ravel(), np.rint(want).astype(np.int64).ravel()
    wrong = int(np.sum(got != want))
    if hidden:
        return f"{wrong} of {want.size} ids wrong"
    more = " ..." if want.size > MAX_IDS else ""
    return (f"got ids {got[:MAX_IDS].tolist()}{more}, expected {want[:MAX_IDS].tolist()}{more} "
            f"({wrong} of {want.size} wrong)")


def _steps(steps):
    """[0, 1, 2, 4] -> 't=0..2, 4'."""
    runs, start = [], steps[0]
    for a, b in zip(steps, steps[1:] + [None]):
        if b != a + 1:
            runs.append(f"{start}" if start == a else f"{start}..{a}")
            start = b
    return "t=" + ", ".join(runs)


def diagnose(task, case, results, key, probes, wrong):
    """A hint from the probe runs, the same for every wrong output: where the bug is.

    ``wrong`` maps the wrong outputs to their problems. Prefix probes find the first
    time step without which the sequence is right; the cells' own probes
    (:attr:`Task.hint`) separate gates, or the input and the recurrent term.
    """
    expected = {probe: outputs for probe, outputs in probes().items() if probe != STANDIN}
    ran = {probe: results.get(f"{key}|{probe}") for probe in expected}
    ran = {probe: r for probe, r in ran.items() if isinstance(r, dict) and ("outputs" in r or "error" in r)}
    if not ran:   # hidden cases run no probes: nothing is known of where the bug is
        return ""
    bad = []
    for probe, outputs in expected.items():
        result = ran.get(probe, {})
        want = dict(zip(task.outputs, outputs))
        compared = task.probe_outputs.get(probe, task.outputs)
        if not isinstance(result.get("outputs"), dict) or any(
                compare(task, n, result["outputs"].get(n), want[n]) for n in compared):
            bad.append(probe)
    if next(iter(expected)).startswith("prefix"):
        return _prefix_hint(case["T"], bad)
    return task.hint(bad, wrong) if task.hint else ""


def _prefix_hint(T, bad):
    """Prefix k is the sequence cut after k steps: the first wrong one names the step that matters."""
    first = min((int(p[len("prefix"):]) for p in bad), default=T)
    if first == 1:
        return "; step t=0 alone is already wrong"
    steps = "step t=0 alone is" if first == 2 else f"steps t=0..{first - 2} alone are"
    return f"; {steps} right: the bug shows once step t={first - 1} is included"

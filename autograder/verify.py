"""Verification in the grader's process: student results against the references.

Used twice with the same code: by :func:`autograder.probe.check` on a student's
machine, and by the :class:`~autograder.preprocessors.VerifyResults` nbgrader
preprocessor at grading time, where the results come out of the sandboxed kernel
as data and the references are computed here, from the case specs in the
instructor's test cell.
"""
from dataclasses import dataclass, field

import numpy as np

from . import wire
from .conventions import ATOL, GATE_NAMES, GATES, RTOL
from .probe import case_key
from .reference import gru, long_term, lstm, rnn
from .tasks import TASKS, copy_inputs

REFERENCES = {name: obj for module in (rnn, lstm, gru, long_term)
              for name, obj in vars(module).items() if callable(obj)}


@dataclass
class CheckReport:
    """Outcome of one ``check(task, cases)`` call: passed/total units and what failed."""
    task: str
    passed: int = 0
    total: int = 0
    failures: list = field(default_factory=list)   # (case description, message)

    def text(self):
        head = f"{self.task}: {self.passed}/{self.total} checks passed"
        return "\n".join([head] + [f"  [{case}] {msg}" for case, msg in self.failures])


def error_ratio(got, expected):
    """Largest |got - expected| in units of the course tolerance (<= 1 passes)."""
    return float(np.max(np.abs(got - expected) / (ATOL + RTOL * np.abs(expected)), initial=0.0))


def reference_outputs(task, inputs):
    """The task's outputs computed by the references, as float64 arrays."""
    return [np.asarray(out, dtype=np.float64) for out in task.run(REFERENCES, copy_inputs(inputs))]


def grade_check(task_name, cases, results):
    """Compare the results of one check() call with the references.

    ``results`` maps case keys (and ``key|probe``) to what the kernel returned:
    ``{"outputs": {name: wire payload}, "modified": [...]}`` or ``{"error": msg}``.
    One unit per output per case, plus one per case for leaving inputs untouched.
    """
    task = TASKS[task_name]
    report = CheckReport(task_name)
    for case in cases:
        key, where = case_key(case), task.describe(case)
        inputs = task.make_inputs(case)
        expected = reference_outputs(task, inputs)
        units = len(task.outputs) + 1
        report.total += units
        result = results.get(key)
        if result is None:
            report.failures.append((where, "no result: the test did not run to the end "
                                           "(cell skipped, edited, or the kernel stopped)"))
            continue
        if "error" in result:
            report.failures.append((where, result["error"]))
            continue
        wrong = []
        for name, want in zip(task.outputs, expected):
            problem = _compare(task, name, result["outputs"].get(name), want)
            if problem:
                wrong.append((name, problem))
        if wrong:
            details = _diagnose(task, case, inputs, results, key, [n for n, _ in wrong])
            for name, problem in wrong:
                report.failures.append((where, f"{name}: {problem}{details.get(name, '')}"))
        modified = result.get("modified") or []
        if modified:
            report.failures.append((where, f"modified its inputs in place: {', '.join(modified)}"))
        report.passed += units - len(wrong) - (1 if modified else 0)
    return report


def _compare(task, name, payload, want):
    """None if ``payload`` matches ``want``; otherwise what is wrong, in words."""
    if payload is None:
        return "missing"
    try:
        got = wire.decode(payload)
    except wire.WireError as exc:
        return str(exc)
    if got.shape != want.shape:
        return f"has shape {got.shape}, expected {want.shape}"
    if not np.all(np.isfinite(got)):
        return "contains NaN or inf"
    ratio = error_ratio(got, want)
    if ratio <= 1.0:
        return None
    where = []
    if name in task.gated and len(GATES[task.kind]) > 1:
        bad = [g for g, a, b in zip(GATES[task.kind], np.split(got, len(GATES[task.kind]), -1),
                                    np.split(want, len(GATES[task.kind]), -1)) if error_ratio(a, b) > 1]
        where.append("wrong in the " + ", ".join(f"{GATE_NAMES[g]} ({g})" for g in bad) + " block")
    if name in task.timed and want.shape[1] > 1:
        first = next(t for t in range(want.shape[1]) if error_ratio(got[:, t], want[:, t]) > 1)
        where.append(f"first wrong at t={first}")
    return (", ".join(where) if where else "wrong") + f" (error {ratio:.2g}x the tolerance)"


def _diagnose(task, case, inputs, results, key, wrong_outputs):
    """Extra hints from the probe runs: the first time step, or the gate, that goes wrong."""
    probes = task.probes(case, inputs)
    if not probes:
        return {}
    bad = []
    for probe, probe_inputs in probes.items():
        result = results.get(f"{key}|{probe}") or {}
        if "outputs" not in result:
            continue
        expected = dict(zip(task.outputs, reference_outputs(task, probe_inputs)))
        compared = task.probe_outputs.get(probe, task.outputs)
        if any(_compare(task, n, result["outputs"].get(n), expected[n]) for n in compared):
            bad.append(probe)
    if not bad and any(p.startswith("prefix") for p in probes):
        t = case["T"] - 1
        return {name: f"; from t={t} (shorter sequences are right)" for name in wrong_outputs}
    if bad and bad[0].startswith("prefix"):
        t = int(bad[0][len("prefix"):]) - 1
        return {name: f"; from t={t}" for name in wrong_outputs}
    gates = [p[len("gate_"):] for p in bad if p.startswith("gate_")]
    if "g" in gates and "f" in gates:
        gates.remove("f")  # the forget-gate probe assumes a right candidate (tanh(0) = 0)
    if gates:
        hint = "; the " + " and the ".join(GATE_NAMES[g] for g in gates) + (" look" if len(gates) > 1 else " looks") + " wrong"
    elif "recurrent" in bad:
        hint = "; the recurrent term h_{t-1} @ Wh looks wrong"
    else:
        return {}
    return {name: hint for name in wrong_outputs}

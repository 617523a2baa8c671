"""What the hidden tests of an assignment are, read from its source notebook: the one place that knows
their format (``### BEGIN HIDDEN TESTS`` regions of test cells calling ``check(task, hidden=[...])``,
specs such as ``{'N': 4, 'D': 7, 'H': 3}`` without seeds: the grader seeds them from the course's
secret, autograder/secret.py).

Every leak check of the suite asks this module what must never be shown. It fails loudly when an
assignment yields nothing: a check looking for nothing can never fail.
"""
import ast
import functools
import re
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent

REGION = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)


def source_cells(assignment):
    nb = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") and "BEGIN HIDDEN TESTS" in c.source]


def regions(assignment):
    """The text of every hidden-test region of ``assignment``'s test cells."""
    found = [region for cell in source_cells(assignment) for region in REGION.findall(cell.source)]
    assert found, f"{assignment}: no '### BEGIN HIDDEN TESTS' region found in solutions/ (format changed?)"
    return found


@functools.lru_cache(maxsize=None)
def hidden_cases(assignment):
    """[(task, spec dict)] of every hidden case: every ``check(task, hidden=[...])`` in a hidden region."""
    cases = []
    for region in regions(assignment):
        for node in ast.walk(ast.parse(region)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "check":
                task = ast.literal_eval(node.args[0])
                listed = [kw.value for kw in node.keywords if kw.arg == "hidden"]
                cases += [(task, case) for value in listed for case in ast.literal_eval(value)]
    assert cases and not any("seed" in c for _, c in cases), \
        f"{assignment}: no hidden case (check(task, hidden=[...]) without seeds) in its hidden regions (format changed?)"
    return tuple(cases)


def flat(text):
    """``text`` without white space and quotes: how a spec is recognised however it was printed."""
    return re.sub(r"[\s'\"]", "", text)


def spec_text(spec):
    """A hidden spec as :func:`flat` text: ``{N:4,D:7,H:3}``."""
    return "{" + ",".join(f"{k}:{v}" for k, v in spec.items()) + "}"


def hidden_specs(assignment):
    """The :func:`spec_text` of ``assignment``'s hidden cases (never empty)."""
    return sorted({spec_text(case) for _, case in hidden_cases(assignment)})


def shown_specs(text, specs):
    """Which of ``specs`` (:func:`spec_text` forms) ``text`` shows."""
    flattened = flat(text)
    return [spec for spec in specs if spec in flattened]


def hidden_lines(assignment, shortest=9):
    """Lines of the hidden regions long enough to be telling (never empty)."""
    lines = [line.strip() for region in regions(assignment) for line in region.splitlines()
             if len(line.strip()) >= shortest]
    assert lines, f"{assignment}: its hidden regions have no line of {shortest}+ characters"
    return lines

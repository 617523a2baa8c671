"""What the hidden tests of an assignment are, read from its source notebook: the one place that knows
their format (``### BEGIN HIDDEN TESTS`` regions of test cells calling ``check(task, cases=[...])``).

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
    """[(task, case dict)] of every hidden case: every ``check(task, cases=[...])`` in a hidden region."""
    cases = []
    for region in regions(assignment):
        for node in ast.walk(ast.parse(region)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "check":
                task = ast.literal_eval(node.args[0])
                listed = [kw.value for kw in node.keywords if kw.arg == "cases"] + list(node.args[1:2])
                cases += [(task, case) for value in listed for case in ast.literal_eval(value)]
    assert cases and all("seed" in c for _, c in cases), \
        f"{assignment}: no hidden case with a seed found in its hidden regions (format changed?)"
    return tuple(cases)


def hidden_seeds(assignment):
    """The seeds of ``assignment``'s hidden cases, as strings (never empty)."""
    return [str(case["seed"]) for _, case in hidden_cases(assignment)]


def hidden_lines(assignment, shortest=9):
    """Lines of the hidden regions long enough to be telling (never empty)."""
    lines = [line.strip() for region in regions(assignment) for line in region.splitlines()
             if len(line.strip()) >= shortest]
    assert lines, f"{assignment}: its hidden regions have no line of {shortest}+ characters"
    return lines

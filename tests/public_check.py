"""Run a notebook's functions through check() in this process, as a student's kernel does.

:func:`namespace` executes an assignment's setup and solution cells (some replaced, as a
mutant or a student would write them) into a fresh dict; :func:`public_check` runs
``check(task)`` there on the public cases only, compared with the kit's shipped data:
exactly what a student sees before submitting. No kernel, no grader: fast enough to run
the whole mutation catalogue.
"""
import contextlib
import io
import warnings

import nbformat
import numpy as np
import pytest

from autograder.preprocessors import SKIP_TAG
from rnnkit.compare import grader_error
from rnnkit.probe import CheckFailed, check
from rnnkit.tasks import TASKS, StudentError
from submissions import REPO


def namespace(assignment, replacements=None):
    """The names a kernel has after running ``assignment``'s setup and solution cells
    (``replacements``: grade_id -> source), demos and test cells left out."""
    nb = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    names = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or SKIP_TAG in cell.metadata.get("tags", []) \
                or (meta.get("grade") and not meta.get("solution")):
            continue
        exec((replacements or {}).get(meta.get("grade_id"), cell.source), names)
    names["check"] = check
    return names


def public_check(task, names):
    """(passed, report text) of ``check(task)`` on the public cases with the functions in ``names``."""
    printed = io.StringIO()
    with warnings.catch_warnings(), np.errstate(all="ignore"), contextlib.redirect_stdout(printed):
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            eval(f"check({task!r})", names)   # check() reads the caller's globals
        except CheckFailed as failure:
            return False, str(failure)
    return True, printed.getvalue()


def assert_cache_layout_errors(names, wrong):
    """Each way a forward's cache can miss the course's layout is named on the public cases
    and re-said in the grader's own words on hidden ones. ``wrong``: what -> (forward, cache
    -> wrong cache, words the public message must hold)."""
    for what, (fwd, change, words) in wrong.items():
        right = names[fwd]
        bad = {**names, fwd: lambda *a, right=right, change=change: (*right(*a)[:-1], change(right(*a)[-1]))}
        passed, text = public_check(f"{fwd}_cache", bad)
        assert not passed and words in " ".join(text.split()), (what, text)
        task = TASKS[f"{fwd}_cache"]
        with pytest.raises(StudentError) as raised:
            task.run(bad, task.make_inputs(task.public[0]))
        assert grader_error(task, str(raised.value)) == \
            "returns a cache without the course's layout (the public cases show how)", (what, raised.value)

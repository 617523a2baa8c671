"""The student kit's data, made by ``release``: expected outputs and release stamps.

:func:`build` runs the references on every task's public cases and their probes;
:func:`write` stores them in the kit (``kit/rnnkit/expected.npz``, format in
:mod:`rnnkit.expected`) with one stamp per assignment. :class:`StampRelease`, an
nbgrader preprocessor of ``generate_assignment``, writes that stamp into the setup
cell of the released notebook (``check.release("01_rnn", "<stamp>")``), so a
student's check() can tell a notebook and a kit of different releases apart.
"""
from pathlib import Path

import nbformat
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor
from rnnkit import expected
from rnnkit.tasks import TASKS
from traitlets import Unicode

from .preprocessors import expected_checks
from .verify import reference_inputs, reference_outputs, reference_probes

#: grade_id of the locked setup cell that imports check() in every exercise.
SETUP_CELL = "setup"


def task_assignments(solutions):
    """{assignment: sorted task names graded in it}, read from the source notebooks' test cells."""
    found = {}
    for nb_path in sorted(Path(solutions).glob("*/*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        tasks = {task for cell in nb.cells if utils.is_grade(cell) and not utils.is_solution(cell)
                 and cell.cell_type == "code" for task, _ in expected_checks(cell.source)}
        found[nb_path.parent.name] = sorted(tasks)
    return found


def build():
    """{record key: {"inputs", "outputs"}} for every task's public cases and their probes."""
    records = {}
    for name, task in TASKS.items():
        for case in task.public:
            inputs = reference_inputs(task, case)
            records[expected.entry_key(name, case)] = {"inputs": inputs,
                                                       "outputs": reference_outputs(task, inputs)}
            for probe, outputs in reference_probes(task, case, inputs).items():
                records[expected.entry_key(name, case, probe)] = {"outputs": outputs}
    return records


def write(solutions, path=expected.PATH):
    """Write the kit's data for the assignments in ``solutions``; returns their stamps."""
    return expected.save(path, build(), task_assignments(solutions))


class StampRelease(NbGraderPreprocessor):
    """Append ``check.release(assignment, stamp)`` to the released notebook's setup cell."""

    data_path = Unicode(str(expected.PATH), help="the kit's expected.npz").tag(config=True)

    def preprocess(self, nb, resources):
        assignment = resources["nbgrader"]["assignment"]
        stamps = expected.ShippedData(self.data_path).stamps
        if assignment not in stamps:
            raise ValueError(f"the kit's data has no stamp for {assignment}: run `python -m autograder release`")
        setup = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == SETUP_CELL]
        if len(setup) != 1:
            raise ValueError(f"{assignment}: expected one cell with grade_id {SETUP_CELL!r}")
        line = f"check.release({assignment!r}, {stamps[assignment]!r})"
        setup[0].source = setup[0].source.rstrip("\n") + "\n" + line
        return nb, resources

"""Points of an assignment as its source says, so tests follow the exercises when they grow."""
import nbformat

from submissions import REPO


def total_points(assignment):
    """The maximum score of ``solutions/<a>/<a>.ipynb``: the points of all its graded cells."""
    nb = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    return sum(c.metadata["nbgrader"]["points"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))


def cell_points(assignment):
    """grade_id -> points of every graded cell of ``solutions/<a>/<a>.ipynb``."""
    nb = nbformat.read(REPO / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")}

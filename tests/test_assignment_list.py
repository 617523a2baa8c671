"""The instructors' page lists every assignment with its points, as the source notebooks say."""
import re

import nbformat

from autograder import layout
from submissions import REPO


def test_the_instructors_page_lists_every_assignment_with_its_points():
    text = (REPO / "book" / "instructors.md").read_text(encoding="utf8")
    listed = {name: float(points) for name, points
              in re.findall(r"^\| `(\d\d_\w+)` \| [^|]+ \| (\d+) \|$", text, flags=re.M)}
    points = {}
    for a in layout.assignments_in():
        nb = nbformat.read(REPO / "solutions" / a / f"{a}.ipynb", as_version=4)
        points[a] = sum(float(c.metadata["nbgrader"].get("points", 0)) for c in nb.cells
                        if c.metadata.get("nbgrader", {}).get("grade"))
    assert listed == points

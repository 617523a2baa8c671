# nbgrader run from the repository root works on the course's own folders:
# solutions/ is the source, exercises/ the release. Everything else: autograder/nbgrader_config.py.
from pathlib import Path

from autograder.nbgrader_config import configure

configure(get_config(), Path(__file__).parent, source="solutions", release="exercises")  # noqa: F821

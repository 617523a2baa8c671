"""The feedback page a student gets: readable verdicts, a labelled score, equations offline, nothing live.

:class:`FeedbackReport` is a GenerateFeedback preprocessor (see
:mod:`autograder.nbgrader_config`). In every autograded test cell it replaces the
grader's raw report by one line per distinct problem (which output, gate and time
step, in how many cases), with every failed case behind a "details" toggle, and the
bare partial score (nbgrader's ``Out[..]: 1.1429``) by a sentence saying what it is.
Notes (what costs no points, e.g. inputs modified in place) get one line each the same
way.

:class:`FeedbackExporter` writes the page with the course's template
(``feedback_templates/rnn_feedback``: nbgrader's feedback template with a small style
sheet of its own) and MathJax 3 from one copy per course, ``feedback/_mathjax/`` in the
course directory, put there beside the first page and referred to by a relative path:
equations render without internet, and a page weighs tens of kilobytes, not 2.2 MB.
Everything that came from the student's notebook is sanitised
(:mod:`autograder.safe_html`). A grading process keeps one exporter for all its pages
(see :mod:`autograder.session`).
"""
import html
import os
import re
import tempfile
from collections import Counter
from pathlib import Path

from nbconvert.exporters import HTMLExporter
from nbconvert.preprocessors import Preprocessor
from nbformat.v4 import new_output
from traitlets import Bool

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "feedback_templates"
#: Our template (its own name: the formgrader's exporter keeps nbgrader's "formgrade").
TEMPLATE_NAME = "rnn_feedback"
#: MathJax 3 with SVG output: one self-contained script, no font files to ship.
MATHJAX = REPO / "_vendor" / "html" / "_static" / "mathjax" / "tex-svg.js"
#: The course's shared copy of MathJax (and its licence), in the feedback folder.
SHARED = "_mathjax"


class FeedbackError(RuntimeError):
    """Feedback cannot be written as promised."""


def mathjax_script(path=MATHJAX):
    """The path of MathJax's tex-svg.js, vendored by scripts/vendor_mathjax.py; FeedbackError if missing."""
    path = Path(path)
    if not path.is_file():
        raise FeedbackError(f"MathJax not found at {path}: run `python3 scripts/vendor_mathjax.py` "
                            f"(or `make mathjax`) so feedback renders equations offline")
    return path


_published = set()   # shared copies checked byte for byte by this process


def publish_mathjax(folder, source=MATHJAX):
    """Put MathJax (and its LICENSE) in ``folder`` unless it holds them already; return the script's path.

    Written to a temporary file and renamed: a page never refers to half a script,
    and workers writing at once all leave the same bytes.
    """
    folder = Path(folder)
    script = mathjax_script(source)
    for src in (script, script.with_name("LICENSE")):
        dest = folder / src.name
        size = src.stat().st_size
        if dest.is_file() and dest.stat().st_size == size and (
                dest in _published or dest.read_bytes() == src.read_bytes()):
            _published.add(dest)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{src.name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(src.read_bytes())
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _published.add(dest)
    return folder / script.name


class FeedbackExporter(HTMLExporter):
    """nbconvert's HTMLExporter for feedback pages: the page refers to the course's shared MathJax.

    Its parent is nbgrader's GenerateFeedback (for the course directory); the page's
    folder comes from the ``nbgrader`` resources (student, assignment).
    """

    def from_notebook_node(self, nb, resources=None, **kw):
        coursedir = getattr(self.parent, "coursedir", None)
        about = (resources or {}).get("nbgrader", {})
        if coursedir is None or "student" not in about:
            raise FeedbackError("FeedbackExporter writes pages of a course: run it from nbgrader's GenerateFeedback")
        shared = publish_mathjax(Path(coursedir.root) / coursedir.feedback_directory / SHARED)
        page_folder = coursedir.format_path(coursedir.feedback_directory, about["student"], about["assignment"])
        resources = {**resources, "rnn_course_mathjax": Path(os.path.relpath(shared, page_folder)).as_posix()}
        return super().from_notebook_node(nb, resources, **kw)


def problem(message):
    """A failure message without its case and its error size: what the problem *is*."""
    message = re.sub(r"^\[[^\]]*\]\s*", "", message)
    return re.sub(r"\s*\(error [^)]*x the tolerance\)", "", message).strip()


def summarise(task, checks):
    """Lines about one task (all its check() calls in a cell): the head, then one line per
    distinct problem, the outputs it concerns and in how many cases, most cases first;
    then the notes (which cost nothing) the same way."""
    passed, total = sum(c["passed"] for c in checks), sum(c["total"] for c in checks)
    return [f"{task}: {passed}/{total} checks passed",
            *distinct([m for c in checks for m in c["failures"]]),
            *distinct([m for c in checks for m in c.get("notes", [])], prefix="note: ")]


def distinct(messages, prefix=""):
    """One line per distinct problem among ``messages``, with the outputs it concerns and its cases."""
    by_problem = {}   # problem -> {output or "": cases}
    for message in messages:
        name, sep, rest = problem(message).partition(": ")
        if not sep or " " in name:   # not about one output: the whole case
            name, rest = "", problem(message)
        counts = by_problem.setdefault(rest, Counter())
        counts[name] += 1
    lines = {}   # (problem, cases) -> outputs: outputs wrong the same way as often share a line
    for rest, counts in by_problem.items():
        for name, cases in counts.items():
            lines.setdefault((rest, cases), []).append(name)
    ranked = sorted(lines.items(), key=lambda item: -item[0][1])
    return [f"  {prefix}{', '.join(n for n in names if n) + ': ' if any(names) else ''}{rest} "
            f"(in {cases} case{'s' * (cases != 1)})" for (rest, cases), names in ranked]


def score_sentence(earned, points):
    return (f"Partial score of this test cell: {earned:g} of {points:g} points "
            f"(its points times the share of checks passed).")


def report_outputs(checks, earned, points, timed_out=False):
    """The outputs that replace a graded test cell's: summary, details on demand, labelled score."""
    summary = (["this cell timed out: the tests below could not finish"] if timed_out else [])
    tasks = {}
    for check in checks:
        tasks.setdefault(check["task"], []).append(check)
    summary += [line for task, same in tasks.items() for line in summarise(task, same)]
    failed = [f"{c['task']}: {m}" for c in checks for m in c["failures"]]
    notes = [f"{c['task']}: note: {m}" for c in checks for m in c.get("notes", [])]
    plain = "\n".join(summary + [score_sentence(earned, points)])
    parts = [f"<pre>{html.escape(chr(10).join(summary))}</pre>"]
    if failed or notes:   # a passed cell may carry notes (they cost nothing): not "failed cases"
        said = " and ".join(part for part in (f"every failed case ({len(failed)})" if failed else "",
                                              f"every note ({len(notes)})" if notes else "") if part)
        parts.append(f"<details><summary>{said}</summary><pre>"
                     f"{html.escape(chr(10).join(failed + notes))}</pre></details>")
    parts.append(f"<p><strong>{html.escape(score_sentence(earned, points))}</strong></p>")
    return [new_output("display_data", data={"text/html": "\n".join(parts), "text/plain": plain})]


class FeedbackReport(Preprocessor):
    """Readable test-cell reports for nbgrader's feedback (see module doc)."""

    enabled = Bool(True)

    def preprocess(self, nb, resources):
        mathjax_script()   # missing: say so before the page is half written
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        checks = cell.get("metadata", {}).get("rnn_course", {}).get("checks")
        if cell.cell_type != "code" or checks is None:
            return cell, resources
        earned = None
        for out in cell.outputs:
            if out.get("output_type") == "execute_result":
                try:
                    earned = float(out["data"]["text/plain"])
                except (KeyError, ValueError):
                    pass
        points = float(cell.metadata.get("nbgrader", {}).get("points", 0))
        if earned is None:   # not scored by VerifyResults: leave nbgrader's outputs
            return cell, resources
        timed_out = any("this cell timed out" in out.get("text", "") for out in cell.outputs
                        if out.get("output_type") == "stream")
        cell.outputs = report_outputs(checks, earned, points, timed_out)
        return cell, resources

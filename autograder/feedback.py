"""The feedback page a student gets: readable verdicts, a labelled score, equations offline.

:class:`FeedbackReport` is a GenerateFeedback preprocessor (see
:mod:`autograder.nbgrader_config`). In every autograded test cell it replaces the
grader's raw report by one line per distinct problem (which output, gate and time
step, in how many cases), with every failed case behind a "details" toggle, and the
bare partial score (nbgrader's ``Out[..]: 1.1429``) by a sentence saying what it is.
Notes (what costs no points, e.g. inputs modified in place) get one line each the same
way. It also hands the page template MathJax 3, inlined
(``feedback_templates/feedback/mathjax.html.j2``, found before nbconvert's own), so
equations render without internet (nbgrader's template loads MathJax 2 from a CDN;
release_feedback sends students the HTML file alone). :class:`FeedbackExporter` is the
exporter a grading process keeps for all its pages (see :mod:`autograder.session`).
"""
import functools
import html
import re
import uuid
from collections import Counter
from pathlib import Path

from nbconvert.exporters import HTMLExporter
from nbconvert.preprocessors import Preprocessor
from nbformat.v4 import new_output
from traitlets import Bool

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "feedback_templates"
#: nbgrader's feedback template; ours (listed first) only replaces its mathjax.html.j2.
TEMPLATE_NAME = "feedback"
#: MathJax 3 with SVG output: one self-contained script, no font files to ship.
MATHJAX = REPO / "_vendor" / "html" / "_static" / "mathjax" / "tex-svg.js"


class FeedbackError(RuntimeError):
    """Feedback cannot be written as promised."""


@functools.lru_cache(maxsize=2)
def mathjax_script(path=MATHJAX):
    """The text of MathJax's tex-svg.js, vendored by scripts/vendor_mathjax.py."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        raise FeedbackError(f"MathJax not found at {path}: run `python3 scripts/vendor_mathjax.py` "
                            f"(or `make mathjax`) so feedback renders equations offline") from None
    if "</script" in text.lower():
        raise FeedbackError(f"{path} cannot be inlined in a <script> element")
    return text


def inline_mathjax(_=""):
    """Jinja filter ``rnn_course_mathjax`` (see nbgrader_config): MathJax's script text."""
    return mathjax_script()


class FeedbackExporter(HTMLExporter):
    """nbconvert's HTMLExporter, with MathJax's script put in the page after nbconvert's last pass.

    That pass (BeautifulSoup: parse the page, add alt texts, print it again) would parse
    and print the 2 MB script unchanged on every page; it sees a placeholder instead.
    The page is the same, byte for byte.
    """

    _placeholder = f"rnn-course-mathjax-{uuid.uuid4().hex}"

    def _create_environment(self):
        environment = super()._create_environment()
        environment.filters["rnn_course_mathjax"] = lambda _="": self._placeholder
        return environment

    def from_notebook_node(self, nb, resources=None, **kw):
        page, resources = super().from_notebook_node(nb, resources, **kw)
        return page.replace(self._placeholder, mathjax_script(), 1), resources


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
    details = [f"{c['task']}: {m}" for c in checks for m in c["failures"]]
    details += [f"{c['task']}: note: {m}" for c in checks for m in c.get("notes", [])]
    plain = "\n".join(summary + [score_sentence(earned, points)])
    parts = [f"<pre>{html.escape(chr(10).join(summary))}</pre>"]
    if details:
        parts.append(f"<details><summary>every failed case ({len(details)})</summary><pre>"
                     f"{html.escape(chr(10).join(details))}</pre></details>")
    parts.append(f"<p><strong>{html.escape(score_sentence(earned, points))}</strong></p>")
    return [new_output("display_data", data={"text/html": "\n".join(parts), "text/plain": plain})]


class FeedbackReport(Preprocessor):
    """Readable test-cell reports and offline MathJax for nbgrader's feedback (see module doc)."""

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

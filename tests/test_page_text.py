"""The leak checks read a page as a person does (tests/page_text.py), and catch a planted hidden case.

A feedback page is rendered by the course's own exporter and nbgrader's feedback template
(code highlighted token by token, quotes as ``&#39;``): with the hidden tests left in, the
helper names every hidden case and line; with nbgrader's ClearHiddenTests applied, nothing.
"""
import copy
import os

import nbgrader.converters.generate_feedback as generate_feedback
from nbformat.v4 import new_output
from nbgrader.preprocessors import ClearHiddenTests
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config, Configurable

from autograder import feedback
from autograder.nbgrader_config import configure
from ci import require
from hidden import hidden_cases, hidden_specs, spec_text
from page_text import assert_no_leak, assert_offline_feedback, leaks, scripts, visible_text
from submissions import student_notebook

A = "01_rnn"
BOOTSTRAP = os.path.join(os.path.dirname(generate_feedback.__file__), "..", "server_extensions", "formgrader",
                         "static", "node_modules", "bootstrap", "dist", "css")


def feedback_page(nb, tmp_path):
    """``nb`` as nbgrader's GenerateFeedback renders it with the course's configuration (every cell scored 0)."""
    require(feedback.MATHJAX.is_file(), "MathJax is not vendored", "python3 scripts/vendor_mathjax.py")
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.metadata.nbgrader.update(score=0, comment="")
    config = configure(Config(), tmp_path)
    config.HTMLExporter.extra_template_paths = [BOOTSTRAP]
    resources = {"nbgrader": {"score": 0, "max_score": 10, "late_penalty": 0, "student": "s", "assignment": A,
                              "notebook": A}}
    course = Configurable(config=config)
    course.coursedir = CourseDirectory(root=str(tmp_path), parent=course)   # what GenerateFeedback gives it
    page, _ = feedback.FeedbackExporter(config=config, parent=course).from_notebook_node(nb, resources=resources)
    return page


def test_the_extractor_finds_every_hidden_case():
    cases = hidden_cases(A)
    assert len(cases) >= 5 * 3 and len(hidden_specs(A)) == len(cases)
    assert {task for task, _ in cases} == {"rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward",
                                           "numerical_gradient"}


def test_a_hidden_case_left_in_a_feedback_page_is_caught(tmp_path):
    page = feedback_page(student_notebook(A), tmp_path)   # the source notebook: hidden tests not cleared
    task, case = hidden_cases(A)[0]
    # What a pattern over the HTML would look for is not there: the highlighter split it into tokens.
    assert repr(case) not in page and str(case) not in page
    found = leaks(visible_text(page), A)
    assert {f"hidden case {s}" for s in hidden_specs(A)} <= set(found), found
    assert "the HIDDEN TESTS marker" in found and any(f.startswith("hidden line") for f in found)
    try:
        assert_no_leak(page, A)
    except AssertionError as err:
        assert f"hidden case {spec_text(case)}" in str(err)
    else:
        raise AssertionError("assert_no_leak let a planted hidden case through")


def test_a_page_with_the_hidden_tests_cleared_passes(tmp_path):
    nb = student_notebook(A)
    nb, _ = ClearHiddenTests().preprocess(nb, {})
    page = feedback_page(nb, tmp_path)
    assert leaks(visible_text(page), A) == []
    assert_offline_feedback(page, A)
    assert any(s["text"] for s in scripts(page))   # the inlined MathJax: its digits are not read as text


def test_a_hidden_case_printed_by_a_cell_is_caught(tmp_path):
    """A student's cell that printed a hidden case (escaped in the page) shows it."""
    nb = student_notebook(A)
    nb, _ = ClearHiddenTests().preprocess(nb, {})
    task, case = hidden_cases(A)[-1]
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution"))
    cell.outputs = [new_output("stream", name="stdout", text=f"saw {case!r} of {task}\n")]
    found = leaks(visible_text(feedback_page(nb, tmp_path)), A)
    assert f"hidden case {spec_text(case)}" in found, found


def test_visible_text_decodes_entities_and_drops_what_is_not_shown():
    _, case = hidden_cases(A)[0]
    (first, value), *rest = case.items()
    tokens = "".join(f'<span class="p">,</span> <span class="s1">&#39;{k}&#39;</span><span class="p">:</span>'
                     f'&nbsp;<span class="mi">{v}</span>' for k, v in rest)
    shown = (f'<p><span class="p">{{</span><span class="s1">&#39;{first}&#39;</span><span class="p">:</span> '
             f'<span class="mi">{value}</span>{tokens}<span class="p">}}</span></p>')
    html = (f"<html><head><title>t</title><style>.x{{width:{value}px}}</style></head><body>"
            f"<script>var n = {case!r};</script>{shown}</body></html>")
    text = visible_text(html)
    assert text.strip().startswith(f"{{'{first}': {value}") and "var n" not in text
    assert leaks(text, A) == [f"hidden case {spec_text(case)}"]
    assert leaks(visible_text(html.replace(shown, "")), A) == []

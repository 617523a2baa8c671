"""The feedback report of a test cell (autograder/feedback.py), on its own: no grading needed.

One line per distinct problem (outputs wrong the same way in as many cases share it),
public and hidden check() calls of a task added up, every case on demand, the partial
score in words; MathJax shared once per course, or a clear error when it is not
vendored; student HTML and markdown made inert (autograder/safe_html.py). The pages
themselves, in Chromium: tests/test_formgrader_browser.py.
"""
import os
import re
from html.parser import HTMLParser

import pytest
from jinja2 import Environment

from autograder import feedback, safe_html

CHECKS = [   # what VerifyResults records in a test cell's metadata: the public call, then the hidden one
    {"task": "lstm_step_backward", "passed": 10, "total": 15, "notes": [],
     "failures": ["[N=2, D=3, H=4] dWx: wrong in the forget gate (f) block (error 4.5e+03x the tolerance)",
                  "[N=2, D=3, H=4] db: wrong in the forget gate (f) block (error 12x the tolerance)",
                  "[N=1, D=2, H=3] dWx: wrong in the forget gate (f) block (error 30x the tolerance)",
                  "[N=1, D=2, H=3] db: wrong in the forget gate (f) block (error 2x the tolerance)",
                  "[N=1, D=2, H=3] dx: has shape (2, 1), expected (1, 2)"]},
    {"task": "lstm_step_backward", "passed": 12, "total": 20,
     "notes": ["[hidden case 2] modified its inputs in place: dnext_h"],
     "failures": [f"[hidden case {k}] {out}: wrong in the forget gate (f) block (error 9x the tolerance)"
                  for k in (1, 2, 3, 4) for out in ("dWx", "db")]},
]


def test_one_line_per_distinct_problem_with_its_cases():
    lines = feedback.summarise("lstm_step_backward", CHECKS)
    assert lines == [
        "lstm_step_backward: 22/35 checks passed",
        "  dWx, db: wrong in the forget gate (f) block (in 6 cases)",
        "  dx: has shape (2, 1), expected (1, 2) (in 1 case)",
        "  note: modified its inputs in place: dnext_h (in 1 case)",
    ]


def test_a_passed_cell_with_notes_shows_them_as_notes_not_failed_cases():
    """A layer kept its points through its stand-in run: its notes cost nothing, so the
    toggle does not call them failed cases."""
    checks = [{"task": "rnn_backward", "passed": 25, "total": 25, "failures": [],
               "notes": ["[N=2, T=3, D=4, H=5] your rnn_backward chains rnn_step_backward right"]}]
    (out,) = feedback.report_outputs(checks, 2, 2)
    page = out.data["text/html"]
    assert "<summary>every note (1)</summary>" in page and "failed" not in page


def test_report_labels_the_partial_score_and_keeps_every_case_on_demand():
    (out,) = feedback.report_outputs(CHECKS, 1.2571, 2)
    assert out.output_type == "display_data"          # no bare Out[..] prompt
    page = out.data["text/html"]
    assert "Partial score of this test cell: 1.2571 of 2 points" in out.data["text/plain"]
    assert page.count("<details>") == 1 and "every failed case (13) and every note (1)" in page
    assert "[hidden case 3] db: wrong in the forget gate (f) block (error 9x the tolerance)" in page
    assert "[N=1, D=2, H=3] dx: has shape (2, 1), expected (1, 2)" in page


def test_timed_out_cell_says_so_first():
    (out,) = feedback.report_outputs(CHECKS[:1], 0.5, 2, timed_out=True)
    assert out.data["text/plain"].startswith("this cell timed out")


def test_report_escapes_what_students_wrote():
    checks = [{"task": "rnn_forward", "passed": 0, "total": 1, "failures": ["[N=1] raised ValueError: <script>x</script>"]}]
    (out,) = feedback.report_outputs(checks, 0.0, 2)
    assert "<script>" not in out.data["text/html"] and "&lt;script&gt;" in out.data["text/html"]


def test_missing_mathjax_is_a_clear_error(tmp_path):
    with pytest.raises(feedback.FeedbackError, match="MathJax not found at .*vendor_mathjax.py"):
        feedback.mathjax_script(tmp_path / "tex-svg.js")
    with pytest.raises(feedback.FeedbackError, match="MathJax not found"):
        feedback.publish_mathjax(tmp_path / "shared", tmp_path / "tex-svg.js")


def test_mathjax_is_published_once_and_repaired(tmp_path):
    source = tmp_path / "vendor" / "tex-svg.js"
    source.parent.mkdir()
    source.write_text("window.MathJax = {};")
    source.with_name("LICENSE").write_text("Apache-2.0")
    shared = tmp_path / "course" / "feedback" / feedback.SHARED
    script = feedback.publish_mathjax(shared, source)
    assert script == shared / "tex-svg.js" and script.read_text() == "window.MathJax = {};"
    assert (shared / "LICENSE").read_text() == "Apache-2.0" and oct(script.stat().st_mode & 0o777) == "0o644"
    stamp = script.stat().st_mtime_ns
    feedback.publish_mathjax(shared, source)
    assert script.stat().st_mtime_ns == stamp            # already there: not written again
    script.write_text("truncated")                      # damaged (another size): written again
    feedback.publish_mathjax(shared, source)
    assert script.read_text() == "window.MathJax = {};"
    assert sorted(os.listdir(shared)) == ["LICENSE", "tex-svg.js"]   # no temporary file left


HOSTILE = [
    "<script>alert(1)</script>", '<img src="x" onerror="alert(1)">', '<a href="javascript:alert(1)">a</a>',
    '<a href=" JaVaScRiPt:alert(1)">a</a>', '<a href="data:text/html,x">a</a>', '<iframe src="/x"></iframe>',
    '<svg onload="alert(1)"><script>alert(1)</script></svg>', '<details ontoggle="alert(1)" open>d</details>',
    '<img src="http://127.0.0.1:9/beacon">', '<img src="data:image/svg+xml;base64,PHN2Zz4=">',
    '<style>body{display:none}</style>', '<link rel="stylesheet" href="/x">', '<form action="/x"><input></form>',
    '<meta http-equiv="refresh" content="0;url=/x">', '<object data="/x"></object>', '<embed src="/x">',
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>', '<p style="position:fixed">x</p>',
    '<span id="answer_plot" name="answer_plot">x</span>', '<div class="modal hidden">x</div>',
    "<!--<script>alert(1)</script>-->", '<base href="http://127.0.0.1:9/">',
]


class Elements(HTMLParser):
    """(tag, attributes) of every element of a page."""

    def __init__(self, page):
        super().__init__(convert_charrefs=True)
        self.found = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


@pytest.mark.parametrize("markup", HOSTILE)
def test_clean_html_leaves_nothing_live(markup):
    clean = safe_html.clean_html(markup)
    for tag, attrs in Elements(clean).found:
        assert tag in safe_html.TAGS, clean
        assert not set(attrs) & {"id", "name", "style"} and not any(a.startswith("on") for a in attrs), clean
        assert re.fullmatch(r"(https?:|mailto:|#).*", attrs.get("href", "#")), clean
        assert re.fullmatch(r"data:image/(png|jpeg|gif|webp);.*", attrs.get("src", "data:image/png;")), clean
        assert not re.search(r"hidden|modal", attrs.get("class", "")), clean


def test_clean_html_keeps_what_pages_are_made_of():
    markup = ('<h2>Title</h2><p>A <b>bold</b>, <em>em</em>, <code>code</code>, <a href="https://x.org/">link</a>, '
              '<a href="#top">top</a>.</p><details><summary>cases</summary><pre>[N=1] dx: wrong</pre></details>'
              '<table><tbody><tr><th colspan="2">h</th></tr><tr><td>1</td><td>2</td></tr></tbody></table>'
              '<img alt="plot" src="data:image/png;base64,iVBORw0KGgo="><div class="highlight"><pre>'
              '<span class="k">def</span> <span class="nf">f</span></pre></div>')
    assert safe_html.clean_html(markup) == markup


def test_markdown_is_rendered_then_cleaned():
    environment = Environment()
    environment.filters.update(safe_html.FILTERS)
    template = environment.from_string("{{ source | markdown2html }}")
    page = template.render(source="# Answer\n\nIt shrinks like $\\rho^k$ <script>alert(1)</script>"
                                  "\n\n[x](javascript:alert(1)) <img src=x onerror=alert(1)>",
                           cell={}, resources={})
    assert "<h1>Answer" in page and "$\\rho^k$" in page and "&lt;script&gt;" in page
    assert "javascript:" not in page and "onerror" not in page

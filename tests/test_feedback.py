"""The feedback report of a test cell (autograder/feedback.py), on its own: no grading needed.

One line per distinct problem (outputs wrong the same way in as many cases share it),
public and hidden check() calls of a task added up, every case on demand, the partial
score in words; and MathJax inlined, or a clear error when it is not vendored.
"""
import pytest
from ci import require

from autograder import feedback

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


def test_report_labels_the_partial_score_and_keeps_every_case_on_demand():
    (out,) = feedback.report_outputs(CHECKS, 1.2571, 2)
    assert out.output_type == "display_data"          # no bare Out[..] prompt
    page = out.data["text/html"]
    assert "Partial score of this test cell: 1.2571 of 2 points" in out.data["text/plain"]
    assert page.count("<details>") == 1 and "every failed case (14)" in page
    assert "[hidden case 3] db: wrong in the forget gate (f) block (error 9x the tolerance)" in page
    assert "[N=1, D=2, H=3] dx: has shape (2, 1), expected (1, 2)" in page


def test_timed_out_cell_says_so_first():
    (out,) = feedback.report_outputs(CHECKS[:1], 0.5, 2, timed_out=True)
    assert out.data["text/plain"].startswith("this cell timed out")


def test_report_escapes_what_students_wrote():
    checks = [{"task": "rnn_forward", "passed": 0, "total": 1, "failures": ["[N=1] raised ValueError: <script>x</script>"]}]
    (out,) = feedback.report_outputs(checks, 0.0, 2)
    assert "<script>" not in out.data["text/html"] and "&lt;script&gt;" in out.data["text/html"]


def test_mathjax_is_inlined_or_its_absence_is_a_clear_error(tmp_path):
    feedback.mathjax_script.cache_clear()
    with pytest.raises(feedback.FeedbackError, match="MathJax not found at .*vendor_mathjax.py"):
        feedback.mathjax_script(tmp_path / "tex-svg.js")
    require(feedback.MATHJAX.is_file(), "MathJax not vendored", "python3 scripts/vendor_mathjax.py (make mathjax)")
    script = feedback.inline_mathjax()
    assert "MathJax" in script and "</script" not in script.lower()

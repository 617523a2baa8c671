"""Feedback pages and the formgrader as their readers meet them, in headless Chromium.

A class of 02_long_term is graded with the real CLI: ``written`` (the solution and a
written answer) and ``hostile``, whose added code cell displays every kind of live
content a kernel can send (scripts, ``onerror`` handlers, ``javascript:`` links, frames,
SVG with scripts, ``text/html``, ``application/javascript``, a frame the page would
isolate, images and style sheets from elsewhere) and whose written answer (markdown)
holds the same. Every script would set ``window.pwned``, change ``document.title`` and
call a server of the test's on 127.0.0.1 (the beacon).

* The feedback page (served from the course on 127.0.0.1) runs none of it and requests
  nothing but itself and the course's shared MathJax; it still shows the verdicts, the
  typeset equations and the student's plain output; it weighs under 100 kB.
* The formgrader (nbgrader's, a Jupyter server in the course directory, token auth):
  its pages load; a submission page of ``hostile`` is as inert; on ``written``'s page an
  instructor types a score and a comment for the written answer; they are saved, reach
  the feedback page through the formgrader's Generate Feedback (the course's template),
  are kept by a ``--force`` regrade with the CLI, and reach grades.csv, the Canvas CSV
  and the feedback page it writes.

Screenshots go to artifacts/screenshots/. Without Chromium or Playwright the tests
skip, except on CI (CI=true), where they fail.
"""
import csv
import http.server
import re
import threading
from urllib.parse import quote

import pytest
from nbformat.v4 import new_code_cell
from nbgrader.api import Gradebook

from autograder import cli, feedback, grader
from browser_support import SCREENSHOTS, BookServer, chromium
from formgrader_support import api, formgrader
from submissions import student_notebook, write_submissions

pytestmark = pytest.mark.xdist_group("test_formgrader_browser")   # its module-scoped fixture grades once: every test of the module on one worker
A = "02_long_term"
HOSTILE = "hostile<img src=x onerror=window.pwned=1>"   # a folder name, so a student id
ANSWER = "answer_plot"
COMMENT = "Right about the small rho; say why tanh keeps large rho from growing."
PAGE_LIMIT = 100_000


class Beacon:
    """An HTTP server on 127.0.0.1 that records every request (a student's script calling home)."""

    def __init__(self):
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - stdlib name
                hits.append(self.path)
                self.send_response(204)
                self.end_headers()

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def payloads(beacon):
    """(the added code cell, the written answer): every live thing, each one calling the beacon."""
    run = ("window.pwned = (window.pwned || 0) + 1; document.title = 'PWNED'; "
           f"fetch('{beacon}/script').catch(() => 0);")
    html_parts = [
        f"<script>{run}</script>",
        f'<img src="x" onerror="{run}">',
        f'<a href="javascript:{run}">javascript link</a>',
        f'<a href="JaVaScRiPt:{run}">mixed-case link</a>',
        f'<iframe src="{beacon}/iframe"></iframe>',
        "<iframe srcdoc=\"&lt;script&gt;parent.pwned = 1&lt;/script&gt;\"></iframe>",
        f'<svg onload="{run}"><script>{run}</script></svg>',
        f'<details open ontoggle="{run}"><summary>toggle</summary></details>',
        f'<img src="{beacon}/img">',
        f'<link rel="stylesheet" href="{beacon}/css"><style>@import url("{beacon}/import");</style>',
        f'<meta http-equiv="refresh" content="0;url={beacon}/refresh">',
        f'<object data="{beacon}/object"></object><embed src="{beacon}/embed">',
        f'<form action="{beacon}/form"><button id="answer_plot">submit</button></form>',
        "<b>bold text kept</b>",
    ]
    hostile_html = "\n".join(html_parts)
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20" onload="{run}">'
           f'<script>{run}</script><circle cx="10" cy="10" r="8"/></svg>')
    code = "\n".join([
        "from IPython.display import HTML, SVG, Javascript, Markdown, display",
        f"display(HTML({hostile_html!r}))",
        f"display(SVG({svg!r}))",
        f"display(Javascript({run!r}))",
        f"display({{'text/html': {hostile_html!r}, 'text/plain': 'raw html'}}, raw=True)",
        f"display(HTML({hostile_html!r}), metadata={{'isolated': True}})",
        f"display(Markdown({'[markdown link](javascript:' + run + ')'!r}))",
        "print('plain output 42')",
    ])
    answer = ("For small $\\rho$ the gradient norm shrinks like $\\rho^k$.\n\n"
              + hostile_html + f"\n\n[markdown link](javascript:{run})\n")
    return code, answer


def hostile_notebook(beacon):
    code, answer = payloads(beacon)
    nb = student_notebook(A, {ANSWER: answer})
    setup = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells.insert(setup + 1, new_code_cell(code))   # before any hidden test: its outputs are shown
    return nb


@pytest.fixture(scope="module")
def beacon():
    server = Beacon()
    yield server
    server.close()


@pytest.fixture(scope="module")
def graded(tmp_path_factory, beacon):
    root = tmp_path_factory.mktemp("formgrader")
    subs = write_submissions(root / "submissions", A, {
        "written": student_notebook(A, {ANSWER: "For small rho the norm shrinks geometrically."}),
        HOSTILE: hostile_notebook(beacon.url)})
    course = root / "course"
    assert cli.main(["grade", str(subs), "--course", str(course), "--workers", "1"]) == 0
    return subs, course


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser):
    """A fresh page that records every request it makes and every script error."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, service_workers="block")
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.requests, page.errors = [], []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    yield page
    context.close()


def shot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


# Runs in the page: what a student's script would have changed, and what could still run.
INERT_JS = r"""
() => ({
  pwned: window.pwned === undefined ? null : window.pwned,
  title: document.title,
  handlers: [...document.querySelectorAll('*')].flatMap(e => [...e.attributes]
              .filter(a => /^on/i.test(a.name)).map(a => `${e.tagName}[${a.name}]=${a.value}`)),
  jsLinks: [...document.querySelectorAll('[href], [src], [action], [data]')].map(e =>
              e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('action') || e.getAttribute('data'))
              .filter(u => /^\s*javascript:/i.test(u)),
  frames: [...document.querySelectorAll('iframe, object, embed, form, meta[http-equiv], link[rel=stylesheet]')]
              .filter(e => !(e.tagName === 'LINK' && e.href.startsWith(location.origin + '/')))
              .map(e => e.outerHTML.slice(0, 120)),
  answerPlotIds: document.querySelectorAll('[id="answer_plot"]').length,
  outputs: [...document.querySelectorAll('.output_area')].map(e => e.innerText).join('\n'),
  boldOutputs: [...document.querySelectorAll('.output_area b')].map(e => e.innerText),
  text: document.body.innerText,
})
"""


def assert_inert(page, beacon, own_origin, own_handlers=()):
    """No student script ran, nothing live is left, nothing was requested from elsewhere.

    ``own_handlers``: event handler attributes the page's own template has.
    """
    page.wait_for_timeout(300)   # a timer, a refresh or a late request would have fired
    found = page.evaluate(INERT_JS)
    assert found["pwned"] is None and found["title"] != "PWNED", found
    assert [h for h in found["handlers"] if h not in own_handlers] == [] and found["jsLinks"] == [], found
    assert beacon.hits == [], f"the page called the student's server: {beacon.hits}"
    elsewhere = [u for u in page.requests if not u.startswith((own_origin, "data:"))]
    assert elsewhere == [], f"requests the student chose: {elsewhere}"
    assert "window.pwned" in found["text"]          # shown as text, for the reader to see
    return found


def assert_outputs_shown(found):
    """The student's plain output, and harmless markup, are shown; the live parts as text."""
    assert "plain output 42" in found["outputs"]
    assert "bold text kept" in found["boldOutputs"]
    assert "<script>window.pwned" in found["outputs"] and "<iframe src=" in found["outputs"]


# ------------------------------------------------------------------- feedback pages

@pytest.fixture(scope="module")
def feedback_site(graded):
    _, course = graded
    with BookServer(course / "feedback") as server:
        yield server.url


def test_feedback_page_is_small_and_mathjax_shared(graded):
    _, course = graded
    pages = sorted((course / "feedback").glob(f"*/{A}/{A}.html"))
    assert len(pages) == 2
    for path in pages:
        text = path.read_text(encoding="utf-8")
        assert path.stat().st_size < PAGE_LIMIT, f"{path}: {path.stat().st_size} bytes"
        assert re.search(r'<script defer(="")? src="../../_mathjax/tex-svg.js"></script>', text)
        assert "Bootstrap v3" not in text   # 117 kB of it, once in every page until now
    shared = course / "feedback" / feedback.SHARED
    assert (shared / "tex-svg.js").read_bytes() == feedback.MATHJAX.read_bytes()
    assert (shared / "LICENSE").is_file()


def test_feedback_page_runs_no_student_script_and_shows_verdicts_and_equations(graded, feedback_site, page,
                                                                               beacon):
    page.goto(f"{feedback_site}{quote(HOSTILE)}/{A}/{A}.html", wait_until="load")
    page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise")
    page.evaluate("MathJax.startup.promise")
    page.click("text=javascript link")       # the link is text now: nothing happens
    found = assert_inert(page, beacon, feedback_site)
    assert found["frames"] == [] and found["answerPlotIds"] == 0, found
    assert page.errors == []
    assert page.evaluate("document.querySelectorAll('mjx-container').length") > 10
    assert page.evaluate("document.querySelectorAll('mjx-merror, [data-mjx-error]').length") == 0
    text = found["text"]
    assert re.search(r"02_long_term \(Score: 5\.0 / 7\.0\)", text), text[:300]
    assert "Partial score of this test cell: 3 of 3 points" in text and "checks passed" in text
    assert_outputs_shown(found)
    assert [u for u in page.requests if "_mathjax" in u] == [f"{feedback_site}_mathjax/tex-svg.js"]
    shot(page, "feedback_hostile")


# ------------------------------------------------------------------- the formgrader

@pytest.fixture(scope="module")
def server(graded):
    _, course = graded
    with formgrader(course) as (url, token):
        yield url, token


def submission_url(course, url, student):
    with Gradebook(grader.default_db_url(course)) as gb:
        notebook_id = gb.find_submission_notebook(A, A, student).id
    return f"{url}/formgrader/submissions/{notebook_id}/"


def log_in(page, url, token):
    """Jupyter's login page, as an instructor uses it: the token typed in the password box."""
    page.goto(f"{url}/login", wait_until="load")
    page.fill("#password_input", token)
    with page.expect_navigation():
        page.click("#login_submit")


LOADED = "window.formgrader && formgrader.grades && formgrader.grades.loaded && formgrader.comments.loaded"


def test_formgrader_pages_load(server, page):
    url, token = server
    log_in(page, url, token)
    for path in ("manage_assignments", "gradebook", f"gradebook/{A}", f"gradebook/{A}/{A}", "manage_students",
                 f"manage_submissions/{A}"):
        response = page.goto(f"{url}/formgrader/{path}", wait_until="load")
        assert response.status == 200, path
        assert page.errors == [], (path, page.errors)
        assert page.evaluate("window.pwned") is None, path
    page.wait_for_selector("text=hostile")   # the list of submissions, filled by the page's script
    page.wait_for_timeout(300)
    assert page.evaluate("window.pwned") is None, "a student id ran as markup in the formgrader's list"
    assert page.locator("text=written").count() > 0


def test_formgrader_submission_page_is_inert(graded, server, page, beacon):
    _, course = graded
    url, token = server
    page.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.abort())   # no internet here
    log_in(page, url, token)
    response = page.goto(submission_url(course, url, HOSTILE), wait_until="load")
    assert response.status == 200
    page.wait_for_timeout(500)
    page.requests[:] = [u for u in page.requests if not re.match(r"https://cdnjs\.cloudflare\.com/", u)]
    found = assert_inert(page, beacon, url, own_handlers={"SPAN[onclick]=toggle_name(true);",
                                                          "SPAN[onclick]=toggle_name(false);"})
    assert found["frames"] == [], found
    assert found["answerPlotIds"] == 1, "a student's element took the id of the score box"
    assert_outputs_shown(found)
    assert page.locator("input.score#answer_plot").count() == 1
    assert page.locator("a.name-shown").text_content().strip() == HOSTILE   # its id, as text
    shot(page, "formgrader_hostile")


def test_formgrader_hand_grade_is_saved_kept_and_reported(graded, server, page, tmp_path):
    subs, course = graded
    url, token = server
    page.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.abort())
    log_in(page, url, token)
    assert page.goto(submission_url(course, url, "written"), wait_until="load").status == 200
    page.wait_for_function(LOADED)
    score, comment = page.locator("input.score#answer_plot"), page.locator("textarea#answer_plot-comment")
    score.fill("1.5")
    score.press("Tab")                        # formgrade.js saves on change
    comment.fill(COMMENT)
    comment.press("Tab")
    with Gradebook(grader.default_db_url(course)) as gb:
        grade_id = gb.find_grade(ANSWER, A, A, "written").id
        comment_id = gb.find_comment(ANSWER, A, A, "written").id
    page.wait_for_function("document.querySelectorAll('.score-saved:not([style*=\"display: none\"])').length > 0")
    for _ in range(100):
        if (api(url, token, f"grade/{grade_id}")["manual_score"] == 1.5
                and api(url, token, f"comment/{comment_id}")["manual_comment"] == COMMENT):
            break
        page.wait_for_timeout(100)
    assert api(url, token, f"grade/{grade_id}")["manual_score"] == 1.5
    assert api(url, token, f"comment/{comment_id}")["manual_comment"] == COMMENT
    shot(page, "formgrader_graded")

    # The formgrader's "Generate Feedback" button: the course's page, with the hand grade and comment.
    page_path = course / "feedback" / "written" / A / f"{A}.html"
    page_path.unlink()
    assert api(url, token, f"assignment/{A}/generate_feedback", method="POST")["success"] is True
    text = page_path.read_text(encoding="utf-8")
    assert COMMENT in text and "_mathjax/tex-svg.js" in text and "Bootstrap v3" not in text

    # A forced regrade with the CLI keeps both, and rewrites the feedback with them.
    assert cli.main(["grade", str(subs), "--course", str(course), "--workers", "1", "--force"]) == 0
    page.reload(wait_until="load")
    page.wait_for_function(LOADED)
    assert page.locator("input.score#answer_plot").input_value() == "1.5"
    assert page.locator("textarea#answer_plot-comment").input_value() == COMMENT
    with open(course / "grades.csv", newline="", encoding="utf-8") as fh:
        written = {r["student"]: r for r in csv.DictReader(fh)}["written"]
    assert float(written[ANSWER]) == 1.5 and float(written["score"]) == 6.5 and float(written["awaiting_points"]) == 0
    canvas = tmp_path / "canvas.csv"
    assert cli.main(["stats", str(course), "--canvas", str(canvas)]) == 0
    lines = list(csv.reader(canvas.open(newline="", encoding="utf-8")))
    assert {line[3]: line[-1] for line in lines[2:]}["written"] == "6.5"
    text = page_path.read_text(encoding="utf-8")
    assert COMMENT in text and re.search(r"Score: 6\.5 / 7\.0", text)

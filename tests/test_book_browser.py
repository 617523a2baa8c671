"""The built book as a reader meets it, in headless Chromium with no internet.

Serves _build/html on 127.0.0.1 and visits every page of _toc.yml once (Playwright
driving Debian's /usr/bin/chromium), then checks what a reader would see:

* every page loads with no console error, no failed or 4xx/5xx request, and no request
  to any other host (those are blocked, as behind a firewall);
* MathJax, served from the book itself, typesets every equation of every chapter;
* every figure shows; no internal link or #anchor is broken (a crawl of every local page);
* exercise pages offer their .ipynb and the student kit for download and a Binder (or
  JupyterHub) launch; no other page offers a launch (Binder holds only the student kit);
* the search page finds "forget gate";
* a full-page screenshot of each page goes to artifacts/screenshots/<page>.png.

Skips if the book is not built (run `make book`). Without Chromium or Playwright it
skips, except on CI (CI=true), where it fails.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import urllib.error
import urllib.request
import zipfile
from collections import deque
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import pytest

from browser_support import (
    BUILD_HTML,
    PAGE_REPORT_JS,
    ROOT,
    SCREENSHOTS,
    BookServer,
    chromium,
    load_config,
    parse_links_and_ids,
    source_suffix,
    toc_pages,
)
from ci import unavailable

# All tests here share one server, one browser and one visit of each page: keep them on
# one xdist worker (`pytest -n auto --dist loadgroup`).
pytestmark = pytest.mark.xdist_group("book-browser")

PAGES = toc_pages()
DOCS = [p["doc"] for p in PAGES]
CHAPTERS = [p["doc"] for p in PAGES if p["caption"] == "Chapters"]
EXERCISES = [p["doc"] for p in PAGES if p["caption"] == "Exercises"]
PAGE_TIMEOUT_MS = 30_000


def shot_name(doc: str) -> str:
    """book/03_gates -> book_03_gates, exercises/03_gates/03_gates -> exercises_03_gates."""
    return f"{doc.split('/', 1)[0]}_{Path(doc).name}"


assert len({shot_name(d) for d in DOCS}) == len(DOCS), "screenshot names collide: fix shot_name()"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def site():
    if not (BUILD_HTML / "index.html").is_file():
        unavailable(f"the book is not built ({BUILD_HTML}/index.html missing)", "make book")
    with BookServer(BUILD_HTML) as server:
        yield server.url


@pytest.fixture(scope="module")
def browser(site):
    with chromium() as browser:
        yield browser


class Recorder:
    """What went wrong on the page being visited: console, JS errors, requests."""

    def __init__(self, origin: str):
        self.origin = origin
        self.reset()

    def reset(self):
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.failed: list[str] = []
        self.bad_status: list[str] = []
        self.external: list[str] = []

    def attach(self, context, page):
        context.route("**/*", self._gate)
        page.on("console", lambda m: m.type == "error" and self.console_errors.append(
            f"{m.text} @ {m.location.get('url', '')}"))
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url}: {r.failure}"))
        page.on("response", lambda r: r.status >= 400 and self.bad_status.append(f"{r.status} {r.url}"))

    def _gate(self, route):
        url = route.request.url
        if url.startswith(self.origin) or url.startswith(("data:", "blob:")):
            route.continue_()
        else:  # a reader behind a firewall gets nothing from other hosts
            self.external.append(url)
            route.abort("blockedbyclient")

    def problems(self) -> dict:
        failed = [f for f in self.failed if not any(f.startswith(x) for x in self.external)]
        return {k: v for k, v in {
            "console errors": self.console_errors,
            "JavaScript errors": self.page_errors,
            "failed requests": failed,
            "HTTP errors": self.bad_status,
            "requests to other hosts (no internet here)": self.external,
        }.items() if v}


def _visit_all(site: str, browser) -> dict:
    """Visit every toc page once: {doc: report} (see PAGE_REPORT_JS), screenshots saved."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    rec = Recorder(site)
    rec.attach(context, page)
    reports = {}
    try:
        for doc in DOCS:
            rec.reset()
            url = urljoin(site, doc + ".html")
            t0 = time.monotonic()
            response = page.goto(url, wait_until="load")
            report = page.evaluate(PAGE_REPORT_JS)
            shot = SCREENSHOTS / f"{shot_name(doc)}.png"
            page.screenshot(path=str(shot), full_page=True)
            page.wait_for_timeout(50)  # let late console messages arrive
            report.update(url=url, status=response.status if response else None, screenshot=str(shot),
                          problems=rec.problems(), seconds=round(time.monotonic() - t0, 2))
            reports[doc] = report
    finally:
        context.close()
    return reports


@pytest.fixture(scope="module")
def visits(request, site, tmp_path_factory):
    """The reports of _visit_all, computed once per test run even when pytest-xdist spreads
    these tests over several workers (each has its own server, so URLs are stored relative)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # not under pytest-xdist
        return _visit_all(site, request.getfixturevalue("browser"))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent / "book_browser_visits.json"
    with FileLock(str(shared) + ".lock"):
        if shared.is_file():
            text = shared.read_text(encoding="utf8")
        else:
            reports = _visit_all(site, request.getfixturevalue("browser"))
            text = json.dumps(reports, ensure_ascii=False).replace(site, "{SITE}/")
            shared.write_text(text, encoding="utf8")
    return json.loads(text.replace("{SITE}/", site))


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("doc", DOCS)
def test_page_loads_cleanly(visits, doc):
    report = visits[doc]
    assert report["status"] == 200, f"{doc}: HTTP {report['status']}"
    assert report["title"], f"{doc}: page has no title"
    assert not report["problems"], f"{doc}: " + json.dumps(report["problems"], indent=1, ensure_ascii=False)


@pytest.mark.parametrize("doc", DOCS)
def test_equations_render(visits, site, doc):
    report = visits[doc]
    mj = report["mathjax"]
    if doc in CHAPTERS:
        assert mj, f"{doc}: a chapter without MathJax on the page"
    if mj is None:
        assert report["mathSources"] == 0, f"{doc}: {report['mathSources']} equations but no MathJax loaded"
        return
    assert mj["src"].startswith(site), f"{doc}: MathJax comes from {mj['src']}, not from the book itself"
    assert mj["version"] and mj["version"].startswith("3."), f"{doc}: MathJax did not start: {mj}"
    assert mj["error"] is None, f"{doc}: MathJax failed: {mj['error']}"
    if doc in CHAPTERS:
        assert report["mjx"] > 0, f"{doc}: no equation typeset (no mjx-container)"
    assert not report["unrendered"], f"{doc}: equations left as TeX: {report['unrendered']}"
    assert not report["mjxErrors"], f"{doc}: TeX errors: {report['mjxErrors']}"
    raw = re.findall(r".{0,30}(?:\\\(|\\\[|\$\$).{0,30}", report["text"])
    assert not raw, f"{doc}: raw TeX delimiters in the rendered text: {raw[:5]}"


@pytest.mark.parametrize("doc", DOCS)
def test_figures_show(visits, doc):
    report = visits[doc]
    broken = [img for img in report["images"] if img["inArticle"] and img["w"] == 0]
    assert not broken, f"{doc}: images that do not show: " + json.dumps(broken, indent=1, ensure_ascii=False)
    if doc in CHAPTERS:
        figures = [img for img in report["images"] if img["inArticle"]]
        assert figures, f"{doc}: a chapter with no figure at all"


@pytest.mark.parametrize("doc", CHAPTERS)
def test_figures_are_sharp(visits, doc):
    """Every figure's image has at least 2 pixels per CSS pixel shown (high-DPI screens)."""
    from autograder.figures.style import SCALE

    blurry = [f"{img['figure'] or img['src']}: {img['w']} px shown in {img['shownWidth']}"
              for img in visits[doc]["images"]
              if img["inArticle"] and img["w"] < SCALE * img["shownWidth"]]
    assert not blurry, f"{doc}: images below {SCALE}x: {blurry}"


@pytest.mark.parametrize("figure", ["fig-lstm-cell", "fig-gru-cell"])
def test_diagram_text_is_at_least_10_px(visits, figure):
    """The diagrams' smallest font (points), as shown on the page, in CSS pixels."""
    from autograder.figures.cells import MIN_FONT_PT
    from autograder.figures.style import DPI, SCALE

    [img] = [i for r in visits.values() for i in r["images"] if i["figure"] == figure]
    px_per_point = img["shownWidth"] / img["w"] * SCALE * DPI / 72
    assert MIN_FONT_PT * px_per_point >= 10, f"{figure}: text {MIN_FONT_PT * px_per_point:.1f} px"


@pytest.mark.parametrize("doc", DOCS)
def test_text_has_glyphs(visits, doc):
    """No character shows as an empty box: the glossary's Chinese terms need a CJK font."""
    tofu = visits[doc]["tofu"]
    assert not tofu, (
        f"{doc}: {len(tofu)} characters have no font and show as boxes: {''.join(tofu[:40])!r} "
        "(Debian: apt-get install fonts-noto-cjk)")


def _fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers.get_content_type(), r.read()
    except urllib.error.HTTPError as e:
        return e.code, "", b""


def test_no_broken_internal_links(visits, site):
    """Crawl every local page reachable from the toc: targets exist, #anchors exist."""
    pages: dict[str, dict] = {}  # url without fragment -> {"status", "ids", "html"}
    for report in visits.values():
        pages[report["url"]] = {"status": report["status"], "ids": set(report["ids"]), "html": True}
    links: deque[tuple[str, str]] = deque()  # (from page, absolute href)
    for report in visits.values():
        links.extend((report["url"], href) for href in report["hrefs"])

    broken, checked = [], 0
    while links:
        source, href = links.popleft()
        if not href.startswith(site):
            continue  # other hosts and schemes (Binder, GitHub, mailto:) are not ours to check
        target, fragment = urldefrag(href)
        target = target.split("?", 1)[0]
        if target.endswith("/"):
            target += "index.html"
        if target not in pages:
            status, ctype, body = _fetch(target)
            info = {"status": status, "ids": set(), "html": ctype == "text/html"}
            if status == 200 and info["html"]:
                hrefs, info["ids"] = parse_links_and_ids(body.decode("utf8", "replace"))
                links.extend((target, urljoin(target, h)) for h in hrefs)
            pages[target] = info
        info = pages[target]
        checked += 1
        where = f"{source[len(site):]} -> {href[len(site):]}"
        if info["status"] != 200:
            broken.append(f"{where}: HTTP {info['status']}")
        elif fragment and info["html"] and unquote(fragment) not in info["ids"]:
            broken.append(f"{where}: no #{unquote(fragment)} on that page")
    assert checked > 100, f"only {checked} links found: is the book empty?"
    assert not broken, f"{len(broken)} broken internal links:\n" + "\n".join(sorted(set(broken)))


@pytest.mark.parametrize("doc", EXERCISES)
def test_exercise_offers_notebook_download(visits, site, doc):
    report = visits[doc]
    assert source_suffix(doc) == ".ipynb"
    notebooks = [d["href"] for d in report["download"] if d["href"].split("?")[0].endswith(".ipynb")]
    assert notebooks, f"{doc}: no .ipynb in the download menu: {report['download']}"
    href = notebooks[0]
    assert href == urljoin(site, f"_sources/{doc}.ipynb"), f"{doc}: download points to {href}"
    status, _, body = _fetch(href)
    assert status == 200, f"{doc}: {href} gives HTTP {status}"
    nb = json.loads(body)
    assert nb.get("nbformat") == 4 and nb.get("cells"), f"{doc}: the download is not a notebook"
    # It is the notebook as released to students, not the solution.
    assert body == (ROOT / f"{doc}.ipynb").read_bytes(), f"{doc}: the download differs from {doc}.ipynb"


@pytest.mark.parametrize("doc", EXERCISES)
def test_exercise_offers_launch_buttons(visits, doc):
    config = load_config()
    repo = config["repository"]["url"].rstrip("/")
    owner_repo = urlsplit(repo).path.strip("/")
    branch = config["repository"].get("branch", "main")
    launch = config["launch_buttons"]
    ui = "lab/tree" if launch.get("notebook_interface", "classic") == "jupyterlab" else "tree"
    hrefs = [b["href"] for b in visits[doc]["launch"]]
    expected = []
    if launch.get("binderhub_url"):
        expected.append(f"{launch['binderhub_url'].rstrip('/')}/v2/gh/{owner_repo}/{branch}"
                        f"?urlpath={ui}/{doc}.ipynb")
    if launch.get("jupyterhub_url"):
        expected.append(f"{launch['jupyterhub_url'].rstrip('/')}/hub/user-redirect/git-pull?repo={repo}")
    assert expected, "_config.yml configures no launch button (launch_buttons.binderhub_url / jupyterhub_url)"
    for want in expected:
        assert any(h.startswith(want) for h in hrefs), f"{doc}: no launch link {want}; found {hrefs}"


def test_search_finds_forget_gate(site, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    rec = Recorder(site)
    rec.attach(context, page)
    try:
        page.goto(urljoin(site, "search.html"), wait_until="load")
        box = page.locator(".bd-search-container form.bd-search input[name=q]")
        box.fill("forget gate")
        box.press("Enter")
        page.wait_for_url(re.compile(r"search\.html\?q=forget"))
        results = page.locator("#search-results ul.search li")
        results.first.wait_for(state="visible")
        page.wait_for_function(
            "() => (document.querySelector('#search-results .search-summary')?.textContent || '')"
            ".match(/\\d+ page/i)")
        found = results.evaluate_all("lis => lis.map(li => li.querySelector('a').href)")
        page.screenshot(path=str(SCREENSHOTS / "search_forget_gate.png"))
    finally:
        context.close()
    assert any("03_gates" in href for href in found), f"'forget gate' search results miss chapter 3: {found}"
    assert not rec.problems(), json.dumps(rec.problems(), indent=1)


@pytest.mark.parametrize("doc", EXERCISES)
def test_exercise_offers_the_student_kit(visits, doc):
    kits = [h for h in visits[doc]["hrefs"] if urlsplit(h).path.endswith("/student-kit.zip")]
    assert kits, f"{doc}: no link to student-kit.zip"
    with urllib.request.urlopen(kits[0]) as response, zipfile.ZipFile(io.BytesIO(response.read())) as kit:
        names = kit.namelist()
    assert any(re.fullmatch(r"rnnkit-[\w.]+-py3-none-any\.whl", n) for n in names), names
    assert f"{doc}.ipynb" in names and "README.md" in names, names


@pytest.mark.parametrize("doc", [d for d in DOCS if d not in EXERCISES])
def test_only_exercises_offer_a_launch_button(visits, doc):
    """Binder's environment holds the student kit only: a chapter launched there could not run."""
    assert not visits[doc]["launch"], f"{doc}: launch links {visits[doc]['launch']}"


@pytest.mark.parametrize("doc", CHAPTERS + EXERCISES)
def test_screenshot_saved(visits, doc):
    shot = Path(visits[doc]["screenshot"])
    assert shot.is_file() and shot.stat().st_size > 20_000, f"{doc}: no usable screenshot at {shot}"

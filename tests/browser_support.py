"""Helpers for tests/test_book_browser.py: serve the built book, drive Debian's Chromium.

Nothing here downloads a browser: Playwright (the PyPI package ``playwright``) drives
the system Chromium at /usr/bin/chromium (Debian packages chromium, fonts-noto-cjk).
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import yaml
from ci import unavailable

ROOT = Path(__file__).resolve().parent.parent
BUILD_HTML = Path(os.environ.get("BOOK_TEST_HTML", ROOT / "_build" / "html"))  # the built book to test
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("BOOK_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium():
    """Headless Chromium through Playwright, or skip (fail on CI) saying what to install."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("browser tests cannot run", "pip install -r requirements.txt (playwright)")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable("browser tests cannot run", f"no Chromium at {CHROMIUM}: apt-get install chromium fonts-noto-cjk")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def load_config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf8"))


def toc_pages() -> list[dict]:
    """Every page in _toc.yml, in reading order: {"doc", "caption"} (caption of its part)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf8"))
    pages = [{"doc": toc["root"], "caption": None}]

    def walk(entries, caption):
        for entry in entries or []:
            if "file" in entry:
                pages.append({"doc": entry["file"], "caption": caption})
            walk(entry.get("sections"), caption)

    for part in toc.get("parts", []):
        walk(part.get("chapters"), part.get("caption"))
    walk(toc.get("chapters"), None)
    return pages


def source_suffix(doc: str) -> str:
    for suffix in (".ipynb", ".md"):
        if (ROOT / (doc + suffix)).is_file():
            return suffix
    raise FileNotFoundError(f"no source for toc entry {doc!r}")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass


class BookServer:
    """http.server on 127.0.0.1, a free port, serving a folder from a daemon thread."""

    def __init__(self, directory: Path):
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="book-server", daemon=True)

    def __enter__(self) -> "BookServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class LinksAndIds(HTMLParser):
    """The hrefs and the anchor targets (id=, <a name=>) of a static HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])


def parse_links_and_ids(html: str) -> tuple[list[str], set[str]]:
    parser = LinksAndIds()
    parser.feed(html)
    return parser.hrefs, parser.ids


# Runs in the page once it has loaded: waits for MathJax (if the page loads it) and for
# every image, then reports what a reader would see.
PAGE_REPORT_JS = r"""
async () => {
  const mjScript = [...document.scripts].find(s => /mathjax/i.test(s.src || ''));
  let mathjax = null;
  if (mjScript) {
    const t0 = Date.now();
    while (!(window.MathJax && MathJax.startup && MathJax.startup.promise) && Date.now() - t0 < 3000)
      await new Promise(r => setTimeout(r, 50));
    let error = null;
    if (!(window.MathJax && MathJax.startup)) error = `MathJax did not load from ${mjScript.src}`;
    else try { await MathJax.startup.promise; } catch (e) { error = String(e); }
    mathjax = {
      src: mjScript.src,
      version: (window.MathJax && MathJax.version) || null,
      error,
    };
  }
  for (const img of document.images) img.loading = 'eager';
  await Promise.all([...document.images].map(img => img.complete ? null :
    new Promise(r => { img.addEventListener('load', r); img.addEventListener('error', r);
                       setTimeout(r, 10000); })));
  const article = document.querySelector('article.bd-article') || document.body;
  // Text a reader reads, without code (which may legitimately hold "\(" or "$$").
  const clone = article.cloneNode(true);
  clone.querySelectorAll('pre, code, mjx-container, script, style, .highlight').forEach(e => e.remove());
  const mathSources = [...article.querySelectorAll('span.math, div.math')];
  const unrendered = mathSources.filter(e => !e.querySelector('mjx-container'))
                                .map(e => e.textContent.trim().slice(0, 80));
  // Characters no installed font has are drawn as .notdef boxes ("tofu"): draw each
  // non-ASCII character of the visible text and compare it with unassigned code points.
  const visible = document.body.cloneNode(true);
  visible.querySelectorAll('mjx-container, script, style, noscript, dialog').forEach(e => e.remove());
  const chars = [...new Set([...visible.textContent].filter(ch => ch.codePointAt(0) > 0x7f && ch.trim()))];
  const canvas = document.createElement('canvas'); canvas.width = 48; canvas.height = 48;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const family = getComputedStyle(article).fontFamily;
  const draw = ch => { ctx.clearRect(0, 0, 48, 48); ctx.font = `32px ${family}`; ctx.fillText(ch, 4, 36);
                       return ctx.getImageData(0, 0, 48, 48).data.join(','); };
  const notdef = new Set(['\u0378', '\u0379', '\u{10FFFD}'].map(draw));
  const tofu = chars.filter(ch => notdef.has(draw(ch)));
  const ids = new Set();
  document.querySelectorAll('[id]').forEach(e => ids.add(e.id));
  document.querySelectorAll('a[name]').forEach(e => ids.add(e.getAttribute('name')));
  return {
    title: document.title,
    mathjax,
    mjx: article.querySelectorAll('mjx-container').length,
    mjxErrors: [...article.querySelectorAll('mjx-merror, [data-mjx-error]')]
                 .map(e => e.getAttribute('data-mjx-error') || e.textContent).slice(0, 5),
    mathSources: mathSources.length,
    unrendered: unrendered.slice(0, 5),
    text: clone.innerText,
    images: [...document.images].map(img => ({
      src: img.currentSrc || img.src, alt: img.alt, w: img.naturalWidth, h: img.naturalHeight,
      inArticle: article.contains(img), shownWidth: img.clientWidth,
      figure: (img.closest('figure') || {}).id || null,
    })),
    tofu,
    checkedChars: chars.length,
    hrefs: [...document.querySelectorAll('a[href], link[href]:is([rel~=next], [rel~=prev], [rel~=index], [rel~=search])')]
             .map(a => a.href),
    ids: [...ids],
    download: [...document.querySelectorAll('.dropdown-download-buttons a.btn-download-source-button')]
                .map(a => ({href: a.href, text: a.innerText.trim()})),
    launch: [...document.querySelectorAll('.dropdown-launch-buttons a')]
                .map(a => ({href: a.href, text: a.innerText.trim(), title: a.title})),
  };
}
"""

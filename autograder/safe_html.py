"""HTML from a student's notebook, made inert: nbconvert's sanitising, with an allow-list that keeps the page.

nbconvert's own ``clean_html`` (``HTMLExporter.sanitize_html``) escapes paragraphs,
headings, images and ``<details>``; nbgrader's feedback and formgrade templates render
markdown cells without it. :mod:`autograder.nbgrader_config` registers both filters
below under nbconvert's names (``clean_html``, ``markdown2html``) for every HTML
exporter of the course, the formgrader's included, and turns sanitising on:

* tags outside :data:`TAGS` (``script``, ``iframe``, ``svg``, ``style``, ``form``,
  ``object``...) are shown as text, never parsed; comments are dropped;
* attributes other than titles, alt texts, sizes and table spans go (every ``on*``
  handler, ``style``, ``id`` and ``name``, which could take the formgrader's own
  elements' ids); a class is kept only if it is one of syntax highlighting's short
  names (no page layout classes);
* links keep only http(s) and mailto targets; images only ``data:`` images, so that
  opening a page requests nothing a student chose.

:class:`EscapeStudentNames` does the same for the student's id and names on the
formgrader's submission page.
"""
import functools
import html
import re
import threading

import bleach
from jinja2 import pass_context
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbconvert.preprocessors import Preprocessor

TAGS = frozenset("""a abbr b blockquote br caption code col colgroup dd del details div dl dt em
    h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre q s samp small span strong sub summary sup
    table tbody td tfoot th thead tr u ul var""".split())
#: pygments' token classes (``k``, ``nf``, ``s2``), ``highlight``, nbconvert's anchor links and ANSI colours
_CLASS = re.compile(r"(highlight|hll|anchor-link|[a-z]{1,3}\d?|ansi-[a-z-]{1,24})")
_LINK = re.compile(r"\s*(https?:|mailto:|#)", re.I)
_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*", re.I)


def _attribute(tag, name, value):
    """Whether bleach keeps attribute ``name="value"`` of ``tag``."""
    if name == "class":
        return all(_CLASS.fullmatch(c) for c in value.split())
    if tag == "a":
        return name == "title" or (name == "href" and bool(_LINK.match(value)))
    if tag == "img":
        return name in ("alt", "title", "width", "height") or (name == "src" and bool(_IMAGE.fullmatch(value)))
    if tag in ("td", "th"):
        return name in ("colspan", "rowspan", "align")
    return name == "title"


_cleaners = threading.local()   # a bleach Cleaner is not thread-safe: one per thread


def _clean(text):
    cleaner = getattr(_cleaners, "cleaner", None)
    if cleaner is None:
        cleaner = _cleaners.cleaner = bleach.Cleaner(tags=TAGS, attributes=_attribute, strip=False,
                                                     protocols={"http", "https", "mailto", "data"},
                                                     strip_comments=True)
    return cleaner.clean(text)


#: Texts up to this size are cleaned once per process: the course's own cells are the same on every page.
CACHED = 20_000
_clean_cached = functools.lru_cache(maxsize=256)(_clean)


def clean_html(element):
    """``element`` (HTML text) with only :data:`TAGS` and safe attributes left as markup."""
    text = element.decode() if isinstance(element, bytes) else str(element)
    return _clean_cached(text) if len(text) <= CACHED else _clean(text)


@pass_context
def markdown2html(context, source):
    """nbconvert's ``HTMLExporter.markdown2html`` (headings with anchors, math kept for MathJax), cleaned."""
    attachments = context.get("cell", {}).get("attachments", {})
    if attachments or len(source) > CACHED:
        return _markdown2html(source, attachments)
    return _markdown2html_cached(source)


def _markdown2html(source, attachments=None):
    renderer = IPythonRenderer(escape=False, attachments=attachments or {}, embed_images=False, path="",
                               anchor_link_text="¶", exclude_anchor_links=False)
    return clean_html(MarkdownWithMath(renderer=renderer).render(source))


_markdown2html_cached = functools.lru_cache(maxsize=256)(_markdown2html)


#: For ``HTMLExporter.filters``: the names nbconvert's and nbgrader's templates call.
FILTERS = {"clean_html": clean_html, "markdown2html": markdown2html}


class EscapeStudentNames(Preprocessor):
    """The formgrader's submission page names the student: its id and names, escaped before templating.

    nbgrader's formgrade template writes ``resources.student``, ``first_name``,
    ``last_name`` and ``notebook_path`` (which holds the id) into the page as they are;
    a student id is a folder name, which may hold markup. Other pages' resources are
    left alone.
    """

    def preprocess(self, nb, resources):
        for key in ("student", "first_name", "last_name", "notebook_path"):
            if isinstance(resources.get(key), str):
                resources[key] = html.escape(resources[key], quote=True)
        return nb, resources

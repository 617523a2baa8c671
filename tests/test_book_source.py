"""The book's MyST sources keep the presentation rules of the developers' guide.

How a figure is declared (the rule this test enforces):
- a code cell that draws with ``plt.show()`` carries ``mystnb.figure.name``
  (``fig-...``), a non-empty ``mystnb.figure.caption`` and a non-empty
  ``mystnb.image.alt``: myst-nb then numbers and captions it;
- a figure glued with ``glue(name, fig)`` is shown by a ``{glue:figure}``
  directive with ``:alt:``, ``:name:`` and a caption.
Code a reader can see (every cell not tagged remove-cell or remove-input, and
hide-input cells, which open on a click) fits 79 columns; build-time glue calls
sit only in cells whose input is removed or hidden.
"""
import re
from pathlib import Path

import pytest
import yaml
from ci import unavailable

BOOK = Path(__file__).resolve().parent.parent / "book"
PAGES = sorted(BOOK.glob("*.md"))
MAX_COLUMNS = 79
GLUE_CALL = re.compile(r"^\s*(glue|g)\(", re.M)
HIDDEN = {"remove-cell", "remove-input", "hide-input", "hide-cell"}
REMOVED = {"remove-cell", "remove-input"}


def code_cells(text):
    """[(first line number, metadata dict, source)] of every {code-cell}."""
    lines, cells, i = text.splitlines(), [], 0
    while i < len(lines):
        if not lines[i].startswith("```{code-cell}"):
            i += 1
            continue
        i, meta = i + 1, {}
        if i < len(lines) and lines[i] == "---":
            end = lines.index("---", i + 1)
            meta = yaml.safe_load("\n".join(lines[i + 1:end])) or {}
            i = end + 1
        while i < len(lines) and lines[i].startswith(":"):
            key, _, value = lines[i][1:].partition(":")
            meta[key.strip()] = yaml.safe_load(value)
            i += 1
        body_start = i
        while lines[i] != "```":
            i += 1
        body = lines[body_start:i]
        while body and not body[0].strip():  # strip("\n") below drops them
            body, body_start = body[1:], body_start + 1
        cells.append((body_start + 1, meta, "\n".join(body).strip("\n")))
        i += 1
    return cells


def glue_figures(text):
    """{name: directive options and body} of every {glue:figure} directive."""
    found = {}
    for m in re.finditer(r"^```\{glue:figure\} (\S+)\n(.*?)^```", text, re.M | re.S):
        options = dict(re.findall(r"^:(\w+):\s*(.*)$", m.group(2), re.M))
        body = "\n".join(line for line in m.group(2).splitlines()
                         if line.strip() and not line.startswith(":"))
        found[m.group(1)] = (options, body)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_visible_code_fits_79_columns(page):
    long = []
    for start, meta, source in code_cells(page.read_text(encoding="utf8")):
        if REMOVED & set(meta.get("tags", [])):
            continue
        for k, line in enumerate(source.splitlines()):
            if len(line) > MAX_COLUMNS:
                long.append(f"{page.name}:{start + k}: {len(line)} columns")
    assert not long, "\n".join(long)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_glue_calls_are_hidden(page):
    shown = [f"{page.name}:{start}" for start, meta, source
             in code_cells(page.read_text(encoding="utf8"))
             if not HIDDEN & set(meta.get("tags", [])) and GLUE_CALL.search(source)]
    assert not shown, f"glue calls in always-visible cells: {shown}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_figure_is_numbered_captioned_and_described(page):
    text = page.read_text(encoding="utf8")
    bad = []
    for start, meta, source in code_cells(text):
        if "plt.show()" not in source:
            continue
        figure = meta.get("mystnb", {}).get("figure", {})
        alt = meta.get("mystnb", {}).get("image", {}).get("alt", "")
        if not (str(figure.get("name", "")).startswith("fig-")
                and str(figure.get("caption", "")).strip() and str(alt).strip()):
            bad.append(f"{page.name}:{start}")
    glued = glue_figures(text)
    for name in re.findall(r"glue\(\s*\"(\w+)\",\s*fig\b", text):
        options, body = glued.get(name, ({}, ""))
        if not (options.get("alt") and options.get("name", "").startswith("fig-")
                and body.strip()):
            bad.append(f"{page.name}: glued figure {name}")
    assert not bad, f"figures without name, caption or alt text: {bad}"


def test_the_parser_sees_the_book():
    """Guards the three tests above against a parser that finds nothing."""
    cells = [c for page in PAGES for c in code_cells(page.read_text("utf8"))]
    assert len(cells) > 50
    assert sum("plt.show()" in source for _, _, source in cells) > 10
    assert any("tags" in meta for _, meta, _ in cells)
    assert any("mystnb" in meta for _, meta, _ in cells)


CHAPTERS = sorted(BOOK.glob("0*.md"))
EXECUTED = BOOK.parent / "_build" / "jupyter_execute" / "book"


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_uses_the_book_figure_style(page):
    """One resolution for every figure: autograder.figures.style (2x PNGs)."""
    setup = [source for _, _, source in code_cells(page.read_text("utf8"))
             if "use_book_style()" in source]
    assert setup, f"{page.name} does not call use_book_style()"
    assert "figure_format" not in page.read_text("utf8")
    assert '"figure.dpi"' not in page.read_text("utf8")


NOTEBOOKS = [p for p in PAGES if "```{code-cell}" in p.read_text("utf8")]


@pytest.mark.parametrize("page", NOTEBOOKS, ids=lambda p: p.name)
def test_no_warning_printed_on_the_page(page):
    """A build-time warning (stderr) would show on the page as a red box."""
    import json

    executed = EXECUTED / f"{page.stem}.ipynb"
    if not executed.is_file():
        unavailable(f"{executed} missing", "make book")
    cells = json.loads(executed.read_text("utf8"))["cells"]
    stderr = [out.get("text", "")[:200] if isinstance(out.get("text"), str)
              else "".join(out.get("text", []))[:200]
              for cell in cells for out in cell.get("outputs", [])
              if out.get("output_type") == "stream" and out.get("name") == "stderr"]
    assert not stderr, f"{page.name} prints: {stderr}"

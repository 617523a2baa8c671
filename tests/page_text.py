"""Read an HTML page as a person does: its visible text (tags stripped, entities decoded, scripts and
styles dropped), and what of an assignment's hidden tests that text shows.

nbgrader's feedback highlights code token by token (``<span class="s1">&#39;N&#39;</span>``), so a
pattern run over the HTML source finds a leaked ``{'N': 4, 'D': 7, 'H': 3}`` nowhere; over the visible
text it does.

Every leak check and every "the page says" check on HTML goes through here.
"""
import re
from html.parser import HTMLParser

from hidden import hidden_lines, hidden_specs, shown_specs

#: Elements whose content is not shown as text.
INVISIBLE = {"script", "style", "template", "head", "noscript"}
#: Elements that start a new line of text.
BLOCKS = {"p", "div", "pre", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "details", "summary",
          "table", "section", "article", "body", "dt", "dd"}


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.hidden, self.scripts = [], 0, []

    def handle_starttag(self, tag, attrs):
        if tag in INVISIBLE:
            self.hidden += 1
            if tag == "script":
                self.scripts.append({"src": dict(attrs).get("src"), "text": ""})
        elif tag in BLOCKS:
            self.parts.append("\n")

    def handle_startendtag(self, tag, attrs):
        if tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in INVISIBLE:
            self.hidden = max(0, self.hidden - 1)
        elif tag in BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if self.hidden:
            if self.scripts and self.lasttag == "script":
                self.scripts[-1]["text"] += data
            return
        self.parts.append(data)


def parse(html):
    parser = _Text()
    parser.feed(html)
    parser.close()
    return parser


def visible_text(html):
    """The text a reader sees in ``html``: no tags, entities decoded, no script/style/head content."""
    return "".join(parse(html).parts)


def scripts(html):
    """[{"src": src or None, "text": inline code}] of every <script> element."""
    return parse(html).scripts


def leaks(text, assignment, own=""):
    """What of ``assignment``'s hidden tests the visible ``text`` shows: [description] (empty: nothing).

    ``own``: what the student wrote (their cells' source); what is in it is theirs to see again.
    """
    flat, own_flat = re.sub(r"\s+", " ", text), re.sub(r"\s+", " ", own)
    found = ["the HIDDEN TESTS marker"] * ("HIDDEN TESTS" in text and "HIDDEN TESTS" not in own)
    mine = set(shown_specs(own, hidden_specs(assignment)))
    found += [f"hidden case {spec}" for spec in shown_specs(text, hidden_specs(assignment)) if spec not in mine]
    found += [f"hidden line {line!r}" for line in hidden_lines(assignment)
              if re.sub(r"\s+", " ", line) in flat and re.sub(r"\s+", " ", line) not in own_flat]
    arguments = {"cases=": r"\bcases\s*=", "hidden=[": r"\bhidden\s*=\s*\["}   # `hidden=16` is a layer size
    found += [f"a {arg} argument" for arg, pattern in arguments.items()
              if re.search(pattern, text) and not re.search(pattern, own)]
    return found


def assert_no_leak(html, assignment, where="", own=""):
    """The page shows none of ``assignment``'s hidden tests to a reader (but what the student wrote, ``own``)."""
    found = leaks(visible_text(html), assignment, own)
    assert not found, f"{where or 'page'} shows hidden tests of {assignment}: {found}"


def assert_offline_feedback(html, assignment, where=""):
    """A feedback page: no hidden test visible, MathJax from the course's shared copy, no script from the web."""
    assert_no_leak(html, assignment, where)
    sources = [s["src"] for s in scripts(html) if s["src"]]
    assert any(re.fullmatch(r"(\.\./)+_mathjax/tex-svg\.js", src) for src in sources), \
        f"{where}: MathJax is not loaded from the course's shared copy: {sources}"
    assert not [src for src in sources if re.match(r"(https?:)?//", src)], f"{where}: loads scripts from the web"

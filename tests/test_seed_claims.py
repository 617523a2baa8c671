"""Every seed claim the book corrects has its box on the built page.

CLAIMS lists them: the seed article (file number in ../shared/seeds/), the chapter
that answers it, and a quote that must appear, in Chinese as the seed writes it,
inside a ``seed-claim`` admonition of that chapter's HTML, in a box that names the
seed. Where the seed articles are present (the course team's checkout), each quote
is also checked against its seed, so that no box misquotes its source.
"""
import os
import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

import pytest
from ci import unavailable

ROOT = Path(__file__).resolve().parent.parent
HTML = Path(os.environ.get("BOOK_TEST_HTML", ROOT / "_build" / "html")) / "book"
SEEDS = Path(os.environ.get("SEED_ARTICLES", ROOT.parent / "shared" / "seeds"))

CH1, CH2, CH3, CH4 = ("01_recurrent_cell", "02_long_term_dependencies",
                      "03_gates", "04_bptt")
CH6 = "06_applications"

#: (seed, chapter, quote)
CLAIMS = [
    ("000", CH1, "循环卷积网络"),
    ("000", CH2, "当前结点的输出不仅与当前结点相关，还与之前的所有结点相关"),
    ("000", CH3, "i 代表 information"),
    ("000", CH3, "实际上对应的是LSTM中的"),
    ("000", CH3, "是 LSTM 的一个特例"),
    ("000", CH3, "解决的是长序列数据训练过程中的梯度消失和梯度爆炸问题"),
    ("002", CH3, "表示的是遗忘上一序列细胞状态的概率"),
    ("003", CH3, "长时间记住信息实际上是 LSTM 的默认行为"),
    ("004", CH3, "能够解决传统 RNN 出现的梯度消失或爆炸的问题"),
    ("004", CH3, "如果遗忘门由低到高打开，那么之前的 Cell state 将被完全忘记掉"),
    ("004", CH3, "当输入门由高到低关闭时，信息会被遗忘掉"),
    ("004", CH3, "是通过遗忘门、输入门和输出门来计算的"),
    ("004", CH3, "也称为胶囊连接"),
    ("004", CH3, "可以起到增加非线性的作用"),
    ("004", CH3, "z_t = sigmoid(W_ix * xt + b_ix)"),
    ("004", CH3, "f_t = sigmoid(W_fx * xt + b_fx)"),
    ("004", CH3, r"\tilde{C}_t = \tanh(W_cx * xt + b_cx)"),
    ("004", CH3, "ft 和 ft-1 均为 0 或 1"),
    ("004", CH3, "通常是小于等于100ms"),
    ("004", CH3, "(hidden_size x input_size)"),
    ("004", CH3, "LSTM 也是目前效果最好的递归神经网络"),
    ("004", CH3, r"\hat{h}_t = \tanh(\sigma(C_t))"),
    ("004", CH4, "dL/dIt = dL/dc_t * df_t * di_t"),
    ("004", CH4, "dL/dft = dL/dc_t * dtanh(C_{t-1}) * do_t * ft"),
    ("004", CH4, "dL/dC_{t-1} = dL/dc_t * dtanh(C_{t-1}) * dot(Wf_{t}, do_t*odot_t)"),
    ("004", CH4, "为了降低计算量，LSTM 使用了一种技巧"),
    ("004", CH6, "输入层与隐藏层之间是多对多的连接"),
]

# CJK radicals that NFKC leaves alone but the seeds' PDF extraction produced
RADICALS = {"\u2ed3": "长"}


def _flat(text):
    """NFKC, radicals mapped to their characters, no whitespace."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(RADICALS.get(ch, ch) for ch in text)
    return re.sub(r"\s+", "", text)


class _Boxes(HTMLParser):
    """Text of every <div class="... seed-claim ...">, nested divs included."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.boxes, self._depth, self._text = [], 0, []

    def handle_starttag(self, tag, attrs):
        if tag != "div":
            return
        if self._depth:
            self._depth += 1
        elif "seed-claim" in (dict(attrs).get("class") or "").split():
            self._depth, self._text = 1, []

    def handle_endtag(self, tag):
        if tag == "div" and self._depth:
            self._depth -= 1
            if not self._depth:
                self.boxes.append("".join(self._text))

    def handle_data(self, data):
        if self._depth:
            self._text.append(data)


def _boxes(chapter):
    page = HTML / f"{chapter}.html"
    if not page.is_file():
        unavailable(f"the book is not built ({page} missing)", "make book")
    parser = _Boxes()
    parser.feed(page.read_text(encoding="utf8"))
    return [_flat(box) for box in parser.boxes]


@pytest.mark.parametrize("seed,chapter,quote", CLAIMS,
                         ids=[f"{s}-{c[:2]}-{q[:12]}" for s, c, q in CLAIMS])
def test_the_claim_has_its_box(seed, chapter, quote):
    boxes = [b for b in _boxes(chapter) if _flat(quote) in b]
    assert boxes, f"no seed-claim box in {chapter} quotes {quote!r}"
    assert any(f"seed{seed}" in b.lower() for b in boxes), \
        f"the box quoting {quote!r} does not name seed {seed}"


@pytest.mark.parametrize("seed,chapter,quote", CLAIMS,
                         ids=[f"{s}-{c[:2]}-{q[:12]}" for s, c, q in CLAIMS])
def test_the_quote_is_in_its_seed(seed, chapter, quote):
    found = sorted(SEEDS.glob(f"{seed}_*.txt"))
    if not found:
        unavailable(f"seed articles not here ({SEEDS})", "the course leads' shared/ folder beside the repository")
    assert _flat(quote) in _flat(found[0].read_text(encoding="utf8")), \
        f"seed {seed} does not say {quote!r}"


def test_every_box_is_listed():
    """A box added to a chapter without a row here would go unchecked."""
    for chapter in (CH1, CH2, CH3, CH4):
        quotes = [_flat(q) for _, c, q in CLAIMS if c == chapter]
        for box in _boxes(chapter):
            assert any(q in box for q in quotes), f"{chapter}: unlisted box {box[:60]}"

"""Text corpora for the character-level language model of chapter 5 and exercise 5.

Two corpora, neither written by the course:

* ``"tang300"``: the Tang poems of Debian's ``fortunes-zh`` package
  (``/usr/share/games/fortunes/tang300``, about 300 poems). Each poem in the file is a
  title line and an author line wrapped in ANSI colour codes, then the poem; poems are
  separated by lines holding ``%``. A preface (并序), separated from the poem by a blank
  line, is dropped.
* ``"pydoc"``: the English text of Python's documentation shipped with CPython,
  ``pydoc_data.topics.topics`` (one document per topic).

Each is read from the system when it is there (Debian's file; this Python's
``pydoc_data``), otherwise from the copy the student kit's wheel carries in
``rnnkit/data/`` (extracted when the kit is built; origin and licence in
``rnnkit/data/NOTICE.md``), so exercise 5 runs on any laptop, Binder or hub.
The course's repository never holds those copies: only the built kit does.

Then: a :class:`Vocabulary` (characters <-> integer ids), :func:`split_documents`
(whole documents go to training or validation, never parts of one), :func:`stream`
(the documents joined into one sequence of ids) and :func:`stream_batches`, which cuts
that sequence into N parallel rows and yields consecutive chunks of T steps, so that
the state at the end of one chunk is the right initial state of the next
(truncated backpropagation through time).
"""
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

TANG300 = Path("/usr/share/games/fortunes/tang300")
#: The corpora the kit's wheel carries (absent from a source checkout of the kit).
DATA = Path(__file__).resolve().parent / "data"
PACKAGED = {"tang300": DATA / "tang300.json", "pydoc": DATA / "pydoc.json"}
ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")
TITLE = re.compile(r"^《(.*)》$")
AUTHOR = re.compile(r"^作者：(.*)$")

#: Between two documents of a stream: a blank line, so the model can learn where a
#: document ends.
SEPARATOR = "\n"


class CorpusMissing(RuntimeError):
    """A corpus file is not installed; the message says how to install it.

    In Jupyter it shows as that one line, with no traceback.
    """

    def _render_traceback_(self):  # IPython's hook for how an exception is displayed
        return [f"{type(self).__name__}: {self}"]


@dataclass(frozen=True)
class Document:
    """One poem (or documentation topic): title, author and text (lines ending in "\\n")."""

    title: str
    author: str
    text: str


def parse_tang300(raw):
    """Parse the text of fortunes-zh's tang300 file into a list of Documents."""
    poems = []
    for block in re.split(r"^%$", ANSI_CODE.sub("", raw), flags=re.M):
        lines = [line.rstrip() for line in block.strip("\n").split("\n")]
        if lines == [""]:
            continue
        title, author = TITLE.match(lines[0]), AUTHOR.match(lines[1]) if len(lines) > 1 else None
        if not (title and author):
            raise ValueError(f"not a poem (no 《title》 and 作者： lines): {block[:40]!r}")
        body = lines[2:]
        if "" in body:  # a preface, then a blank line, then the poem
            body = body[len(body) - body[::-1].index(""):]
        text = "".join(line.strip() + "\n" for line in body if line.strip())
        poems.append(Document(title.group(1), author.group(1), text))
    return poems


def load_tang300(path=None):
    """The Tang poems, as a list of Documents.

    From ``path`` if given; otherwise from Debian's file (:data:`TANG300`) when it is
    installed, else from the kit's own copy. Raises CorpusMissing, with a one-line
    message saying how to get them, when none is there.
    """
    if path is None:
        if not TANG300.is_file() and PACKAGED["tang300"].is_file():
            return read_packaged("tang300")
        path = TANG300
    path = Path(path)
    if not path.is_file():
        raise CorpusMissing(
            f"Tang poem corpus not found at {path}: install the course's student kit "
            "(its wheel carries the poems) or Debian's fortunes-zh package "
            "(sudo apt-get install fortunes-zh)"
        )
    return parse_tang300(path.read_text(encoding="utf8"))


def load_pydoc():
    """The English text of Python's documentation, one Document per topic (author "Python").

    From this Python's ``pydoc_data`` when it has it, else from the kit's own copy.
    """
    try:
        from pydoc_data.topics import topics
    except ImportError:
        if PACKAGED["pydoc"].is_file():
            return read_packaged("pydoc")
        raise CorpusMissing(
            "pydoc_data.topics not found: this Python was built without its documentation "
            "topics; install the course's student kit (its wheel carries them) or use a "
            "standard CPython build (python.org, Debian's python3)"
        ) from None
    return pydoc_documents(topics)


def pydoc_documents(topics):
    """{topic: text} of ``pydoc_data.topics`` -> Documents, in sorted order of the topics."""
    return [Document(name, "Python", text.rstrip("\n") + "\n") for name, text in sorted(topics.items())]


def write_packaged(name, documents, folder):
    """Store the Documents of corpus ``name`` as a kit's copy, in the data ``folder`` of
    the kit being built (JSON, UTF-8); returns the file's path."""
    path = Path(folder) / PACKAGED[name].name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(d) for d in documents], ensure_ascii=False, indent=0), encoding="utf8")
    return path


def read_packaged(name):
    """The Documents of corpus ``name`` from the kit's copy."""
    return [Document(**d) for d in json.loads(PACKAGED[name].read_text(encoding="utf8"))]


LOADERS = {"tang300": load_tang300, "pydoc": load_pydoc}


def load_corpus(name):
    """Documents of the corpus ``name`` ("tang300" or "pydoc")."""
    if name not in LOADERS:
        raise ValueError(f"unknown corpus {name!r}; choose one of {sorted(LOADERS)}")
    return LOADERS[name]()


#: The character that stands for every character too rare to keep (see Vocabulary.from_documents).
UNKNOWN = "□"


class Vocabulary:
    """Characters <-> integer ids 0..V-1, in sorted order of the characters.

    With ``unknown`` (a character of the vocabulary), characters outside it encode as
    ``unknown``; without, they raise ValueError.
    """

    def __init__(self, chars, unknown=None):
        self.chars = sorted(set(chars) | ({unknown} if unknown else set()))
        self.index = {ch: i for i, ch in enumerate(self.chars)}
        self.unknown = unknown

    @classmethod
    def from_documents(cls, documents, min_count=1):
        """Every character of the documents' texts seen at least ``min_count`` times, and
        the separator; with ``min_count`` > 1 the rarer ones all become :data:`UNKNOWN`."""
        text = "".join(d.text for d in documents)
        if min_count <= 1:
            return cls(text + SEPARATOR)
        chars, counts = np.unique(list(text), return_counts=True)
        return cls([str(ch) for ch in chars[counts >= min_count]] + [SEPARATOR], unknown=UNKNOWN)

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        """text (str of length T) -> ids (T,) int64. Unknown characters become ``unknown``
        if there is one, else raise ValueError."""
        if self.unknown:
            return np.array([self.index.get(ch, self.index[self.unknown]) for ch in text], dtype=np.int64)
        try:
            return np.array([self.index[ch] for ch in text], dtype=np.int64)
        except KeyError as err:
            raise ValueError(f"character {err.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids):
        """ids (any shape, flattened in order) -> str."""
        return "".join(self.chars[i] for i in np.asarray(ids).ravel())


def split_documents(documents, val_fraction=0.1, seed=0):
    """Shuffle whole documents (seeded) and split them into (train, validation) lists.

    A document is never cut in two, so no poem is seen half in training and half
    in validation. Both parts get at least one document.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    if len(documents) < 2:
        raise ValueError(f"need at least 2 documents to split, got {len(documents)}")
    order = np.random.default_rng(seed).permutation(len(documents))
    n_val = min(max(1, round(val_fraction * len(documents))), len(documents) - 1)
    return [documents[i] for i in order[n_val:]], [documents[i] for i in order[:n_val]]


def stream(documents, vocab):
    """The documents' texts, each followed by SEPARATOR, as one sequence of ids (L,) int64."""
    return vocab.encode("".join(d.text + SEPARATOR for d in documents))


def stream_batches(ids, N, T):
    """Cut a stream of ids into N rows and yield consecutive chunks of T steps.

    ids (L,) with L >= N + 1. The inputs are ids[:-1] and the targets ids[1:]
    (the next character), each cut into N contiguous rows of equal length
    R = ceil((L - 1) / N); the end of the last row is padded with id 0.
    Yields (x, y, mask), each (N, T') with T' = T except possibly in the last
    chunk: x the input ids, y the target ids, mask True where y is a real
    target and False on padding. Row n of a chunk continues row n of the
    previous chunk, so the hidden state can be carried from one to the next.
    Every target of the stream appears exactly once with mask True.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) < N + 1:
        raise ValueError(f"need a 1-D stream of at least N + 1 = {N + 1} ids, got shape {ids.shape}")
    if N < 1 or T < 1:
        raise ValueError(f"N and T must be at least 1, got N={N}, T={T}")
    L = len(ids) - 1
    R = -(-L // N)
    x, y, mask = (np.zeros(N * R, dtype=dtype) for dtype in (np.int64, np.int64, bool))
    x[:L], y[:L], mask[:L] = ids[:-1], ids[1:], True
    x, y, mask = (a.reshape(N, R) for a in (x, y, mask))
    for start in range(0, R, T):
        window = slice(start, start + T)
        yield x[:, window], y[:, window], mask[:, window]

"""rnnkit.corpus: parsing, missing corpora, vocabulary, split by document, stream batches."""
import numpy as np
import pytest
from ci import require

from rnnkit import corpus
from rnnkit.corpus import (UNKNOWN, CorpusMissing, Document, Vocabulary, load_corpus, load_tang300,
                           parse_tang300, split_documents, stream, stream_batches)

RAW = (
    "\x1b[32m《静夜思》\x1b[m\n\x1b[33m作者：李白\x1b[m\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n%\n"
    "\x1b[32m《某诗・并序》\x1b[m\n\x1b[33m作者：某人\x1b[m\n序言一句。\n  \n白日依山尽，黄河入海流。  \n%\n"
)


def test_parse_strips_colour_codes_titles_authors_and_prefaces():
    poems = parse_tang300(RAW)
    assert poems == [
        Document("静夜思", "李白", "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n"),
        Document("某诗・并序", "某人", "白日依山尽，黄河入海流。\n"),
    ]


def test_parse_rejects_a_block_without_title():
    with pytest.raises(ValueError, match="not a poem"):
        parse_tang300("床前明月光\n%\n")


def test_missing_corpus_is_one_clear_line(tmp_path):
    with pytest.raises(CorpusMissing) as info:
        load_tang300(tmp_path / "tang300")
    message = str(info.value)
    assert "\n" not in message and "apt-get install fortunes-zh" in message
    assert info.value._render_traceback_() == [f"CorpusMissing: {message}"]


def test_unknown_corpus_name():
    with pytest.raises(ValueError, match="unknown corpus 'tang'"):
        load_corpus("tang")


def test_tang300_installed():
    require(corpus.TANG300.is_file(), f"{corpus.TANG300} missing", "apt-get install fortunes-zh (scripts/system-deps.sh)")
    poems = load_tang300()
    assert len(poems) > 300
    text = "".join(p.text for p in poems)
    assert "\x1b" not in text and "%" not in text and "作者" not in text
    assert any(p.author == "李白" for p in poems)


def test_pydoc_corpus():
    docs = load_corpus("pydoc")
    assert len(docs) > 50 and sum(len(d.text) for d in docs) > 300_000
    assert all(d.text.endswith("\n") for d in docs)


def test_vocabulary_round_trip_and_unknown_character():
    vocab = Vocabulary("hello world")
    assert len(vocab) == 8 and vocab.chars[0] == " "
    ids = vocab.encode("low")
    assert ids.dtype == np.int64 and vocab.decode(ids) == "low"
    assert vocab.decode(vocab.encode("hello").reshape(1, 5)) == "hello"
    with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
        vocab.encode("lz")


def test_split_keeps_documents_whole_and_is_seeded():
    docs = [Document(str(i), "a", f"{i}\n") for i in range(20)]
    train, val = split_documents(docs, val_fraction=0.25, seed=3)
    assert len(val) == 5 and len(train) == 15
    assert sorted(train + val, key=lambda d: int(d.title)) == docs
    assert split_documents(docs, 0.25, seed=3) == (train, val)
    assert split_documents(docs, 0.25, seed=4) != (train, val)
    assert [len(p) for p in split_documents(docs[:2], 0.01)] == [1, 1]
    with pytest.raises(ValueError, match="val_fraction"):
        split_documents(docs, 1.0)


def test_stream_separates_documents():
    docs = [Document("a", "x", "ab\n"), Document("b", "x", "c\n")]
    vocab = Vocabulary.from_documents(docs)
    assert vocab.decode(stream(docs, vocab)) == "ab\n\nc\n\n"


@pytest.mark.parametrize("L, N, T", [(30, 3, 4), (31, 3, 4), (10, 9, 1), (50, 1, 7), (12, 5, 100)])
def test_stream_batches_cover_every_target_once_and_continue_rows(L, N, T):
    ids = np.arange(1, L + 1)
    chunks = list(stream_batches(ids, N, T))
    x = np.concatenate([c[0] for c in chunks], axis=1)
    y = np.concatenate([c[1] for c in chunks], axis=1)
    mask = np.concatenate([c[2] for c in chunks], axis=1)
    assert all(c[0].shape == (N, T) for c in chunks[:-1])
    assert np.array_equal(np.sort(y[mask]), ids[1:])          # every target exactly once
    assert np.array_equal(y[mask], x[mask] + 1)               # target = next id
    assert np.array_equal(x[mask], ids[:-1])                  # rows are contiguous pieces
    assert not mask[:, -1].all() or (L - 1) % N == 0
    assert np.all(x[~mask] == 0) and np.all(y[~mask] == 0)


def test_stream_batches_bad_input():
    with pytest.raises(ValueError, match="at least N \\+ 1"):
        next(stream_batches(np.arange(3), 3, 2))
    with pytest.raises(ValueError, match="T must be at least 1"):
        next(stream_batches(np.arange(10), 2, 0))


def test_rare_characters_become_one_unknown_character():
    docs = [Document("a", "", "aab"), Document("b", "", "abc")]
    vocab = Vocabulary.from_documents(docs, min_count=2)
    assert vocab.chars == sorted(["\n", "a", "b", UNKNOWN])   # c is seen once
    assert vocab.decode(vocab.encode("cab?")) == f"{UNKNOWN}ab{UNKNOWN}"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        Vocabulary.from_documents(docs).encode("?")

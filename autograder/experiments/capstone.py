"""The ranking of book chapter 5: character language models compared fairly.

Every cell is trained at each learning rate of a small sweep and with several
seeds (:func:`grid`). A run keeps its parameters at its best validation loss
(early stopping) and is scored on held-out test text there and at its end.
Runs go to worker
processes (:mod:`autograder.experiments.pool`).

Also the measurements the chapter makes on the trained models: the share of
well-formed verse lines, a bigram sampler (the control for it), and the
position within a half-line with its controls.
"""
import re

import numpy as np

from autograder.experiments import charlm
from autograder.experiments.pool import map_in_workers

#: Chinese punctuation that closes a half-line, and the line break.
PUNCTUATION = "，。？！；：、\n"
#: A well-formed line: two half-lines of 5, or two of 7, characters, closed by
#: a comma and a full stop.
VERSE_LINE = re.compile("[^，。？！；：、]{5}，[^，。？！；：、]{5}。"
                        "|[^，。？！；：、]{7}，[^，。？！；：、]{7}。")


def split3(documents, fraction=0.1, seed=0):
    """Whole documents split (seeded) into train, validation and test lists; validation
    and test each hold about ``fraction`` of the documents."""
    from rnnkit import corpus
    rest, test = corpus.split_documents(documents, fraction, seed)
    train, val = corpus.split_documents(rest, fraction / (1 - fraction), seed + 1)
    return train, val, test


def run(job):
    """Train one model; job: dict cell, lr, seed, settings, data (train_ids, val_ids,
    test_ids, V).

    Returns a dict: the job's cell, lr, seed; "update", "val_loss" (nats per
    character) at each evaluation and "train_loss" (per update) as charlm.train
    gives them; "best_update" (lowest validation loss); "test_best" and
    "test_final" (test loss there and at the end); "params" (at the best
    update) and "params_early" (at the first evaluation after update 0).
    """
    train_ids, val_ids, test_ids, V = job["data"]
    kept = {}
    history = charlm.train(job["cell"], train_ids, val_ids, V, seed=job["seed"],
                           lr=job["lr"], **job["settings"],
                           callback=lambda u, p: kept.update(
                               {u: {k: v.copy() for k, v in p.items()}}))
    best = int(np.argmin(history["val_loss"]))
    best_update = int(history["update"][best])
    return {"cell": job["cell"], "lr": job["lr"], "seed": job["seed"],
            "update": history["update"], "val_loss": history["val_loss"],
            "train_loss": history["train_loss"], "best_update": best_update,
            "test_best": charlm.evaluate(job["cell"], kept[best_update], test_ids),
            "test_final": charlm.evaluate(job["cell"], history["params"], test_ids),
            "params": kept[best_update],
            "params_early": kept[int(history["update"][1])]}


def grid(cells, lrs, seeds, data, settings):
    """:func:`run` for every cell, learning rate and seed, in worker processes
    (:mod:`autograder.experiments.pool`). data: (train_ids, val_ids, test_ids, V);
    settings: those of charlm.train but lr and seed.

    Returns {(cell, lr, seed): result}.
    """
    jobs = [{"cell": c, "lr": lr, "seed": s, "data": data, "settings": settings}
            for c in cells for lr in lrs for s in seeds]
    results = map_in_workers(run, jobs)
    return {(r["cell"], r["lr"], r["seed"]): r for r in results}


def choose_lr(results, cell, lrs, seeds):
    """The learning rate with the lowest mean (over seeds) best validation loss."""
    return min(lrs, key=lambda lr: np.mean([results[cell, lr, s]["val_loss"].min()
                                            for s in seeds]))


def verse_share(text):
    """Share of the non-empty lines of text that are well-formed (:data:`VERSE_LINE`)."""
    lines = [line for line in text.split("\n") if line]
    if not lines:
        return 0.0
    return float(np.mean([VERSE_LINE.fullmatch(line) is not None for line in lines]))


def half_line_position(text):
    """Position of each character within its half-line, (len(text),) int: 1 for the
    first character after punctuation or a line break, 2 for the next...; 0 on
    punctuation and line breaks."""
    position, count = np.zeros(len(text), dtype=np.int64), 0
    for i, ch in enumerate(text):
        count = 0 if ch in PUNCTUATION else count + 1
        position[i] = count
    return position


def leaky_ramp(text, decay=0.5):
    """r_t = decay * r_{t-1} + (1 - decay) * [text[t] is not punctuation], (len(text),):
    a unit whose memory fades by half per step (about 2 steps at decay 0.5)."""
    r, value = np.zeros(len(text)), 0.0
    for i, ch in enumerate(text):
        value = decay * value + (1 - decay) * (ch not in PUNCTUATION)
        r[i] = value
    return r


def abs_correlations(states, target):
    """|Pearson correlation| of each column of states (L, H) with target (L,); a
    constant column gives 0."""
    s = states - states.mean(axis=0)
    t = target - target.mean()
    norms = np.linalg.norm(s, axis=0) * np.linalg.norm(t)
    return np.abs(s.T @ t) / np.where(norms > 0, norms, np.inf)


def bigram_sample(train_ids, V, alpha, prompt, length, temperature, rng):
    """ids drawn from the smoothed bigram model (:func:`charlm.ngram_token_losses`)
    after the last id of prompt, each from the one before, at a temperature."""
    unigram = (np.bincount(train_ids, minlength=V) + 1.0) / (len(train_ids) + V)
    pairs = np.zeros((V, V))
    np.add.at(pairs, (train_ids[:-1], train_ids[1:]), 1.0)
    out, prev = [], int(prompt[-1])
    for _ in range(length):
        p = (pairs[prev] + alpha * unigram) / (pairs[prev].sum() + alpha)
        logits = np.log(p) / temperature
        p = np.exp(logits - logits.max())
        prev = int(np.searchsorted(np.cumsum(p / p.sum()), rng.uniform(), side="right"))
        prev = min(prev, V - 1)
        out.append(prev)
    return np.array(out, dtype=np.int64)

"""Exercise 5's training with the student's default BLAS threads vs one thread, in one run.

    python benchmarks/blas_threads.py [--epochs 1] [--rounds 1]

Trains exercise 5's LSTM language model (the functions of the solution notebook
standing in for a student's, rnnkit.charlm.train with the notebook's settings) on
the Tang poems, three ways, alternating within each round, and prints the seconds
of each and two ratios:

* kit: ``charlm.train`` as the kit ships it, in this process's default environment
  (OpenBLAS starts one thread per core unless OPENBLAS_NUM_THREADS says otherwise);
  the kit limits BLAS to one thread while it trains (rnnkit.threads);
* one thread: the same under ``threadpool_limits(1)`` from outside, which is what
  ``OPENBLAS_NUM_THREADS=1`` gives (the book and the grader set it);
* no limit: the kit's limit switched off, BLAS with its default threads: what
  students got before the kit set it.

The bar: kit / one thread <= 1.2. Not a test (no timing in the test suite).
"""
import argparse
import contextlib
import os
import statistics
import time
from pathlib import Path

import nbformat
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from rnnkit import charlm, corpus, threads

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "solutions" / "05_language_model" / "05_language_model.ipynb"


def student_functions():
    """The model's functions, from the solution notebook's setup and solution cells."""
    namespace = {}
    for cell in nbformat.read(NOTEBOOK, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and (meta.get("solution") or meta.get("grade_id") == "setup"):
            exec(cell.source, namespace)
    names = charlm.FUNCTION_NAMES + ("lstm_forward", "lstm_backward")
    return {name: namespace[name] for name in names}, namespace["clip_by_global_norm"]


def data():
    """Training and validation ids and the vocabulary size, as the notebook makes them."""
    poems = corpus.load_corpus("tang300")
    train_poems, val_poems = corpus.split_documents(poems, 0.1, seed=0)
    vocab = corpus.Vocabulary.from_documents(train_poems, min_count=3)
    return corpus.stream(train_poems, vocab), corpus.stream(val_poems, vocab), len(vocab)


@contextlib.contextmanager
def kit_limit_off():
    """rnnkit.threads's limit replaced by nothing: BLAS keeps its default threads."""
    saved = threads.threadpool_limits
    threads.threadpool_limits = lambda **kwargs: contextlib.nullcontext()
    try:
        yield
    finally:
        threads.threadpool_limits = saved


WAYS = {
    "kit": contextlib.nullcontext,
    "one thread": lambda: threadpool_limits(limits=1, user_api="blas"),
    "no limit": kit_limit_off,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1, help="epochs per training (the notebook: 6)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds; each trains once each way")
    args = parser.parse_args(argv)
    blas = [(i["internal_api"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]
    print(f"BLAS by default here: {blas}; {os.cpu_count()} CPUs; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')}")
    fns, clip = student_functions()
    train_ids, val_ids, V = data()
    seconds = {way: [] for way in WAYS}
    losses = {}
    for _ in range(args.rounds):
        for way, context in WAYS.items():
            with context():
                start = time.perf_counter()
                history = charlm.train("lstm", train_ids, val_ids, V, epochs=args.epochs, seed=0, fns=fns,
                                       clip=lambda grads: clip(grads, 5.0)[0])
                seconds[way].append(time.perf_counter() - start)
            losses[way] = float(history["val_loss"][-1])
    assert len(set(np.round(list(losses.values()), 6))) == 1, f"the three ways trained differently: {losses}"
    best = {way: statistics.median(s) for way, s in seconds.items()}
    for way, s in best.items():
        print(f"{way:>10}: {s:7.2f} s (median of {len(seconds[way])}; all: {', '.join(f'{x:.2f}' for x in seconds[way])})")
    print(f"ratio kit / one thread: {best['kit'] / best['one thread']:.2f} (bar: <= 1.2)")
    print(f"ratio no limit / one thread: {best['no limit'] / best['one thread']:.2f} (before the kit set one thread)")


if __name__ == "__main__":
    main()

"""The measurements of book chapter 5 (autograder.experiments.capstone) and the
worker pool its runs and chapter 4's go to (autograder.experiments.pool)."""
import numpy as np
import pytest

from autograder.experiments import adding, capstone, charlm, pool
from autograder.experiments.variants import gap_run, train_gap_sweep
from rnnkit import corpus


def test_verse_line_is_two_equal_half_lines_of_5_or_7():
    good = ["床前明月光，疑是地上霜。", "故人西辞黄鹤楼，烟花三月下扬州。"]
    bad = ["床前明月光，疑是地上霜", "床前明月，疑是地上霜。", "床前明月光。疑是地上霜，",
           "床前明月光，疑是地上霜。举头", "故人西辞黄鹤楼，烟花三月下。", "，。", ""]
    assert capstone.verse_share("\n".join(good)) == 1.0
    assert capstone.verse_share("\n".join(bad)) == 0.0
    assert capstone.verse_share("\n\n".join(good + bad[:2])) == 0.5
    assert capstone.verse_share("") == 0.0


def test_half_line_position_and_leaky_ramp():
    text = "床前明，疑是\n举"
    assert capstone.half_line_position(text).tolist() == [1, 2, 3, 0, 1, 2, 0, 1]
    ramp = capstone.leaky_ramp(text)
    assert ramp[:3].tolist() == [0.5, 0.75, 0.875]
    assert ramp[3] == 0.4375                      # halves at the comma, no reset
    assert np.all((ramp > 0) & (ramp < 1))


def test_abs_correlations_match_numpy_and_zero_for_constants():
    rng = np.random.default_rng(0)
    target = rng.standard_normal(50)
    states = np.column_stack([target * -2 + 1, rng.standard_normal(50), np.ones(50)])
    corr = capstone.abs_correlations(states, target)
    assert corr[0] == pytest.approx(1.0)
    assert corr[1] == pytest.approx(abs(np.corrcoef(states[:, 1], target)[0, 1]))
    assert corr[2] == 0.0


def test_bigram_sample_follows_the_pairs_at_low_temperature():
    train = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])
    out = capstone.bigram_sample(train, 3, 0.01, [2], 9, 0.05, np.random.default_rng(0))
    assert out.tolist() == [0, 1, 2] * 3
    spread = capstone.bigram_sample(train, 3, 1e6, [0], 300, 1.0, np.random.default_rng(1))
    assert set(spread.tolist()) == {0, 1, 2}       # alpha large: the unigram


def test_split3_keeps_documents_whole_and_disjoint():
    docs = [corpus.Document(f"t{i}", "a", f"text {i}") for i in range(40)]
    train, val, test = capstone.split3(docs, fraction=0.1, seed=0)
    titles = [d.title for part in (train, val, test) for d in part]
    assert sorted(titles) == sorted(d.title for d in docs)
    assert len(val) == len(test) == 4


def test_grid_equals_the_same_runs_one_by_one():
    """Workers give the results of a plain loop; early stopping keeps the best point."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 6, size=400)
    data = (ids[:300], ids[300:350], ids[350:], 6)
    settings = dict(epochs=2, hidden=4, embed=3, batch=2, T=8, evals_per_epoch=2)
    results = capstone.grid(("rnn", "lstm"), (1e-2,), (0, 1), data, settings)
    assert set(results) == {(c, 1e-2, s) for c in ("rnn", "lstm") for s in (0, 1)}
    one = capstone.run({"cell": "lstm", "lr": 1e-2, "seed": 1, "data": data,
                        "settings": settings})
    got = results["lstm", 1e-2, 1]
    assert np.array_equal(one["val_loss"], got["val_loss"])
    best = int(np.argmin(got["val_loss"]))
    assert got["best_update"] == got["update"][best]
    assert got["test_best"] == pytest.approx(charlm.evaluate("lstm", got["params"], ids[350:]))
    assert capstone.choose_lr(results, "rnn", (1e-2,), (0, 1)) == 1e-2


def test_map_in_workers_is_map_and_runs_in_other_processes():
    import os
    assert pool.map_in_workers(abs, [-3, 2, -1]) == [3, 2, 1]
    assert pool.map_in_workers(abs, []) == []
    if pool.workers() > 1:
        assert os.getpid() not in pool.map_in_workers(_pid, range(4))


def _pid(_):
    import os
    return os.getpid()


def test_train_many_and_gap_sweep_match_single_runs():
    many = adding.train_many({"a": dict(cell="rnn", T=6, steps=3, seed=0),
                              "b": dict(cell="lstm", T=6, steps=3, seed=1)})
    assert np.array_equal(many["a"]["eval_mse"], adding.train("rnn", T=6, steps=3, seed=0)["eval_mse"])
    assert many["b"]["cpu"] > 0
    sweep = train_gap_sweep((5,), steps=2, seed=0, models=["LSTM", "GRU"])
    job = dict(name="GRU", T=5, steps=2, seed=0, hidden=32, batch=32, lr=1e-2, clip=1.0,
               eval_batch=500)
    assert sweep["GRU", 5] == gap_run(job)

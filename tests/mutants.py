"""A catalogue of seeded bugs in the solution code of the four exercises.

Each mutant is a small textual edit of one solution cell (by grade_id), made with
:func:`submissions.mutate`, so that a change in a solution's wording breaks the
catalogue loudly instead of leaving a mutant that tests nothing.

``expect`` lists words the grader's failure messages must contain (each in at least
one message): the wrong output (dWx, next_c, h, ...) and, where the grader can tell,
the gate or the time steps.
"""
from dataclasses import dataclass

from submissions import mutate, solution_cells, student_notebook

ASSIGNMENTS = ("01_rnn", "02_long_term", "03_gates", "04_bptt", "05_language_model", "06_seq2seq")


@dataclass(frozen=True)
class Mutant:
    name: str           # student id in the course directory
    assignment: str
    cell: str           # grade_id of the mutated solution cell
    edits: tuple        # ((old, new), ...) applied in order with submissions.mutate
    task: str           # the check() task that must lose points
    expect: tuple       # words that must appear in the failure messages
    bug: str            # what the student got wrong, in words
    public_expect: tuple = ()   # words check() says on the public cases (tests/test_public_catch.py)


def M(name, assignment, cell, edits, task, expect, bug, public=()):
    if isinstance(edits[0], str):
        edits = (edits,)
    return Mutant(name, assignment, cell, tuple(edits), task, tuple(expect), bug, tuple(public))


MUTANTS = [
    # ------------------------------------------------------------------ 01 RNN
    M("rnn_sigmoid_activation", "01_rnn", "rnn_step_forward",
      ("np.tanh(x @ Wx + prev_h @ Wh + b)", "1 / (1 + np.exp(-(x @ Wx + prev_h @ Wh + b)))"),
      "rnn_step_forward", ["next_h: wrong"], "sigmoid instead of tanh"),
    M("rnn_no_recurrent_term", "01_rnn", "rnn_step_forward",
      ("np.tanh(x @ Wx + prev_h @ Wh + b)", "np.tanh(x @ Wx + b)"),
      "rnn_step_forward", ["next_h: wrong"], "h_t from x_t only (no h_{t-1} @ Wh)"),
    M("rnn_no_bias", "01_rnn", "rnn_step_forward",
      ("np.tanh(x @ Wx + prev_h @ Wh + b)", "np.tanh(x @ Wx + prev_h @ Wh)"),
      "rnn_step_forward", ["next_h: wrong", "with b=0 it is right"], "the bias b forgotten",
      public=["bias b is missing"]),
    M("rnn_db_first_row", "01_rnn", "rnn_step_backward",
      ("db = da.sum(axis=0)", "db = da[0]"),
      "rnn_step_backward", ["db: wrong"], "bias gradient of the first example only"),
    M("rnn_no_tanh_derivative", "01_rnn", "rnn_step_backward",
      ("da = dnext_h * (1 - next_h ** 2)", "da = dnext_h * (1 - next_h)"),
      "rnn_step_backward", ["dx: wrong", "dWx: wrong", "db: wrong"], "tanh' written as 1 - h",
      public=["the derivative of tanh looks wrong"]),
    M("rnn_forward_range_T_minus_1", "01_rnn", "rnn_forward",
      ("for t in range(T):", "for t in range(T - 1):"),
      "rnn_forward", ["h: wrong at t=5, right at t=0..4"], "skips the last time step"),
    M("rnn_forward_stores_prev_h", "01_rnn", "rnn_forward",
      ("        prev_h, step_cache = rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)\n        h[:, t, :] = prev_h\n",
       "        h[:, t, :] = prev_h\n        prev_h, step_cache = rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)\n"),
      "rnn_forward", ["h: wrong at every time step", "one step late"], "stores h_{t-1} at index t (before the step)",
      public=["h[:, t] holds the right h[:, t-1], one step late"]),
    M("rnn_backward_no_dWh_accumulation", "01_rnn", "rnn_backward",
      ("dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t", "dWx, dWh, db = dWx + dWx_t, dWh_t, db + db_t"),
      "rnn_backward", ["dWh: wrong", "once step t=1 is included"], "dWh overwritten at every step instead of summed"),
    M("rnn_backward_no_carry", "01_rnn", "rnn_backward",
      ("rnn_step_backward(dh[:, t] + dprev_h, cache[t])", "rnn_step_backward(dh[:, t], cache[t])"),
      "rnn_backward", ["dWh: wrong", "dx: wrong at t=0", "once step t=1 is included"],
      "the gradient from later steps is not added to dh[:, t]"),

    M("numgrad_one_sided", "01_rnn", "numerical_gradient",
      ("grad.flat[i] = (f(x + step) - f(x - step)) / (2 * eps)", "grad.flat[i] = (f(x + step) - f(x)) / eps"),
      "numerical_gradient", ["grad: wrong"], "a one-sided difference"),
    M("numgrad_no_half", "01_rnn", "numerical_gradient",
      ("grad.flat[i] = (f(x + step) - f(x - step)) / (2 * eps)", "grad.flat[i] = (f(x + step) - f(x - step)) / eps"),
      "numerical_gradient", ["grad: wrong"], "the centred difference divided by eps, not 2 eps"),

    # ------------------------------------------------------------------ 02 long-term dependencies
    M("norms_one_step_late", "02_long_term", "rnn_gradient_norms",
      ("        norms[t] = np.sqrt(np.sum(grad ** 2))\n        grad = (grad * (1 - hs[t] ** 2)) @ Wh.T\n",
       "        grad = (grad * (1 - hs[t] ** 2)) @ Wh.T\n        norms[t] = np.sqrt(np.sum(grad ** 2))\n"),
      "rnn_gradient_norms", ["norms: wrong"], "norms[t] holds the norm of dL/dh_{t-1}"),
    M("norms_derivative_of_wrong_step", "02_long_term", "rnn_gradient_norms",
      ("grad = (grad * (1 - hs[t] ** 2)) @ Wh.T", "grad = (grad * (1 - hs[t - 1] ** 2)) @ Wh.T"),
      "rnn_gradient_norms", ["norms: wrong"], "tanh' taken at h_{t-1} instead of h_t"),
    M("norms_no_tanh_derivative", "02_long_term", "rnn_gradient_norms",
      ("grad = (grad * (1 - hs[t] ** 2)) @ Wh.T", "grad = grad @ Wh.T"),
      "rnn_gradient_norms", ["norms: wrong"], "backpropagates through Wh only, without tanh'"),
    M("clip_each_array_separately", "02_long_term", "clip_by_global_norm",
      ("clipped = tuple(g * scale for g in grads)",
       "clipped = tuple(g * min(1.0, max_norm / np.sqrt(np.sum(g ** 2))) for g in grads)"),
      "clip_by_global_norm", ["clipped_0: wrong"], "clips every array to max_norm on its own"),
    M("clip_returns_norm_after_clipping", "02_long_term", "clip_by_global_norm",
      ("    clipped = tuple(g * scale for g in grads)\n",
       "    clipped = tuple(g * scale for g in grads)\n    total_norm = total_norm * scale\n"),
      "clip_by_global_norm", ["total_norm: wrong"], "returns the norm of the clipped gradients"),

    # ------------------------------------------------------------------ 03 gates
    M("lstm_swapped_input_forget", "03_gates", "lstm_step_forward",
      ("    i = sigmoid(a[:, :H])\n    f = sigmoid(a[:, H:2 * H])\n",
       "    f = sigmoid(a[:, :H])\n    i = sigmoid(a[:, H:2 * H])\n"),
      "lstm_step_forward", ["next_c: wrong", "input gate"], "i and f read from each other's block",
      public=["in order, i, f, g, o"]),
    M("lstm_candidate_sigmoid", "03_gates", "lstm_step_forward",
      ("g = np.tanh(a[:, 2 * H:3 * H])", "g = sigmoid(a[:, 2 * H:3 * H])"),
      "lstm_step_forward", ["next_c: wrong", "candidate"], "sigmoid instead of tanh on the candidate"),
    M("lstm_no_recurrent_term", "03_gates", "lstm_step_forward",
      ("a = x @ Wx + prev_h @ Wh + b", "a = x @ Wx + b"),
      "lstm_step_forward", ["next_h: wrong", "next_c: wrong"], "gates from x_t only (no h_{t-1} @ Wh)"),
    M("lstm_no_bias", "03_gates", "lstm_step_forward",
      ("a = x @ Wx + prev_h @ Wh + b", "a = x @ Wx + prev_h @ Wh"),
      "lstm_step_forward", ["next_c: wrong", "with b=0 it is right"], "the bias b forgotten",
      public=["bias b is missing"]),
    M("lstm_forget_on_prev_h", "03_gates", "lstm_step_forward",
      ("next_c = f * prev_c + i * g", "next_c = f * prev_h + i * g"),
      "lstm_step_forward", ["next_c: wrong"], "forget gate applied to h_{t-1} instead of c_{t-1}"),
    M("lstm_output_tanh_of_sigmoid", "03_gates", "lstm_step_forward",
      ("next_h = o * tanh_c", "next_h = o * np.tanh(sigmoid(next_c))"),
      "lstm_step_forward", ["next_h: wrong"], "h = o * tanh(sigmoid(c))"),
    M("lstm_forward_store_shift", "03_gates", "lstm_forward",
      ("h[:, t], c[:, t] = prev_h, prev_c", "h[:, t - 1], c[:, t - 1] = prev_h, prev_c"),
      "lstm_forward", ["h: wrong at every time step", "c: wrong at every time step"], "stores step t at index t-1",
      public=["c[:, t] holds the right c[:, t+1], one step early"]),
    M("lstm_forward_ignores_c0", "03_gates", "lstm_forward",
      ("prev_h, prev_c, caches = h0, c0, []", "prev_h, prev_c, caches = h0, np.zeros_like(c0), []"),
      "lstm_forward", ["h: wrong at every time step", "c: wrong at every time step"], "starts from c = 0 instead of c0"),
    M("sigmoid_wrong_for_negatives", "03_gates", "sigmoid",
      ("np.where(a >= 0, 1 / (1 + e), e / (1 + e))", "np.where(a >= 0, 1 / (1 + e), 1 / (1 + e))"),
      "lstm_step_forward", ["next_c: wrong"], "sigmoid(a) = sigmoid(|a|)"),
    M("sigmoid_overflows", "03_gates", "sigmoid",
      ("e = np.exp(-np.abs(a))\n    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))",
       "e = np.exp(a)\n    return e / (1 + e)"),
      "lstm_step_forward", ["contains NaN or inf"], "sigmoid as e^a / (1 + e^a): inf / inf for large a"),
    M("gru_reset_before_product", "03_gates", "gru_step_forward",
      ("n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])",
       "n = np.tanh(ax[:, 2 * H:] + (r * prev_h) @ Wh[:, 2 * H:] + bh[2 * H:])"),
      "gru_step_forward", ["next_h: wrong"], "reset gate applied to h_{t-1} before the product with Wh"),
    M("gru_bias_outside_reset", "03_gates", "gru_step_forward",
      ("r * ah[:, 2 * H:]", "r * (ah[:, 2 * H:] - bh[2 * H:]) + bh[2 * H:]"),
      "gru_step_forward", ["next_h: wrong"], "reset gate multiplies h_{t-1} @ Wh_n but not bh_n",
      public=["a bias (bx or bh) is missing or misplaced"]),
    M("gru_update_swapped", "03_gates", "gru_step_forward",
      ("next_h = (1 - z) * n + z * prev_h", "next_h = z * n + (1 - z) * prev_h"),
      "gru_step_forward", ["next_h: wrong"], "z and 1 - z swapped"),

    # ------------------------------------------------------------------ 04 backpropagation through time
    # the forwards (pasted from exercise 3): their outputs and caches, element by element
    M("forward_forget_on_next_c", "04_bptt", "forward",
      ("next_c = f * prev_c + i * g", "next_c = f * (prev_c + i * g)"),
      "lstm_step_forward_cache", ["next_c: wrong", "cache[9] (tanh_c: tanh(c_t)"],
      "forward pass: c = f * (c_{t-1} + i * g)", public=["cache.tanh_c: cache[9] (tanh_c"]),
    M("forward_swapped_input_forget", "04_bptt", "forward",
      ("i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]),", "f, i, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]),"),
      "lstm_step_forward_cache", ["cache[5] (i: the input gate's activation) differs", "next_c: wrong"],
      "forward pass reads i and f from each other's block",
      public=["it holds cache[6] (f: the forget gate's activation)"]),
    M("forward_cache_order", "04_bptt", "forward",
      ("cache = (x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c)", "cache = (x, prev_h, prev_c, Wx, Wh, i, g, f, o, tanh_c)"),
      "lstm_step_forward_cache", ["cache[6] (f: the forget gate's activation) differs", "it holds cache[7] (g"],
      "the cache holds f and g in each other's place", public=["it holds cache[6] (f"]),
    M("forward_cache_h_t_for_prev_h", "04_bptt", "forward",
      ("cache = (x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c)", "cache = (x, next_h, prev_c, Wx, Wh, i, f, g, o, tanh_c)"),
      "lstm_step_forward_cache", ["cache[1] (prev_h: h_{t-1}"],
      "the cache stores h_t where h_{t-1} belongs", public=["it holds the right next_h"]),
    M("forward_cache_missing_element", "04_bptt", "forward",
      ("cache = (x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c)", "cache = (x, prev_h, prev_c, Wx, Wh, i, f, g, o)"),
      "lstm_step_forward_cache", ["cache"], "the cache leaves out tanh(c_t)",
      public=["lstm_step_forward's cache must be a tuple of 10 elements (x, prev_h, prev_c, Wx, Wh, i, f, g, o, tanh_c), got a tuple of 9"]),
    M("forward_sequence_cache_last_step_only", "04_bptt", "forward",
      ("    cache = caches\n", "    cache = caches[-1:]\n"),
      "lstm_forward_cache", ["cache"], "lstm_forward keeps the last step's cache only",
      public=["lstm_forward's cache must be a list of the T=3 steps' caches, got 1 of them"]),
    M("gru_fwd_cache_h_t_for_prev_h", "04_bptt", "gru_forward",
      ("cache = (x, prev_h, Wx, Wh, r, z, n, ah_n)   #", "cache = (x, next_h, Wx, Wh, r, z, n, ah_n)   #"),
      "gru_step_forward_cache", ["cache[1] (prev_h: h_{t-1}"], "the cache stores h_t where h_{t-1} belongs",
      public=["it holds the right next_h"]),
    M("gru_forward_stores_prev_h", "04_bptt", "gru_forward",
      ("        prev_h, step_cache = gru_step_forward(x[:, t], prev_h, Wx, Wh, bx, bh)\n        h[:, t] = prev_h\n",
       "        h[:, t] = prev_h\n        prev_h, step_cache = gru_step_forward(x[:, t], prev_h, Wx, Wh, bx, bh)\n"),
      "gru_forward_cache", ["h: wrong at every time step"], "stores h_{t-1} at index t (before the step)",
      public=["h[:, t] holds the right h[:, t-1], one step late"]),
    M("bwd_swapped_input_forget", "04_bptt", "lstm_step_backward",
      ("[di * i * (1 - i), df * f * (1 - f),", "[df * f * (1 - f), di * i * (1 - i),"),
      "lstm_step_backward", ["dWx: wrong in the input gate (i), forget gate (f) block"],
      "i and f gradient blocks in the wrong order", public=["the i and f blocks are swapped"]),
    M("bwd_forget_on_prev_h", "04_bptt", "lstm_step_backward",
      ("di, df, dg = dc * g, dc * prev_c, dc * i", "di, df, dg = dc * g, dc * prev_h, dc * i"),
      "lstm_step_backward", ["dWx: wrong in the forget gate (f) block"], "df = dc * h_{t-1}"),
    M("bwd_dprev_c_without_f", "04_bptt", "lstm_step_backward",
      ("dprev_c = dc * f", "dprev_c = dc"), "lstm_step_backward", ["dprev_c: wrong"],
      "forgets the forget gate in dc_{t-1}"),
    M("bwd_no_tanh_derivative_on_c", "04_bptt", "lstm_step_backward",
      ("dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)", "dc = dnext_c + dnext_h * o"),
      "lstm_step_backward", ["dprev_c: wrong", "input gate"], "dc misses tanh'(c)"),
    M("bwd_db_mean", "04_bptt", "lstm_step_backward",
      ("db = da.sum(axis=0)", "db = da.mean(axis=0)"),
      "lstm_step_backward", ["db: wrong in the input gate (i), forget gate (f), candidate (g), output gate (o) block"],
      "bias gradient averaged over the batch"),
    M("lstm_backward_no_dc", "04_bptt", "lstm_backward",
      ("lstm_step_backward(dh[:, t] + dprev_h, dprev_c, cache[t])",
       "lstm_step_backward(dh[:, t] + dprev_h, np.zeros((N, H)), cache[t])"),
      "lstm_backward", ["dWx: wrong", "dc0: wrong", "once step t=1 is included"], "dc not passed back to the previous step"),
    M("lstm_backward_no_dWh_accumulation", "04_bptt", "lstm_backward",
      ("dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t", "dWx, dWh, db = dWx + dWx_t, dWh_t, db + db_t"),
      "lstm_backward", ["dWh: wrong", "once step t=1 is included"], "dWh overwritten at every step instead of summed"),
    M("lstm_backward_range_T_minus_1", "04_bptt", "lstm_backward",
      ("for t in reversed(range(T)):", "for t in reversed(range(T - 1)):"),
      "lstm_backward", ["dx: wrong at every time step", "dh0: wrong"],
      "skips the last time step (so dh[:, T-1] never flows back)"),
    M("gru_bwd_dn_without_one_minus_z", "04_bptt", "gru_step_backward",
      ("dn = dnext_h * (1 - z) * (1 - n ** 2)", "dn = dnext_h * (1 - n ** 2)"),
      "gru_step_backward", ["dWx: wrong in the reset gate (r), candidate (n) block"], "forgets that h_t takes (1 - z) of n"),
    M("gru_bwd_dz_sign", "04_bptt", "gru_step_backward",
      ("dz = dnext_h * (prev_h - n) * z * (1 - z)", "dz = dnext_h * (n - prev_h) * z * (1 - z)"),
      "gru_step_backward", ["dWx: wrong in the update gate (z) block"], "dh_t/dz taken as n - h_{t-1}"),
    M("gru_bwd_dr_without_ah_n", "04_bptt", "gru_step_backward",
      ("dr = dn * ah_n * r * (1 - r)", "dr = dn * r * (1 - r)"),
      "gru_step_backward", ["dWx: wrong in the reset gate (r) block"], "the reset gate's gradient misses ah_n"),
    M("gru_bwd_dah_n_without_r", "04_bptt", "gru_step_backward",
      ("dah = np.hstack([dr, dz, dn * r])", "dah = np.hstack([dr, dz, dn])"),
      "gru_step_backward", ["dWh: wrong in the candidate (n) block", "dbh: wrong in the candidate (n) block"],
      "the candidate's recurrent path without the reset gate (reset before the product)"),
    M("gru_bwd_no_direct_path", "04_bptt", "gru_step_backward",
      ("dprev_h = dnext_h * z + dah @ Wh.T", "dprev_h = dah @ Wh.T"),
      "gru_step_backward", ["dprev_h: wrong"], "drops the direct path z * h_{t-1}"),
    M("gru_bwd_dbh_is_dbx", "04_bptt", "gru_step_backward",
      ("dbh = dah.sum(axis=0)", "dbh = dax.sum(axis=0)"),
      "gru_step_backward", ["dbh: wrong in the candidate (n) block"], "the same gradient for both biases"),
    M("gru_bwd_blocks_swapped", "04_bptt", "gru_step_backward",
      (("dax = np.hstack([dr, dz, dn])", "dax = np.hstack([dz, dr, dn])"),
       ("dah = np.hstack([dr, dz, dn * r])", "dah = np.hstack([dz, dr, dn * r])")),
      "gru_step_backward", ["dWx: wrong in the reset gate (r), update gate (z) block"],
      "r and z gradient blocks in the wrong order", public=["the r and z blocks are swapped"]),
    M("gru_fwd_cache_ah_n_without_bias", "04_bptt", "gru_forward",
      ("ah_n = ah[:, 2 * H:]", "ah_n = (prev_h @ Wh)[:, 2 * H:]"),
      "gru_step_forward_cache", ["cache[7] (ah_n: the n block of h_{t-1} @ Wh + bh"],
      "caches h_{t-1} @ Wh_n without bh_n", public=["cache.ah_n: cache[7] (ah_n"]),
    M("gru_backward_no_carry", "04_bptt", "gru_backward",
      ("gru_step_backward(dh[:, t] + dprev_h, cache[t])", "gru_step_backward(dh[:, t], cache[t])"),
      "gru_backward", ["dWh: wrong", "once step t=1 is included"], "the gradient from later steps is dropped"),
    M("gru_backward_dWh_overwritten", "04_bptt", "gru_backward",
      ("dWx, dWh, dbx, dbh = dWx + dWx_t, dWh + dWh_t, dbx + dbx_t, dbh + dbh_t",
       "dWx, dWh, dbx, dbh = dWx + dWx_t, dWh_t, dbx + dbx_t, dbh + dbh_t"),
      "gru_backward", ["dWh: wrong", "once step t=1 is included"], "dWh overwritten at every step instead of summed"),
    M("truncated_no_dc_reset", "04_bptt", "lstm_truncated_backward",
      (("    for start in range(0, T, k):\n        dprev_h, dprev_c = np.zeros((N, H)), np.zeros((N, H))\n",
        "    dprev_c = np.zeros((N, H))\n    for start in reversed(range(0, T, k)):\n        dprev_h = np.zeros((N, H))\n"),),
      "lstm_truncated_backward", ["dc0: wrong", "once step t=2 is included"], "dprev_c carried across chunk boundaries"),
    M("truncated_dh0_from_last_chunk", "04_bptt", "lstm_truncated_backward",
      ("if start == 0:", "if True:"),
      "lstm_truncated_backward", ["dh0: wrong", "dc0: wrong", "once step t=2 is included"],
      "returns dh0, dc0 of the last chunk instead of the first"),
    M("truncated_chunks_from_end", "04_bptt", "lstm_truncated_backward",
      (("for start in range(0, T, k):", "for start in range(-(-T % k), T, k):"),
       ("reversed(range(start, min(start + k, T)))", "reversed(range(max(start, 0), min(start + k, T)))"),
       ("if start == 0:", "if start <= 0:")),
      "lstm_truncated_backward", ["dWx: wrong", "once step t="], "chunks counted from the end of the sequence"),
]


MUTANTS += [
    # ------------------------------------------------------------------ 05 language model
    M("emb_off_by_one", "05_language_model", "embedding_forward",
      ("out = W[x]", "out = W[x - 1]"), "embedding_forward", ["out: wrong"], "looks up row x - 1"),
    M("emb_bwd_no_accumulation", "05_language_model", "embedding_backward",
      ("np.add.at(dW, x.reshape(-1), dout.reshape(-1, D))", "dW[x.reshape(-1)] += dout.reshape(-1, D)"),
      "embedding_backward", ["dW: wrong"], "repeated ids keep one gradient instead of their sum"),
    M("aff_fwd_no_bias", "05_language_model", "temporal_affine_forward",
      ('scores = np.einsum("nth,hv->ntv", h, W) + b', 'scores = np.einsum("nth,hv->ntv", h, W)'),
      "temporal_affine_forward", ["scores: wrong"], "the output layer without its bias",
      public=["bias b is missing"]),
    M("aff_bwd_db_over_batch_only", "05_language_model", "temporal_affine_backward",
      ("db = dscores.sum(axis=(0, 1))", "db = dscores.sum(axis=0)"),
      "temporal_affine_backward", ["db: has shape"], "db summed over the batch only"),
    M("aff_bwd_dW_last_step", "05_language_model", "temporal_affine_backward",
      ("dW = h.reshape(N * T, H).T @ dscores.reshape(N * T, -1)", "dW = h[:, -1].T @ dscores[:, -1]"),
      "temporal_affine_backward", ["dW: wrong"], "dW from the last time step only"),
    M("loss_mask_ignored", "05_language_model", "temporal_softmax_loss",
      ("weights = mask.reshape(-1).astype(float)", "weights = np.ones(N * T)"),
      "temporal_softmax_loss", ["loss: wrong", "dscores: wrong"], "padding counted as targets"),
    M("loss_summed", "05_language_model", "temporal_softmax_loss",
      ("count = max(weights.sum(), 1.0)", "count = 1.0"),
      "temporal_softmax_loss", ["loss: wrong"], "the loss summed over the steps, not averaged"),
    M("loss_mean_over_all_steps", "05_language_model", "temporal_softmax_loss",
      ("count = max(weights.sum(), 1.0)", "count = N * T"),
      "temporal_softmax_loss", ["loss: wrong"], "averaged over every step, padding included"),
    M("loss_no_max_shift", "05_language_model", "temporal_softmax_loss",
      ("shifted = flat - flat.max(axis=1, keepdims=True)", "shifted = flat"),
      "temporal_softmax_loss", ["contains NaN or inf"], "softmax without the max shift overflows"),
    M("loss_no_all_masked_guard", "05_language_model", "temporal_softmax_loss",
      ("count = max(weights.sum(), 1.0)", "count = weights.sum()"),
      "temporal_softmax_loss", ["masked_rows=2", "NaN"], "divides by the count of unmasked steps, 0 when all are padding"),
    M("sample_temperature_after_softmax", "05_language_model", "sample_next",
      (("z = scores / temperature", "z = scores"),
       ("p /= p.sum(axis=1, keepdims=True)", "p /= p.sum(axis=1, keepdims=True) * temperature")),
      "sample_next", ["ids: got ids"], "probabilities divided by the temperature after the softmax"),
    M("sample_temperature_multiplies", "05_language_model", "sample_next",
      ("z = scores / temperature", "z = scores * temperature"),
      "sample_next", ["ids: got", "temperature=0.4"], "scores multiplied by the temperature instead of divided",
      public=["[N=8, V=5, temperature=0.4] ids: got ids ["]),
    M("sample_no_max_shift", "05_language_model", "sample_next",
      ("p = np.exp(z - z.max(axis=1, keepdims=True))", "p = np.exp(z)"),
      "sample_next", ["ids: got", "scale=2000"], "softmax without the max shift: inf / inf for large scores"),
    M("sample_greedy_is_argmin", "05_language_model", "sample_next",
      ("return scores.argmax(axis=1)", "return scores.argmin(axis=1)"),
      "sample_next", ["ids: got ids"], "greedy picks the least likely character"),
]


# ------------------------------------------------------------------ 06 sequence to sequence
# The typical mistakes, each with the hint its task's probes give (rnnkit.tasks_seq2seq).
_SWAPPED, _TIME_ORDER = "look swapped or share", "put back in time order"
_PADDING = "right when no position is padding"
MUTANTS += [
    M("birnn_directions_swapped", "06_seq2seq", "birnn_forward",
      ("h = np.concatenate([h_f, h_b[:, ::-1]], axis=2)", "h = np.concatenate([h_b[:, ::-1], h_f], axis=2)"),
      "birnn_forward", ["h: wrong", _SWAPPED], "the backward direction in the first half of h"),
    M("birnn_not_rereversed", "06_seq2seq", "birnn_forward",
      ("h = np.concatenate([h_f, h_b[:, ::-1]], axis=2)", "h = np.concatenate([h_f, h_b], axis=2)"),
      "birnn_forward", ["h: wrong", _TIME_ORDER], "the backward direction's states left in reversed order"),
    M("birnn_input_not_reversed", "06_seq2seq", "birnn_forward",
      ("rnn_forward(x[:, ::-1], h0, Wx_b", "rnn_forward(x, h0, Wx_b"),
      "birnn_forward", ["h: wrong", _TIME_ORDER], "the backward direction reads x_0 .. x_{T-1}"),
    M("birnn_shared_weights", "06_seq2seq", "birnn_forward",
      ("rnn_forward(x[:, ::-1], h0, Wx_b, Wh_b, b_b)", "rnn_forward(x[:, ::-1], h0, Wx_f, Wh_f, b_f)"),
      "birnn_forward", ["h: wrong", _SWAPPED], "both directions with the forward direction's weights"),
    M("birnn_bwd_upstream_not_reversed", "06_seq2seq", "birnn_backward",
      ("dh[:, ::-1, H:]", "dh[:, :, H:]"),
      "birnn_backward", ["dWx_b: wrong", "forward direction's gradients are right"],
      "the backward direction's upstream gradient in time order, not in the order it read x"),
    M("birnn_bwd_dx_not_rereversed", "06_seq2seq", "birnn_backward",
      ("dx = dx_f + dx_b[:, ::-1]", "dx = dx_f + dx_b"),
      "birnn_backward", ["dx: wrong", "dx must add both directions"], "dx of the backward direction not put back in time order"),
    M("birnn_bwd_halves_swapped", "06_seq2seq", "birnn_backward",
      (("dh[:, :, :H]", "dh[:, :, H:]"), ("dh[:, ::-1, H:]", "dh[:, ::-1, :H]")),
      "birnn_backward", ["dWx_f: wrong", "dWx_b: wrong"], "each direction given the other half of dh"),
    M("attention_mask_ignored", "06_seq2seq", "attention_forward",
      ("e = np.where(mask, u @ v, -np.inf)", "e = u @ v"),
      "attention_forward", ["alpha: wrong", _PADDING], "padding takes part in the softmax"),
    M("attention_mask_after_softmax", "06_seq2seq", "attention_forward",
      (("e = np.where(mask, u @ v, -np.inf)", "e = u @ v"),
       ("alpha = alpha / alpha.sum(axis=1, keepdims=True)", "alpha = alpha / alpha.sum(axis=1, keepdims=True) * mask")),
      "attention_forward", ["alpha: wrong", _PADDING], "padding zeroed after the softmax, weights not renormalised"),
    M("attention_softmax_over_batch", "06_seq2seq", "attention_forward",
      (("e.max(axis=1, keepdims=True)", "e.max(axis=0, keepdims=True)"),
       ("alpha.sum(axis=1, keepdims=True)", "alpha.sum(axis=0, keepdims=True)")),
      "attention_forward", ["alpha: wrong", "over time (axis 1)"], "softmax over the batch axis"),
    M("attention_no_tanh", "06_seq2seq", "attention_forward",
      ("u = np.tanh((q @ Wq)[:, None, :] + enc @ Wk)", "u = (q @ Wq)[:, None, :] + enc @ Wk"),
      "attention_forward", ["alpha: wrong", "the scores v . tanh"], "scores without the tanh"),
    M("attention_bwd_softmax_diagonal", "06_seq2seq", "attention_backward",
      ("de = alpha * (dalpha - (alpha * dalpha).sum(axis=1, keepdims=True))", "de = alpha * dalpha"),
      "attention_backward", ["dv: wrong", "and the softmax"], "softmax backward without the sum over the weights"),
    M("attention_bwd_no_direct_path", "06_seq2seq", "attention_backward",
      ("denc = alpha[:, :, None] * dcontext[:, None, :] + da @ Wk.T", "denc = da @ Wk.T"),
      "attention_backward", ["denc: wrong", "and the softmax"], "denc through the scores only"),
    M("attention_bwd_tanh_derivative", "06_seq2seq", "attention_backward",
      ("(1 - u ** 2)", "(1 - u)"),
      "attention_backward", ["dWq: wrong", "gradient through the scores"], "tanh' written as 1 - u"),
]

# Mistakes in the caches exercise 6 fixes (rnnkit.conventions CACHES, CACHE_PARTS): each
# costs the forward's cache check, named by element, part and time step.
MUTANTS += [
    M("birnn_cache_directions_swapped", "06_seq2seq", "birnn_forward",
      ("cache_fwd, cache_bwd = cache_f, cache_b", "cache_fwd, cache_bwd = cache_b, cache_f"),
      "birnn_forward_cache", ["cache.fwd.next_h: cache[0][t][4]", "it holds cache[1][t][4]"],
      "the backward direction's cache first", public=["it holds cache[1][t][4] (next_h:"]),
    M("birnn_cache_bwd_in_time_order", "06_seq2seq", "birnn_forward",
      ("cache_fwd, cache_bwd = cache_f, cache_b", "cache_fwd, cache_bwd = cache_f, cache_b[::-1]"),
      "birnn_forward_cache", ["cache.bwd.next_h: cache[1][t][4]", "its steps are in reverse order"],
      "the backward direction's step caches put in time order, not in the order it read x",
      public=["cache.bwd.x: cache[1][t][0] (x: the step's input x_t (N, D); backward direction"]),
    M("attention_cache_u_before_tanh", "06_seq2seq", "attention_forward",
      (("u = np.tanh((q @ Wq)[:, None, :] + enc @ Wk)", "u = (q @ Wq)[:, None, :] + enc @ Wk"),
       ("e = np.where(mask, u @ v, -np.inf)", "e = np.where(mask, np.tanh(u) @ v, -np.inf)")),
      "attention_forward_cache", ["cache.u: cache[5] (u: tanh(q @ Wq + enc_j @ Wk)"],
      "caches the scores' pre-activation instead of its tanh", public=["cache.u: cache[5] (u:"]),
]

# Mistakes in how a layer chains the function it calls (rnnkit.standins): each is wrong with
# the student's step and with the stand-in alike, so the layer loses, named.
MUTANTS += [
    M("rnn_forward_h0_every_step", "01_rnn", "rnn_forward",
      ("rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)", "rnn_step_forward(x[:, t, :], h0, Wx, Wh, b)"),
      "rnn_forward", ["h: wrong at t=1"], "starts every step from h0"),
    M("rnn_forward_first_input_only", "01_rnn", "rnn_forward",
      ("rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)", "rnn_step_forward(x[:, 0, :], prev_h, Wx, Wh, b)"),
      "rnn_forward", ["h: wrong at t=1"], "feeds x_0 at every step"),
    M("rnn_backward_dx_reversed_slot", "01_rnn", "rnn_backward",
      ("dx[:, t], dprev_h, dWx_t", "dx[:, T - 1 - t], dprev_h, dWx_t"),
      "rnn_backward", ["dx: wrong"], "step t's dx stored at index T-1-t"),
    M("rnn_backward_forward_in_time", "01_rnn", "rnn_backward",
      ("for t in reversed(range(T)):", "for t in range(T):"),
      "rnn_backward", ["dWx: wrong", "once step t=1 is included"], "backpropagates from t=0 up to T-1"),
]

#: Mistakes in a function a layer calls, where that function is graded elsewhere (the RNN
#: pasted into exercise 6 is exercise 1's): the layer chains it right, which its run with a
#: stand-in shows, so the layer keeps its points; its report says where the mistake is.
INNER = [
    M("s2s_pasted_rnn_forward_no_bias", "06_seq2seq", "rnn",
      ("next_h = np.tanh(x @ Wx + prev_h @ Wh + b)", "next_h = np.tanh(x @ Wx + prev_h @ Wh)"),
      "birnn_forward", ["your birnn_forward chains rnn_forward right", "rnn_step_forward fails its own check"],
      "the RNN pasted from exercise 1 without its bias"),
    M("s2s_pasted_rnn_backward_no_tanh_derivative", "06_seq2seq", "rnn",
      ("da = dnext_h * (1 - next_h ** 2)", "da = dnext_h"),
      "birnn_backward", ["your birnn_backward chains rnn_backward right", "rnn_step_backward fails its own check"],
      "the RNN pasted from exercise 1 without tanh'"),
]


#: Bugs that change a function's inputs in place and nothing else: the outputs are right.
#: Only the student's kernel can see the change, and nothing the kernel says decides a
#: point, so these cost no points: the grader reports them in the feedback and flags them.
IN_PLACE = [
    M("rnn_modifies_x_in_place", "01_rnn", "rnn_step_forward",
      ("    cache = (x, prev_h, Wx, Wh, next_h)   # this layout: see the text above\n",
       "    cache = (x, prev_h, Wx, Wh, next_h)\n    x[...] = x * 1.0001\n"),
      "rnn_step_forward", ["modified its inputs in place: x"],
      "scales x in place after computing the right next_h"),
    M("clip_in_place", "02_long_term", "clip_by_global_norm",
      ("    clipped = tuple(g * scale for g in grads)\n",
       "    for g in grads:\n        g *= scale\n    clipped = tuple(grads)\n"),
      "clip_by_global_norm", ["modified its inputs in place: g0, g1, g2"], "rescales the gradients in place"),
    M("bwd_dnext_c_in_place", "04_bptt", "lstm_step_backward",
      ("    dc = dnext_c + dnext_h * o * (1 - tanh_c ** 2)\n",
       "    dnext_c += dnext_h * o * (1 - tanh_c ** 2)\n    dc = dnext_c\n"),
      "lstm_step_backward", ["modified its inputs in place: dnext_c"], "accumulates into dnext_c in place"),
]


def source(mutant):
    """The mutated source of the mutant's cell (fails loudly if an anchor is missing)."""
    text = solution_cells(mutant.assignment)[mutant.cell]
    for old, new in mutant.edits:
        text = mutate(text, old, new)
    return text


def notebook(mutant):
    return student_notebook(mutant.assignment, {mutant.cell: source(mutant)})

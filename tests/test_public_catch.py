"""Every known mistake fails a public check (issue 21, item 1), before the student submits.

The whole mutation catalogue (tests/mutants.py: edits of solution cells;
tests/mutants_language.py: wrong versions of exercise 5's functions) runs through
check() on the public cases only, in this process, compared with the kit's shipped
data (tests/public_check.py). Bar: 100 %, printed with ``-s``. A mutant of the
catalogue that only a hidden case could catch would be named here with its reason;
there is none: the public cases include large scores (overflow), temperatures other
than 0 and 1, all-padding masks, T = 1, N = 1 and D != H.
"""
import re

import numpy as np
import pytest

import mutants_language
from autograder.verify import REFERENCES
from mutants import IN_PLACE, INNER, MUTANTS, source
from public_check import namespace, public_check
from rnnkit import wire
from rnnkit.compare import IN_PLACE_FIX, MODIFIED, case_key
from rnnkit.probe import check
from rnnkit.tasks import CACHE, TASKS, copy_inputs

#: Its module-scoped fixture runs the catalogue once: every test of the module on one worker.
pytestmark = pytest.mark.xdist_group("test_public_catch")


def language_function(mutant):
    """(task, the wrong function as a student's) for a mutant of tests/mutants_language.py.
    A wrong softmax enters the check through the sample_next that uses it."""
    if mutant.function != "softmax":
        return mutant.function, mutant.mutant

    def sample_next(scores, temperature, u):
        if temperature == 0:
            return scores.argmax(axis=1)
        cdf = np.cumsum(mutant.mutant(scores, temperature), axis=1)
        return np.minimum((cdf <= u[:, None]).sum(axis=1), scores.shape[1] - 1)
    return "sample_next", sample_next


def names_a_wrong_output(task, text):
    """The report names an output of ``task`` as wrong, or a returned cache's layout: the
    mistake's place."""
    outputs = "|".join(map(re.escape, TASKS[task].outputs))
    return re.search(rf"^  \[[^]]*\] ({outputs}: |\w+'s cache\S* must be )", text, flags=re.M) is not None


def run_catalogue():
    """{mutant name: (caught, report)} over both catalogues."""
    outcome = {}
    for m in MUTANTS:
        passed, text = public_check(m.task, namespace(m.assignment, {m.cell: source(m)}))
        outcome[m.name] = (not passed and names_a_wrong_output(m.task, text), text)
    for m in mutants_language.MUTANTS:
        task, function = language_function(m)
        passed, text = public_check(task, {**REFERENCES, task: function, "check": check})
        outcome[f"{m.function}:{m.mutant.__name__}"] = (not passed and names_a_wrong_output(task, text), text)
    return outcome


@pytest.fixture(scope="module")
def catalogue():
    return run_catalogue()


def test_public_cases_catch_every_mutant(catalogue):
    caught = [name for name, (ok, _) in catalogue.items() if ok]
    print(f"\npublic-case catch rate: {len(caught)}/{len(catalogue)} ({100 * len(caught) / len(catalogue):.0f} %)")
    survivors = {name: text for name, (ok, text) in catalogue.items() if not ok}
    assert not survivors, survivors


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_public_message_says_what_the_catalogue_expects(catalogue, mutant):
    """The words the grader's messages must hold, when they concern a public case."""
    _, text = catalogue[mutant.name]
    for words in mutant.public_expect:
        assert words in " ".join(text.split()), (words, text)   # lines are wrapped at 79 columns


@pytest.mark.parametrize("assignment", sorted({m.assignment for m in MUTANTS}))
def test_solutions_pass_every_public_check(assignment):
    names = namespace(assignment)
    for task in sorted({m.task for m in MUTANTS if m.assignment == assignment}):
        passed, text = public_check(task, names)
        assert passed and "note" not in text, text


@pytest.mark.parametrize("mutant", IN_PLACE, ids=lambda m: m.name)
def test_in_place_changes_pass_with_a_note(mutant):
    passed, text = public_check(mutant.task, namespace(mutant.assignment, {mutant.cell: source(mutant)}))
    text = " ".join(text.split())
    assert passed and MODIFIED in text and IN_PLACE_FIX in text, text
    for words in mutant.expect:
        assert words in text, text


@pytest.mark.parametrize("mutant", INNER, ids=lambda m: m.name)
def test_a_layer_chaining_a_wrong_function_right_passes_with_a_note(mutant):
    """The function the layer calls is wrong (graded elsewhere); the layer chains it right."""
    passed, text = public_check(mutant.task, namespace(mutant.assignment, {mutant.cell: source(mutant)}))
    text = " ".join(text.split())
    assert passed and " note: " in text, text
    for words in mutant.expect:
        assert words in text, text


def test_report_lines_fit_an_80_column_notebook(catalogue):
    """Every line of every report, wrapped at word boundaries (no word is cut)."""
    for name, (_, text) in catalogue.items():
        for line in text.splitlines():
            assert len(line) <= 79 or " " not in line.strip(), (name, line)


def test_a_function_using_a_wrong_one_points_at_it():
    """A right backward (and a right layer) whose forward step is wrong: the message names the step."""
    bias = next(m for m in MUTANTS if m.name == "rnn_no_bias")
    names = namespace(bias.assignment, {bias.cell: source(bias)})
    passed, text = public_check("rnn_step_backward", names)   # graded on the cache the conventions fix
    assert passed and "your rnn_step_backward is right; rnn_step_forward fails its own check: fix it first" \
        in " ".join(text.split()), text
    passed, text = public_check("rnn_forward", names)          # calls the student's step: right with a stand-in
    assert passed and "your rnn_forward chains rnn_step_forward right (checked with a stand-in " \
        "rnn_step_forward); its outputs are wrong because rnn_step_forward fails its own check: fix it first" \
        in " ".join(text.split()), text
    passed, text = public_check("rnn_step_forward", names)
    assert not passed and "first" not in text


def test_hidden_cases_get_no_hint_and_no_ids():
    """Hidden cases run no probes and no dependencies: their report says what is wrong, not where,
    and never quotes an id."""
    from autograder import verify
    task = TASKS["sample_next"]
    case = {"N": 5, "V": 4, "temperature": 0.7, "seed": 11}
    want = verify.reference_expected(task, case)[0]
    wrong = {"outputs": {"ids": wire.encode((want[0] + 1) % 4)}}
    report = verify.grade_check("sample_next", [case], {case_key(case): wrong}, hidden=True)
    assert report.failures == [("hidden case 1", "ids: 5 of 5 ids wrong")]


@pytest.mark.parametrize("task", [t for t in sorted(TASKS) if TASKS[t].derive is not None])
def test_a_given_cache_is_what_the_notebook_forward_returns(task):
    """The cache a backward is checked on (rnnkit.conventions.CACHES, derived by the references)
    equals, element by element, what the solution notebook's forward returns on the same inputs."""
    from autograder.verify import reference_inputs
    assignment = {"rnn": "01_rnn", "lstm": "04_bptt", "gru": "04_bptt", "birnn": "06_seq2seq",
                  "attention": "06_seq2seq"}.get(task.split("_")[0], "05_language_model")
    names = namespace(assignment)
    for case in TASKS[task].public:
        inputs = reference_inputs(TASKS[task], case)
        mine = {k: v for k, v in copy_inputs(inputs).items() if not k.startswith(CACHE)}
        theirs = TASKS[task].derive(names, mine)
        assert theirs.keys() == {k for k in inputs if k.startswith(CACHE)}
        for k, v in theirs.items():
            assert np.allclose(v, inputs[k], rtol=0, atol=1e-12), (task, case, k)


def test_a_wrong_backward_is_not_blamed_on_a_wrong_forward_it_does_not_use():
    """Both wrong: the backward runs on the given cache, so its report names its own mistake."""
    bias = next(m for m in MUTANTS if m.name == "rnn_no_bias")
    slope = next(m for m in MUTANTS if m.name == "rnn_no_tanh_derivative")
    names = namespace("01_rnn", {bias.cell: source(bias), slope.cell: source(slope)})
    passed, text = public_check("rnn_step_backward", names)
    text = " ".join(text.split())
    assert not passed and "the derivative of tanh looks wrong" in text and "first" not in text, text

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
from mutants import IN_PLACE, MUTANTS, source
from public_check import namespace, public_check
from rnnkit.compare import MODIFIED
from rnnkit.probe import check
from rnnkit.tasks import TASKS


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
    """The report names an output of ``task`` as wrong: the mistake's place."""
    outputs = "|".join(map(re.escape, TASKS[task].outputs))
    return re.search(rf"^  \[[^]]*\] ({outputs}): ", text, flags=re.M) is not None


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
        assert words in text, (words, text)


@pytest.mark.parametrize("assignment", sorted({m.assignment for m in MUTANTS}))
def test_solutions_pass_every_public_check(assignment):
    names = namespace(assignment)
    for task in sorted({m.task for m in MUTANTS if m.assignment == assignment}):
        passed, text = public_check(task, names)
        assert passed and "note" not in text, text


@pytest.mark.parametrize("mutant", IN_PLACE, ids=lambda m: m.name)
def test_in_place_changes_pass_with_a_note(mutant):
    passed, text = public_check(mutant.task, namespace(mutant.assignment, {mutant.cell: source(mutant)}))
    assert passed and MODIFIED in text, text
    for words in mutant.expect:
        assert words in text, text

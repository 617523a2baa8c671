"""How the grading of a submission went (:class:`Outcome`), and what stops a batch.

:class:`GradingError` is what the instructor must fix before grading can go on;
:class:`Interrupted`, a batch stopped by Ctrl-C or SIGTERM. :func:`reason` and
:func:`grader_notes` read the one line that matters out of an nbgrader result.
"""
import re
from dataclasses import dataclass

#: Prefix of the log lines in which the pipeline's preprocessors tell the instructor what the
#: grader repaired (:func:`grader_notes` reads them). This module imports nothing of the
#: pipeline: the late-penalty plugin, loaded by every stock nbgrader command, stays light.
NOTE = "rnn-course note: "


class GradingError(RuntimeError):
    """Something the instructor must fix before grading can go on."""


@dataclass
class Outcome:
    """How the grading of one submission went.

    ``ok`` is False when the submission could not be graded at all (it then scores 0);
    ``message`` is one line: why, or what the grader had to work around. ``retry``: the
    result may be the grader's fault (its own error, a timeout, a dead kernel), so a
    plain rerun grades the submission again.
    """
    student: str
    assignment: str
    ok: bool
    message: str = ""
    notes: tuple = ()   # the items of ``message``, most urgent first
    skipped: bool = False   # graded by an earlier run, unchanged since
    retry: bool = False

    def __post_init__(self):
        if self.notes and not self.message:
            self.message = "; ".join(self.notes)
        elif self.message and not self.notes:
            self.notes = (self.message,)


class Interrupted(KeyboardInterrupt):
    """The batch was stopped (Ctrl-C, SIGTERM); ``outcomes`` are those of submissions that finished."""

    def __init__(self, outcomes):
        super().__init__(f"interrupted after {len(outcomes)} submissions")
        self.outcomes = outcomes


#: How an Outcome names a full disk; the grade command looks for these words.
NO_SPACE = "no space left on device"


_GENERIC = ("There was an error processing", "Please see the the above traceback", "Traceback (most recent")


def reason(result):
    """The one line of an nbgrader result that says what went wrong."""
    log = result.get("log") or ""
    errors = [line[len("[ERROR] "):].strip() for line in log.splitlines() if line.startswith("[ERROR] ")]
    errors = [e for e in errors if e and not e.startswith(_GENERIC)]
    exceptions = [line.strip() for line in log.splitlines()
                  if re.match(r"\s+[\w.]+(Error|Exception): ", line)]
    if errors:
        return errors[0]
    if exceptions:
        return exceptions[-1]
    lines = (result.get("error") or log or "autograde failed").strip().splitlines()
    return lines[-1] if lines else "autograde failed"


def grader_notes(result):
    """What the grader worked around in a submission, from the autograde log."""
    notes, readded = [], []
    for line in (result.get("log") or "").splitlines():
        if NOTE in line:
            notes.append(line.split(NOTE, 1)[1].strip())
        elif m := re.search(r"Missing grade cell (\S+) encountered", line):
            readded.append(m.group(1))
    if readded:
        notes.append(f"test cell{'s' if len(readded) > 1 else ''} {', '.join(readded)} "
                     f"{'were' if len(readded) > 1 else 'was'} missing: re-added")
    return notes

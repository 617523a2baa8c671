"""Class statistics after a batch: what a class got right and wrong, assignment by assignment.

``python -m autograder stats COURSE [--out FILE]`` reads a graded course directory (its
``gradebook.db`` and the grader's verdicts in ``autograded/<student>/<assignment>/*.ipynb``)
and writes one self-contained HTML page (plots inlined as PNG): the distribution of total
scores, the share of submissions with full marks on each test cell, which gate the failure
messages blame most, the most common failure messages, and the submissions flagged for
review. ``--canvas FILE`` also writes the grades as a Canvas gradebook import.

Counting: a *submission* counts once for a thing it got wrong however often it got it
wrong; *cases* counts every failed case (public and hidden alike).
"""
import base64
import csv
import html
import io
import re
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.api import Gradebook
from rnnkit.conventions import GATE_NAMES, GATES
from rnnkit.tasks import TASKS

from . import gradescsv, grader, handgrades, layout, markers, outcome, verdicts
from .ids import same_person
from .inert import csv_row, terminal

NO_OUTPUTS = "(no outputs)"         # the case failed as a whole: raised, not implemented, no result
TOP_MESSAGES = 15
CANVAS_FIELDS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_POINTS_ROW = "    Points Possible"   # how Canvas's own exports label their second row


# --- what one failure message says -------------------------------------------------------

def normalise(message):
    """A failure message without its ``[case]`` prefix, numbers replaced by ``#``.

    Digits inside names (``clipped_0``, ``float32``, ``h_{t-1}``) stay: they are not measurements.
    """
    message = re.sub(r"^\[[^\]]*\]\s*", "", message)
    return re.sub(r"(?<![\w{-])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", "#", message)


def output_of(task, message):
    """The output of ``task`` a (normalised) message is about, or what failed instead."""
    name = message.split(":", 1)[0]
    if name in TASKS[task].outputs:
        return name
    return NO_OUTPUTS


def gates_named(task, message):
    """Gate labels (``"forget gate (f)"``) a message blames: "wrong in the ... block" or "the ... looks wrong".

    A message naming every gate of the cell does not point at one (a wrong bias sum, an
    error coming from another time step) and blames none.
    """
    kind = GATES[TASKS[task].kind]
    letters = []
    block = re.search(r"wrong in the (.+?) block", message)
    if block:
        letters = re.findall(r"\((\w)\)", block.group(1))
    hint = re.search(r"; the (.+?) looks? wrong", message)
    if hint:
        names = hint.group(1).split(" and the ")
        letters += [g for g in kind if GATE_NAMES[g] in names]
    letters = [g for g in dict.fromkeys(letters) if g in kind]
    if len(letters) == len(kind):
        return []
    return [f"{GATE_NAMES[g]} ({g})" for g in letters]


# --- statistics of a class ------------------------------------------------------------------

@dataclass
class Tally:
    """How often something went wrong: in which submissions, in how many failed cases."""
    students: dict = field(default_factory=dict)   # key -> set of students
    cases: Counter = field(default_factory=Counter)

    def add(self, key, student):
        self.students.setdefault(key, set()).add(student)
        self.cases[key] += 1

    def ranked(self):
        """[(key, submissions, cases)], most submissions first."""
        rows = [(key, len(who), self.cases[key]) for key, who in self.students.items()]
        return sorted(rows, key=lambda r: (-r[1], -r[2], str(r[0])))


@dataclass
class AssignmentStats:
    """What one assignment's graded submissions add up to."""
    name: str
    max_score: float
    scores: dict = field(default_factory=dict)      # student -> total score
    cells: dict = field(default_factory=dict)       # test cell -> (points, {student: score})
    outputs: Tally = field(default_factory=Tally)   # key (task, output)
    gates: Tally = field(default_factory=Tally)     # key gate label
    messages: Tally = field(default_factory=Tally)  # key "task: normalised message"
    flags: dict = field(default_factory=dict)       # student -> review flags, flagged students only
    ungraded: dict = field(default_factory=dict)    # student -> why it could not be graded (scored 0)
    missing: dict = field(default_factory=dict)     # student -> why a submission has no grade at all
    awaiting: dict = field(default_factory=dict)    # student -> points still to be graded by hand
    awaiting_cells: dict = field(default_factory=dict)   # student -> answers still to be graded by hand
    previous: dict = field(default_factory=dict)    # student -> {answer: previous grade}, for an earlier answer

    def passed(self, cell):
        """Students with full marks on a test cell."""
        points, scores = self.cells[cell]
        return sorted(s for s, score in scores.items() if score >= points - 1e-9)

    def pass_rate(self, cell):
        """Share of the submissions with full marks on a test cell."""
        return len(self.passed(cell)) / len(self.scores) if self.scores else 0.0

    def flag_counts(self):
        """Normalised review flag -> number of submissions carrying it."""
        return Counter(f for flags in self.flags.values() for f in dict.fromkeys(map(normalise, flags)))


def class_stats(course, db_url=""):
    """An :class:`AssignmentStats` per assignment of ``course`` that has submissions."""
    course = Path(course)
    url = db_url or grader.default_db_url(course)
    if url.startswith("sqlite:") and not (course / "gradebook.db").is_file():
        raise outcome.GradingError(f"no gradebook in {course}: grade the course first (python -m autograder grade)")
    found = []
    submitted = layout.submitted_pairs(course)
    with Gradebook(url) as gb:
        for assignment in gb.assignments:
            stats = _from_gradebook(assignment)
            stats.missing = {s: markers.ungraded_reason(course, s, a) for s, a in submitted
                             if a == stats.name and s not in stats.scores}
            stats.previous = {s: earlier for s, cells in stats.awaiting_cells.items()
                              if (earlier := handgrades.previous_grades(course, s, stats.name, cells))}
            if stats.scores or stats.missing:
                _add_verdicts(course, stats)
                found.append(stats)
    return found


def _from_gradebook(assignment):
    """Scores of an assignment's submissions, total and per autograded test cell."""
    stats = AssignmentStats(assignment.name, assignment.max_score)
    for notebook in assignment.notebooks:
        answers = {c.name for c in notebook.solution_cells}   # manually graded answers are not tests
        for cell in notebook.grade_cells:
            if cell.name not in answers:
                stats.cells[cell.name] = (cell.max_score, {})
    for submission in assignment.submissions:
        student = submission.student.id
        stats.scores[student] = submission.score or 0.0
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                if gradescsv.awaits_hand_grading(grade):
                    stats.awaiting[student] = stats.awaiting.get(student, 0.0) + grade.max_score
                    stats.awaiting_cells.setdefault(student, []).append(grade.name)
                elif grade.name in stats.cells:
                    stats.cells[grade.name][1][student] = grade.score or 0.0
    return stats


def _add_verdicts(course, stats):
    """Failure messages and review flags from each student's autograded notebooks."""
    for student in sorted(stats.scores):
        if not (course / "autograded" / student / stats.name).is_dir():
            why = verdicts.review_flags(course, student, stats.name)
            stats.ungraded[student] = why[0] if why else "no graded notebook in autograded/"
            continue
        for line in verdicts.failures(course, student, stats.name):
            task, _, message = line.partition(": ")
            message = normalise(message)
            stats.outputs.add((task, output_of(task, message)), student)
            stats.messages.add(f"{task}: {message}", student)
            for gate in gates_named(task, message):
                stats.gates.add(gate, student)
        flags = verdicts.review_flags(course, student, stats.name)
        if flags:
            stats.flags[student] = flags


# --- plots ------------------------------------------------------------------------------------

def _png(fig):
    """A figure as a base64 PNG, drawn by Agg (no pyplot: no display, no global state)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def score_histogram(stats):
    """Histogram of total scores, in tenths of the maximum."""
    from matplotlib.figure import Figure   # here: every grade command imports this module
    from matplotlib.ticker import MaxNLocator
    fig = Figure(figsize=(6, 2.6))
    ax = fig.add_subplot()
    top = stats.max_score or 1
    ax.hist(list(stats.scores.values()), bins=[top * k / 10 for k in range(11)], color="#4c72b0", edgecolor="white")
    ax.set_xlim(0, top)
    ax.set_xlabel(f"total score (out of {top:g})")
    ax.set_ylabel("submissions")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Total scores")
    return _png(fig)


def _barh(labels, values, annotations, title, xlabel, color, percent=False):
    """Horizontal bars, first label on top, each annotated at its end."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, PercentFormatter
    fig = Figure(figsize=(6, 0.5 + 0.4 * len(labels)))
    ax = fig.add_subplot()
    ax.barh(labels[::-1], values[::-1], color=color)
    for y, (value, text) in enumerate(zip(values[::-1], annotations[::-1])):
        ax.annotate(text, (value, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=9)
    if percent:
        ax.set_xlim(0, 1.15)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    else:
        ax.set_xlim(0, max(values) * 1.2)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return _png(fig)


def pass_rate_chart(stats):
    """Share of submissions with full marks, per test cell."""
    cells = list(stats.cells)
    return _barh(cells, [stats.pass_rate(c) for c in cells],
                 [f"{len(stats.passed(c))}/{len(stats.scores)}" for c in cells],
                 "Full marks per test cell", "submissions with full marks", "#55a868", percent=True)


def gate_chart(stats):
    """Submissions blaming each gate, most blamed on top."""
    ranked = stats.gates.ranked()
    return _barh([g for g, _, _ in ranked], [n for _, n, _ in ranked], [str(n) for _, n, _ in ranked],
                 "Which gate do students get wrong most", "submissions whose messages blame the gate", "#c44e52")


# --- the HTML page ------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 2.5rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; vertical-align: top; }
td.n { text-align: right; }
img { max-width: 100%; display: block; margin: .5rem 0; }
.muted { color: #666; }
"""


def _table(header, rows):
    """An HTML table; every value escaped, numbers right-aligned."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td class="n">{v:g}</td>' if isinstance(v, (int, float)) else f"<td>{html.escape(str(v))}</td>"
        for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _image(png, alt):
    """An inline <img> of a base64 PNG."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png}">'


def most_blamed(stats):
    """`` Most blamed gate: G.``, every gate of a tie named as one, or "" if no message blames a gate."""
    ranked = stats.gates.ranked()
    if not ranked:
        return ""
    top = [gate for gate, n, _ in ranked if n == ranked[0][1]]
    if len(top) == 1:
        return f" Most blamed gate: {top[0]}."
    return f" Most blamed gates, tied at {ranked[0][1]} submission(s) each: {', '.join(top)}."


def summary(stats):
    """One sentence on the score distribution."""
    scores = list(stats.scores.values())
    missing = (f" {len(stats.missing)} submission(s) have no grade: listed under flagged for review."
               if stats.missing else "")
    if not scores:
        return "No graded submission." + missing
    full = sum(s >= stats.max_score - 1e-9 for s in scores)
    zero = sum(score == 0 and student not in stats.awaiting for student, score in stats.scores.items())
    text = (f"{len(scores)} submissions; mean {statistics.mean(scores):.2f}, median {statistics.median(scores):.2f}, "
            f"range {min(scores):.2f} to {max(scores):.2f} out of {stats.max_score:g}; "
            f"{full} with full marks, {zero} with zero.")
    if stats.awaiting:
        points = sum(stats.awaiting.values())
        text += (f" {len(stats.awaiting)} have answers awaiting hand grading ({points:g} points in all), "
                 f"not counted in these scores yet.")
        if stats.previous:
            text += (f" {len(stats.previous)} of them changed a written answer after it was graded by hand: "
                     f"its previous grade is not counted.")
    return text + missing


def _muted(text):
    return f'<p class="muted">{html.escape(text)}</p>'


def _cells_html(stats):
    """Full marks per test cell: chart and table."""
    rows = [(c, points, f"{len(stats.passed(c))}/{len(stats.scores)}",
             round(statistics.mean(scores.values()), 2) if scores else 0)
            for c, (points, scores) in stats.cells.items()]
    return [_image(pass_rate_chart(stats), "full marks per test cell"),
            _table(["test cell", "points", "full marks", "mean score"], rows)]


def _gates_html(stats):
    """Which gate the failure messages blame: chart and table."""
    if not stats.gates.students:
        return [_muted("No failure message blames a particular gate.")]
    return [_image(gate_chart(stats), "which gate students get wrong most"),
            _table(["gate", "submissions", "failed cases"], stats.gates.ranked())]


def _failures_html(stats):
    """Failures per task and output, then the most common messages."""
    if not stats.messages.students:
        return [_muted("No failures.")]
    return [_table(["task", "output", "submissions", "failed cases"],
                   [(t, o, n, c) for (t, o), n, c in stats.outputs.ranked()]),
            _muted(f"{NO_OUTPUTS}: the case failed as a whole, so no output could be compared (the "
                   f"function raised an error, was not implemented yet, or returned nothing)."),
            "<h3>Most common failure messages</h3>",
            _table(["message (numbers replaced by #)", "submissions", "failed cases"],
                   stats.messages.ranked()[:TOP_MESSAGES])]


def _flags_html(stats):
    """Review flags and their counts, the submissions that could not be graded, and those awaiting hand grading."""
    flagged = [(s, "; ".join(f)) for s, f in stats.flags.items()]
    flagged += [(s, f"not graded, scored 0: {why}") for s, why in stats.ungraded.items()]
    flagged += [(s, f"no grade: {why}") for s, why in stats.missing.items()]
    flagged += [(s, f"{points:g} points awaiting hand grading (in the formgrader){_previous(stats, s)}")
                for s, points in stats.awaiting.items() if s not in stats.flags or s in stats.previous]
    flagged.sort()
    if not flagged:
        return [_muted("No submission is flagged.")]
    counts = [_table(["flag", "submissions"], stats.flag_counts().most_common())] if stats.flags else []
    return counts + [_table(["student", "why"], flagged)]


def _previous(stats, student):
    """``; resubmitted, previous grades: answer 1.5 / 2`` for answers graded before a resubmission."""
    found = stats.previous.get(student)
    if not found:
        return ""
    return "; resubmitted, previous grades (not counted): " + ", ".join(
        f"{gid} {g.get('score', 0):g} / {g.get('max_score', 0):g}" for gid, g in sorted(found.items()))


def assignment_section(stats):
    """The HTML of one assignment."""
    parts = [f"<h2>{html.escape(stats.name)}</h2>", f"<p>{html.escape(summary(stats))}</p>"]
    if stats.scores:
        parts.append(_image(score_histogram(stats), "histogram of total scores"))
    if stats.cells and stats.scores:
        parts += ["<h3>Test cells</h3>", *_cells_html(stats)]
    parts += ["<h3>Gates</h3>", *_gates_html(stats)]
    parts += ["<h3>Failures per task and output</h3>", *_failures_html(stats)]
    parts += ["<h3>Flagged for review</h3>", *_flags_html(stats)]
    return "\n".join(parts)


def render(course, all_stats):
    """The whole report as one self-contained HTML page."""
    title = f"Class statistics: {Path(course).resolve().name}"
    body = "\n".join(assignment_section(s) for s in all_stats) or _muted("No graded submissions.")
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>\n"
            f'<p class="muted">From {html.escape(str(Path(course).resolve()))}: gradebook.db and the '
            f"grader's verdicts in autograded/. A submission counts once for a thing it got wrong; "
            f"failed cases count every public and hidden case that failed.</p>\n"
            f"{body}\n</body></html>\n")


def report(course, out_path):
    """Write the HTML report of ``course`` to ``out_path``; return its path."""
    return _write(out_path, render(course, class_stats(course)))


def _write(path, text):
    """Write ``text`` to ``path``, making its folder; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- grades for Canvas ----------------------------------------------------------------------------

def canvas_csv(rows, path, assignment_points, canvas_ids=None, roster=None, problems=None):
    """Grades as a Canvas gradebook import: one line per student, one column per assignment.

    rows: :func:`autograder.gradescsv.grade_rows`, optionally with a ``late_penalty`` to subtract.
    assignment_points: assignment -> points it is worth in Canvas; scores are scaled to it
    and only these assignments are written. canvas_ids: assignment -> Canvas assignment id,
    for the ``Name (id)`` header Canvas matches on (a column without an id makes Canvas
    create a new assignment). roster: student -> Canvas fields (:func:`read_canvas_roster`);
    a student not in it is written with the nbgrader id as name and SIS Login ID, and a
    roster student without a submission gets a line with empty cells.

    A cell is left empty (Canvas then keeps what it has) where no grade is final: no
    submission, or points still awaiting hand grading. ``problems``, a list, receives one
    line for each such submission and each graded student missing from the roster. Text
    cells are inert in a terminal and a spreadsheet (:func:`autograder.inert.csv_row`).
    """
    canvas_ids, roster = canvas_ids or {}, roster or {}
    problems = [] if problems is None else problems
    assignments = list(assignment_points)
    earned = {student: {} for student in roster}
    in_roster = {same_person(k): k for k in roster}   # matched in any case and Unicode form
    seen = {}
    for r in rows:
        if r["assignment"] in assignment_points and r["max_score"]:
            student = in_roster.get(same_person(r["student"]), r["student"])
            if seen.setdefault((student, r["assignment"]), r["student"]) != r["student"]:
                problems.append(f"{r['student']}/{r['assignment']}: the same roster student as "
                                f"{seen[student, r['assignment']]}: only the first is written")
                continue
            cells = earned.setdefault(student, {})
            if r.get("awaiting"):
                problems.append(f"{r['student']}/{r['assignment']}: {sum(r['awaiting'].values()):g} points await "
                                f"hand grading: its Canvas cell is left empty until they are graded")
                continue
            score = max(0.0, (r["score"] or 0.0) - r.get("late_penalty", 0.0))
            cells[r["assignment"]] = round(score / r["max_score"] * assignment_points[r["assignment"]], 2)
    if roster:
        problems += [f"{s}: graded but not in the roster: written with the folder name as name and SIS Login ID, "
                     f"which Canvas may not match" for s in sorted(set(earned) - set(roster))]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(csv_row([*CANVAS_FIELDS, *(f"{a} ({canvas_ids[a]})" if a in canvas_ids else a
                                                  for a in assignments)]))
        writer.writerow([CANVAS_POINTS_ROW, *[""] * (len(CANVAS_FIELDS) - 1), *(assignment_points[a] for a in assignments)])
        for student in sorted(earned):
            person = roster.get(student, {"Student": student, "SIS Login ID": student})
            writer.writerow(csv_row([person.get(f, "") for f in CANVAS_FIELDS]
                                    + [earned[student].get(a, "") for a in assignments]))
    return Path(path)


def read_canvas_roster(path):
    """Student fields of a Canvas gradebook export, by SIS Login ID (the hub user name, usually)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return {row["SIS Login ID"]: {f: row.get(f, "") for f in CANVAS_FIELDS}
                for row in csv.DictReader(fh)
                if row.get("SIS Login ID") and row.get("Student", "").strip() != CANVAS_POINTS_ROW.strip()}


# --- command line ----------------------------------------------------------------------------------

def _pairs(values, convert, option):
    """``["a=1", ...]`` -> ``{"a": convert("1")}``; a malformed value is an error naming ``option``."""
    found = {}
    for value in values:
        key, sep, raw = value.partition("=")
        try:
            if not sep or not key:
                raise ValueError
            found[key] = convert(raw)
        except ValueError:
            raise outcome.GradingError(f"{option} expects ASSIGNMENT=VALUE, got {value!r}") from None
    return found


def write_canvas(course, path, points=(), ids=(), roster=None, db_url="", problems=None):
    """The Canvas CSV of ``course``: every graded assignment, at its nbgrader maximum unless ``points`` says."""
    rows = gradescsv.grade_rows(course, db_url)
    worth = {r["assignment"]: r["max_score"] for r in rows}
    points, ids = _pairs(points, float, "--points"), _pairs(ids, str, "--canvas-id")
    unknown = sorted((set(points) | set(ids)) - set(worth))
    if unknown:
        raise outcome.GradingError(f"no graded assignment named {', '.join(unknown)} (graded: {', '.join(sorted(worth))})")
    worth.update(points)
    return canvas_csv(rows, path, worth, ids, read_canvas_roster(roster) if roster else None, problems)


def add_arguments(parser):
    """The options of ``python -m autograder stats``."""
    parser.add_argument("course", type=Path, help="the course directory (as left by python -m autograder grade)")
    parser.add_argument("--out", type=Path, help="the HTML report (default: COURSE/stats.html; "
                                                 "with --canvas, only written when --out is given)")
    parser.add_argument("--db", default="", help="gradebook SQLAlchemy URL (default: the course's, "
                                                 "else COURSE/gradebook.db)")
    parser.add_argument("--canvas", type=Path, metavar="CSV", help="also write the grades as a Canvas gradebook import")
    parser.add_argument("--points", action="append", default=[], metavar="ASSIGNMENT=POINTS",
                        help="what an assignment is worth in Canvas (default: its nbgrader maximum); repeatable")
    parser.add_argument("--canvas-id", action="append", default=[], metavar="ASSIGNMENT=ID",
                        help="the Canvas id of an assignment, for its column header; repeatable")
    parser.add_argument("--roster", type=Path, metavar="CSV",
                        help="a Canvas gradebook export: names, IDs and sections, matched on SIS Login ID")


def command(args):
    """Write the report (and the Canvas CSV if asked); print a summary per assignment."""
    all_stats = class_stats(args.course, args.db)
    for s in all_stats:
        print(terminal(f"{s.name}: {summary(s)}{most_blamed(s)}", limit=10_000))
    if args.out or not args.canvas:
        out = _write(args.out or args.course / "stats.html", render(args.course, all_stats))
        print(f"report written to {out}")
    if args.canvas:
        problems = []
        written = write_canvas(args.course, args.canvas, args.points, args.canvas_id, args.roster, args.db, problems)
        for line in problems:
            print(f"warning: {terminal(line)}", file=sys.stderr)
        print(f"Canvas CSV written to {written}")


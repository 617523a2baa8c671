"""Command line: ``python -m autograder release | init | grade | stats``."""
import argparse
import os
import sys
from pathlib import Path

from tqdm import tqdm

from . import batch, coursecommand, courselock, coursesettings, gradescsv, grader, layout, nbgrader_config, outcome, sandbox, scheduling, stats, verdicts
from .ids import same_person
from .inert import pad, terminal, width


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    rel = sub.add_parser("release", help="regenerate exercises/ from solutions/ (nbgrader generate_assignment)")
    rel.add_argument("assignments", nargs="*", help="default: every assignment in solutions/")

    init = sub.add_parser("init", help="create the course directory (source/, nbgrader_config.py) without grading")
    init.add_argument("--course", type=Path, default=Path("course"), help="course directory (default: ./course)")

    grade = sub.add_parser("grade", help="autograde a folder of submissions, write feedback and a CSV")
    grade.add_argument("submissions", type=Path, help="folder laid out as <student>/<assignment>/<notebook>.ipynb")
    grade.add_argument("--course", type=Path, default=Path("course"), help="course directory (default: ./course)")
    grade.add_argument("--csv", type=Path, help="grades CSV (default: COURSE/grades.csv)")
    grade.add_argument("--timeout", metavar="SECONDS",
                       help=f"seconds one cell may run (default: ${grader.CELL_TIMEOUT_ENV}, else the "
                            f"course's cell-timeout, else {nbgrader_config.CELL_TIMEOUT})")
    grade.add_argument("--student-timeout", metavar="SECONDS", type=int,
                       help=f"seconds one student's notebook may run (default: the course's notebook-timeout, "
                            f"else {nbgrader_config.NOTEBOOK_TIMEOUT})")
    grade.add_argument("--workers", type=int, default=scheduling.default_workers(),
                       help="parallel grading processes (default: cores + 1)")
    grade.add_argument("--scheduler", help='Dask scheduler address, or "local" for a local Dask cluster; '
                                           'every worker thread grades in a process of its own')
    grade.add_argument("--force", action="store_true", help="regrade submissions graded before")
    grade.add_argument("--db", default="", help="gradebook SQLAlchemy URL, remembered by the course "
                                               "(default: the course's, else COURSE/gradebook.db)")

    course = sub.add_parser("course", help="show or change the course's settings: gradebook, timeouts, "
                                           "late penalty, due dates (COURSE/course_settings.json)")
    coursecommand.add_arguments(course)

    stats_parser = sub.add_parser("stats", help="class statistics of a graded course (HTML), and a Canvas CSV")
    stats.add_arguments(stats_parser)

    args = parser.parse_args(argv)
    try:
        if args.command == "stats":
            stats.command(args)
        elif args.command == "course":
            return coursecommand.command(args) or 0   # 1: a feedback page could not be written again
        elif args.command == "init":
            layout.init_course(args.course)
            print(f"course directory {args.course} ready: nbgrader's own commands work there")
        elif args.command == "release":
            batch.release(args.assignments or layout.assignments_in())
            print("exercises/ regenerated")
        else:
            return grade_command(args.submissions, args.course, args.csv or args.course / "grades.csv",
                                 timeout=args.timeout, workers=args.workers, scheduler=args.scheduler,
                                 force=args.force, db_url=args.db, student_timeout=args.student_timeout)
    except (outcome.GradingError, courselock.Busy) as exc:
        print(terminal(f"error: {exc}"), file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was recorded for the submissions in flight", file=sys.stderr)
        return 130
    return 0


def grade_command(submissions, course, csv_path, timeout=None, workers=1, scheduler=None, force=False,
                  db_url="", student_timeout=None):
    """Grade ``submissions`` into ``course``; one grade at a time per course (:mod:`autograder.courselock`).

    Returns the exit status: 0, or 1 if a submission was left without a new grade (the
    grader's own failure, a lost worker, a full disk), which a rerun grades.
    """
    timeout = grader.resolve_cell_timeout(timeout, course)   # a bad value is an error before any work
    with courselock.holding(course):
        return _grade(submissions, course, csv_path, timeout, workers, scheduler, force, db_url, student_timeout)


def _grade(submissions, course, csv_path, timeout, workers, scheduler, force, db_url, student_timeout):
    skipped = []
    pairs = layout.prepare_course(course, submissions, problems=skipped)
    if db_url and coursesettings.remember_db_url(course, db_url):
        print(f"the course now remembers its gradebook ({coursesettings.FILE}): --db is no longer needed")
    for problem in skipped:
        print(terminal(f"skipped {problem}"), file=sys.stderr)
    for warning in same_person_warnings(pairs):
        print(terminal(warning), file=sys.stderr)
    jail = sandbox.Sandbox()   # what this machine and user cannot enforce, said before the batch
    for limit in jail.problems() + jail.notes():
        print(terminal(f"warning: the grading sandbox is weaker here: {limit}"), file=sys.stderr)
    interrupted = None
    with tqdm(total=len(pairs), desc="autograding", unit="notebook", file=sys.stderr) as bar:
        try:
            outcomes = batch.autograde(course, pairs, progress=lambda o: bar.update(1), cell_timeout=timeout,
                                       workers=workers, scheduler=scheduler, force=force, db_url=db_url,
                                       notebook_timeout=student_timeout)
        except outcome.Interrupted as exc:
            interrupted, outcomes = exc, exc.outcomes
    rows = gradescsv.grade_rows(course, db_url)   # after an interruption: what finished, and earlier grades
    try:
        gradescsv.export_csv(rows, csv_path)
        unwritten = None
    except OSError as exc:   # the table below still shows every grade, which the gradebook holds
        unwritten = f"error: cannot write {csv_path}: {exc.strerror or exc}"
    print(format_table(rows, course, outcomes))
    for o in outcomes:
        if not o.ok:
            what = "not graded" if o.retry else "not graded, scored 0"
            print(terminal(f"{o.student}/{o.assignment}: {what}: {o.message}"), file=sys.stderr)
    unchanged = sum(o.skipped for o in outcomes)
    if unchanged:
        print(f"{unchanged} submission(s) graded before and unchanged were not regraded (--force regrades)")
    full = disk_full(course, outcomes)
    retried = [o for o in outcomes if o.retry and o.ok]
    if retried and not full:
        print(f"{len(retried)} submission(s) timed out or lost their kernel: the next run grades them again, "
              f"in case the machine was the cause")
    missing = [o for o in outcomes if o.retry and not o.ok]
    awaiting = [r for r in rows if r.get("awaiting")]
    if awaiting:
        points = sum(sum(r["awaiting"].values()) for r in awaiting)
        print(f"{len(awaiting)} submission(s) have answers to grade by hand ({points:g} points in all): "
              f"grade them in the formgrader, then `nbgrader generate_feedback` in {course}")
    if interrupted:
        print(f"\ninterrupted: {len(pairs) - len(outcomes)} of {len(pairs)} submissions not graded, nothing "
              f"recorded for them; run the same command again to grade what is missing", file=sys.stderr)
        raise KeyboardInterrupt
    if full:
        print(terminal(f"error: no space left on device for {course}: {len(missing) + len(retried)} submission(s) "
                       f"not graded or graded on a full disk; free space, then run the same command again"),
              file=sys.stderr)
    elif missing:
        print(f"error: {len(missing)} submission(s) not graded (see above); run the same command again",
              file=sys.stderr)
    if unwritten:
        print(terminal(unwritten), file=sys.stderr)
        return 1
    print(f"\ngrades written to {csv_path}; feedback in {course / 'feedback'}")
    return 1 if missing or (full and retried) else 0


#: Free bytes under which the course's file system counts as full.
LOW_SPACE = 1 << 20


def disk_full(course, outcomes):
    """True if the course's file system is (nearly) full, or a submission failed for want of space."""
    if any(outcome.NO_SPACE in o.message.lower() for o in outcomes):
        return True
    try:
        st = os.statvfs(course)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < LOW_SPACE


WIDEST = 40   # columns of the student and assignment columns at most (longer ones overflow)


def format_table(rows, course, outcomes=()):
    """One line per row; the last column is what the grader has to say first, and how much more.

    Points awaiting grading by hand show as ``+N by hand`` after the score, never as a zero;
    a late penalty as ``-N late`` (the score is before it).
    Every field a submission can influence is made inert (:func:`autograder.inert.terminal`);
    columns are aligned in terminal columns, wide characters counting two, and as wide as
    their longest student id and assignment name (up to :data:`WIDEST` columns).
    """
    said = {(o.student, o.assignment): list(o.notes) for o in outcomes or ()}
    listed = {(r["student"], r["assignment"]) for r in rows}
    lines = []
    for r in rows:
        problems = first_problems(said.get((r["student"], r["assignment"]), []),
                                  verdicts.failures(course, r["student"], r["assignment"]))
        first = problems[0] if problems else ""
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        hand, late = sum(r.get("awaiting", {}).values()), r.get("late_penalty", 0.0)
        extra = " ".join(([f"+{hand:g} by hand"] if hand else []) + ([f"-{late:g} late"] if late else []))
        lines.append(([r["student"], r["assignment"], f"{r['score']:>5.2f} / {r['max_score']:<4g}", extra],
                      terminal(first) + more))
    for o in outcomes or ():
        if (o.student, o.assignment) not in listed:   # the grader failed on a new submission
            lines.append(([o.student, o.assignment, "-", ""], terminal(o.message)))
    lines = [([terminal(f) for f in fields], last) for fields, last in lines]
    columns = [min(WIDEST, max([least, *(width(fields[i]) for fields, _ in lines)]))
               for i, least in enumerate((20, 16))] + [12, 12]
    header = line(["student", "assignment", "score", ""], "first problem", columns)
    return "\n".join([header, "-" * max(92, width(header)), *(line(f, last, columns) for f, last in lines)])


#: How rnnkit.probe says a function still raises NotImplementedError.
NOT_IMPLEMENTED = "not implemented yet"


def first_problems(notes, failures):
    """The grader's notes and flags, then the failures; a function not implemented yet before
    either: it is what the student has to do first (a flag on an optional cell is not)."""
    todo = [f for f in failures if NOT_IMPLEMENTED in f]
    return todo + list(notes) + [f for f in failures if NOT_IMPLEMENTED not in f]


def same_person_warnings(pairs):
    """One line per group of graded student ids that differ only in case or Unicode form."""
    groups = {}
    for student in dict.fromkeys(s for s, _ in pairs):
        groups.setdefault(same_person(student), []).append(student)
    return [f"warning: {' and '.join(ids)} differ only in case or Unicode form: graded as "
            f"{len(ids)} students; if they are one, merge their folders and grade again"
            for ids in groups.values() if len(ids) > 1]


def line(fields, last, columns):
    """One line of the grade table: inert ``fields`` padded to ``columns`` (score right-aligned), then ``last``."""
    cells = [pad(text, n, right=i == 2) for i, (text, n) in enumerate(zip(fields, columns))]
    return (" ".join(cells[:3]) + "  " + cells[3] + "  " + last).rstrip()


if __name__ == "__main__":
    sys.exit(main())

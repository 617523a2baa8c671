"""Command line: ``python -m autograder release | grade | stats``."""
import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from . import batch, scheduling, stats


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    rel = sub.add_parser("release", help="regenerate exercises/ from solutions/ (nbgrader generate_assignment)")
    rel.add_argument("assignments", nargs="*", help="default: every assignment in solutions/")

    grade = sub.add_parser("grade", help="autograde a folder of submissions, write feedback and a CSV")
    grade.add_argument("submissions", type=Path, help="folder laid out as <student>/<assignment>/<notebook>.ipynb")
    grade.add_argument("--course", type=Path, default=Path("course"), help="course directory (default: ./course)")
    grade.add_argument("--csv", type=Path, help="grades CSV (default: COURSE/grades.csv)")
    grade.add_argument("--timeout", metavar="SECONDS",
                       help=f"seconds one cell may run (default: ${batch.CELL_TIMEOUT_ENV}, "
                            f"else {batch.nbgrader_config.CELL_TIMEOUT})")
    grade.add_argument("--student-timeout", metavar="SECONDS", type=int,
                       help=f"seconds one student's notebook may run (default {batch.nbgrader_config.NOTEBOOK_TIMEOUT})")
    grade.add_argument("--workers", type=int, default=scheduling.default_workers(),
                       help="parallel grading processes (default: cores + 1)")
    grade.add_argument("--scheduler", help='Dask scheduler address, or "local" for a local Dask cluster')
    grade.add_argument("--force", action="store_true", help="regrade submissions graded before")
    grade.add_argument("--db", default="", help="gradebook SQLAlchemy URL (default: COURSE/gradebook.db)")

    stats_parser = sub.add_parser("stats", help="class statistics of a graded course (HTML), and a Canvas CSV")
    stats.add_arguments(stats_parser)

    args = parser.parse_args(argv)
    try:
        if args.command == "stats":
            stats.command(args)
        elif args.command == "release":
            batch.release(args.assignments or batch.assignments_in())
            print("exercises/ regenerated")
        else:
            grade_command(args.submissions, args.course, args.csv or args.course / "grades.csv",
                          timeout=args.timeout, workers=args.workers, scheduler=args.scheduler,
                          force=args.force, db_url=args.db, student_timeout=args.student_timeout)
    except batch.GradingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def grade_command(submissions, course, csv_path, timeout=None, workers=1, scheduler=None, force=False,
                  db_url="", student_timeout=None):
    timeout = batch.resolve_cell_timeout(timeout)   # a bad value is an error before any work
    skipped = []
    pairs = batch.prepare_course(course, submissions, problems=skipped)
    for problem in skipped:
        print(f"skipped {problem}", file=sys.stderr)
    with tqdm(total=len(pairs), desc="autograding", unit="notebook", file=sys.stderr) as bar:
        outcomes = batch.autograde(course, pairs, progress=lambda o: bar.update(1), cell_timeout=timeout,
                                   workers=workers, scheduler=scheduler, force=force, db_url=db_url,
                                   notebook_timeout=student_timeout)
    rows = batch.grade_rows(course, db_url)
    batch.export_csv(rows, csv_path)
    print(format_table(rows, course, outcomes))
    for o in outcomes:
        if not o.ok:
            print(f"{o.student}/{o.assignment}: not graded, scored 0: {o.message}", file=sys.stderr)
    unchanged = sum(o.skipped for o in outcomes)
    if unchanged:
        print(f"{unchanged} submission(s) graded before and unchanged were not regraded (--force regrades)")
    print(f"\ngrades written to {csv_path}; feedback in {course / 'feedback'}")


def format_table(rows, course, outcomes=()):
    """One line per row; the last column is what the grader has to say first, and how much more."""
    said = {(o.student, o.assignment): list(o.notes) for o in outcomes or ()}
    lines = [f"{'student':<20} {'assignment':<16} {'score':>12}  first problem", "-" * 80]
    for r in rows:
        problems = said.get((r["student"], r["assignment"]), []) + batch.failures(course, r["student"], r["assignment"])
        first = problems[0] if problems else ""
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        lines.append(f"{r['student']:<20} {r['assignment']:<16} "
                     f"{r['score']:>5.2f} / {r['max_score']:<4g}  {first}{more}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

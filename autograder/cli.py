"""Command line: ``python -m autograder release`` and ``python -m autograder grade``."""
import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from . import batch


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

    args = parser.parse_args(argv)
    try:
        if args.command == "release":
            batch.release(args.assignments or batch.assignments_in())
            print("exercises/ regenerated")
        else:
            grade_command(args.submissions, args.course, args.csv or args.course / "grades.csv",
                          timeout=args.timeout)
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


def grade_command(submissions, course, csv_path, timeout=None):
    timeout = batch.cell_timeout(timeout)   # a bad value is an error before any work
    skipped = []
    pairs = batch.prepare_course(course, submissions, problems=skipped)
    for problem in skipped:
        print(f"skipped {problem}", file=sys.stderr)
    with tqdm(total=len(pairs), desc="autograding", unit="notebook", file=sys.stderr) as bar:
        outcomes = batch.autograde(course, pairs, progress=lambda o: bar.update(1), cell_timeout=timeout)
    rows = batch.grade_rows(course)
    batch.export_csv(rows, csv_path)
    print(format_table(rows, course, outcomes))
    for o in outcomes:
        if not o.ok:
            print(f"{o.student}/{o.assignment}: not graded, scored 0: {o.message}", file=sys.stderr)
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

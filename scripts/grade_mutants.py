"""Grade an exercise's wrong and alternative answers with `xfer grade`; report what was caught.

    python scripts/grade_mutants.py 00_concepts                  # every set
    python scripts/grade_mutants.py 00_concepts --sets blind1 alternatives --jobs 2

Sets (files in tests/mutants/<exercise>/):
- ``mutants``: mutants.yaml, edits of the instructor's answers (must lose points on `target`);
- ``blind1``, ``blind2``, ...: blind1.yaml, blind2.yaml, ..., wrong answers written blind (from the
  released notebook and the lecture only). Each replaces ONE answer cell of the blind
  writer's own correct answers (``answers_a`` of alternatives.yaml). Caught = loses points;
- ``alternatives``: alternatives.yaml, correct answers in other idioms: must get full marks.

Prints one line per submission and the share caught per set; exit 1 if a mutant of
mutants.yaml escapes or an alternative loses points.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import grading_utils as gu  # noqa: E402
from xfer_helpers import grading  # noqa: E402

SETS = ("mutants", *gu.BLIND_SETS, "alternatives")


def with_answers(assignment: str, answers: dict[str, str]):
    """The released notebook with these answer cells' sources."""
    nb = gu.read(gu.release_path(assignment))
    for grade_id, source in answers.items():
        gu.cell(nb, grade_id).source = source
    return nb


def students(assignment: str, sets) -> dict[str, tuple[str, object]]:
    """name -> (set, notebook)."""
    folder = gu.MUTANTS_DIR / assignment
    out = {"instructor": ("reference", gu.filled_release(assignment))}
    alternatives = {}
    if (folder / "alternatives.yaml").exists():
        alternatives = yaml.safe_load((folder / "alternatives.yaml").read_text())
    if "alternatives" in sets:
        for key, answers in alternatives.items():
            out[f"alt-{key}"] = ("alternatives", with_answers(assignment, answers))
    if "mutants" in sets:
        perfect = gu.filled_release(assignment)
        for mutant in gu.load_mutants(assignment):
            out[f"mutant-{mutant['name']}"] = ("mutants", gu.mutate(perfect, mutant))
    for name in gu.BLIND_SETS:
        path = folder / f"{name}.yaml"
        if name in sets and path.exists():
            base = alternatives["answers_a"]
            for wrong in yaml.safe_load(path.read_text()):
                out[f"{name}-{wrong['name']}"] = (name, with_answers(
                    assignment, {**base, wrong["cell"]: wrong["source"]}))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("assignment")
    parser.add_argument("--sets", nargs="*", default=list(SETS), choices=SETS)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="grade only these submission names")
    parser.add_argument("--course-root", type=Path, default=REPO,
                        help="grade with another checkout's solutions/ and nbgrader_config.py "
                             "(e.g. a `git worktree` of an older commit, to measure 'before')")
    args = parser.parse_args(argv)
    class_ = students(args.assignment, args.sets)
    if args.only:
        class_ = {k: v for k, v in class_.items() if k in args.only or k == "instructor"}
    work = Path(tempfile.mkdtemp(prefix=f"mutants-{args.assignment}-"))
    for name, (_, nb) in class_.items():
        gu.write(nb, work / "submissions" / f"{name}.ipynb")
    started = time.perf_counter()
    report = grading.grade_submissions(args.assignment, work / "submissions", work / "out",
                                       jobs=args.jobs, progress=False,
                                       course_root=args.course_root)
    results = report.by_student()
    points = gu.points(gu.read(args.course_root / "solutions" / args.assignment
                               / gu.solution_path(args.assignment).name))
    full = sum(points.values())
    caught: dict[str, list[bool]] = {}
    bad = 0
    for name, (kind, _) in class_.items():
        r = results[name]
        lost = [c for c, s in r.cell_scores.items() if s < points[c]]
        if kind == "reference" or kind == "alternatives":
            ok = r.status == "graded" and r.score == full
            bad += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name:<55} {r.status} {r.score}/{full} lost: {lost} {r.message}")
            continue
        is_caught = r.status != "graded" or r.score < full
        caught.setdefault(kind, []).append(is_caught)
        if kind == "mutants" and not is_caught:
            bad += 1
        print(f"{'caught' if is_caught else 'MISSED'} {name:<53} {r.status} {r.score}/{full} "
              f"lost: {lost} {r.message[:80]}")
    for kind, flags in caught.items():
        print(f"{args.assignment} {kind}: {sum(flags)}/{len(flags)} caught "
              f"({100 * sum(flags) / len(flags):.0f} %)")
    print(f"{len(class_)} submissions in {time.perf_counter() - started:.0f} s "
          f"({report.seconds_per_submission:.1f} s each with {args.jobs} jobs); work: {work}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

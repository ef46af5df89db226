"""Release: ``exercises/`` is generated from ``solutions/`` by nbgrader, never edited by hand.

- :func:`release` regenerates ``exercises/`` (``make release``, ``xfer release``).
- :func:`release_differences` says how the committed ``exercises/`` differ from a
  fresh generation (a test keeps it empty).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from .config import REPO_ROOT, _exercise_dir, _folder_name, _start_course, list_exercises


def generate_release(assignment: str, work_dir: str | Path,
                     course_root: str | Path = REPO_ROOT) -> Path:
    """Generate the student version of one exercise inside ``work_dir``; return its folder.

    Example:
        >>> folder = generate_release("00_concepts", tempfile.mkdtemp())  # doctest: +SKIP
    """
    work_dir, course_root = Path(work_dir), Path(course_root)
    config, _ = _start_course(assignment, work_dir, course_root, overrides=None)
    return work_dir / _folder_name(config, "release") / assignment


def release(assignments: list[str] | None = None,
            course_root: str | Path = REPO_ROOT) -> list[Path]:
    """Regenerate ``exercises/<name>/`` from ``solutions/<name>/`` (all exercises by default).

    Example:
        >>> release(["00_concepts"])  # doctest: +SKIP
        [PosixPath('.../exercises/00_concepts')]
    """
    course_root = Path(course_root)
    written = []
    for name in assignments or list_exercises(course_root):
        with tempfile.TemporaryDirectory(prefix="xfer-release-") as tmp:
            built = generate_release(name, tmp, course_root)
            target = _exercise_dir(name, course_root, "release")
            if target.exists():
                shutil.rmtree(target)
            # copy contents only: nbgrader marks its output read-only
            shutil.copytree(built, target, copy_function=shutil.copyfile)
        written.append(target)
    return written


def normalized_notebook(path: str | Path) -> dict:
    """A notebook as a dict without volatile fields (execution counts, kernel version info).

    Example:
        >>> normalized_notebook("exercises/00_concepts/00_concepts.ipynb")["nbformat"]  # doctest: +SKIP
        4
    """
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    nb.get("metadata", {}).pop("language_info", None)
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb.get("cells", []):
        if "execution_count" in cell:
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(cell["source"])
    return nb


def release_differences(assignment: str, course_root: str | Path = REPO_ROOT) -> list[str]:
    """How the committed ``exercises/<assignment>/`` differ from a fresh generation ([] if equal).

    Example:
        >>> release_differences("00_concepts")  # doctest: +SKIP
        []
    """
    course_root = Path(course_root)
    committed = _exercise_dir(assignment, course_root, "release")
    problems = []
    with tempfile.TemporaryDirectory(prefix="xfer-release-check-") as tmp:
        fresh = generate_release(assignment, tmp, course_root)
        fresh_files = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
        committed_files = {p.relative_to(committed) for p in committed.rglob("*")
                           if p.is_file()} if committed.is_dir() else set()
        for missing in sorted(fresh_files - committed_files):
            problems.append(f"{missing}: missing from {committed} (run `make release`)")
        for extra in sorted(committed_files - fresh_files):
            problems.append(f"{extra}: in {committed} but not generated from solutions/")
        for name in sorted(fresh_files & committed_files):
            a, b = fresh / name, committed / name
            if name.suffix == ".ipynb":
                if normalized_notebook(a) != normalized_notebook(b):
                    problems.append(f"{name}: differs from a fresh generation (hand edit or "
                                    "stale release: run `make release`)")
            elif a.read_bytes() != b.read_bytes():
                problems.append(f"{name}: differs from solutions/ (run `make release`)")
    return problems

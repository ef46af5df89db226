"""Collecting a class's submissions: one notebook per student, from a folder or an LMS archive.

Bad input is a message for that student, never a crash: not a notebook, broken JSON,
no notebook, several notebooks, another exercise's notebook, a file whose owner cannot
be told from its name.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .config import (ARCHIVE_SUFFIXES, DEFAULT_NAME_REGEXP, REPO_ROOT, _check, _folder_name,
                     _nbgrader, _nbgrader_environment, _solution_notebook, load_config)


@dataclass
class _Submission:
    student_id: str
    path: Path | None = None
    problem: str = ""


def _safe_student_id(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.@-]+", "_", name).strip("._")
    return cleaned or "unnamed"


def _graded_cells(notebook: Path) -> tuple[list[str], set[str], dict[str, float]]:
    """(graded cell ids in order, all nbgrader cell ids, points per graded cell)."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    graded, every, points = [], set(), {}
    for cell in nb["cells"]:
        nbg = _nbgrader(cell)
        if nbg.get("grade_id"):
            every.add(nbg["grade_id"])
            if nbg.get("grade"):
                graded.append(nbg["grade_id"])
                points[nbg["grade_id"]] = float(nbg.get("points", 0))
    return graded, every, points


def _notebook_problem(path: Path, assignment: str, expected_ids: set[str]) -> str:
    """Why this file cannot be graded as a notebook of `assignment` ('' if it can)."""
    import nbformat

    if path.suffix.lower() != ".ipynb":
        return f"{path.name} is not a Jupyter notebook (.ipynb); nothing to grade"
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text)
    except UnicodeDecodeError:
        return f"{path.name} is not a text file, so it cannot be a notebook"
    except json.JSONDecodeError as exc:
        return (f"{path.name} is not valid JSON (line {exc.lineno}, column {exc.colno}): the "
                "file is damaged or was not saved by Jupyter")
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        return f"{path.name} is JSON but not a notebook (no list of cells)"
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises several types for broken notebooks
        return f"{path.name} is not a readable notebook: {exc}"
    ids = {_nbgrader(c).get("grade_id") for c in nb.cells} - {None}
    if not ids & expected_ids:
        if ids:
            sample = ", ".join(sorted(ids)[:3])
            return (f"{path.name} is not the {assignment} exercise: its nbgrader cells ({sample}, "
                    "...) belong to another exercise")
        return (f"{path.name} has none of the cells of {assignment} (no nbgrader metadata): "
                "was it re-created instead of starting from the released notebook?")
    return ""


def _pick_notebook(student: str, files: list[Path], notebook_name: str) -> _Submission:
    notebooks = [f for f in files if f.suffix.lower() == ".ipynb"
                 and ".ipynb_checkpoints" not in f.parts]
    if not notebooks:
        names = ", ".join(sorted(f.name for f in files)[:5]) or "nothing"
        return _Submission(student, problem=f"no notebook submitted (received: {names})")
    if len(notebooks) > 1:
        preferred = [f for f in notebooks if f.name == notebook_name]
        if len(preferred) != 1:
            names = ", ".join(sorted(f.name for f in notebooks))
            return _Submission(student, problem=f"several notebooks ({names}) and none is "
                                                f"called {notebook_name}: which one to grade?")
        notebooks = preferred
    return _Submission(student, notebooks[0])


def _visible_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not any(part.startswith(".") or part == "__MACOSX"
                              for part in p.relative_to(folder).parts))


def _collect_archive(archive: Path, work_dir: Path, assignment: str, notebook_name: str,
                     course_root: Path, name_regexp: str) -> list[_Submission]:
    """Collect an LMS archive with nbgrader's zip_collect; one entry per student found."""
    from nbgrader.apps.zipcollectapp import ZipCollectApp
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import capture_log

    root = work_dir / f"zip_collect-{archive.stem}"
    config = load_config(course_root, root=root, overrides={
        "Application": {"log_level": "ERROR"},  # we report skipped files per student ourselves
        "ZipCollectApp": {"force": True},
        "ExtractorPlugin": {"force": True},
        "FileNameCollectorPlugin": {"named_regexp": name_regexp, "valid_ext": [".ipynb"]},
    })
    archive_dir = root / "downloaded" / assignment / "archive"
    archive_dir.mkdir(parents=True)
    shutil.copy(archive, archive_dir / archive.name)
    released = root / _folder_name(config, "release") / assignment
    released.mkdir(parents=True)
    (released / notebook_name).write_text("{}")  # zip_collect checks names against the release
    app = ZipCollectApp(config=config)
    app.coursedir = CourseDirectory(config=config)
    app.coursedir.assignment_id = assignment
    with _nbgrader_environment():
        _check(capture_log(app), f"extract {archive.name} with zip_collect")

    # Which files did each student send? (zip_collect only moves notebooks.)
    extracted = root / "downloaded" / assignment / "extracted"
    received: dict[str, list[Path]] = {}
    entries: list[_Submission] = []
    for file in _visible_files(extracted):
        match = re.match(name_regexp, str(file))
        if match:
            received.setdefault(match.group("student_id"), []).append(file)
        else:
            entries.append(_Submission(_safe_student_id(file.stem), problem=(
                f"{file.name} in {archive.name}: cannot tell whose file it is (the name does "
                f"not match {name_regexp!r}; set --name-regexp)")))
    submitted_root = root / app.coursedir.submitted_directory
    for raw_id in sorted(received):
        folder = submitted_root / raw_id / assignment
        collected = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
        entry = _pick_notebook(_safe_student_id(raw_id), collected or received[raw_id],
                               notebook_name)
        if not collected and not entry.problem:  # defensive: a notebook zip_collect skipped
            entry = _Submission(entry.student_id, problem="no notebook collected")
        entries.append(entry)
    return entries


def collect_submissions(submissions: str | Path, assignment: str, work_dir: str | Path,
                        course_root: str | Path = REPO_ROOT,
                        name_regexp: str = DEFAULT_NAME_REGEXP) -> list[_Submission]:
    """Find one notebook per student in a folder or an LMS archive; note why others are unusable.

    A folder may hold ``<student>.ipynb`` files, ``<student>/`` folders, and LMS
    archives (``.zip``); the path may also be an archive itself.

    Example:
        >>> entries = collect_submissions("submissions/", "00_concepts", "/tmp/work")  # doctest: +SKIP
    """
    submissions, work_dir, course_root = Path(submissions), Path(work_dir), Path(course_root)
    notebook_name = _solution_notebook(assignment, course_root).name
    if not submissions.exists():
        raise ValueError(f"No submissions at {submissions}: give a folder or a .zip file")
    if submissions.is_file():
        if submissions.suffix.lower() not in ARCHIVE_SUFFIXES:
            raise ValueError(f"{submissions} is a single file; give a folder of submissions or "
                             "an LMS archive (.zip)")
        entries = _collect_archive(submissions, work_dir, assignment, notebook_name,
                                   course_root, name_regexp)
    else:
        entries = []
        for item in sorted(submissions.iterdir()):
            if item.name.startswith(".") or item.name == "__MACOSX":
                continue
            student = _safe_student_id(item.stem if item.is_file() else item.name)
            if item.is_dir():
                entries.append(_pick_notebook(student, _visible_files(item), notebook_name))
            elif item.suffix.lower() in ARCHIVE_SUFFIXES:
                entries.extend(_collect_archive(item, work_dir, assignment, notebook_name,
                                                course_root, name_regexp))
            else:
                entries.append(_Submission(student, item))
    unique: dict[str, _Submission] = {}
    for entry in entries:
        if entry.student_id in unique:
            entry = _Submission(entry.student_id + "-duplicate", problem=(
                f"a second submission for student {entry.student_id}; only the first is graded"))
        unique[entry.student_id] = entry
    return list(unique.values())

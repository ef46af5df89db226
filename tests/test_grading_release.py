"""`make release` and nbgrader_config.py: exercises/ is generated, never hand-edited, and leaks nothing."""
from __future__ import annotations

import re
import shutil

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_output

import grading_utils as gu
from xfer_helpers import grading

REPO = gu.REPO


def test_config_has_the_course_settings():
    config = grading.load_config()
    assert config.CourseDirectory.source_directory == "solutions"
    assert config.CourseDirectory.release_directory == "exercises"
    assert 10 <= config.Execute.timeout <= 300
    assert config.IgnorePattern.enabled is True and config.IgnorePattern.pattern
    assert config.OverwriteCells.add_missing_cells is True
    assert "NotImplementedError" in config.ClearSolutions.code_stub["python"]
    assert "xfer_helpers.grading.HideHiddenTests" in config.GenerateFeedback.preprocessors
    assert "instructor_*" in config.CourseDirectory.ignore


@pytest.mark.slow
def test_committed_exercises_equal_a_fresh_generation():
    assert grading.list_exercises() == sorted(p.name for p in (REPO / "exercises").iterdir()
                                             if p.is_dir())
    for name in grading.list_exercises():
        assert grading.release_differences(name) == [], f"exercises/{name} is stale or hand-edited"


@pytest.mark.slow
def test_a_hand_edit_of_the_release_is_detected(tmp_path):
    course = tmp_path / "course"
    shutil.copytree(REPO / "solutions", course / "solutions")
    shutil.copytree(REPO / "exercises", course / "exercises")
    shutil.copy(REPO / "nbgrader_config.py", course)
    name = "00_concepts"
    released = course / "exercises" / name / f"{name}.ipynb"
    nb = gu.read(released)
    gu.cell(nb, "strategy_tests").source += "\n# a hint added by hand"
    gu.write(nb, released)
    (course / "exercises" / name / "notes.txt").write_text("stray file")
    problems = grading.release_differences(name, course)
    assert any(p.startswith(f"{name}.ipynb: differs") for p in problems), problems
    assert any(p.startswith("notes.txt: in") for p in problems), problems


def test_no_solution_or_hidden_test_reaches_the_exercises():
    for name in grading.list_exercises():
        released = sorted((REPO / "exercises" / name).rglob("*"))
        assert released, f"exercises/{name} is empty: run `make release`"
        secret = gu.secret_lines(name)
        assert len(secret) > 30
        for path in released:
            if not path.is_file():
                continue
            assert not re.match(r"instructor_|.*\.instructor\.", path.name), path
            text = path.read_text(encoding="utf-8", errors="replace")
            for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS",
                           "END HIDDEN TESTS", "BEGIN MARK SCHEME"):
                assert marker not in text, f"{path} contains {marker}"
            notebook_text = "\n".join(c.source for c in nbformat.read(str(path), 4).cells) \
                if path.suffix == ".ipynb" else text
            released_lines = {line.strip() for line in notebook_text.split("\n")}
            leaked = [line for line in secret if line in released_lines]
            assert not leaked, f"{path} contains solution or hidden-test code: {leaked[:3]}"


@pytest.mark.slow
def test_instructor_only_files_stay_out_of_the_release(tmp_path):
    course = tmp_path / "course"
    shutil.copytree(REPO / "solutions", course / "solutions")
    shutil.copy(REPO / "nbgrader_config.py", course)
    (course / "solutions" / "00_concepts" / "instructor_notes.md").write_text("answers: ...")
    (course / "solutions" / "00_concepts" / "grid.instructor.csv").write_text("a,b\n")
    (course / "solutions" / "00_concepts" / "data.csv").write_text("x,y\n1,2\n")
    released = grading.generate_release("00_concepts", tmp_path / "work", course)
    assert sorted(p.name for p in released.iterdir()) == ["00_concepts.ipynb", "data.csv"]


@pytest.mark.slow
def test_ignore_pattern_drops_only_known_harmless_stderr():
    from nbgrader.preprocessors import IgnorePattern

    config = grading.load_config()
    harmless = ("2025-11-21 19:55:48.123456: I tensorflow/core/util/port.cc:153] oneDNN custom "
                "operations are on.\n"
                "W0000 00:00:1732219000.123456   12345 gpu_device.cc:2344] Cannot dlopen some GPU "
                "libraries.\n"
                "WARNING: All log messages before absl::InitializeLog() is called are written to "
                "STDERR\n")
    kept = ["/x/keras/src/layers/core/dense.py:87: UserWarning: Do not pass an `input_shape`\n",
            harmless + "Traceback (most recent call last):\n",
            "2025-11-21 19:55:48.123456: E tensorflow/core/framework/op_kernel.cc:1] failed\n",
            "  3%|▎         | 1/30 [00:01<00:30]\n"]
    cell = new_code_cell("x = 1")
    cell.outputs = [new_output("stream", name="stderr", text=t) for t in [harmless, *kept]]
    cell.outputs.append(new_output("stream", name="stdout", text=harmless))
    cleaned, _ = IgnorePattern(config=config).preprocess_cell(cell, {}, 0)
    assert [o.text for o in cleaned.outputs] == [*kept, harmless]


@pytest.mark.slow
def test_feedback_preprocessor_removes_hidden_tests_and_their_tracebacks():
    source = ("expect_true(f(1), 'f(1) should be true')\n### BEGIN HIDDEN TESTS\n"
              "assert f(2) == 5, 'f(2) should be 5'\n### END HIDDEN TESTS")
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "t", "points": 1, "solution": False,
                                 "locked": True, "schema_version": 3}
    cell.outputs = [new_output("error", ename="AssertionError", evalue="f(2) should be 5",
                               traceback=["---> 3 assert f(2) == 5, 'f(2) should be 5'"])]
    cleaned, _ = grading.HideHiddenTests().preprocess_cell(cell, {}, 0)
    assert cleaned.source == "expect_true(f(1), 'f(1) should be true')"
    assert cleaned.outputs[0].traceback == ["AssertionError: f(2) should be 5"]

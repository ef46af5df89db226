"""Feedback for students: nbgrader's HTML report with the hidden tests taken out.

``HideHiddenTests`` is nbgrader's feedback preprocessor in ``nbgrader_config.py``
(``xfer_helpers.grading.HideHiddenTests``); it is built on first use, so importing
the package does not import nbgrader (about 3 s).
"""
from __future__ import annotations

from pathlib import Path

from .config import _nbgrader_environment


def _build_hide_hidden_tests():
    from nbgrader.preprocessors import ClearHiddenTests

    class HideHiddenTests(ClearHiddenTests):
        """Feedback preprocessor: remove hidden tests and cut their cells' tracebacks.

        nbgrader's feedback shows the autograded notebook, whose test cells contain
        the hidden tests, and a failing hidden assert prints its own source line in
        the traceback. This keeps only "AssertionError: <message>" for those cells.
        """

        def preprocess_cell(self, cell, resources, cell_index):
            had_hidden = self.begin_test_delimeter in cell.source
            cell, resources = super().preprocess_cell(cell, resources, cell_index)
            if had_hidden:
                for output in cell.get("outputs", []):
                    if output.get("output_type") == "error":
                        output["traceback"] = [f"{output.get('ename')}: {output.get('evalue')}"]
            return cell, resources

    return HideHiddenTests


def __getattr__(name):  # PEP 562: build nbgrader-based classes only when asked for
    if name == "HideHiddenTests":
        cls = _build_hide_hidden_tests()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _feedback_html(api, assignment: str, student: str, solution: Path) -> str | None:
    """Generate the student's feedback page; its path, or None if nbgrader failed."""
    coursedir = api.coursedir
    with _nbgrader_environment():
        made = api.generate_feedback(assignment, student, force=True)
    html = Path(coursedir.format_path(coursedir.feedback_directory, student, assignment)) \
        / f"{solution.stem}.html"
    return str(html) if made.get("success") and html.is_file() else None

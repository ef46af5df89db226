"""nbgrader settings for the course (nbgrader 0.9.6). Run nbgrader from the repository root.

solutions/<exercise>/  instructor notebooks: solutions + hidden tests (nbgrader's "source")
exercises/<exercise>/  student notebooks generated from solutions/ (nbgrader's "release");
                       regenerate with `make release`, never edit by hand.

`xfer grade` (xfer_helpers/grading/) reads this file too: it grades in a
scratch course folder with these settings.
"""

c = get_config()  # noqa: F821  (nbgrader/traitlets provide get_config)

# --- Where things live -------------------------------------------------------
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
# generate_assignment copies every non-notebook file of solutions/<exercise>/ to
# exercises/<exercise>/ except these. Name instructor-only files instructor_* (or put
# them outside solutions/): they never reach students.
c.CourseDirectory.ignore = [
    ".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback",
    "instructor_*", "*.instructor.*", ".DS_Store",
]

# --- Releasing exercises -----------------------------------------------------
c.ClearSolutions.code_stub = {
    "python": '# YOUR CODE HERE\nraise NotImplementedError("Replace this line with your code.")',
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# --- Autograding -------------------------------------------------------------
# Seconds each cell may run before it is interrupted (an infinite loop then fails
# that cell only; the rest of the notebook is still graded). The setup cell, which
# imports PyTorch and TensorFlow, is the slowest: ~10 s on a busy 2-core CPU.
# nbgrader has no whole-notebook limit. Execute.timeout overrides
# ExecutePreprocessor.timeout.
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True

# Every notebook runs sealed off (xfer_helpers/sealed.py, xfer_helpers/sandbox.py): its
# kernel in a bubblewrap sandbox (no network, no view of solutions/, the gradebook or other
# submissions, memory/process limits, every process killed at the end), and the hidden
# checks in the grader's own process, on plain values the kernel sends back. This replaces
# nbgrader's Execute; the other steps are nbgrader's defaults.
c.Autograde.autograde_preprocessors = [
    "xfer_helpers.sealed.SealedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
# The whole notebook's limit (a kernel that is slow in every cell still stops).
c.SealedExecute.notebook_timeout = 900

# Test cells or locked cells a student deleted are put back and run.
c.OverwriteCells.add_missing_cells = True

# Safety net only: a test cell that writes anything to stderr scores 0. The exercise
# setup cell already silences warnings and TensorFlow's logs. This drops a stderr
# chunk only when EVERY line in it is a known-harmless framework log line
# (TensorFlow/XLA/absl C++ logs at levels I and W, the absl preamble, CPU-instruction
# notices); a chunk with anything else in it (a Python warning, an error) is kept.
_HARMLESS_STDERR_LINE = "|".join([
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] (?:tensorflow|external/local_xla|external/local_tsl|xla)/[^\n]*",
    r"[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\] [^\n]*",
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"To enable the following instructions: [^\n]* in other operations, rebuild TensorFlow [^\n]*",
    r"[ \t]*",
])
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = rf"\A(?:(?:{_HARMLESS_STDERR_LINE})(?:\r?\n|\Z))+\Z"

# --- Feedback ----------------------------------------------------------------
# Feedback HTML must not show hidden tests: HideHiddenTests removes the
# "### BEGIN HIDDEN TESTS" regions and cuts tracebacks of those cells down to the
# assertion message (a traceback would print the hidden line that failed).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "xfer_helpers.grading.HideHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

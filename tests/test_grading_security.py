"""Grading that cannot be fooled: hostile submissions graded with honest classmates.

One `xfer grade --jobs 2` run of exercise 00 grades every attack in tests/attacks.py
between honest students (two sort before every attack, two after, so each grading worker
grades an honest notebook before and after the attacks in its shard). For every attack:
no unearned point, every classmate's full marks, nothing outside the grading scratch
changed (checksums of the course, the submissions and a honeypot folder), no process left
behind, no network connection made, and a per-student message where the kernel died.

The fast tests at the top check the sandbox itself (xfer_helpers/sandbox.py) directly.
"""
from __future__ import annotations

import copy
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import attacks
import grading_utils as gu
from xfer_helpers import grading, sandbox, sealed

ASSIGNMENT = "00_concepts"
HONEYPOT = Path("/tmp/xfer-honeypot")
HONEST = ("aa-honest-1", "aa-honest-2", "zz-honest-1", "zz-honest-2")

def _run_sandboxed(tmp_path: Path, code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run Python code the way a grading kernel runs: sealed off, in a fresh scratch folder."""
    folders = sandbox.SandboxFolders()
    try:
        command = [sys.executable, "-m", "xfer_helpers.sandbox", "--scratch", str(folders.scratch),
                   "--ipc", str(folders.ipc),
                   *(["--uid", str(folders.uid)] if folders.uid is not None else []),
                   "--", sys.executable, "-c", code]
        done = subprocess.run(command, timeout=timeout, capture_output=True, text=True)
        log = folders.root / "kernel.log"
        done.stdout = log.read_text() if log.exists() else ""
        return done
    finally:
        folders.remove()


def test_sandbox_sees_no_course_files_and_no_network(tmp_path):
    done = _run_sandboxed(tmp_path, f"""
import os, socket
print("solutions:", os.path.exists({str(gu.REPO / 'solutions')!r}))
print("package:", os.path.exists({str(gu.REPO / 'xfer_helpers' / 'sealed.py')!r}))
try:
    socket.create_connection(("1.1.1.1", 80), timeout=2)
    print("network: open")
except OSError:
    print("network: closed")
for path in ({str(gu.REPO / 'xfer_helpers' / 'x')!r}, "/etc/x", "/x"):
    try:
        open(path, "w")
        print("wrote", path)
    except OSError:
        pass
open("mine.txt", "w").write("scratch is writable")
print("scratch: ok")
""")
    assert done.returncode == 0, done.stdout
    assert "solutions: False" in done.stdout and "package: True" in done.stdout
    assert "network: closed" in done.stdout
    assert "wrote" not in done.stdout and "scratch: ok" in done.stdout


def test_sandbox_kills_a_double_forked_daemon(tmp_path):
    marker = f"xfer-daemon-test-{os.getpid()}"
    done = _run_sandboxed(tmp_path, f"""
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", {marker!r}])
    os._exit(0)
os.wait()
time.sleep(0.5)
print("parent done")
""")
    assert "parent done" in done.stdout, done.stdout
    time.sleep(0.5)
    assert not _processes_with(marker), "a daemon started in the sandbox outlived it"


def test_sandbox_limits_memory_and_processes(tmp_path):
    done = _run_sandboxed(tmp_path, """
import os, resource
try:
    bytearray(12 * 2**30)
    print("12 GB: allocated")
except MemoryError:
    print("12 GB: refused")
soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
print("nproc", soft, hard)
try:
    resource.setrlimit(resource.RLIMIT_NPROC, (hard + 1, hard + 1))
    print("raised the limit")
except (ValueError, OSError):
    print("cannot raise the limit")
""")
    assert "12 GB: refused" in done.stdout, done.stdout
    assert "cannot raise the limit" in done.stdout, done.stdout


def test_sandbox_uid_is_never_one_a_running_process_has():
    if os.getuid() != 0:
        pytest.skip("sandbox users exist only when grading as root")
    first = sandbox.SandboxFolders()
    try:  # a process of the first sandbox's user, as the next student's kernel started ahead
        sleeper = subprocess.Popen(["setpriv", "--reuid", str(first.uid), "--regid", str(first.uid),
                                    "--clear-groups", "sleep", "30"])
        try:
            time.sleep(0.2)
            assert all(sandbox.sandbox_uid(first.root) != first.uid for _ in range(20))
        finally:
            sleeper.kill()
            sleeper.wait()
    finally:
        first.remove()


def test_kernel_started_ahead_gets_the_students_files_or_is_stopped(tmp_path):
    """sealed.HeadStart: a kernel started for the next student, with an empty scratch folder,
    gets that student's files when it is taken; one started for another kernel is stopped
    and its sandbox removed; so is one nobody takes."""
    from jupyter_core.utils import run_sync

    student = tmp_path / "student"
    student.mkdir()
    (student / "data.csv").write_text("1,2\n")
    (student / "00_concepts.ipynb").write_text("{}")
    head = sealed.HeadStart()
    for asked, taken in (("python3", True), ("another-kernel", False), (None, False)):
        manager = sandbox.SandboxedKernelManager(kernel_name="python3")
        run_sync(manager.start_kernel)()
        folders = manager.folders
        assert [p.name for p in folders.scratch.iterdir() if not p.name.startswith(".")] == []
        head.manager = manager
        if asked is None:
            head.discard()
        elif taken:
            assert head.take(asked, str(student)) is manager and head.handed_over
            assert [p.name for p in folders.scratch.iterdir() if not p.name.startswith(".")] \
                == ["data.csv"]
            run_sync(manager.shutdown_kernel)(now=True)
        else:
            assert head.take(asked, str(student)) is None and not head.handed_over
        assert head.manager is None and not folders.root.exists()


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _checksums(*folders: Path) -> dict[str, str]:
    sums = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                sums[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums


class _Listener:
    """A TCP server on loopback that records whether anything connected."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.server.settimeout(0.5)
        self.port, self.connections, self.stop = self.server.getsockname()[1], [], False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop:
            try:
                conn, address = self.server.accept()
                self.connections.append(address)
                conn.close()
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.thread.join(timeout=2)
        self.server.close()


def _submission(base: str, code: str):
    solution = gu.read(gu.solution_path(ASSIGNMENT))
    if base == "blank":
        nb = gu.read(gu.release_path(ASSIGNMENT))
    elif base == "correct":
        nb = gu.filled_release(ASSIGNMENT)
    else:  # wrong: the first mutant of every task
        nb = gu.filled_release(ASSIGNMENT)
        mutants = gu.load_mutants(ASSIGNMENT)
        for target in gu.graded_ids(solution):
            nb = gu.mutate(nb, next(m for m in mutants if m["target"] == target))
    nb = copy.deepcopy(nb)
    first = gu.cell(nb, gu.answer_ids(solution)[0])
    first.source = (first.source + "\n" + code if code.startswith("#APPEND")
                    else code + "\n" + first.source)
    return nb


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    sandbox.bwrap_path()  # fails with what to install
    tmp = tmp_path_factory.mktemp("attacks")
    folder = tmp / "submissions"
    listener = _Listener()
    for name in HONEST:
        gu.write(gu.filled_release(ASSIGNMENT), folder / f"{name}.ipynb")
    for name, (code, base, _) in attacks.ATTACKS.items():
        code = code.replace("PORT", str(listener.port))
        gu.write(_submission(base, code), folder / f"m-{name}.ipynb")
    exit_nb = gu.filled_release(ASSIGNMENT)
    gu.cell(exit_nb, "strategy_answer").source = attacks.EXIT_ANSWER
    gu.write(exit_nb, folder / "m-exit-after-visible-tests.ipynb")
    HONEYPOT.mkdir(exist_ok=True)
    (HONEYPOT / "grades.csv").write_text("student_id,score\nnobody,0\n")
    watched = (gu.REPO / "solutions" / ASSIGNMENT, gu.REPO / "exercises", gu.REPO / "xfer_helpers", folder,
               HONEYPOT)
    before = _checksums(*watched)
    try:
        report = grading.grade_submissions(ASSIGNMENT, folder, tmp / "out", jobs=2, timeout=40,
                                           progress=False)
        grades_after_run = report.grades_csv.read_text()
        time.sleep(4)  # a surviving daemon would rewrite files 2 s after its notebook
    finally:
        listener.close()
    return {"report": report, "before": before, "after": _checksums(*watched),
            "grades_now": report.grades_csv.read_text(), "grades_after_run": grades_after_run,
            "connections": listener.connections, "full": gu.points(gu.read(gu.solution_path(
                ASSIGNMENT)))}


def _expected(outcome: str, full: dict) -> dict | None:
    if outcome == "zero":
        return {name: 0.0 for name in full}
    if outcome == "full":
        return dict(full)
    if outcome == "full-but-strategy":
        return dict(full, strategy_tests=0.0)
    return None


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(attacks.ATTACKS))
def test_attack_earns_nothing_it_does_not_deserve(attacked, name):
    result = attacked["report"].by_student()[f"m-{name}"]
    outcome = attacks.ATTACKS[name][2]
    if outcome == "zero-or-failed" and result.status == "failed":
        assert "NOT graded" in result.message, result.message  # a person looks at it
        return
    assert result.status == "graded", f"{name}: {result.status} {result.message}"
    expected = _expected(outcome.replace("-or-failed", ""), attacked["full"])
    assert result.cell_scores == expected, f"{name}: {result.cell_scores}"


@pytest.mark.slow
def test_kernel_that_exits_mid_notebook_is_reported_for_that_student_only(attacked):
    result = attacked["report"].by_student()["m-exit-after-visible-tests"]
    assert result.status == "failed" and result.score is None
    assert "kernel died" in result.message and "NOT graded" in result.message


@pytest.mark.slow
def test_honest_classmates_keep_full_marks(attacked):
    for name in HONEST:
        result = attacked["report"].by_student()[name]
        assert result.status == "graded" and result.cell_scores == attacked["full"], \
            f"{name}: {result.status} {result.cell_scores} {result.message}"


@pytest.mark.slow
def test_nothing_outside_the_scratch_folders_changed(attacked):
    changed = sorted(k for k in attacked["before"].keys() | attacked["after"].keys()
                     if attacked["before"].get(k) != attacked["after"].get(k))
    assert not changed, f"files changed by the submissions: {changed[:5]}"
    assert attacked["grades_now"] == attacked["grades_after_run"], "grades.csv changed afterwards"
    assert "mallory" not in attacked["grades_now"]


@pytest.mark.slow
def test_no_process_outlives_its_notebook_and_no_connection_is_made(attacked):
    assert not _processes_with(attacks.MARKER), "the daemon outlived its notebook"
    assert attacked["connections"] == [], "a submission reached a server on the grading machine"


@pytest.mark.slow
def test_stray_stderr_costs_nothing_and_is_mentioned(attacked):
    result = attacked["report"].by_student()["m-correct-stderr-and-warnings"]
    executed = gu.autograded(result.course_dir, ASSIGNMENT, result.student_id)
    text = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "debug: 500 0.9" in text and sealed.STDERR_NOTE.strip() in text


@pytest.mark.slow
def test_tampering_is_still_flagged_for_review(attacked):
    by_student = attacked["report"].by_student()
    assert any("get_ipython" in flag for flag in by_student["m-blank-input-transformer"].review)
    assert by_student["aa-honest-1"].review == []

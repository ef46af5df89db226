"""`make course` (scripts/run_course.py + scripts/course_site.py) on two tiny notebooks.

A notebook that fails is named with its failing cell, the other still runs, the
exit status is 1, and the site and the summary are built from the result files.
The real chapters' key results are checked in tests/test_lecture_notebooks.py.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import course_site  # noqa: E402


def _notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_course_run_names_the_failing_cell_and_builds_the_site(tmp_path):
    good = _notebook(tmp_path / "00_concepts.ipynb",   # a real chapter name whose file lacks the real keys
                     "from xfer_helpers.results import save_results",
                     "save_results('00_concepts', {'seconds': 1.0, 'runs': []})")
    bad = _notebook(tmp_path / "99_broken.ipynb", "x = 1", "1 / 0", "print('never reached')")
    build = tmp_path / "build"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run_course.py"), "--build", str(build),
                           str(good), str(bad)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "XFER_PROGRESS": "0"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "failed at cell 2 (1 / 0): ZeroDivisionError" in proc.stdout, proc.stdout
    rows = {r["notebook"]: r for r in json.loads((build / "course_run.json").read_text())}
    assert rows["00_concepts.ipynb"]["ok"] and not rows["99_broken.ipynb"]["ok"]
    assert rows["99_broken.ipynb"]["failed_cell"].startswith("2 ")
    assert all(r["seconds"] > 0 and r["peak_memory_gb"] > 0.01 for r in rows.values()), rows
    for name in ("00_concepts.html", "99_broken.html", "index.html", "glossary.html"):
        assert (build / name).is_file(), name
    index = (build / "index.html").read_text()
    assert 'href="00_concepts.html"' in index and "failed at cell 2" in index
    # The result file lacks the chapter's real keys: reported as unreadable, not a crash.
    assert "could not be read (KeyError" in index
    assert "迁移学习" in (build / "glossary.html").read_text()


def test_summary_lists_key_results_and_failures():
    rows = [{"chapter": "04_meta_learning", "notebook": "04_meta_learning.ipynb", "ok": True, "seconds": 192.0,
             "peak_memory_gb": 1.5, "device": "cpu", "failed_cell": None, "error": None,
             "key_results": [("ProtoNets 1-shot", "PyTorch 93.5%", "Snell et al. 2017: 98.8 %")]},
            {"chapter": "02_bert_classification", "notebook": "02_bert_classification.ipynb", "ok": False,
             "seconds": 60.0, "peak_memory_gb": 2.0, "device": "-", "failed_cell": "7 (fit(...))",
             "error": "ValueError: bad", "key_results": []}]
    text = course_site.summary_table(rows)
    assert "04_meta_learning" in text and "3.2" in text and "Snell et al. 2017" in text
    assert "failed at cell 7 (fit(...)): ValueError: bad" in text
    assert text.splitlines()[-1].split()[-1] == "4.2"   # total minutes: (192 + 60) / 60
    page = course_site.index_html(rows)
    assert page.count("<tr>") >= 3 and "failed at cell 7" in page and "93.5%" in page


def test_key_results_for_an_unknown_chapter_is_empty():
    assert course_site.key_results("99_new_chapter", {"anything": 1}) == []

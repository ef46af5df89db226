"""xfer_helpers.results: chapter result files for the course summary."""
import json
from pathlib import Path

import numpy as np
import pytest

from xfer_helpers import results


def test_save_adds_context_and_converts_numpy(tmp_path, monkeypatch):
    monkeypatch.setenv("XFER_RESULTS_DIR", str(tmp_path / "res"))
    monkeypatch.setenv("XFER_PROFILE", "lite")
    path = results.save_results("00_concepts", {"seconds": np.float32(1.5), "n": np.int64(7),
                                                "curve": np.array([0.5, 0.75])})
    assert path == tmp_path / "res" / "00_concepts.json"
    data = json.loads(path.read_text())
    assert data["chapter"] == "00_concepts" and data["profile"] == "lite"
    assert data["seconds"] == 1.5 and data["n"] == 7 and data["curve"] == [0.5, 0.75]
    assert data["device"] and data["hardware"]["cpu_cores"] >= 1
    assert results.load_results("00_concepts") == data
    assert [p.name for p in path.parent.iterdir()] == ["00_concepts.json"]  # no temporary file left


def test_directory_argument_and_caller_keys_win(tmp_path, monkeypatch):
    monkeypatch.delenv("XFER_RESULTS_DIR", raising=False)
    path = results.save_results("demo", {"device": "cuda:0"}, directory=tmp_path)
    assert path.parent == tmp_path
    assert results.load_results("demo", directory=tmp_path)["device"] == "cuda:0"


def test_default_folder_is_build_results_of_the_checkout(monkeypatch, tmp_path):
    monkeypatch.delenv("XFER_RESULTS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # e.g. JupyterLab runs notebooks in course/: still the checkout's folder
    checkout = Path(__file__).resolve().parents[1]
    assert results.results_dir() == checkout / "build" / "results"


@pytest.mark.parametrize("chapter", ["", "../escape", "a/b", None, 3])
def test_bad_chapter_names_are_refused(tmp_path, chapter):
    with pytest.raises(ValueError, match="chapter"):
        results.save_results(chapter, {}, directory=tmp_path)


def test_results_must_be_a_dict_of_plain_values(tmp_path):
    with pytest.raises(ValueError, match="dict"):
        results.save_results("demo", [1, 2], directory=tmp_path)
    with pytest.raises(TypeError, match="JSON"):
        results.save_results("demo", {"model": object()}, directory=tmp_path)


def test_missing_results_say_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="Run its notebook"):
        results.load_results("04_meta", directory=tmp_path)


def test_compare_results_ignores_timings_and_catches_any_other_change(tmp_path, capsys):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "compare_results", Path(__file__).resolve().parents[1] / "scripts" / "compare_results.py")
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)
    old = {"seconds": 10, "runs": [{"accuracy": 0.8, "seconds": 4.0, "samples_per_second": 50}],
           "histories": {"Keras": [{"loss": 0.5, "epoch_seconds": 2}]}}
    faster = json.loads(json.dumps(old))
    faster["seconds"], faster["runs"][0]["seconds"], faster["runs"][0]["samples_per_second"] = 8, 3.0, 70
    changed = json.loads(json.dumps(faster))
    changed["histories"]["Keras"][0]["loss"] = 0.50001
    paths = []
    for name, data in (("old", old), ("faster", faster), ("changed", changed)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(data))
    assert compare.main([str(paths[0]), str(paths[1])]) == 0
    assert compare.main([str(paths[0]), str(paths[2])]) == 1
    assert "/histories/Keras[0]/loss: 0.5 -> 0.50001" in capsys.readouterr().out

"""The course summary and static site that `make course` builds from the notebooks' result files.

Each lecture saves its numbers to ``build/results/<chapter>.json``
(``xfer_helpers.results.save_results``). This module reads those files — no
number is copied by hand — and

* ``key_results(chapter, result)`` picks each chapter's headline numbers and
  puts them next to the published anchor (or, where no paper measured the same
  thing, the course's own target, marked as such);
* ``summary_table(rows)`` prints the terminal table;
* ``write_site(rows, build)`` writes ``build/index.html`` (the chapter table with
  links to each executed notebook's page) and ``build/glossary.html``.

    python scripts/course_site.py          # rebuild the summary and site from build/ without running anything
"""
from __future__ import annotations

import html
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"

TITLES = {
    "00_concepts": "Concepts: feature extraction, fine-tuning, scratch, negative transfer",
    "01_cnn_fine_tuning": "CNN fine-tuning (EfficientNet-Lite0, Fashion-MNIST)",
    "02_bert_classification": "BERT text classification (MiniLM, airline tweets)",
    "03_domain_adaptation": "Domain adaptation (DANN, CORAL, importance weighting)",
    "04_meta_learning": "Meta-learning (ProtoNets, MAML, Reptile)",
    "05_articles_corrected": "Appendix: what the articles get wrong, shown and corrected",
}


def _pair(values: dict, fmt: str = "{:.3f}") -> str:
    """'PyTorch 0.786 / Keras 0.782' from {'PyTorch': 0.786, 'Keras': 0.782}."""
    return " / ".join(f"{name} {fmt.format(value)}" for name, value in values.items())


def _by(rows: list[dict], *keys: str) -> dict:
    return {tuple(r[k] for k in keys): r for r in rows}


def _concepts(r: dict) -> list[tuple[str, str, str]]:
    acc = {(x["framework"], x["strategy"], x["n"]): x["accuracy"] for x in r["runs"]}
    n = min(r["full_run_sizes"])
    fw = ("PyTorch", "Keras")
    return [(f"fine-tuning vs scratch (EfficientNet), {n} labelled images",
             " / ".join(f"{f} {acc[f, 'fine-tuning', n]:.3f} vs {acc[f, 'scratch (EfficientNet)', n]:.3f}" for f in fw),
             "course target: transfer beats scratch by ≥ 0.20 (Yosinski et al. 2014: transferred features help)")]


def _cnn(r: dict) -> list[tuple[str, str, str]]:
    runs = _by(r["runs"], "framework", "strategy")
    fw = ("PyTorch", "Keras")
    return [("fine-tuning accuracy (lite test set)", _pair({f: runs[f, "fine-tuning"]["accuracy"] for f in fw}),
             "course target: ≥ scratch + 0.15"),
            ("fine-tuning minus scratch", _pair({f: r["finetune_minus_scratch"][f] for f in fw}, "{:+.3f}"),
             "course target: ≥ +0.15")]


def _bert(r: dict) -> list[tuple[str, str, str]]:
    runs = _by(r["runs"], "framework", "strategy")
    tfidf = runs["scikit-learn", "TF-IDF + logistic regression"]["accuracy"]
    tuned = {f: runs[f, "full fine-tuning, masked mean"]["accuracy"] for f in ("PyTorch", "Keras")}
    return [("full fine-tuning accuracy (airline tweets)", _pair(tuned),
             f"course target: ≥ 0.78 and above TF-IDF + logistic regression ({tfidf:.3f})")]


def _adaptation(r: dict) -> list[tuple[str, str, str]]:
    moons = {(x["framework"], x["method"]): x["accuracy"] for x in r["moons"]}
    fm = {(x["framework"], x["method"]): x["accuracy"] for x in r["fashion_mnist_m"]}
    fw = ("PyTorch", "Keras")
    rows = [("moons: source-only → DANN",
             " / ".join(f"{f} {moons[f, 'source_only']:.3f} → {moons[f, 'dann']:.3f}" for f in fw),
             "ADAPT two-moons demo: 0.84 → 0.94"),
            ("Fashion-MNIST-M: source-only → DANN (oracle)",
             " / ".join(f"{f} {fm[f, 'source_only']:.3f} → {fm[f, 'dann']:.3f} ({fm[f, 'oracle']:.3f})" for f in fw),
             "Ganin et al. 2016, MNIST → MNIST-M: 0.523 → 0.767 (0.960)")]
    rows.append(("share of the gap DANN closes", _pair({f: r["gap_closed"][f"{f}/dann"] for f in fw}, "{:.0%}"),
                 "Ganin et al. 2016: about 56 %"))
    return rows


def _meta(r: dict) -> list[tuple[str, str, str]]:
    mse = {(x["framework"], x["method"]): x["mse"] for x in r["sine"]["runs"]}
    fw = ("PyTorch", "TensorFlow")
    shots = _by(r["fewshot"]["runs"], "method", "framework", "k_shot")
    return [("sine K=5: MSE after 10 steps, MAML vs pretrained",   # mse[k] = after k steps
             " / ".join(f"{f} {mse[f, 'MAML'][10]:.2f} vs {mse[f, 'pretrained baseline'][10]:.2f}" for f in fw),
             "Finn et al. 2017 (read off their Fig. 3): ≈ 0.35 vs ≈ 2.19"),
            ("ProtoNets 5-way 1-shot / 5-shot (held-out scripts)",
             " / ".join(f"{f} {shots['ProtoNets', f, 1]['accuracy']:.1%} / {shots['ProtoNets', f, 5]['accuracy']:.1%}"
                        for f in fw),
             "Snell et al. 2017, Omniglot: 98.8 % / 99.7 %")]


def _articles(r: dict) -> list[tuple[str, str, str]]:
    leak, losses = r["validation_leak"], r["losses"]
    return [("seed 001, fine-tuned on its validation set: validation vs test accuracy",
             f"{leak['after_val']:.3f} vs {leak['after_test']:.3f} (before: {leak['before_val']:.3f} vs "
             f"{leak['before_test']:.3f})", "an honest protocol reports once on a test set nothing was chosen on"),
            ("seed 003's MSE loss vs cross-entropy, test accuracy after the same epochs",
             f"{losses['MSE on softmax vs one-hot (seed 003)'][-1]:.3f} vs {losses['cross-entropy'][-1]:.3f}",
             "Golik et al. 2013: from a random start, cross-entropy trains better than squared error")]


KEY_RESULTS = {"00_concepts": _concepts, "01_cnn_fine_tuning": _cnn, "02_bert_classification": _bert,
               "03_domain_adaptation": _adaptation, "04_meta_learning": _meta, "05_articles_corrected": _articles}


def key_results(chapter: str, result: dict) -> list[tuple[str, str, str]]:
    """(what, measured, anchor) rows for one chapter's result file; [] for a chapter without headlines."""
    pick = KEY_RESULTS.get(chapter)
    return pick(result) if pick else []


def load_rows(build: Path = BUILD) -> list[dict]:
    """The notebook rows of build/course_run.json, each with its results file's device and key results."""
    run_file = build / "course_run.json"
    if not run_file.exists():
        raise FileNotFoundError(f"{run_file} is missing: run `make course` first.")
    rows = json.loads(run_file.read_text())
    for row in rows:
        chapter = Path(row["notebook"]).stem
        path = build / "results" / f"{chapter}.json"
        row["chapter"], row["device"], row["key_results"] = chapter, "-", []
        if not row["ok"] or not path.exists():
            continue
        result = json.loads(path.read_text())
        row["device"] = result.get("device", "-")
        try:
            row["key_results"] = key_results(chapter, result)
        except (KeyError, TypeError, IndexError) as exc:   # a changed result file must not hide the rest
            row["key_results"] = [("key results", f"could not be read ({type(exc).__name__}: {exc})", "")]
    return rows


def summary_table(rows: list[dict]) -> str:
    """The terminal summary: one line per chapter, then its key results with their anchors."""
    lines = [f"{'chapter':<24} {'device':<7} {'result':<7} {'minutes':>7} {'peak GB':>8}"]
    for row in rows:
        status = "ok" if row["ok"] else "FAILED"
        lines.append(f"{row['chapter']:<24} {row['device']:<7} {status:<7} {row['seconds'] / 60:>7.1f} "
                     f"{row['peak_memory_gb']:>8.2f}")
        if not row["ok"]:
            lines.append(f"    failed at cell {row['failed_cell']}: {row['error']}")
        for what, value, anchor in row["key_results"]:
            lines.append(f"    {what}: {value}")
            lines.append(f"        anchor: {anchor}")
    total = sum(r["seconds"] for r in rows)
    lines.append(f"{'total':<24} {'':<7} {'':<7} {total / 60:>7.1f}")
    return "\n".join(lines)


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;line-height:1.45}}
table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #ccc;padding:.35rem .5rem;vertical-align:top;text-align:left}}
th{{background:#f3f3f3}}.fail{{color:#b00020;font-weight:bold}}small{{color:#555}}</style></head><body>
{body}</body></html>
"""


def index_html(rows: list[dict]) -> str:
    """The site's front page: each chapter with its run, its key results and anchors, and a link to its page."""
    esc = html.escape
    body = ["<h1>Transfer learning, hands-on — executed lectures</h1>",
            "<p>Every number on this page comes from the notebooks run by <code>make course</code> on this "
            "machine (lite profile unless <code>XFER_PROFILE</code> says otherwise). Follow a chapter's link "
            "to read the executed notebook with its plots and tables. Terms: <a href=\"glossary.html\">glossary "
            "(English / 中文)</a>.</p>",
            "<table><tr><th>Chapter</th><th>Run</th><th>Key results (measured)</th><th>Published anchor or course target</th></tr>"]
    for row in rows:
        title = TITLES.get(row["chapter"], row["chapter"])
        link = f"<a href=\"{esc(Path(row['notebook']).with_suffix('.html').name)}\">{esc(row['chapter'])}</a>"
        run = (f"{row['seconds'] / 60:.1f} min, peak {row['peak_memory_gb']:.2f} GB, {esc(row['device'])}"
               if row["ok"] else f"<span class=\"fail\">failed at cell {row['failed_cell']}</span><br>"
               f"<small>{esc(str(row['error']))}</small>")
        results = row["key_results"] or [("", "", "")]
        body.append(f"<tr><td rowspan=\"{len(results)}\">{link}<br><small>{esc(title)}</small></td>"
                    f"<td rowspan=\"{len(results)}\">{run}</td>"
                    + "</tr><tr>".join(f"<td>{esc(what)}{': ' if what else ''}<b>{esc(value)}</b></td><td>{esc(anchor)}</td>"
                                       for what, value, anchor in results) + "</tr>")
    body.append("</table>")
    total = sum(r["seconds"] for r in rows)
    body.append(f"<p>Whole course: {total / 60:.1f} min. Lite numbers use small subsets and few epochs; the "
                "anchors are for the full datasets, so expect lite numbers below them.</p>")
    return PAGE.format(title="Transfer learning course", body="\n".join(body))


def glossary_html(markdown_text: str) -> str:
    """course/glossary.md as a page of the site."""
    import mistune   # ships with nbconvert
    return PAGE.format(title="Glossary", body="<p><a href=\"index.html\">← course</a></p>" + mistune.html(markdown_text))


def write_site(rows: list[dict], build: Path = BUILD) -> Path:
    """Write build/index.html and build/glossary.html; return the index path."""
    build.mkdir(parents=True, exist_ok=True)
    (build / "index.html").write_text(index_html(rows), encoding="utf-8")
    glossary = ROOT / "course" / "glossary.md"
    if glossary.exists():
        (build / "glossary.html").write_text(glossary_html(glossary.read_text(encoding="utf-8")), encoding="utf-8")
    return build / "index.html"


def readme_cells(rows: list[dict]) -> str:
    """The README chapter table's two measured columns, one line per chapter (``--readme``)."""
    lines = []
    for row in rows:
        run = f"{row['seconds'] / 60:.1f} min, {row['peak_memory_gb']:.1f} GB" if row["ok"] else "failed"
        results = "<br>".join(f"{what}: **{value}** — {anchor}" for what, value, anchor in row["key_results"])
        lines.append(f"{row['chapter'][:2]} | {run} | {results} |")
    total = sum(r["seconds"] for r in rows)
    return "\n".join(lines + [f"whole course {total / 60:.1f} min"])


def main() -> int:
    try:
        rows = load_rows()
    except FileNotFoundError as exc:
        print(exc)
        return 1
    if sys.argv[1:] == ["--readme"]:   # the cells to paste into the README's chapter table
        print(readme_cells(rows))
        return 0
    print(summary_table(rows))
    print(f"\nSite: {write_site(rows)}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Claims of course/01_cnn_fine_tuning.ipynb, checked against the numbers its lite run saved."""
KEYS = {"runs", "top5", "photo_probability_max_difference", "normalisation_accuracy", "normalisation_correct",
        "parity_tolerance", "parity_gaps", "finetune_minus_scratch", "batchnorm", "val_curves"}
FRAMEWORKS = ("PyTorch", "Keras")
STRATEGIES = ("feature extraction", "fine-tuning", "gradual unfreezing", "scratch")
SAME_START = ("feature extraction", "fine-tuning", "gradual unfreezing")   # start from the same weights
# PyTorch vs Keras, for the strategies that start from the same weights: 3 points (the issue's
# "within 3 points"); gradual unfreezing 8, measured with scripts/seed_spread_01.py (over seeds
# 1-5 the gap reached 0.058, fine-tuning 0.018). The notebook states the same (TOLERANCE).
PARITY_TOLERANCE = {"feature extraction": 0.03, "fine-tuning": 0.03, "gradual unfreezing": 0.08}


def check(result: dict) -> None:
    # 1. The same ImageNet weights in both frameworks: the same answers for the photos.
    assert result["photo_probability_max_difference"] < 1e-3
    for framework in FRAMEWORKS:
        top5 = result["top5"][framework]
        assert top5["chelsea"][0][0] == "Egyptian cat" and top5["coffee"][0][0] == "espresso", top5
        assert all(len(rows) == 5 for rows in top5.values())
    assert [r[0][0] for r in result["top5"]["PyTorch"].values()] == \
        [r[0][0] for r in result["top5"]["Keras"].values()]

    # 2. Every wrong preprocessing recipe loses accuracy.
    accuracy = result["normalisation_accuracy"]
    correct = accuracy[result["normalisation_correct"]]
    wrong = {recipe: a for recipe, a in accuracy.items() if recipe != result["normalisation_correct"]}
    assert len(wrong) >= 3
    assert all(a < correct for a in wrong.values()), accuracy

    # 3. All four strategies in both frameworks; fine-tuning beats scratch by at least 15 points.
    runs = {(r["framework"], r["strategy"]): r for r in result["runs"]}
    assert set(runs) == {(f, s) for f in FRAMEWORKS for s in STRATEGIES}
    for framework in FRAMEWORKS:
        best_finetune = max(runs[framework, s]["accuracy"] for s in ("fine-tuning", "gradual unfreezing"))
        assert best_finetune >= runs[framework, "scratch"]["accuracy"] + 0.15, framework
        assert result["finetune_minus_scratch"][framework] >= 0.15
        # feature extraction trains only the head: 1280 x 10 + 10 weights
        assert runs[framework, "feature extraction"]["trainable"] == 12810
        assert runs[framework, "fine-tuning"]["trainable"] > 3_000_000
        assert all(r["seconds"] > 0 for r in runs.values())
        assert len(result["val_curves"][f"{framework} / fine-tuning"]) >= 1
        # At lite sizes feature extraction is as accurate as fine-tuning, within 5 points.
        fe, ft = runs[framework, "feature extraction"]["accuracy"], runs[framework, "fine-tuning"]["accuracy"]
        assert abs(fe - ft) <= 0.05, (framework, fe, ft)
    # PyTorch and Keras within PARITY_TOLERANCE for the strategies that start from the same weights.
    assert result["parity_tolerance"] == PARITY_TOLERANCE
    for strategy in SAME_START:
        gap = abs(runs["PyTorch", strategy]["accuracy"] - runs["Keras", strategy]["accuracy"])
        assert gap <= PARITY_TOLERANCE[strategy], f"{strategy}: PyTorch vs Keras gap {gap:.3f}"

    # 4. BatchNorm: frozen weights + training mode moves the statistics and costs accuracy; protected,
    #    nothing moves and the accuracy is the feature-extraction accuracy.
    bn = result["batchnorm"]
    for framework, unprotected, protected in (
            ("PyTorch", "PyTorch: weights frozen, model.train()", "PyTorch: weights frozen + freeze_batchnorm_stats"),
            ("Keras", "Keras: backbone.trainable = True (BN too)", "Keras: freeze(model) (BN trainable=False)")):
        fe = runs[framework, "feature extraction"]["accuracy"]
        assert bn[protected]["running_mean_change"] == 0, protected
        assert abs(bn[protected]["accuracy"] - fe) <= 0.01, (protected, bn[protected], fe)
        assert bn[unprotected]["running_mean_change"] > 0.01, unprotected
        assert bn[unprotected]["accuracy"] <= fe - 0.03, (unprotected, bn[unprotected], fe)

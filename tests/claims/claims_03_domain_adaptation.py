"""Claims of course/03_domain_adaptation.ipynb, checked against the numbers its lite run saved."""
KEYS = {"moons", "importance_weighting", "reversal_check", "fashion_mnist_m", "gap_closed",
        "model_selection", "text", "text_label_shares", "parity"}
FRAMEWORKS = ("PyTorch", "Keras")
PARITY = 0.03   # the target: PyTorch and Keras within 3 points per method


def check(result: dict) -> None:
    # Rotated moons (issue targets): source-only <= 0.85, DANN >= 0.90, in both frameworks.
    moons = {(r["framework"], r["method"]): r["accuracy"] for r in result["moons"]}
    for framework in FRAMEWORKS:
        assert moons[framework, "source_only"] <= 0.85, (framework, moons)
        assert moons[framework, "dann"] >= 0.90, (framework, moons)
        assert moons[framework, "oracle"] >= 0.95, (framework, moons)

    # Importance weighting: when the supports barely overlap the weights collapse onto a handful of
    # points and the target stays near chance; it does not help on the rotated moons either.
    iw = result["importance_weighting"]
    assert iw["far_ess"] < 0.1 * iw["n_source"] < iw["rotated_ess"], iw
    assert iw["far"]["importance-weighted"] <= 0.6 and iw["far"]["unweighted"] <= 0.6, iw
    assert iw["rotated"]["importance-weighted"] <= iw["rotated"]["unweighted"] + 0.005, iw

    # Gradient reversal: identity forward, -lambda * g backward, in both frameworks.
    assert result["reversal_check"] and all(result["reversal_check"].values())

    # Fashion-MNIST-M: the shift is real (the oracle is far above source-only) ...
    fm = {(r["framework"], r["method"]): r["accuracy"] for r in result["fashion_mnist_m"]}
    gap = result["gap_closed"]
    for framework in FRAMEWORKS:
        assert fm[framework, "oracle"] >= fm[framework, "source_only"] + 0.2, (framework, fm)
        # ... DANN closes at least 30 % of it in lite (the target) ...
        assert gap[f"{framework}/dann"] >= 0.30, (framework, gap)
        # ... more than the control without reversal (lambda = 0: the mixed BatchNorm batches alone
        # already close part of the gap, the reversal adds at least 10 points more) ...
        assert 0 < gap[f"{framework}/no_reversal"] <= gap[f"{framework}/dann"] - 0.10, (framework, gap)
        # ... and CORAL helps, but less than DANN.
        assert 0 < gap[f"{framework}/coral"] < gap[f"{framework}/dann"], (framework, gap)

    # PyTorch and Keras agree within 3 points per method.
    for part, gaps in result["parity"].items():
        for method, difference in gaps.items():
            assert difference <= PARITY, (part, method, difference)
    methods = {method for _, method in fm}
    assert {"source_only", "dann", "no_reversal", "coral", "oracle"} <= methods, methods
    for method in methods:
        assert abs(fm["PyTorch", method] - fm["Keras", method]) <= PARITY, method

    # Model selection: the leaky choice (best target-test epoch) is never below the honest ones.
    for row in result["model_selection"]:
        assert row["leaky"] >= row["honest"] and row["leaky"] >= row["last"], row
    assert any(row["leaky"] > row["honest"] for row in result["model_selection"])

    # Text: label shift (airline mostly negative, Apple mostly neutral); the oracle beats source-only;
    # importance weighting hurts; source-only is near majority-class accuracy but far better in macro F1.
    shares = result["text_label_shares"]
    assert max(range(3), key=lambda i: shares["airline"][i]) == 0
    assert max(range(3), key=lambda i: shares["apple"][i]) == 1
    text = result["text"]
    assert text["oracle (Apple labels)"]["accuracy"] >= text["source-only"]["accuracy"] + 0.05
    assert text["importance-weighted"]["accuracy"] < text["source-only"]["accuracy"]
    assert text["CORAL (shallow)"]["accuracy"] < text["source-only"]["accuracy"]   # "does not help"
    assert abs(text["source-only"]["accuracy"] - text["majority class"]["accuracy"]) < 0.05
    assert text["source-only"]["macro_f1"] >= text["majority class"]["macro_f1"] + 0.1

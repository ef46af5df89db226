"""Claims of course/04_meta_learning.ipynb, checked against the numbers its lite run saved."""
KEYS = {"sine", "fewshot", "second_order_cost", "scripts"}
FRAMEWORKS = ("PyTorch", "TensorFlow")


def check(result: dict) -> None:
    # Held-out scripts: no script is both a meta-train and a meta-test script.
    assert not set(result["scripts"]["meta_train"]) & set(result["scripts"]["meta_test"])

    # Sine waves, K = 5: MAML after 10 steps <= 0.6 and at most a third of the pretrained baseline.
    sine = result["sine"]
    assert sine["k_shot"] == 5 and sine["n_test_tasks"] >= 200
    mse = {(r["framework"], r["method"]): r["mse"] for r in sine["runs"]}
    for framework in FRAMEWORKS:
        maml, baseline = mse[framework, "MAML"][10], mse[framework, "pretrained baseline"][10]
        assert maml <= 0.6, (framework, maml)
        assert maml <= baseline / 3, (framework, maml, baseline)
        # adapting helps MAML: 10 steps better than none
        assert mse[framework, "MAML"][10] < mse[framework, "MAML"][0]

    # ProtoNets on held-out scripts, >= 200 test episodes: >= 70 % 1-shot, >= 85 % 5-shot.
    runs = {(r["method"], r["framework"], r["k_shot"]): r for r in result["fewshot"]["runs"]}
    for framework in FRAMEWORKS:
        one, five = runs["ProtoNets", framework, 1], runs["ProtoNets", framework, 5]
        assert one["episodes"] >= 200 and five["episodes"] >= 200
        assert one["accuracy"] >= 0.70, (framework, one["accuracy"])
        assert five["accuracy"] >= 0.85, (framework, five["accuracy"])
        assert 0 < one["ci95"] < 0.05 and 0 < five["ci95"] < 0.05
    # PyTorch and TensorFlow within 3 points, as in the other chapters. (Not claimed: a gap within the
    # episode noise alone. With TensorFlow's oneDNN on, the 1-shot gap was 1.4 points against 1.2 points
    # of episode noise; trainings with other seeds differ by about a point, which the notebook says.)
    for k_shot in (1, 5):
        a, b = runs["ProtoNets", "PyTorch", k_shot], runs["ProtoNets", "TensorFlow", k_shot]
        assert abs(a["accuracy"] - b["accuracy"]) <= 0.03, (k_shot, a, b)
    assert ("frozen embedding + linear head (Chen et al.)", "PyTorch", 5) in runs

    # Second order keeps more for the backward pass than first order, more so with more inner steps.
    cost = {(r["inner_steps"], r["order"]): r for r in result["second_order_cost"]}
    for steps in (1, 5):
        assert cost[steps, "second"]["torch_saved_kib"] > cost[steps, "first"]["torch_saved_kib"]
    assert cost[5, "second"]["torch_saved_kib"] / cost[5, "first"]["torch_saved_kib"] > \
        cost[1, "second"]["torch_saved_kib"] / cost[1, "first"]["torch_saved_kib"]

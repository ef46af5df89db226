"""Claims of course/05_articles_corrected.ipynb, checked against the numbers its lite run saved."""
KEYS = {"precision_recall", "api_errors", "validation_leak", "losses", "dropout", "reinitialised",
        "normalisation", "batchnorm", "keras_batchnorm_moved", "bert_head", "models"}


def check(result: dict) -> None:
    # §1 seed 001's "precision" is the recall and its "recall" the precision, and they differ here.
    pr = result["precision_recall"]
    assert abs(pr["seed_precision"] - pr["recall"]) < 1e-9 and abs(pr["seed_recall"] - pr["precision"]) < 1e-9, pr
    assert abs(pr["precision"] - pr["recall"]) > 0.1, pr

    # §2 Keras 3 refuses Adam(lr=...) and evaluate(metrics=...).
    errors = result["api_errors"]
    assert "lr" in errors["Adam(lr=0.001)"] and "metrics" in errors["evaluate(..., metrics=['f1_score'])"], errors
    # ... and fine-tuning on the validation set raises the validation score, not the test score.
    leak = result["validation_leak"]
    assert leak["after_val"] > leak["before_val"], leak
    assert leak["after_test"] <= leak["before_test"] + 0.01, leak
    assert leak["after_val"] - leak["after_test"] >= leak["before_val"] - leak["before_test"] + 0.03, leak

    # §3 cross-entropy is far ahead of MSE at every epoch of the same budget.
    losses = result["losses"]
    ce, mse = losses["cross-entropy"], losses["MSE on softmax vs one-hot (seed 003)"]
    assert all(c >= m + 0.2 for c, m in zip(ce, mse)), losses

    # §4 dropout zeroes about p of the activations, keeps the mean, does nothing at evaluation.
    d = result["dropout"]
    assert 0.48 <= d["zeroed_in_training"] <= 0.52 and abs(d["mean_in_training"] - 1) < 0.02, d
    assert d["evaluation_is_identity"] and d["logistic_zeroed"] == 0, d

    # §5 seed 003's transfer_learning() keeps no pretrained tensor; the cat is at chance afterwards.
    r = result["reinitialised"]
    assert r["initialize_error"].startswith("AttributeError"), r
    assert r["cat_before"] > 0.5 and r["cat_after_seed_003"] < 0.01, r
    assert r["backbone_kept_seed_003"] == 0.0 and r["backbone_kept_corrected"] == 1.0, r

    # §6 Resize(224) keeps the photo's shape, so a landscape and a portrait do not batch; the seed's
    # normalisation gives about half the spread ResNet-18's does.
    resize = result["resize"]
    assert resize["shapes"] == [[3, 224, 336], [3, 336, 224]] and "stack expects" in resize["stack_error"], resize
    assert any("deprecated" in w for w in resize["deprecation"]), resize
    n = result["normalisation"]
    assert 0.4 <= n["seed_std"] / n["imagenet_std"] <= 0.6, n

    # §7 a frozen PyTorch backbone in train() mode moves every BatchNorm's statistics and its features;
    # in eval() nothing moves; Keras's trainable=False BatchNorm does not move.
    bn = result["batchnorm"]
    seed, fixed = bn["seed 002: model.train()"], bn["corrected: backbone.eval()"]
    assert seed["moved"] == seed["layers"] > 0 and seed["feature_change"] > 0.1, bn
    assert fixed["moved"] == 0 and fixed["feature_change"] == 0.0, bn
    assert result["keras_batchnorm_moved"] == {"True": True, "False": False}, result["keras_batchnorm_moved"]

    # §8 seed 000's head is sized by the number of tokens, and fails on BERT's output and on raw ids.
    head = result["bert_head"]
    assert head["tokens"] != head["hidden"] == 384, head
    assert all(head["errors"].values()) and head["corrected_shape"] == [1, 2], head

    # §9 VGG16's convolutional part: about forty times Lite0's multiply-adds and four times its
    # parameters; ResNet-18 in between. (Counts, not timings: the times are single measurements.)
    models = {row["model"]: row for row in result["models"]}
    vgg, resnet, lite0 = models["VGG16"], models["ResNet-18"], models["EfficientNet-Lite0"]
    assert 35 <= vgg["macs"] / lite0["macs"] <= 45 and 3.5 <= vgg["parameters"] / lite0["parameters"] <= 5, models
    assert lite0["macs"] < resnet["macs"] < vgg["macs"] and lite0["parameters"] < resnet["parameters"] < vgg["parameters"]
    assert all(row[key] > 0 for row in models.values() for key in ("PyTorch step", "Keras step")), models

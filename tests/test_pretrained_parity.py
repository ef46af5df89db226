"""The same pretrained weights give the same answers in PyTorch and in Keras."""
import numpy as np
import pytest

from xfer_helpers.imagenet import imagenet_class_names, top_k
from xfer_helpers.pretrained import load_photo, normalize_for_efficientnet

pytestmark = pytest.mark.slow

# Logits are O(10); float32 convolutions in two libraries differ by ~1e-4.
LOGIT_TOLERANCE = 1e-3
# MiniLM hidden states: measured max difference 2.7e-3 on non-padded tokens.
HIDDEN_TOLERANCE = 1e-2


@pytest.fixture(scope="module")
def photos():
    return normalize_for_efficientnet(np.stack([load_photo("chelsea"), load_photo("coffee")]))


@pytest.fixture(scope="module")
def torch_logits(photos):
    import torch
    from xfer_helpers.pytorch.models import efficientnet_lite0
    model = efficientnet_lite0().eval()
    with torch.no_grad():
        return model(torch.from_numpy(photos.transpose(0, 3, 1, 2))).numpy()


@pytest.fixture(scope="module")
def keras_logits(photos):
    from xfer_helpers.keras.models import efficientnet_lite0
    model = efficientnet_lite0()
    return np.asarray(model(photos, training=False))


def test_class_names():
    names = imagenet_class_names()
    assert len(names) == 1000 and names[285] == "Egyptian cat" and names[967] == "espresso"


def test_torch_recognises_the_cat_and_the_espresso(torch_logits):
    assert torch_logits.argmax(1).tolist() == [285, 967]
    probs = np.exp(torch_logits) / np.exp(torch_logits).sum(1, keepdims=True)
    assert top_k(probs, 1)[0][0][0] == "Egyptian cat"
    assert probs[0, 285] > 0.5, f"cat probability {probs[0, 285]:.2f}: the weights are not loaded right"


def test_keras_recognises_the_cat_and_the_espresso(keras_logits):
    assert keras_logits.argmax(1).tolist() == [285, 967]


def test_efficientnet_logits_match_across_frameworks(torch_logits, keras_logits):
    diff = np.abs(torch_logits - keras_logits).max()
    assert diff < LOGIT_TOLERANCE, f"PyTorch and Keras logits differ by up to {diff:.2e}"


def test_wrong_normalisation_changes_the_answer(photos):
    """Control: the parity above is not trivially true for any input."""
    import torch
    from xfer_helpers.pytorch.models import efficientnet_lite0
    model = efficientnet_lite0().eval()
    wrong = (photos + 1) / 2 * 255  # raw 0..255 pixels instead of [-1, 1]
    with torch.no_grad():
        logits = model(torch.from_numpy(wrong.transpose(0, 3, 1, 2).astype(np.float32))).numpy()
    assert logits.argmax(1).tolist() != [285, 967]


def test_new_head_has_requested_width():
    from xfer_helpers.pytorch.models import efficientnet_lite0
    assert efficientnet_lite0(num_classes=10).classifier.out_features == 10
    with pytest.raises(ValueError, match="num_classes"):
        efficientnet_lite0(num_classes=0)


def test_minilm_hidden_states_match_across_frameworks():
    import torch
    from xfer_helpers.keras.models import minilm_encoder as keras_encoder
    from xfer_helpers.pytorch.models import minilm_encoder, minilm_tokenizer
    texts = ["@united my flight was delayed again!!", "I love the new iPhone", "Self-driving cars"]
    batch = minilm_tokenizer()(texts, padding=True, return_tensors="np")
    with torch.no_grad():
        ours = minilm_encoder()(**{k: torch.from_numpy(v) for k, v in batch.items()})
    ours = ours.last_hidden_state.numpy()
    theirs = np.asarray(keras_encoder()({
        "token_ids": batch["input_ids"], "segment_ids": batch["token_type_ids"],
        "padding_mask": batch["attention_mask"].astype(bool)})["sequence_output"])
    real = batch["attention_mask"].astype(bool)
    assert real.sum() < real.size, "the batch should contain padding for this test to mean anything"
    diff = np.abs(ours - theirs)[real].max()
    assert diff < HIDDEN_TOLERANCE, f"MiniLM outputs differ by {diff:.2e} on real tokens"


def test_keras_tokenizer_matches_transformers():
    from xfer_helpers.keras.models import minilm_tokenizer as keras_tokenizer
    from xfer_helpers.pytorch.models import minilm_tokenizer
    text = "@united my flight was delayed again!!"
    ours = minilm_tokenizer()(text)["input_ids"]
    theirs = np.asarray(keras_tokenizer(sequence_length=32)([text])["token_ids"])[0]
    assert theirs[: len(ours)].tolist() == ours

"""Converting the articles' models between the frameworks, proven offline on random weights.

The real architecture is built with random weights in one framework, converted, and both
frameworks must give the same logits for the same input. Each test also shows that the
check can fail: the same model with one conversion step left out gives different logits.
"""
from __future__ import annotations

import numpy as np
import pytest

from xfer_helpers.env import import_tensorflow

tf = import_tensorflow()

import keras  # noqa: E402
import torch  # noqa: E402

from xfer_helpers.pytorch.models import vgg16_from_keras  # noqa: E402

TOLERANCE = 1e-4   # largest |difference| of the logits, relative to their largest |value|


def _relative_difference(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(a).max())


@pytest.fixture(scope="module")
def keras_vgg16():
    keras.utils.set_random_seed(0)
    # The articles' architecture with random weights; logits out (Keras ends in a softmax by default).
    model = keras.applications.VGG16(weights=None, classifier_activation=None)
    # He-scaled weights keep the signal alive through 16 layers (Glorot's would shrink it to ~0).
    for layer in model.layers:
        if layer.get_weights():
            kernel, bias = layer.get_weights()
            fan_in = int(np.prod(kernel.shape[:-1]))
            rng = np.random.default_rng(len(layer.name))
            layer.set_weights([rng.normal(0, np.sqrt(2 / fan_in), kernel.shape).astype("float32"),
                               rng.normal(0, 0.1, bias.shape).astype("float32")])
    images = np.random.default_rng(1).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    x = keras.applications.vgg16.preprocess_input(images.copy())    # BGR, Caffe means subtracted
    return model, x, np.asarray(model.predict_on_batch(x))


def _torch_logits(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()


@pytest.mark.slow
def test_keras_vgg16_in_torchvision_gives_the_same_logits(keras_vgg16):
    keras_model, x, keras_logits = keras_vgg16
    assert np.abs(keras_logits).max() > 1.0 and keras_logits.std() > 0.1   # a live signal, not ~0
    converted = vgg16_from_keras(keras_model)
    torch_logits = _torch_logits(converted, x)
    assert _relative_difference(keras_logits, torch_logits) < TOLERANCE
    assert (keras_logits.argmax(1) == torch_logits.argmax(1)).all()

    # Without the flatten permutation the first dense layer reads its inputs in the wrong order.
    kernel = keras_model.get_layer("fc1").get_weights()[0]
    with torch.no_grad():
        converted.classifier[0].weight.copy_(torch.from_numpy(kernel.T.copy()))
    assert _relative_difference(keras_logits, _torch_logits(converted, x)) > 100 * TOLERANCE

    # RGB instead of the BGR the Keras weights were trained on: also different.
    converted = vgg16_from_keras(keras_model)
    assert _relative_difference(keras_logits, _torch_logits(converted, x[..., ::-1])) > 100 * TOLERANCE

    # Kernels transposed (3, 2, 1, 0) instead of (3, 2, 0, 1): rows and columns swapped, different.
    with torch.no_grad():
        for conv in (m for m in converted.features if isinstance(m, torch.nn.Conv2d)):
            conv.weight.copy_(conv.weight.transpose(2, 3).clone())
    assert _relative_difference(keras_logits, _torch_logits(converted, x)) > 100 * TOLERANCE


def test_vgg16_from_keras_refuses_another_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="fc1")])
    with pytest.raises(ValueError, match="include_top=True"):
        vgg16_from_keras(model)


CHINESE = ["你好，世界！", "这本书很好看。", "酒店的服务不好，房间很小！", "Hello 世界"]
CHINESE_PIECES = sorted({ch for text in CHINESE for ch in text if ord(ch) > 127})   # every CJK character, ，！。


def _wordpiece_ids(vocab_file, lowercase, texts, length=16):
    from xfer_helpers.keras.models import wordpiece_tokenizer as keras_wordpiece
    from xfer_helpers.pytorch.models import wordpiece_tokenizer as torch_wordpiece
    torch_ids = torch_wordpiece(vocab_file, lowercase)(texts, padding="max_length", max_length=length)["input_ids"]
    keras_ids = np.asarray(keras_wordpiece(vocab_file, lowercase, sequence_length=length)(texts)["token_ids"])
    return np.asarray(torch_ids), keras_ids


def test_chinese_wordpiece_gives_the_same_ids_in_both_frameworks(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", "!", "hello", "##lo", "hel"]
    vocab += CHINESE_PIECES
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    torch_ids, keras_ids = _wordpiece_ids(tmp_path / "vocab.txt", False, CHINESE)
    assert np.array_equal(torch_ids, keras_ids)
    first = [vocab[i] for i in torch_ids[0] if i]
    assert first == ["[CLS]", "你", "好", "，", "世", "界", "！", "[SEP]"]     # one piece per character
    assert vocab.index("[UNK]") in torch_ids[3]                                # "Hello": cased, unknown
    # Lowercasing on (right for uncased English BERT): keras-hub also turns ，！ into ,! - they part ways.
    torch_ids, keras_ids = _wordpiece_ids(tmp_path / "vocab.txt", True, CHINESE[:1])
    assert [vocab[i] for i in keras_ids[0] if i][3:4] == [","] and [vocab[i] for i in torch_ids[0] if i][3:4] == ["，"]


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["resnet18", "vgg16"])
def test_timm_models_load_in_keras_hub_with_the_same_logits(architecture, tmp_path):
    """The hub's timm file format -> keras-hub's converter: d2l's ResNet-18 and torchvision's VGG16."""
    import timm

    from xfer_helpers.keras.models import timm_classifier
    from xfer_helpers.pytorch.models import export_timm_preset
    torch.manual_seed(0)
    model = timm.create_model(architecture, pretrained=False).eval()
    with torch.no_grad():   # BatchNorm statistics away from 0 and 1, so that converting them matters
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    keras_model = timm_classifier(export_timm_preset(model, tmp_path / architecture))
    x = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype("float32")   # normalised, NHWC
    torch_logits = _torch_logits(model, x)
    assert _relative_difference(torch_logits, np.asarray(keras_model(x))) < TOLERANCE
    # predict and train_on_batch see the same inputs as model(x): keras-hub's preprocessor (resize to
    # 224 px, normalise again) is off. Can fail: rows and columns swapped.
    assert _relative_difference(torch_logits, keras_model.predict_on_batch(x)) < TOLERANCE
    assert _relative_difference(torch_logits, np.asarray(keras_model(x.transpose(0, 2, 1, 3)))) > 100 * TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "vgg16"])
def test_torchvision_files_load_in_both_frameworks_with_torchvisions_logits(name, tmp_path, monkeypatch):
    """The course's loaders of the downloaded file (torchvision's state dict, under the registry's
    file name): timm in PyTorch, keras-hub in Keras, both give torchvision's own logits."""
    import torchvision

    from xfer_helpers import assets
    from xfer_helpers.keras.models import torchvision_cnn as keras_cnn
    from xfer_helpers.pytorch.models import torchvision_cnn as torch_cnn
    monkeypatch.setenv(assets.DATA_DIR_ENV, str(tmp_path))
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None).eval()
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    (remote,) = assets.get_asset(name).online
    (tmp_path / name).mkdir()
    torch.save(reference.state_dict(), tmp_path / name / remote.filename)
    x = np.random.default_rng(0).normal(size=(2, 224, 224, 3)).astype("float32")
    expected = _torch_logits(reference, x)
    assert _relative_difference(expected, _torch_logits(torch_cnn(name), x)) < TOLERANCE
    assert _relative_difference(expected, np.asarray(keras_cnn(name)(x))) < TOLERANCE
    assert (tmp_path / name / "keras-hub" / "config.json").is_file()   # converted once, kept
    assert not [p for p in (tmp_path / name).iterdir() if p.name.startswith(".")], "temporary folder left"
    if name == "resnet18":   # can fail: a model that did not read the file (timm's own random weights)
        assert _relative_difference(expected, _torch_logits(
            __import__("timm").create_model(name, pretrained=False).eval(), x)) > 100 * TOLERANCE


@pytest.mark.slow
def test_the_keras_vgg16_download_loads_with_the_same_logits(keras_vgg16, tmp_path, monkeypatch):
    """The file Keras Applications serves (Keras 2's HDF5 weights format, under its name), read by
    the course's loader: the same logits. (Its way into torchvision is the test above.)"""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    from xfer_helpers import assets
    from xfer_helpers.keras.models import vgg16_keras
    model, x, expected = keras_vgg16
    monkeypatch.setenv(assets.DATA_DIR_ENV, str(tmp_path))
    (remote,) = assets.get_asset("vgg16_keras").online
    (tmp_path / "vgg16_keras").mkdir()
    with h5py.File(tmp_path / "vgg16_keras" / remote.filename, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    assert _relative_difference(expected, np.asarray(vgg16_keras().predict_on_batch(x))) < TOLERANCE


def test_torchvision_cnn_names_the_download_when_the_file_is_missing(tmp_path, monkeypatch):
    from xfer_helpers import assets
    from xfer_helpers.pytorch.models import torchvision_cnn
    monkeypatch.setenv(assets.DATA_DIR_ENV, str(tmp_path))
    monkeypatch.delenv(assets.ONLINE_ENV, raising=False)
    with pytest.raises(assets.AssetMissingError, match="xfer download vgg16"):
        torchvision_cnn("vgg16")
    with pytest.raises(ValueError, match="resnet18, vgg16"):
        torchvision_cnn("resnet50")


@pytest.mark.slow
def test_the_bert_base_download_loads_in_both_frameworks_with_the_same_outputs(tmp_path, monkeypatch):
    """bert-base-uncased's files as the hub has them at the registry's revision: config.json, vocab.txt
    (the offline MiniLM's, which is the same file) and pytorch_model.bin holding BertForPreTraining's
    state dict in the original checkpoint's names ("bert." prefix, LayerNorm gamma/beta). Random
    weights, 2 of the 12 layers (the loaders read the number from config.json). The course's
    loaders give the same token ids and hidden states in PyTorch and Keras."""
    import shutil

    from transformers import BertConfig, BertForPreTraining

    from xfer_helpers import assets
    from xfer_helpers.keras import models as keras_models
    from xfer_helpers.pytorch import models as torch_models
    monkeypatch.setenv(assets.DATA_DIR_ENV, str(tmp_path))
    folder = tmp_path / "bert_base_uncased"
    folder.mkdir()
    shutil.copyfile(assets.asset_path("minilm") / "vocab.txt", folder / "vocab.txt")
    torch.manual_seed(0)
    config = BertConfig(num_hidden_layers=2)                      # bert-base's sizes otherwise
    (folder / "config.json").write_text(config.to_json_string())
    state = BertForPreTraining(config).state_dict()
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
             for k, v in state.items()}
    assert any(k.startswith("bert.") for k in state) and any(k.startswith("cls.") for k in state)
    torch.save(state, folder / "pytorch_model.bin")

    texts = ["@united thanks for the upgrade!", "My bag is lost. Again."]
    encoded = torch_models.minilm_tokenizer("bert-base-uncased")(texts, padding="max_length",
                                                                max_length=16, return_tensors="np")
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    keras_ids = np.asarray(keras_models.minilm_tokenizer("bert-base-uncased", sequence_length=16)(texts)["token_ids"])
    assert keras_ids.tolist() == ids.tolist()
    with torch.no_grad():
        torch_hidden = torch_models.minilm_encoder("bert-base-uncased")(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()
    keras_hidden = np.asarray(keras_models.minilm_encoder("bert-base-uncased")(
        {"token_ids": ids.astype("int32"), "padding_mask": mask.astype("int32"),
         "segment_ids": np.zeros_like(ids, "int32")})["sequence_output"])
    real = mask.astype(bool)
    assert torch_hidden.shape == (2, 16, 768)
    assert np.abs(torch_hidden - keras_hidden)[real].max() < 1e-2      # the course's parity tolerance
    # Can fail: the same architecture with other random weights is far away.
    other = BertForPreTraining(config).bert.eval()
    with torch.no_grad():
        far = other(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()
    assert np.abs(torch_hidden - far)[real].max() > 0.5
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "temporary folder left"


@pytest.mark.slow
def test_chinese_bert_files_load_in_both_frameworks_with_the_same_outputs(tmp_path):
    """bert-base-chinese's architecture (12 layers, hidden 768, 21 128 pieces), random weights, saved as
    the hub has it (config.json, model.safetensors, vocab.txt, tokenizer files): the same ids and
    hidden states from transformers and keras-hub."""
    import keras_hub
    from transformers import BertConfig, BertModel, BertTokenizer
    vocab = ["[PAD]", *(f"[unused{i}]" for i in range(1, 100)), "[UNK]", "[CLS]", "[SEP]", "[MASK]",
             *CHINESE_PIECES]
    vocab += [f"##{i}" for i in range(21128 - len(vocab))]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab))).save_pretrained(tmp_path)
    BertTokenizer(vocab=str(tmp_path / "vocab.txt"), do_lower_case=False).save_pretrained(tmp_path)

    torch_model = BertModel.from_pretrained(tmp_path).eval()
    keras_backbone = keras_hub.models.BertBackbone.from_preset(str(tmp_path))
    keras_tokenizer = keras_hub.models.BertTokenizer.from_preset(str(tmp_path))
    encoded = BertTokenizer.from_pretrained(tmp_path)(CHINESE[:3], padding="max_length", max_length=16,
                                                      return_tensors="np")
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    for row, text in zip(ids, CHINESE[:3]):
        assert np.asarray(keras_tokenizer(text)).tolist() == [i for i in row.tolist() if i not in (0, 101, 102)]
    with torch.no_grad():
        torch_hidden = torch_model(input_ids=torch.from_numpy(ids),
                                   attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()
    keras_hidden = np.asarray(keras_backbone({"token_ids": ids.astype("int32"), "padding_mask": mask.astype("int32"),
                                              "segment_ids": np.zeros_like(ids, "int32")})["sequence_output"])
    real = mask.astype(bool)
    assert np.abs(torch_hidden - keras_hidden)[real].max() < 1e-2      # the course's parity tolerance
    # Can fail: keras-hub's English presets lowercase, which would turn ，！ into unknown ,! here.
    lowercasing = keras_hub.tokenizers.BertTokenizer(vocabulary=str(tmp_path / "vocab.txt"), lowercase=True)
    assert np.asarray(lowercasing(CHINESE[0])).tolist() != np.asarray(keras_tokenizer(CHINESE[0])).tolist()

"""Tests for the transfer utilities of both frameworks (xfer_helpers.{pytorch,keras}.transfer).

Both toy models have the same layout and parameter counts, worked out by hand:

    stem     conv 3->4 (3x3): 3*3*3*4 + 4 = 112, BN(4): 8          -> 120
    block 1  conv 4->8 (3x3): 3*3*4*8 + 8 = 296, BN(8): 16         -> 312
    block 2  conv 8->8 (3x3): 3*3*8*8 + 8 = 584, BN(8): 16         -> 600
    head     dense 8->5: 8*5 + 5 = 45                               ->  45
    total                                                           -> 1077
Keras also stores BN moving mean and variance as weights: 2 * (4 + 8 + 8) = 40 more.
"""
import numpy as np
import pytest
import torch
from torch import nn

from xfer_helpers.env import import_tensorflow
from xfer_helpers.pytorch.transfer import (count_parameters, freeze, freeze_backbone, freeze_batchnorm,
                                           freeze_batchnorm_stats, list_blocks, param_groups, unfreeze)

STEM, BLOCK1, BLOCK2, HEAD = 120, 312, 600, 45
TOTAL = STEM + BLOCK1 + BLOCK2 + HEAD
BN = 8 + 16 + 16                # BatchNorm weights (gamma and beta) in the whole model
BLOCK1_CONV, BLOCK2_CONV = 296, 584


# ----------------------------------------------------------------------------- PyTorch

class ToyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.blocks = nn.Sequential(
            nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
            nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(8, 5)

    def forward(self, x):
        return self.classifier(self.pool(self.blocks(self.stem(x))).flatten(1))


def torch_toy():
    torch.manual_seed(0)
    return ToyNet()


def test_torch_counts_and_blocks():
    model = torch_toy()
    assert count_parameters(model) == count_parameters(model, trainable_only=False) == TOTAL
    assert list_blocks(model) == ["blocks.0", "blocks.1"]
    assert freeze(model) == 0
    assert count_parameters(model, trainable_only=False) == TOTAL
    assert unfreeze(model) == TOTAL - BN  # BatchNorm layers stay frozen by default
    assert unfreeze(model, keep_batchnorm_frozen=False) == TOTAL
    assert freeze_batchnorm(model) == 3
    assert count_parameters(model) == TOTAL - BN


@pytest.mark.parametrize("kwargs, trainable", [
    (dict(all_but_last_blocks=1), BLOCK2 + HEAD),           # stem and block 1 frozen
    (dict(all_but_last_blocks=2), BLOCK1 + BLOCK2 + HEAD),  # only the stem frozen
    (dict(all_but_last_blocks=0), HEAD),                    # everything up to the end of the blocks
    (dict(last_blocks=1), STEM + BLOCK1 + HEAD),
    (dict(names=["blocks.1"]), STEM + BLOCK1 + HEAD),       # a module name, matched at dots
    (dict(names="classifier.bias"), TOTAL - 5),             # a parameter name
    (dict(prefixes=["blocks."]), STEM + HEAD),
    (dict(names=["stem"], prefixes="classifier"), BLOCK1 + BLOCK2),  # selections add up
    (dict(all_but_last_blocks=1, blocks=["blocks.0", "blocks.1"]), BLOCK2 + HEAD),  # explicit block list
])
def test_torch_freeze_selectors(kwargs, trainable):
    model = torch_toy()
    assert freeze(model, **kwargs) == trainable
    assert count_parameters(model) == trainable


def test_torch_freeze_backbone_and_gradual_unfreezing():
    model = torch_toy()
    assert freeze_backbone(model, head_names=["classifier"]) == HEAD
    assert unfreeze(model, last_blocks=1) == BLOCK2_CONV + HEAD
    assert unfreeze(model, last_blocks=2) == BLOCK1_CONV + BLOCK2_CONV + HEAD
    assert unfreeze(model, last_blocks=1, keep_batchnorm_frozen=False) == BLOCK1_CONV + BLOCK2 + HEAD
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    assert all(p.grad is None for p in model.stem.parameters())
    assert all(p.grad is None for p in model.blocks[0][1].parameters())   # its BN stayed frozen
    assert all(p.grad is not None for p in model.blocks[1].parameters())


def test_torch_bad_selectors_raise_value_error():
    model = torch_toy()
    with pytest.raises(ValueError, match="'clasifier'.*classifier"):
        freeze(model, names=["clasifier"])
    with pytest.raises(ValueError, match="starts with 'head'"):
        freeze(model, prefixes=["head"])
    with pytest.raises(ValueError, match="last_blocks must be between 1 and 2, got 3"):
        freeze(model, last_blocks=3)
    with pytest.raises(ValueError, match="no module 'layers'"):
        freeze(model, all_but_last_blocks=1, blocks="layers")
    with pytest.raises(ValueError, match="classifier"):
        freeze_backbone(model, head_names=["fc"])
    assert count_parameters(model) == TOTAL, "a failed call must not change the model"


def test_param_groups_partition_the_trainable_parameters():
    model = torch_toy()
    freeze(model, names=["stem"])
    groups = param_groups(model, ["classifier"], head_lr=1e-2, backbone_lr=1e-3, weight_decay=0.05)
    assert [g["name"] for g in groups] == ["head", "backbone"]
    assert [g["lr"] for g in groups] == [1e-2, 1e-3] and all(g["weight_decay"] == 0.05 for g in groups)
    ids = [[id(p) for p in g["params"]] for g in groups]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert set(ids[0]).isdisjoint(ids[1])
    assert len(ids[0]) + len(ids[1]) == len(trainable) and set(ids[0]) | set(ids[1]) == trainable
    assert set(ids[0]) == {id(model.classifier.weight), id(model.classifier.bias)}
    assert sum(p.numel() for g in groups for p in g["params"]) == BLOCK1 + BLOCK2 + HEAD
    assert "weight_decay" not in param_groups(model, ["classifier"], 1e-2, 1e-3)[0]
    freeze(model, names=["blocks"])
    assert [g["name"] for g in param_groups(model, ["classifier"], 1e-2, 1e-3)] == ["head"]
    with pytest.raises(ValueError, match="backbone_lr must be positive"):
        param_groups(model, ["classifier"], 1e-2, 0)


def test_param_groups_give_discriminative_sgd_steps():
    model = torch_toy()
    model.eval()  # no BN statistics: the step depends on the weights only
    optimizer = torch.optim.SGD(param_groups(model, ["classifier"], head_lr=0.1, backbone_lr=0.01))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = nn.functional.cross_entropy(model(torch.randn(16, 3, 8, 8)), torch.arange(16) % 5)
    loss.backward()
    optimizer.step()
    for name, param in model.named_parameters():
        lr = 0.1 if name.startswith("classifier") else 0.01
        torch.testing.assert_close(param.detach() - before[name], -lr * param.grad)


def test_frozen_batchnorm_keeps_running_stats_only_with_freeze_batchnorm_stats():
    x = torch.randn(16, 3, 8, 8) * 2 + 3  # far from the initial running mean 0 / var 1
    naive, fixed = torch_toy(), torch_toy()
    for model in (naive, fixed):
        freeze(model, names=["stem"])
    assert freeze_batchnorm_stats(fixed) == 3
    for model in (naive, fixed):
        model.train()
        model(x)
        model.train()  # a training loop calls this every epoch
        model(x)
    # The pitfall: requires_grad=False alone does not stop BN from updating its statistics.
    assert not torch.allclose(naive.stem[1].running_mean, torch.zeros(4))
    assert torch.equal(fixed.stem[1].running_mean, torch.zeros(4))
    assert torch.equal(fixed.stem[1].running_var, torch.ones(4))
    assert not fixed.stem[1].training
    # Trainable BN layers still learn their statistics ...
    assert not torch.allclose(fixed.blocks[0][1].running_mean, torch.zeros(8))
    # ... until always=True keeps every BN layer in eval mode.
    freeze_batchnorm_stats(fixed, always=True)
    stats = fixed.blocks[1][1].running_mean.clone()
    fixed.train()
    fixed(x)
    assert torch.equal(fixed.blocks[1][1].running_mean, stats)


@pytest.mark.parametrize("keep_batchnorm_frozen", [True, False])
def test_torch_fine_tuning_after_freeze_backbone_keeps_bn_stats_by_default(keep_batchnorm_frozen):
    model = torch_toy()
    x = torch.randn(8, 3, 8, 8) + 3
    freeze_backbone(model, head_names=["classifier"])
    model.train()
    model(x)
    assert torch.equal(model.blocks[1][1].running_mean, torch.zeros(8))  # head training phase
    unfreeze(model, keep_batchnorm_frozen=keep_batchnorm_frozen)            # fine-tuning phase
    model.train()
    model(x).sum().backward()
    assert model.stem[0].weight.grad is not None
    stats_kept = torch.equal(model.blocks[1][1].running_mean, torch.zeros(8))
    assert stats_kept == keep_batchnorm_frozen


# ----------------------------------------------------------------------------- Keras

tf = import_tensorflow()
import keras  # noqa: E402

from xfer_helpers.keras import transfer as kt  # noqa: E402
from xfer_helpers.keras.training import fit  # noqa: E402


def keras_backbone(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for i in (1, 2):
        x = keras.layers.Conv2D(8, 3, padding="same", name=f"block{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = keras.layers.ReLU(name=f"block{i}_relu")(x)
    return keras.Model(inputs, x, name="toy_backbone")


def naive_classifier(backbone):
    """A classifier built by hand, as in most tutorials."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D(name="pooler")(backbone(inputs))
    return keras.Model(inputs, keras.layers.Dense(5, name="classifier")(x))


def keras_toy(dropout=0.0):
    return kt.build_classifier(keras_backbone(), num_classes=5, dropout=dropout)


def compile_sgd(model, optimizer=None):
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def keras_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 8, 8, 3)) * 2 + 3).astype("float32"), rng.integers(0, 5, n).astype("int32")


def test_keras_counts_match_pytorch():
    model = keras_toy()
    assert kt.count_parameters(model) == TOTAL == count_parameters(torch_toy())
    assert kt.count_parameters(model, trainable_only=False) == TOTAL + 40 == model.count_params()
    assert kt.list_blocks(model) == ["block1", "block2"]
    assert kt.freeze(model) == 0
    assert kt.unfreeze(model) == TOTAL - BN  # BatchNorm layers stay frozen by default
    assert kt.unfreeze(model, keep_batchnorm_frozen=False) == TOTAL
    assert kt.freeze_batchnorm(model) == 3
    assert kt.count_parameters(model) == TOTAL - BN


@pytest.mark.parametrize("kwargs, trainable", [
    (dict(all_but_last_blocks=1), BLOCK2 + HEAD),
    (dict(all_but_last_blocks=2), BLOCK1 + BLOCK2 + HEAD),
    (dict(all_but_last_blocks=0), HEAD),
    (dict(last_blocks=1), STEM + BLOCK1 + HEAD),
    (dict(names=["block2_conv", "block2_bn"]), STEM + BLOCK1 + HEAD),
    (dict(names="toy_backbone"), HEAD),                   # a nested model's name selects all its layers
    (dict(prefixes=["block"]), STEM + HEAD),
    (dict(prefixes="stem_", names=["classifier"]), BLOCK1 + BLOCK2),
])
def test_keras_freeze_selectors(kwargs, trainable):
    model = keras_toy()
    assert kt.freeze(model, **kwargs) == trainable
    assert kt.count_parameters(model) == trainable


def test_keras_unfreeze_inside_frozen_models():
    model = keras_toy()
    backbone = model.get_layer("toy_backbone")
    backbone.trainable = False  # the usual Keras way to freeze a backbone
    assert kt.count_parameters(model) == HEAD
    assert kt.unfreeze(model, names=["block2_conv"]) == HEAD + BLOCK2_CONV
    assert kt.count_parameters(backbone) == BLOCK2_CONV  # the backbone itself is switched on again
    assert kt.freeze_backbone(model, head_names=["classifier"]) == HEAD
    assert not backbone.trainable  # nothing left to train in it: it says so ...
    backbone.trainable = True      # ... so the plain Keras way to unfreeze still works
    assert kt.count_parameters(model) == TOTAL
    kt.freeze_backbone(model, head_names=["classifier"])
    assert kt.unfreeze(model, last_blocks=1) == BLOCK2_CONV + HEAD
    assert kt.unfreeze(model, last_blocks=1, keep_batchnorm_frozen=False) == BLOCK2 + HEAD
    model.trainable = False  # a frozen outer model hides every weight
    assert kt.count_parameters(model) == 0
    assert kt.unfreeze(model, names=["classifier"]) == HEAD


def test_keras_freeze_keeps_layers_unfrozen_the_keras_way():
    model = keras_toy()
    backbone = model.get_layer("toy_backbone")
    backbone.trainable = False
    backbone.get_layer("block2_conv").trainable = True  # Keras trains it: the outer model is trainable
    assert kt.count_parameters(model) == BLOCK2_CONV + HEAD
    assert kt.freeze(model, names=["classifier"]) == BLOCK2_CONV


def test_keras_bad_selectors_raise_value_error():
    model = keras_toy()
    with pytest.raises(ValueError, match="No layer named 'classifer'.*classifier"):
        kt.freeze(model, names=["classifer"])
    with pytest.raises(ValueError, match="starts with 'head'"):
        kt.freeze(model, prefixes="head")
    with pytest.raises(ValueError, match=r"all_but_last_blocks must be between 0 and 2 .*got 3"):
        kt.freeze(model, all_but_last_blocks=3)
    with pytest.raises(ValueError, match="block pattern"):
        kt.freeze(model, last_blocks=1, block_pattern=r"^(stage\d+)")
    with pytest.raises(ValueError, match="num_classes"):
        kt.build_classifier(keras_backbone(), num_classes=0)
    assert kt.count_parameters(model) == TOTAL, "a failed call must not change the model"


def test_keras_frozen_layers_do_not_change_during_fit():
    model = keras_toy()
    kt.freeze(model, names=["stem_conv", "stem_bn"])
    compile_sgd(model)  # compile after freezing
    before = {w.path: w.numpy().copy() for w in model.weights}
    fit(model, *keras_data(), epochs=1, batch_size=16, progress=False)
    changed = {w.path for w in model.weights if not np.array_equal(w.numpy(), before[w.path])}
    assert not any(path.startswith("stem_") for path in changed)
    assert {"block1_conv/kernel", "block2_bn/gamma", "classifier/kernel"} <= changed


def bn_mean(model, name="stem_bn"):
    return model.get_layer("toy_backbone").get_layer(name).moving_mean.numpy()


def test_keras_training_false_no_longer_protects_bn_statistics():
    """The Keras 2 recipe x = backbone(inputs, training=False) fails in Keras 3 (keras-team/keras#20285).

    fit() calls the model with training=True, which overrides the stored training=False,
    so an unfrozen backbone overwrites its BN statistics. If a Keras release changes
    this, this test fails and the course text about it must be updated.
    """
    x, y = keras_data()
    backbone = keras_backbone()
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.GlobalAveragePooling2D()(backbone(inputs, training=False))
    model = keras.Model(inputs, keras.layers.Dense(5)(features))
    compile_sgd(model).fit(x, y, epochs=1, batch_size=16, verbose=0)  # backbone is trainable
    assert not np.allclose(bn_mean(model), 0)


def test_keras_fine_tuning_keeps_bn_statistics_with_unfreeze():
    x, y = keras_data()
    model = keras_toy()
    kt.freeze_backbone(model, head_names=["classifier"])
    compile_sgd(model).fit(x, y, epochs=1, batch_size=16, verbose=0)   # phase 1: the head
    assert np.array_equal(bn_mean(model), np.zeros(4))
    kernel = model.get_layer("toy_backbone").get_layer("stem_conv").kernel.numpy().copy()
    assert kt.unfreeze(model) == TOTAL - BN
    compile_sgd(model).fit(x, y, epochs=1, batch_size=16, verbose=0)   # phase 2: fine-tuning
    assert np.array_equal(bn_mean(model), np.zeros(4))
    assert not np.array_equal(model.get_layer("toy_backbone").get_layer("stem_conv").kernel.numpy(), kernel)


def test_keras_unfreezing_the_naive_way_changes_bn_statistics_until_freeze_batchnorm():
    x, y = keras_data()
    model = naive_classifier(keras_backbone())
    backbone = model.get_layer("toy_backbone")
    backbone.trainable = False
    compile_sgd(model).fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert np.array_equal(bn_mean(model), np.zeros(4))     # frozen BN: inference mode
    backbone.trainable = True                               # the usual way to unfreeze ...
    compile_sgd(model).fit(x, y, epochs=1, batch_size=16, verbose=0)
    wrecked = bn_mean(model).copy()
    assert not np.allclose(wrecked, 0)                      # ... overwrites the statistics
    assert kt.freeze_batchnorm(model) == 3
    compile_sgd(model).fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert np.array_equal(bn_mean(model), wrecked)


def test_keras_discriminative_optimizer_gives_smaller_backbone_steps():
    x, y = keras_data(n=16)
    model = keras_toy()
    kt.freeze(model, prefixes="stem_")
    kt.freeze_batchnorm(model)  # BN statistics stay put, so the step depends on the gradients only
    optimizer = kt.discriminative_optimizer(model, ["classifier"], head_lr=0.1, backbone_lr=0.01,
                                            optimizer="sgd")
    compile_sgd(model, optimizer)
    with tf.GradientTape() as tape:
        loss = model.loss(y, model(x, training=True))
    grads = {w.path: g.numpy() for w, g in zip(model.trainable_weights,
                                               tape.gradient(loss, model.trainable_weights))}
    before = {w.path: w.numpy().copy() for w in model.weights}
    history = fit(model, x, y, epochs=1, batch_size=16, shuffle=False, progress=False)  # one SGD step
    assert history["lr"] == pytest.approx([0.1])  # the head's rate
    assert len(grads) == 6  # kernel and bias of block1_conv, block2_conv and classifier
    for w in model.weights:
        delta = w.numpy() - before[w.path]
        if w.path in grads:
            lr = 0.1 if w.path.startswith("classifier/") else 0.01
            np.testing.assert_allclose(delta, -lr * grads[w.path], rtol=1e-4, atol=1e-7)
        else:  # the frozen stem and BN layers
            assert not delta.any(), w.path
    with pytest.raises(ValueError, match="head_lr must be positive"):
        kt.discriminative_optimizer(model, ["classifier"], head_lr=0, backbone_lr=0.01)


# ----------------------------------------------------------------------------- both on EfficientNet-Lite0

def test_freezing_efficientnet_lite0_gives_the_same_counts_in_both_frameworks():
    """timm's model.blocks stages and keras-hub's blockN layer prefixes are the same 7 blocks."""
    timm = pytest.importorskip("timm")
    keras_hub = pytest.importorskip("keras_hub")
    from keras_hub.src.utils.timm.convert_efficientnet import convert_backbone_config

    torch_model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=10)
    config = convert_backbone_config({"architecture": "efficientnet_lite0"})  # random weights, offline
    keras_backbone_lite0 = keras_hub.models.EfficientNetBackbone(**config, input_shape=(64, 64, 3))
    keras_model = kt.build_classifier(keras_backbone_lite0, num_classes=10)
    assert len(list_blocks(torch_model)) == len(kt.list_blocks(keras_model)) == 7
    steps = [
        (lambda m: count_parameters(m), lambda m: kt.count_parameters(m)),
        (lambda m: freeze_backbone(m, ["classifier"]), lambda m: kt.freeze_backbone(m, ["classifier"])),
        (lambda m: unfreeze(m, last_blocks=2), lambda m: kt.unfreeze(m, last_blocks=2)),
        (lambda m: unfreeze(m, keep_batchnorm_frozen=False),
         lambda m: kt.unfreeze(m, keep_batchnorm_frozen=False)),
        (lambda m: freeze(m, all_but_last_blocks=3), lambda m: kt.freeze(m, all_but_last_blocks=3)),
        (lambda m: freeze_batchnorm(m), lambda m: kt.freeze_batchnorm(m)),
    ]
    counts = [(in_torch(torch_model), in_keras(keras_model)) for in_torch, in_keras in steps]
    assert all(a == b for a, b in counts), counts
    assert counts[1][0] == 1280 * 10 + 10 and counts[-1][0] == 49  # the head; the BN layers

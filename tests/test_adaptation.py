"""Tests for domain adaptation: xfer_helpers.adaptation (NumPy reference) and its PyTorch and Keras versions."""
import math

import numpy as np
import pytest
import torch

from xfer_helpers import adaptation as ad
from xfer_helpers import datasets
from xfer_helpers.env import import_tensorflow
from xfer_helpers.pytorch import adaptation as pa

tf = import_tensorflow()
from xfer_helpers.keras import adaptation as ka  # noqa: E402

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """These networks are tiny: one PyTorch thread is faster than several, above all on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------ Fashion-MNIST-M
def test_fashion_mnist_m_blends_as_absolute_difference():
    black = np.zeros((5, 28, 28), np.uint8)
    white = np.full((5, 28, 28), 255, np.uint8)
    on_black, on_white = ad.make_fashion_mnist_m(black, seed=3), ad.make_fashion_mnist_m(white, seed=3)
    assert on_black.shape == (5, 28, 28, 3) and on_black.dtype == np.uint8
    # |patch - 0| = patch and |patch - 255| = 255 - patch: the two add up to 255 everywhere
    assert (on_black.astype(int) + on_white.astype(int) == 255).all()
    # the patch is a real crop of one of the photos
    patch = on_black[0]
    found = any((photo[r:r + 28, c:c + 28] == patch).all()
                for photo in ad.background_photos()
                for r in range(photo.shape[0] - 27) for c in range(photo.shape[1] - 27)
                if photo[r, c, 0] == patch[0, 0, 0] and photo[r, c, 1] == patch[0, 0, 1])
    assert found


def test_fashion_mnist_m_is_seeded_and_keeps_the_shape():
    images = datasets.load_fashion_mnist(n_train=20, n_test=10).x_train
    a, b = ad.make_fashion_mnist_m(images, seed=0), ad.make_fashion_mnist_m(images, seed=0)
    assert (a == b).all()
    assert not (a == ad.make_fashion_mnist_m(images, seed=1)).all()
    # where the garment is bright and the patch dark, the output is bright: the shape survives
    assert np.corrcoef(a.mean(-1).ravel(), images.ravel())[0, 1] != 0


@pytest.mark.parametrize("bad", [np.zeros((2, 28, 28), np.float32), np.zeros((2, 28, 28, 3), np.uint8)])
def test_fashion_mnist_m_rejects_wrong_images(bad):
    with pytest.raises(ValueError, match="grey uint8"):
        ad.make_fashion_mnist_m(bad)


# -------------------------------------------------------------------- DANN schedule
def test_dann_lambda_schedule():
    assert ad.dann_lambda(0.0) == 0.0
    assert ad.dann_lambda(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert ad.dann_lambda(0.25) == pytest.approx(2 / (1 + math.exp(-2.5)) - 1)
    values = ad.dann_lambda(np.linspace(0, 1, 11))
    assert (np.diff(values) > 0).all()
    with pytest.raises(ValueError, match="between 0 and 1"):
        ad.dann_lambda(1.5)


# ------------------------------------------------------------------ CORAL and MMD
def test_coral_loss_matches_its_formula_and_ignores_means():
    s, t = RNG.normal(size=(40, 5)), RNG.normal(size=(30, 5)) * 2
    expected = ((np.cov(s.T) - np.cov(t.T)) ** 2).sum() / (4 * 25)
    assert ad.coral_loss(s, t) == pytest.approx(expected)
    assert ad.coral_loss(s, t + 10.0) == pytest.approx(expected)   # second-order statistics only
    assert ad.coral_loss(s, s) == 0.0
    with pytest.raises(ValueError, match="same number of features"):
        ad.coral_loss(s, t[:, :3])


def test_coral_align_gives_the_target_covariance():
    s = RNG.normal(size=(2000, 3)) @ np.array([[1, 0.5, 0], [0, 1, 0], [0, 0, 0.2]])
    t = RNG.normal(size=(2000, 3)) * np.array([3.0, 0.5, 1.0])
    aligned = ad.coral_align(s, t, eps=0.0)
    assert np.allclose(np.cov(aligned.T), np.cov(t.T), atol=1e-6)
    assert ad.coral_loss(aligned, t) < 1e-10 < ad.coral_loss(s, t)


def _mmd2_by_loops(x, y, sigma, unbiased):
    k = lambda a, b: math.exp(-((a - b) ** 2).sum() / (2 * sigma ** 2))  # noqa: E731
    m, n = len(x), len(y)
    if unbiased:
        xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
        yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    else:
        xx = sum(k(a, b) for a in x for b in x) / m ** 2
        yy = sum(k(a, b) for a in y for b in y) / n ** 2
    xy = sum(k(a, b) for a in x for b in y) / (m * n)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("unbiased", [True, False])
def test_mmd2_matches_the_definition(unbiased):
    x, y = RNG.normal(size=(7, 2)), RNG.normal(size=(5, 2)) + 0.5
    assert ad.mmd2(x, y, sigma=0.8, unbiased=unbiased) == pytest.approx(_mmd2_by_loops(x, y, 0.8, unbiased))
    both = ad.mmd2(x, y, sigma=(0.8, 2.0), unbiased=unbiased)
    assert both == pytest.approx(_mmd2_by_loops(x, y, 0.8, unbiased) + _mmd2_by_loops(x, y, 2.0, unbiased))


def test_unbiased_mmd_is_centred_the_biased_one_is_not():
    same = [(ad.mmd2(a, b), ad.mmd2(a, b, unbiased=False))
            for a, b in (RNG.normal(size=(2, 20, 2)) for _ in range(50))]
    unbiased, biased = np.array(same).T
    assert abs(unbiased.mean()) < 0.02 < biased.mean()
    assert (unbiased < 0).any() and (biased > 0).all()


# ------------------------------------------------------------- importance weights
def test_importance_weights_undo_the_classifier_prior():
    w = ad.importance_weights([0.5, 0.75, 0.2], n_source=200, n_target=100)
    assert w == pytest.approx([2.0, 6.0, 0.5])
    assert ad.importance_weights([0.9], 10, 10, clip=5.0) == pytest.approx([5.0])
    with pytest.raises(ValueError, match="probabilities"):
        ad.importance_weights([1.5], 10, 10)


def test_domain_classifier_weights_favour_source_points_near_the_target():
    xs, xt = RNG.normal(size=(300, 1)), RNG.normal(size=(300, 1)) + 1.5
    w = ad.domain_classifier_weights(xs, xt)
    assert np.corrcoef(xs[:, 0], w)[0, 1] > 0.5
    true_ratio = np.exp(-(xs[:, 0] - 1.5) ** 2 / 2 + xs[:, 0] ** 2 / 2)
    assert np.corrcoef(np.log(w), np.log(true_ratio))[0, 1] > 0.9


def test_effective_sample_size():
    assert ad.effective_sample_size(np.ones(10)) == 10.0
    assert ad.effective_sample_size([5, 0, 0, 0]) == 1.0
    assert 1 < ad.effective_sample_size([1, 2, 3]) < 3
    with pytest.raises(ValueError):
        ad.effective_sample_size([0, 0])


# --------------------------------------------------------------- model selection
def test_select_epoch_uses_source_validation_only():
    records = [dict(source_val_accuracy=0.7, source_val_loss=0.9, target_test_accuracy=0.9),
               dict(source_val_accuracy=0.9, source_val_loss=0.5, target_test_accuracy=0.6),
               dict(source_val_accuracy=0.9, source_val_loss=0.4, target_test_accuracy=0.5)]
    assert ad.select_epoch(records) == 1                 # best source accuracy, first of the tie
    assert ad.select_epoch(records, "source_val_loss") == 2
    with pytest.raises(ValueError, match="no target labels"):
        ad.select_epoch(records, "target_test_accuracy")
    with pytest.raises(ValueError, match="empty"):
        ad.select_epoch([])


def test_gap_closed():
    assert ad.gap_closed(0.4, 0.55, 0.9) == pytest.approx(0.3)
    assert ad.gap_closed(0.4, 0.3, 0.9) < 0
    with pytest.raises(ValueError, match="oracle"):
        ad.gap_closed(0.9, 0.5, 0.8)


# ---------------------------------------------------------------------- PyTorch
def test_torch_gradient_reversal_is_identity_forward_and_negates_backward():
    x = torch.randn(4, 3, requires_grad=True)
    upstream = torch.randn(4, 3)
    y = pa.grad_reverse(x, 0.7)
    assert torch.equal(y, x)
    y.backward(upstream)
    assert torch.allclose(x.grad, -0.7 * upstream)
    layer = pa.GradientReversal(0.0)
    x.grad = None
    layer(x).sum().backward()
    assert (x.grad == 0).all()


def test_torch_losses_match_the_numpy_reference():
    s, t = RNG.normal(size=(32, 6)), RNG.normal(size=(24, 6)) * 1.5 + 0.3
    ts, tt = torch.tensor(s), torch.tensor(t)
    assert pa.coral_loss(ts, tt).item() == pytest.approx(ad.coral_loss(s, t))
    for unbiased in (True, False):
        assert pa.mmd2(ts, tt, sigmas=(0.5, 2.0), unbiased=unbiased).item() == \
            pytest.approx(ad.mmd2(s, t, sigma=(0.5, 2.0), unbiased=unbiased))


def test_torch_dann_step_trains_the_discriminator_and_reverses_into_the_features():
    torch.manual_seed(0)
    net = pa.small_mlp(2, 2, 8)
    x, y, xt = torch.randn(16, 2), torch.randint(0, 2, (16,)), torch.randn(16, 2) + 2
    before = {k: v.clone() for k, v in net.state_dict().items()}
    pa.adaptation_step(net, torch.optim.SGD(net.parameters(), lr=0.1), x, y, xt, "source_only")
    assert torch.equal(net.discriminator[0].weight, before["discriminator.0.weight"])
    # the features' gradient from the domain loss is -lambda times the plain gradient
    net.zero_grad()
    features = net.features(torch.cat([x, xt]))
    domains = torch.cat([torch.zeros(16), torch.ones(16)])
    net.reversal.lambda_ = 0.5
    torch.nn.functional.binary_cross_entropy_with_logits(net.domain_logits(features).squeeze(1), domains).backward()
    reversed_grad = net.features[0].weight.grad.clone()
    net.zero_grad()
    features = net.features(torch.cat([x, xt]))
    torch.nn.functional.binary_cross_entropy_with_logits(net.discriminator(features).squeeze(1), domains).backward()
    assert torch.allclose(reversed_grad, -0.5 * net.features[0].weight.grad, atol=1e-7)
    pa.adaptation_step(net, torch.optim.SGD(net.parameters(), lr=0.1), x, y, xt, "dann", weight=1.0, progress=0.5)
    assert net.reversal.lambda_ == pytest.approx(ad.dann_lambda(0.5))


def test_torch_train_adaptation_records_and_repeats():
    m = datasets.make_moons_shift(64, 64, seed=0)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(pa.train_adaptation(pa.small_mlp(), m.x_source, m.y_source, m.x_target, method="coral",
                                        epochs=2, batch_size=16, eval_sets={"target": (m.x_target, m.y_target)},
                                        progress=False))
    assert len(runs[0]) == 2 and {"class_loss", "adapt_loss", "target_accuracy", "target_loss"} <= set(runs[0].keys())
    assert runs[0].records[-1]["loss"] == runs[1].records[-1]["loss"]
    with pytest.raises(KeyError, match="Valid methods"):
        pa.train_adaptation(pa.small_mlp(), m.x_source, m.y_source, m.x_target, method="dan", epochs=1)
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        pa.train_adaptation(pa.small_mlp(), m.x_source, m.y_source, m.x_target, epochs=0)
    with pytest.raises(ValueError, match="needs unlabelled target"):
        pa.train_adaptation(pa.small_mlp(), m.x_source, m.y_source, method="dann", epochs=1)


def test_torch_adaptation_step_sends_source_and_target_through_the_features_as_one_batch():
    net = pa.small_cnn(channels=(4, 8), width=16, batch_norm=True)
    sizes = []
    net.features.register_forward_hook(lambda module, inputs, output: sizes.append(len(inputs[0])))
    x, y, xt = torch.randn(6, 3, 28, 28), torch.randint(0, 10, (6,)), torch.randn(6, 3, 28, 28) + 3
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0)   # lr 0: only BatchNorm's running mean moves
    for method, expected in (("source_only", [6]), ("dann", [12]), ("coral", [12])):
        sizes.clear()
        pa.adaptation_step(net, optimizer, x, y, xt, method)
        assert sizes == expected, (method, sizes)
    # so BatchNorm's batch statistics mix both domains: its running mean moved towards the target's
    net = pa.small_cnn(channels=(4, 8), width=16, batch_norm=True)
    first_conv, norm = net.features[0], net.features[1]
    pa.adaptation_step(net, torch.optim.SGD(net.parameters(), lr=0.0), x, y, xt, "dann")
    with torch.no_grad():
        both_mean = first_conv(torch.cat([x, xt])).mean((0, 2, 3))
    assert torch.allclose(norm.running_mean, 0.1 * both_mean, atol=1e-5)


@pytest.mark.slow
def test_torch_dann_beats_source_only_on_rotated_moons():
    m = datasets.make_moons_shift(500, 500, seed=0)
    test = datasets.make_moons_shift(10, 1000, seed=1)
    accuracy = {}
    for method in ("source_only", "dann"):
        torch.manual_seed(0)
        h = pa.train_adaptation(pa.small_mlp(2, 2, 64), m.x_source, m.y_source, m.x_target, method=method,
                                epochs=60, batch_size=32, lr=0.03, optimizer="sgd",
                                eval_sets={"target": (test.x_target, test.y_target)}, progress=False)
        accuracy[method] = h["target_accuracy"][-1]
    assert accuracy["source_only"] < 0.85 and accuracy["dann"] > accuracy["source_only"] + 0.1, accuracy


# ------------------------------------------------------------------------ Keras
def test_keras_gradient_reversal_is_identity_forward_and_negates_backward():
    x = tf.constant(RNG.normal(size=(4, 3)), tf.float32)
    upstream = tf.constant(RNG.normal(size=(4, 3)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = ka.grad_reverse(x, 0.7)
    assert (y.numpy() == x.numpy()).all()
    assert np.allclose(tape.gradient(y, x, output_gradients=upstream).numpy(), -0.7 * upstream.numpy())
    layer = ka.GradientReversal(0.3)
    layer.lambda_.assign(2.0)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(layer(x))
    assert np.allclose(tape.gradient(y, x).numpy(), -2.0)


def test_keras_losses_match_the_numpy_reference():
    s, t = RNG.normal(size=(32, 6)), RNG.normal(size=(24, 6)) * 1.5 + 0.3
    ts, tt = tf.constant(s, tf.float64), tf.constant(t, tf.float64)
    assert float(ka.coral_loss(ts, tt)) == pytest.approx(ad.coral_loss(s, t))
    for unbiased in (True, False):
        assert float(ka.mmd2(ts, tt, sigmas=(0.5, 2.0), unbiased=unbiased)) == \
            pytest.approx(ad.mmd2(s, t, sigma=(0.5, 2.0), unbiased=unbiased))


def test_keras_and_torch_networks_have_the_same_shape():
    for torch_net, keras_net, x in ((pa.small_cnn(), ka.small_cnn(), np.zeros((2, 28, 28, 3), np.float32)),
                                    (pa.small_cnn(batch_norm=True), ka.small_cnn(batch_norm=True),
                                     np.zeros((2, 28, 28, 3), np.float32)),
                                    (pa.small_mlp(5, 3, 16), ka.small_mlp(5, 3, 16), np.zeros((2, 5), np.float32))):
        keras_net(x)
        for part in ("features", "classifier", "discriminator"):
            n_torch = sum(p.numel() for p in getattr(torch_net, part).parameters())
            n_keras = sum(int(np.prod(w.shape)) for w in getattr(keras_net, part).trainable_weights)
            assert n_torch == n_keras, part
    limit = 1 / math.sqrt(2)   # PyTorch's rule: uniform in +-1/sqrt(fan_in), biases included
    first = ka.small_mlp(2, 2, 256).features.layers[0]
    assert np.abs(first.kernel.numpy()).max() <= limit and np.abs(first.bias.numpy()).max() > 0.5 * limit


def test_keras_train_adaptation_records():
    m = datasets.make_moons_shift(64, 64, seed=0)
    h = ka.train_adaptation(ka.small_mlp(), m.x_source, m.y_source, m.x_target, method="dann", epochs=2,
                            batch_size=16, optimizer="sgd", anneal=True, lr=0.05,
                            eval_sets={"target": (m.x_target, m.y_target)}, progress=False)
    assert len(h) == 2 and {"class_loss", "adapt_loss", "target_accuracy"} <= set(h.keys())
    assert h.records[-1]["lr"] < 0.05
    with pytest.raises(KeyError, match="Valid optimizers"):
        ka.train_adaptation(ka.small_mlp(), m.x_source, m.y_source, m.x_target, epochs=1, optimizer="rmsprop")


def _copy_torch_cnn_into_keras(torch_net, keras_net):
    """Copy small_cnn(batch_norm=True) weights from PyTorch into Keras (NCHW -> NHWC flatten order)."""
    convs = [m for m in torch_net.features if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in torch_net.features if isinstance(m, torch.nn.BatchNorm2d)]
    k_convs = [layer for layer in keras_net.features.layers if isinstance(layer, ka.keras.layers.Conv2D)]
    k_norms = [layer for layer in keras_net.features.layers if isinstance(layer, ka.keras.layers.BatchNormalization)]
    for conv, k_conv in zip(convs, k_convs):
        k_conv.set_weights([conv.weight.detach().numpy().transpose(2, 3, 1, 0), conv.bias.detach().numpy()])
    for norm, k_norm in zip(norms, k_norms):
        k_norm.set_weights([t.detach().numpy() for t in (norm.weight, norm.bias, norm.running_mean, norm.running_var)])
    channels = convs[-1].out_channels
    for torch_seq, keras_seq in ((torch_net.classifier, keras_net.classifier),
                                 (torch_net.discriminator, keras_net.discriminator)):
        linears = [m for m in torch_seq if isinstance(m, torch.nn.Linear)]
        first = linears[0].weight.detach().numpy()   # columns in PyTorch's (C, H, W) flatten order
        first = first.reshape(len(first), channels, 4, 4).transpose(2, 3, 1, 0).reshape(-1, len(first))
        kernels = [first] + [m.weight.detach().numpy().T for m in linears[1:]]
        for layer, kernel, linear in zip(keras_seq.layers, kernels, linears):
            layer.set_weights([kernel, linear.bias.detach().numpy()])


def test_keras_batch_norm_cnn_computes_what_the_torch_one_does():
    torch.manual_seed(0)
    torch_net, keras_net = pa.small_cnn(channels=(4, 8), width=16, batch_norm=True), \
        ka.small_cnn(channels=(4, 8), width=16, batch_norm=True)
    x = RNG.normal(size=(8, 28, 28, 3)).astype(np.float32)
    keras_net(x)
    _copy_torch_cnn_into_keras(torch_net, keras_net)
    x_torch = torch.tensor(x.transpose(0, 3, 1, 2).copy())
    torch_net.train()
    train_torch = torch_net(x_torch).detach().numpy()          # batch statistics, running ones updated
    train_keras = keras_net(x, training=True).numpy()
    assert np.allclose(train_torch, train_keras, atol=1e-4)
    torch_net.eval()                                           # running statistics (momentum, epsilon)
    assert np.allclose(torch_net(x_torch).detach().numpy(), keras_net(x, training=False).numpy(), atol=1e-4)



def test_keras_adaptation_step_sends_source_and_target_through_the_features_as_one_batch():
    net = ka.small_cnn(channels=(4, 8), width=16, batch_norm=True)
    x = tf.constant(RNG.normal(size=(6, 28, 28, 3)), tf.float32)
    xt = tf.constant(RNG.normal(size=(6, 28, 28, 3)) + 3, tf.float32)
    y = tf.constant([0, 1, 2, 3, 4, 5])
    ka.adaptation_step(net, ka.keras.optimizers.SGD(0.0), x, y, xt, "dann")
    first_conv, norm = net.features.layers[0], net.features.layers[1]
    both_mean = tf.reduce_mean(first_conv(tf.concat([x, xt], 0)), axis=(0, 1, 2)).numpy()
    # BatchNorm's moving mean (momentum 0.9, from 0) took one step towards the mean of BOTH domains
    assert np.allclose(norm.moving_mean.numpy(), 0.1 * both_mean, atol=1e-5)

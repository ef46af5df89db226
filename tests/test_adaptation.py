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
                                    (pa.small_mlp(5, 3, 16), ka.small_mlp(5, 3, 16), np.zeros((2, 5), np.float32))):
        keras_net(x)
        for part in ("features", "classifier", "discriminator"):
            n_torch = sum(p.numel() for p in getattr(torch_net, part).parameters())
            assert n_torch == getattr(keras_net, part).count_params(), part
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

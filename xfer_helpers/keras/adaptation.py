"""Domain adaptation in Keras / TensorFlow: gradient reversal, CORAL and MMD losses, a DANN loop.

The same pieces, with the same names, as ``xfer_helpers.pytorch.adaptation``.
Layers use PyTorch's default initialisation rule (uniform in +-1/sqrt(fan_in)
for weights and biases) and Adam uses PyTorch's epsilon, so the two frameworks
train the same network the same way.

Example:
    >>> x = tf.ones(3)                                        # doctest: +SKIP
    >>> with tf.GradientTape() as tape:                       # doctest: +SKIP
    ...     tape.watch(x); y = tf.reduce_sum(grad_reverse(x, 0.5))
    >>> tape.gradient(y, x).numpy().tolist()                  # doctest: +SKIP
    [-0.5, -0.5, -0.5]
"""
from __future__ import annotations

import math
import os
import time

import numpy as np

from ..adaptation import (METHODS, annealed_lr, batch_plan, check_method,  # noqa: F401
                          check_training_args)  # METHODS re-exported
from ..env import import_tensorflow, progress_enabled
from ..history import History

tf = import_tensorflow()  # first, so TensorFlow's start-up logs stay quiet
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402

__all__ = ["grad_reverse", "GradientReversal", "coral_loss", "mmd2", "DomainAdaptationNet",
           "small_cnn", "small_mlp", "adaptation_step", "train_adaptation", "predict_logits",
           "METHODS"]

MMD_SIGMAS = (0.5, 1.0, 2.0, 4.0, 8.0)


@tf.custom_gradient
def _reverse(x, lambda_):
    def grad(upstream):
        return -lambda_ * upstream, tf.zeros_like(lambda_)   # no gradient for lambda itself
    return tf.identity(x), grad


def grad_reverse(x, lambda_=1.0):
    """Gradient reversal: returns ``x``; its gradient becomes -lambda * gradient.

    Example:
        >>> x = tf.constant([2.0])
        >>> with tf.GradientTape() as tape:
        ...     tape.watch(x); y = 3 * grad_reverse(x, 1.0)
        >>> tape.gradient(y, x).numpy().tolist()
        [-3.0]
    """
    x = tf.convert_to_tensor(x)
    return _reverse(x, tf.cast(lambda_, x.dtype))


class GradientReversal(keras.layers.Layer):
    """The reversal as a layer; its strength is the non-trainable weight ``layer.lambda_``.

    Example:
        >>> layer = GradientReversal(0.3)
        >>> _ = layer.lambda_.assign(0.5)
        >>> float(layer.lambda_.numpy())
        0.5
    """

    def __init__(self, lambda_: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.lambda_ = self.add_weight(shape=(), initializer=keras.initializers.Constant(lambda_),
                                       trainable=False, name="lambda")

    def call(self, x):
        return grad_reverse(x, self.lambda_)


def _covariance(x):
    centred = x - tf.reduce_mean(x, axis=0, keepdims=True)
    return tf.matmul(centred, centred, transpose_a=True) / tf.cast(tf.shape(x)[0] - 1, x.dtype)


def coral_loss(source, target):
    """Deep CORAL: ||C_s - C_t||_F^2 / (4 d^2), with unbiased (n - 1) covariances.

    Example:
        >>> a = tf.random.normal((64, 8))
        >>> float(coral_loss(a, a))
        0.0
    """
    d = tf.cast(tf.shape(source)[1], source.dtype)
    return tf.reduce_sum(tf.square(_covariance(source) - _covariance(target))) / (4 * d * d)


def mmd2(x, y, sigmas=(1.0,), unbiased: bool = True):
    """Squared MMD with a sum of Gaussian kernels of widths ``sigmas`` (see xfer_helpers.adaptation.mmd2).

    Example:
        >>> a = tf.random.normal((100, 2))
        >>> bool(mmd2(a, a + 3.0) > mmd2(a, tf.random.normal((100, 2))))
        True
    """
    z = tf.concat([x, y], axis=0)
    norms = tf.reduce_sum(z * z, axis=1)
    squared = tf.maximum(norms[:, None] + norms[None, :] - 2 * tf.matmul(z, z, transpose_b=True), 0.0)
    k = tf.add_n([tf.exp(-squared / (2 * s * s)) for s in sigmas])
    m, n = tf.shape(x)[0], tf.shape(y)[0]
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    if unbiased:   # leave out each point's similarity with itself
        mf, nf = tf.cast(m, k.dtype), tf.cast(n, k.dtype)
        within = ((tf.reduce_sum(kxx) - tf.linalg.trace(kxx)) / (mf * (mf - 1))
                  + (tf.reduce_sum(kyy) - tf.linalg.trace(kyy)) / (nf * (nf - 1)))
    else:
        within = tf.reduce_mean(kxx) + tf.reduce_mean(kyy)
    return within - 2 * tf.reduce_mean(kxy)


def _torch_init(fan_in: int) -> dict:
    """PyTorch's default for Linear and Conv2d: weights and biases uniform in +-1/sqrt(fan_in)."""
    bound = 1 / math.sqrt(fan_in)
    return dict(kernel_initializer=keras.initializers.RandomUniform(-bound, bound),
                bias_initializer=keras.initializers.RandomUniform(-bound, bound))


def _dense(units, fan_in, activation=None):
    return keras.layers.Dense(units, activation=activation, **_torch_init(fan_in))


class DomainAdaptationNet(keras.Model):
    """Features -> label classifier, and features -> gradient reversal -> domain discriminator.

    ``model(x)`` gives the class logits; ``model.domain_logits(features)`` the
    domain logit (target = 1) through the reversal layer ``model.reversal``.

    Example:
        >>> net = small_mlp(n_inputs=2, n_classes=2)
        >>> tuple(net(tf.zeros((5, 2))).shape)
        (5, 2)
    """

    def __init__(self, features, classifier, discriminator, **kwargs):
        super().__init__(**kwargs)
        self.features, self.classifier, self.discriminator = features, classifier, discriminator
        self.reversal = GradientReversal(0.0)

    def build(self, input_shape):   # the parts are built Sequentials: nothing to create here
        self.built = True

    def call(self, x, training=False):
        return self.classifier(self.features(x, training=training), training=training)

    def domain_logits(self, features, training=False):
        return self.discriminator(self.reversal(features), training=training)


def small_cnn(n_classes: int = 10, in_channels: int = 3, channels: tuple[int, int] = (32, 48),
              width: int = 100, batch_norm: bool = False) -> DomainAdaptationNet:
    """Ganin et al.'s MNIST network for 28 x 28 images (channels last), as in the PyTorch version.

    ``batch_norm=True`` adds a BatchNorm layer after each convolution, with
    PyTorch's settings (momentum 0.1 there is ``momentum=0.9`` here, epsilon 1e-5).

    Example:
        >>> tuple(small_cnn()(tf.zeros((2, 28, 28, 3))).shape)
        (2, 10)
    """
    c1, c2 = channels

    def conv_block(filters, fan_in):
        norm = [keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)] if batch_norm else []
        return [keras.layers.Conv2D(filters, 5, **_torch_init(fan_in)), *norm, keras.layers.ReLU(),
                keras.layers.MaxPooling2D()]

    features = keras.Sequential([keras.Input((28, 28, in_channels)), *conv_block(c1, in_channels * 25),
                                 *conv_block(c2, c1 * 25), keras.layers.Flatten()], name="features")
    classifier = keras.Sequential([keras.Input((c2 * 4 * 4,)), _dense(width, c2 * 4 * 4, "relu"),
                                   _dense(n_classes, width)], name="classifier")
    discriminator = keras.Sequential([keras.Input((c2 * 4 * 4,)), _dense(width, c2 * 4 * 4, "relu"),
                                      _dense(1, width)], name="discriminator")
    return DomainAdaptationNet(features, classifier, discriminator)


def small_mlp(n_inputs: int = 2, n_classes: int = 2, width: int = 32) -> DomainAdaptationNet:
    """Two hidden layers of ``width`` for features, a linear classifier, a small discriminator.

    Example:
        >>> tuple(small_mlp(n_inputs=384, n_classes=3)(tf.zeros((4, 384))).shape)
        (4, 3)
    """
    features = keras.Sequential([keras.Input((n_inputs,)), _dense(width, n_inputs, "relu"),
                                 _dense(width, width, "relu")], name="features")
    classifier = keras.Sequential([keras.Input((width,)), _dense(n_classes, width)], name="classifier")
    discriminator = keras.Sequential([keras.Input((width,)), _dense(width, width, "relu"),
                                      _dense(1, width)], name="discriminator")
    return DomainAdaptationNet(features, classifier, discriminator)


def adaptation_step(model, optimizer, x_source, y_source, x_target, method: str = "dann",
                    weight: float = 1.0, progress=0.0):
    """One training step with a GradientTape: source class loss + the method's adaptation loss.

    Same maths as the PyTorch ``adaptation_step`` (source and target through the
    features as one batch); ``progress`` may be a tensor (inside ``tf.function``).
    Returns (class loss, adaptation loss) as tensors.

    Example:
        >>> net = small_mlp(); opt = keras.optimizers.Adam()
        >>> x, y = tf.random.normal((8, 2)), tf.constant([0, 1] * 4)
        >>> len(adaptation_step(net, opt, x, y, tf.random.normal((8, 2)), "coral"))
        2
    """
    check_method(method)
    with tf.GradientTape() as tape:
        if method == "source_only":
            f_source = model.features(x_source, training=True)
        else:   # one batch, half source and half target: BatchNorm sees both domains
            both = model.features(tf.concat([x_source, x_target], 0), training=True)
            n_source = tf.shape(x_source)[0]
            f_source, f_target = both[:n_source], both[n_source:]
        class_loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            y_source, model.classifier(f_source, training=True), from_logits=True))
        adapt_loss = tf.zeros(())
        if method != "source_only":
            if method == "dann":
                p = tf.cast(progress, tf.float32)
                model.reversal.lambda_.assign(weight * (2 / (1 + tf.exp(-10 * p)) - 1))  # dann_lambda
                domains = tf.concat([tf.zeros(tf.shape(f_source)[0]), tf.ones(tf.shape(f_target)[0])], 0)
                logits = model.domain_logits(tf.concat([f_source, f_target], 0), training=True)[:, 0]
                adapt_loss = tf.reduce_mean(
                    tf.nn.sigmoid_cross_entropy_with_logits(labels=domains, logits=logits))
            elif method == "coral":
                adapt_loss = weight * coral_loss(f_source, f_target)
            else:
                adapt_loss = weight * mmd2(f_source, f_target, sigmas=MMD_SIGMAS)
        loss = class_loss + adapt_loss
    pairs = [(g, v) for g, v in zip(tape.gradient(loss, model.trainable_variables),
                                    model.trainable_variables) if g is not None]
    optimizer.apply_gradients(pairs)
    return class_loss, adapt_loss


def predict_logits(model, x, batch_size: int = 512) -> np.ndarray:
    """Class logits for a NumPy array of inputs, in inference mode.

    Example:
        >>> predict_logits(small_mlp(), np.zeros((3, 2), np.float32)).shape
        (3, 2)
    """
    return np.concatenate([model(x[i:i + batch_size], training=False).numpy()
                           for i in range(0, len(x), batch_size)])


def train_adaptation(model, x_source, y_source, x_target=None, *, method: str = "dann", epochs: int,
                     batch_size: int = 64, lr: float = 1e-3, weight: float = 1.0,
                     optimizer: str = "adam", anneal: bool = False, eval_sets: dict | None = None,
                     seed: int = 0, progress: bool = True) -> History:
    """Train with labelled source batches and unlabelled target batches; return the course History.

    The same loop as the PyTorch ``train_adaptation`` (same batch order for the
    same ``seed``, "adam" with PyTorch's epsilon or "sgd" with momentum 0.9, the
    same ``anneal`` schedule, the same record keys); the step
    is compiled once with ``tf.function``.

    Example:
        >>> x, y = np.random.randn(64, 2).astype(np.float32), np.random.randint(0, 2, 64)
        >>> h = train_adaptation(small_mlp(), x, y, x, epochs=1, eval_sets={"val": (x, y)}, progress=False)
        >>> "val_accuracy" in h.keys()
        True
    """
    from tqdm.auto import tqdm
    from .training import build_optimizer
    check_training_args(method, epochs, batch_size, x_source, y_source, x_target, optimizer)
    x_source, y_source = np.asarray(x_source, np.float32), np.asarray(y_source, np.int64)
    x_target = np.asarray(x_target, np.float32) if x_target is not None else x_source
    optimizer = (keras.optimizers.Adam(lr, epsilon=1e-8) if optimizer == "adam"   # PyTorch's epsilon
                 else keras.optimizers.SGD(lr, momentum=0.9))
    build_optimizer(optimizer, model.trainable_variables)     # one trace of the step, not two
    step_fn = tf.function(lambda xs, ys, xt, p: adaptation_step(model, optimizer, xs, ys, xt, method,
                                                                 weight, p))
    history = History(framework="Keras")
    plan = batch_plan(len(x_source), len(x_target), batch_size, epochs, seed)
    for epoch, batches in enumerate(tqdm(plan, total=epochs, desc=method,
                                       disable=not progress_enabled(progress))):
        start, sums = time.perf_counter(), np.zeros(2)
        for s, t, progress_done in batches:
            optimizer.learning_rate.assign(annealed_lr(lr, progress_done, anneal))
            losses = step_fn(x_source[s], y_source[s], x_target[t], tf.constant(progress_done, tf.float32))
            sums += [float(v) for v in losses]
        seconds, steps = time.perf_counter() - start, len(batches)
        record = dict(epoch=epoch + 1, loss=sums.sum() / steps, class_loss=sums[0] / steps,
                      adapt_loss=sums[1] / steps, lr=float(optimizer.learning_rate.numpy()),
                      seconds=seconds,
                      samples_per_second=len(x_source) / seconds)
        for name, (x, y) in (eval_sets or {}).items():
            logits, labels = predict_logits(model, np.asarray(x, np.float32)), np.asarray(y)
            record[f"{name}_accuracy"] = float((logits.argmax(1) == labels).mean())
            record[f"{name}_loss"] = float(np.mean(keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True)))
        history.append(**record)
    return history

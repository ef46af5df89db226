"""Meta-learning in Keras 3 / TensorFlow: MAML (nested GradientTape), Reptile; ProtoNets re-exported.

MAML runs a Keras model with weights given as plain tensors, through
``model.stateless_call`` (the Keras counterpart of ``torch.func.functional_call``).
The inner step's gradient is taken with a ``tf.GradientTape`` *inside* the
outer tape, so the outer tape records it and can differentiate through it
(second order); ``tf.stop_gradient`` on the inner gradient gives first order.

Example:
    >>> model = sinusoid_mlp()
    >>> x = tf.random.normal((5, 1))
    >>> fast = inner_step(model, model.trainable_variables, x, x, lr=0.01)
    >>> len(fast) == len(model.trainable_variables)
    True
"""
from __future__ import annotations

import numpy as np

from ..env import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402  (after TensorFlow's quiet import)

from .training import build_optimizer  # noqa: E402
from .protonets import (conv4_embedding, embed, images_to_tensor,  # noqa: E402,F401 (meta.*)
                        make_pretrain_classifier_step, make_protonet_step, prototypes,
                        prototypical_loss, squared_euclidean)

__all__ = ["sinusoid_mlp", "conv4_embedding", "images_to_tensor", "weights_from_torch",
           "prototypes", "squared_euclidean", "prototypical_loss", "make_protonet_step",
           "embed", "make_pretrain_classifier_step", "forward", "mse", "inner_step",
           "adapt", "maml_loss", "make_maml_step", "make_reptile_step", "make_pretrain_step",
           "adaptation_curve", "adapted_predictions"]


# ------------------------------------------------------------------ models
def sinusoid_mlp(hidden: tuple[int, ...] = (40, 40)) -> keras.Sequential:
    """The MAML paper's regressor: 1 -> 40 -> 40 -> 1 with ReLUs.

    Example:
        >>> sinusoid_mlp()(np.zeros((3, 1), np.float32)).shape
        TensorShape([3, 1])
    """
    layers = [keras.layers.Dense(h, activation="relu") for h in hidden]
    return keras.Sequential([keras.Input((1,)), *layers, keras.layers.Dense(1)])


def weights_from_torch(model: keras.Model, torch_arrays: list[np.ndarray]) -> keras.Model:
    """Load a PyTorch MLP's weights (NumPy, in ``state_dict`` order) into a Keras MLP.

    A PyTorch ``Linear`` stores (out, in); a Keras ``Dense`` kernel is (in, out).

    Example:
        >>> model = weights_from_torch(sinusoid_mlp((2,)), [np.ones((2, 1)), np.zeros(2),
        ...                            np.ones((1, 2)), np.zeros(1)])
        >>> float(model(np.ones((1, 1), np.float32))[0, 0])
        2.0
    """
    model.set_weights([a.T if a.ndim == 2 else a for a in torch_arrays])
    return model


# --------------------------------------------------------------------- MAML
def forward(model: keras.Model, params, x) -> tf.Tensor:
    """Run ``model`` with the weights ``params`` (tensors, in ``model.trainable_variables`` order).

    Example:
        >>> model = sinusoid_mlp()
        >>> zeros = [tf.zeros_like(v) for v in model.trainable_variables]
        >>> float(tf.reduce_sum(forward(model, zeros, tf.ones((2, 1)))))
        0.0
    """
    outputs, _ = model.stateless_call(list(params), model.non_trainable_variables, x)
    return outputs


def mse(prediction, target) -> tf.Tensor:
    """Mean squared error.

    Example:
        >>> float(mse(tf.zeros((4, 1)), tf.ones((4, 1))))
        1.0
    """
    return tf.reduce_mean(tf.square(prediction - target))


def inner_step(model: keras.Model, params, x, y, lr: float, first_order: bool = False) -> list:
    """One SGD step on the support set: theta' = theta - lr * grad(MSE), as new tensors.

    Called inside an outer ``GradientTape``, the outer tape also records this
    gradient computation, so it can differentiate through it (second order).
    ``first_order=True`` wraps the gradient in ``tf.stop_gradient``.

    Example:
        >>> model = sinusoid_mlp()
        >>> fast = inner_step(model, model.trainable_variables, tf.ones((4, 1)),
        ...                   tf.zeros((4, 1)), lr=0.1)
        >>> [tuple(p.shape) for p in fast][:2]
        [(1, 40), (40,)]
    """
    params = [tf.convert_to_tensor(p) for p in params]   # Keras variables -> tensors
    with tf.GradientTape() as tape:
        tape.watch(params)
        loss = mse(forward(model, params, x), y)
    grads = tape.gradient(loss, params)
    if first_order:
        grads = [tf.stop_gradient(g) for g in grads]
    return [p - lr * g for p, g in zip(params, grads)]


def adapt(model: keras.Model, params, x, y, lr: float, steps: int = 1,
          first_order: bool = False) -> list:
    """``steps`` inner SGD steps from ``params``; returns the adapted weights.

    Example:
        >>> model = sinusoid_mlp()
        >>> fast = adapt(model, model.trainable_variables, tf.ones((4, 1)), tf.zeros((4, 1)),
        ...              lr=0.1, steps=3)
        >>> len(fast)
        6
    """
    for _ in range(steps):
        params = inner_step(model, params, x, y, lr, first_order)
    return params


def maml_loss(model: keras.Model, params, x_support, y_support, x_query, y_query,
              inner_lr: float, steps: int = 1, first_order: bool = False) -> tf.Tensor:
    """Query MSE of one task after adapting on its support set (call it under a GradientTape).

    Example:
        >>> model = sinusoid_mlp()
        >>> x = tf.random.normal((5, 1))
        >>> with tf.GradientTape() as tape:
        ...     loss = maml_loss(model, model.trainable_variables, x, x, x, x, inner_lr=0.01)
        >>> tape.gradient(loss, model.trainable_variables)[0].shape
        TensorShape([1, 40])
    """
    fast = adapt(model, params, x_support, y_support, inner_lr, steps, first_order)
    return mse(forward(model, fast, x_query), y_query)


def _tensors(tasks):
    return tuple(tf.constant(a) for a in (tasks.x_support, tasks.y_support,
                                          tasks.x_query, tasks.y_query))


def make_maml_step(model: keras.Model, optimizer, inner_lr: float = 0.01, steps: int = 1,
                   first_order: bool = False):
    """A compiled MAML meta-update ``step(tasks) -> meta-loss`` (nested GradientTape).

    Example:
        >>> from xfer_helpers.datasets import sample_sinusoid_tasks
        >>> model = sinusoid_mlp()
        >>> step = make_maml_step(model, keras.optimizers.Adam(1e-3))
        >>> step(sample_sinusoid_tasks(4, 5, 5)) > 0
        True
    """
    build_optimizer(optimizer, model.trainable_variables)         # one trace, not two

    @tf.function(reduce_retracing=True)
    def update(xs, ys, xq, yq):
        weights = model.trainable_variables
        with tf.GradientTape() as outer:
            losses = [maml_loss(model, weights, xs[i], ys[i], xq[i], yq[i], inner_lr, steps,
                                first_order) for i in range(xs.shape[0])]
            meta_loss = tf.add_n(losses) / len(losses)
        optimizer.apply_gradients(zip(outer.gradient(meta_loss, weights), weights))
        return meta_loss

    return lambda tasks: float(update(*_tensors(tasks)))


def make_reptile_step(model: keras.Model, inner_lr: float = 0.02, inner_steps: int = 5):
    """A compiled Reptile update ``step(tasks, outer_lr) -> mean task MSE``.

    theta <- theta + outer_lr * (mean over tasks of theta_task - theta); each
    task trains on its support and query points together.

    Example:
        >>> from xfer_helpers.datasets import sample_sinusoid_tasks
        >>> model = sinusoid_mlp()
        >>> step = make_reptile_step(model)
        >>> step(sample_sinusoid_tasks(2, 5, 5), outer_lr=0.1) > 0
        True
    """
    @tf.function(reduce_retracing=True)
    def update(xs, ys, xq, yq, outer_lr):
        weights = model.trainable_variables
        x, y = tf.concat([xs, xq], 1), tf.concat([ys, yq], 1)
        total = [tf.zeros_like(w) for w in weights]
        losses = []
        for i in range(xs.shape[0]):
            params = adapt(model, weights, x[i], y[i], inner_lr, inner_steps, first_order=True)
            losses.append(mse(forward(model, params, x[i]), y[i]))
            total = [t + p for t, p in zip(total, params)]
        for w, t in zip(weights, total):  # towards the mean adapted weights
            w.assign_add(outer_lr * (t / xs.shape[0] - w))
        return tf.add_n(losses) / len(losses)

    return lambda tasks, outer_lr: float(update(*_tensors(tasks), tf.constant(outer_lr, tf.float32)))


def make_pretrain_step(model: keras.Model, optimizer):
    """The baseline's compiled step ``step(tasks) -> MSE``: regression on all tasks' points pooled.

    Example:
        >>> from xfer_helpers.datasets import sample_sinusoid_tasks
        >>> model = sinusoid_mlp()
        >>> make_pretrain_step(model, keras.optimizers.Adam())(sample_sinusoid_tasks(4)) > 0
        True
    """
    build_optimizer(optimizer, model.trainable_variables)         # one trace, not two

    @tf.function(reduce_retracing=True)
    def update(xs, ys, xq, yq):
        x = tf.reshape(tf.concat([xs, xq], 1), (-1, 1))
        y = tf.reshape(tf.concat([ys, yq], 1), (-1, 1))
        with tf.GradientTape() as tape:
            loss = mse(model(x, training=True), y)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return lambda tasks: float(update(*_tensors(tasks)))


def adaptation_curve(model: keras.Model, tasks, lr: float = 0.01, steps: int = 10) -> np.ndarray:
    """Mean query MSE after 0, 1, ..., ``steps`` SGD steps on each task's support set.

    Example:
        >>> from xfer_helpers.datasets import sample_sinusoid_tasks
        >>> adaptation_curve(sinusoid_mlp(), sample_sinusoid_tasks(3, 5, 10), steps=2).shape
        (3,)
    """
    @tf.function(reduce_retracing=True)
    def curve_of_task(xs, ys, xq, yq):
        params = [tf.identity(w) for w in model.trainable_variables]
        values = [mse(forward(model, params, xq), yq)]
        for _ in range(steps):
            params = inner_step(model, params, xs, ys, lr, first_order=True)
            values.append(mse(forward(model, params, xq), yq))
        return tf.stack(values)

    xs, ys, xq, yq = _tensors(tasks)
    curves = [curve_of_task(xs[i], ys[i], xq[i], yq[i]).numpy() for i in range(len(tasks))]
    return np.mean(curves, axis=0)


def adapted_predictions(model: keras.Model, x_support, y_support, x, lr: float = 0.01,
                        steps: int = 10) -> list[np.ndarray]:
    """Predictions at ``x`` after 0, 1, ..., ``steps`` SGD steps on one task (for plots).

    Example:
        >>> xs = np.zeros((5, 1), np.float32)
        >>> len(adapted_predictions(sinusoid_mlp(), xs, xs, np.zeros((7, 1), np.float32), steps=2))
        3
    """
    params = [tf.identity(w) for w in model.trainable_variables]
    x_support, y_support = tf.constant(x_support), tf.constant(y_support)
    out = []
    for step in range(steps + 1):
        out.append(forward(model, params, tf.constant(x)).numpy().ravel())
        if step < steps:
            params = inner_step(model, params, x_support, y_support, lr, first_order=True)
    return out

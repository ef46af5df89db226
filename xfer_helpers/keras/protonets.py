"""Prototypical Networks in Keras 3 / TensorFlow, and the embedding CNN they share with the
classifier baseline; the twin of :mod:`xfer_helpers.pytorch.protonets` (same names, the steps
compiled once with ``tf.function``). Re-exported by :mod:`xfer_helpers.keras.meta`.

Example:
    >>> s, q = tf.constant([[0.], [4.]]), tf.constant([[1.], [3.]])
    >>> float(prototypical_loss(s, tf.constant([0, 1]), q, tf.constant([0, 1]), 2)[1])
    1.0
"""
from __future__ import annotations

import numpy as np

from ..env import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402  (after TensorFlow's quiet import)

from .training import build_optimizer  # noqa: E402

__all__ = ["conv4_embedding", "images_to_tensor", "prototypes", "squared_euclidean",
           "prototypical_loss", "make_protonet_step", "embed", "make_pretrain_classifier_step"]


# ------------------------------------------------------------------ the embedding
def conv4_embedding(channels: int = 64, image_size: int = 28) -> keras.Sequential:
    """The 4-block CNN of ProtoNets/MAML: [conv3x3, BatchNorm, ReLU, maxpool2] x 4, flattened.

    Channels-last input (N, 28, 28, 1) -> ``channels`` features.

    Example:
        >>> conv4_embedding(16)(np.zeros((2, 28, 28, 1), np.float32)).shape
        TensorShape([2, 16])
    """
    blocks = []
    for _ in range(4):
        blocks += [keras.layers.Conv2D(channels, 3, padding="same"),
                   keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
                   keras.layers.ReLU(), keras.layers.MaxPooling2D(2)]
    return keras.Sequential([keras.Input((image_size, image_size, 1)), *blocks,
                             keras.layers.Flatten()])


def images_to_tensor(images) -> tf.Tensor:
    """uint8 images (N, H, W) -> float32 tensor (N, H, W, 1) in 0..1 (channels last).

    Example:
        >>> images_to_tensor(np.zeros((2, 28, 28), np.uint8)).shape
        TensorShape([2, 28, 28, 1])
    """
    return tf.convert_to_tensor(np.asarray(images, np.float32)[..., None] / 255.0)


# ------------------------------------------------------- prototypical networks
def prototypes(embeddings, labels, n_way: int) -> tf.Tensor:
    """Class prototypes: the mean support embedding of each class 0..n_way-1 -> (n_way, D).

    Example:
        >>> prototypes(tf.constant([[0.], [2.], [5.]]), tf.constant([0, 0, 1]), 2).numpy().tolist()
        [[1.0], [5.0]]
    """
    return tf.math.unsorted_segment_mean(embeddings, tf.cast(labels, tf.int32), n_way)


def squared_euclidean(a, b) -> tf.Tensor:
    """Squared Euclidean distance between every row of ``a`` and every row of ``b``.

    Example:
        >>> float(squared_euclidean(tf.constant([[0., 0.]]), tf.constant([[3., 4.]]))[0, 0])
        25.0
    """
    return tf.reduce_sum(tf.square(a[:, None, :] - b[None, :, :]), axis=-1)


def prototypical_loss(support, support_y, query, query_y, n_way: int):
    """ProtoNet loss and accuracy: logits are minus squared distances to the prototypes.

    Example:
        >>> s, q = tf.constant([[0.], [4.]]), tf.constant([[1.], [3.]])
        >>> loss, acc = prototypical_loss(s, tf.constant([0, 1]), q, tf.constant([0, 1]), 2)
        >>> round(float(loss), 4), float(acc)
        (0.0003, 1.0)
    """
    query_y = tf.cast(query_y, tf.int32)
    logits = -squared_euclidean(query, prototypes(support, support_y, n_way))
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(query_y, logits))
    accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32),
                                               query_y), tf.float32))
    return loss, accuracy


def make_protonet_step(embedding: keras.Model, optimizer, n_way: int):
    """A compiled ProtoNet training step ``step(episode) -> (loss, accuracy)``.

    Example:
        >>> step = make_protonet_step(net, keras.optimizers.Adam(1e-3), n_way=5)  # doctest: +SKIP
        >>> loss, acc = step(episode)                                              # doctest: +SKIP
    """
    build_optimizer(optimizer, embedding.trainable_variables)     # one trace, not two

    @tf.function(reduce_retracing=True)
    def train(x, support_y, query_y):
        with tf.GradientTape() as tape:
            z = embedding(x, training=True)
            n_support = tf.shape(support_y)[0]
            loss, acc = prototypical_loss(z[:n_support], support_y, z[n_support:], query_y, n_way)
        grads = tape.gradient(loss, embedding.trainable_variables)
        optimizer.apply_gradients(zip(grads, embedding.trainable_variables))
        return loss, acc

    def step(episode):
        x = images_to_tensor(np.concatenate([episode.support_x, episode.query_x]))
        loss, acc = train(x, tf.constant(episode.support_y), tf.constant(episode.query_y))
        return float(loss), float(acc)
    return step


def embed(embedding: keras.Model, images, batch_size: int = 500) -> np.ndarray:
    """Embeddings of uint8 images (N, H, W) in inference mode, as a NumPy array (N, D).

    Example:
        >>> embed(conv4_embedding(8), np.zeros((3, 28, 28), np.uint8)).shape
        (3, 8)
    """
    return np.concatenate([embedding(images_to_tensor(images[i:i + batch_size]),
                                     training=False).numpy()
                           for i in range(0, len(images), batch_size)])


def make_pretrain_classifier_step(embedding: keras.Model, head: keras.layers.Layer, optimizer):
    """A compiled step of ordinary classification over all meta-train classes (the baseline).

    Example:
        >>> step = make_pretrain_classifier_step(net, keras.layers.Dense(258), opt)  # doctest: +SKIP
        >>> loss = step(images, labels)                                              # doctest: +SKIP
    """
    @tf.function(reduce_retracing=True)
    def train(x, y):
        with tf.GradientTape() as tape:
            logits = head(embedding(x, training=True))
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        weights = embedding.trainable_variables + head.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return loss

    return lambda images, labels: float(train(images_to_tensor(images),
                                              tf.constant(labels, tf.int32)))

"""Prototypical Networks in PyTorch (Snell et al., 2017), and the embedding CNN they share with
the baseline of Chen et al. (2019): a classifier of every meta-train class, its head dropped.

The names are re-exported by :mod:`xfer_helpers.pytorch.meta`, so chapter 04 reads
``tmeta.prototypical_loss`` like ``tmeta.maml_step``; the Keras twin is
:mod:`xfer_helpers.keras.protonets`.

Example:
    >>> import torch
    >>> s, q = torch.tensor([[0.], [4.]]), torch.tensor([[1.], [3.]])
    >>> prototypical_loss(s, torch.tensor([0, 1]), q, torch.tensor([0, 1]), 2)[1].item()
    1.0
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["conv4_embedding", "images_to_tensor", "prototypes", "squared_euclidean",
           "prototypical_loss", "protonet_step", "embed", "pretrain_classifier_step",
           "make_protonet_step", "make_pretrain_classifier_step"]


# ------------------------------------------------------------------ the embedding
def conv4_embedding(channels: int = 64, in_channels: int = 1) -> nn.Sequential:
    """The 4-block CNN of ProtoNets/MAML: [conv3x3, BatchNorm, ReLU, maxpool2] x 4, flattened.

    28 x 28 images give ``channels`` features (28 -> 14 -> 7 -> 3 -> 1).

    Example:
        >>> conv4_embedding(16)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 16])
    """
    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                nn.MaxPool2d(2)]
    return nn.Sequential(*block(in_channels, channels), *block(channels, channels),
                         *block(channels, channels), *block(channels, channels), nn.Flatten())


def images_to_tensor(images) -> torch.Tensor:
    """uint8 images (N, H, W) -> float tensor (N, 1, H, W) in 0..1.

    Example:
        >>> images_to_tensor(np.full((2, 28, 28), 255, np.uint8)).shape
        torch.Size([2, 1, 28, 28])
    """
    return torch.as_tensor(np.asarray(images), dtype=torch.float32).unsqueeze(1) / 255.0


# ------------------------------------------------------- prototypical networks
def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Class prototypes: the mean support embedding of each class 0..n_way-1 -> (n_way, D).

    Example:
        >>> prototypes(torch.tensor([[0.], [2.], [5.]]), torch.tensor([0, 0, 1]), 2).tolist()
        [[1.0], [5.0]]
    """
    labels = torch.as_tensor(labels)
    return torch.stack([embeddings[labels == c].mean(0) for c in range(n_way)])


def squared_euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distance between every row of ``a`` and every row of ``b`` -> (len(a), len(b)).

    Example:
        >>> squared_euclidean(torch.tensor([[0., 0.]]), torch.tensor([[3., 4.]])).item()
        25.0
    """
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def prototypical_loss(support: torch.Tensor, support_y, query: torch.Tensor, query_y,
                      n_way: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ProtoNet loss and accuracy: logits are minus squared distances to the prototypes.

    ``support`` and ``query`` are embeddings; labels are 0..n_way-1.

    Example:
        >>> s, q = torch.tensor([[0.], [4.]]), torch.tensor([[1.], [3.]])
        >>> loss, acc = prototypical_loss(s, torch.tensor([0, 1]), q, torch.tensor([0, 1]), 2)
        >>> round(loss.item(), 4), acc.item()
        (0.0003, 1.0)
    """
    query_y = torch.as_tensor(query_y)
    logits = -squared_euclidean(query, prototypes(support, support_y, n_way))
    loss = F.cross_entropy(logits, query_y)
    accuracy = (logits.argmax(1) == query_y).float().mean()
    return loss, accuracy


def protonet_step(embedding: nn.Module, optimizer, episode) -> tuple[float, float]:
    """One meta-training step of a Prototypical Network on an :class:`~xfer_helpers.episodes.Episode`.

    Example:
        >>> step = protonet_step(net, torch.optim.Adam(net.parameters()), episode)  # doctest: +SKIP
    """
    embedding.train()
    x = images_to_tensor(np.concatenate([episode.support_x, episode.query_x]))
    z = embedding(x)
    n_support = len(episode.support_y)
    loss, acc = prototypical_loss(z[:n_support], torch.as_tensor(episode.support_y),
                                  z[n_support:], torch.as_tensor(episode.query_y), episode.n_way)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item(), acc.item()


@torch.no_grad()
def embed(embedding: nn.Module, images, batch_size: int = 500) -> np.ndarray:
    """Embeddings of uint8 images (N, H, W) in evaluation mode, as a NumPy array (N, D).

    Example:
        >>> embed(conv4_embedding(8), np.zeros((3, 28, 28), np.uint8)).shape
        (3, 8)
    """
    embedding.eval()
    return np.concatenate([embedding(images_to_tensor(images[i:i + batch_size])).numpy()
                           for i in range(0, len(images), batch_size)])


def pretrain_classifier_step(embedding: nn.Module, head: nn.Module, optimizer, images,
                             labels) -> float:
    """One step of ordinary classification over all meta-train classes (the baseline's pretraining).

    Example:
        >>> net, head = conv4_embedding(8), nn.Linear(8, 3)
        >>> opt = torch.optim.Adam([*net.parameters(), *head.parameters()])
        >>> pretrain_classifier_step(net, head, opt, np.zeros((4, 28, 28), np.uint8),
        ...                          np.array([0, 1, 2, 0])) > 0
        True
    """
    embedding.train()
    loss = F.cross_entropy(head(embedding(images_to_tensor(images))), torch.as_tensor(labels))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def make_protonet_step(embedding: nn.Module, optimizer, n_way: int | None = None):
    """``step(episode) -> (loss, accuracy)``: :func:`protonet_step` with its model and optimizer.

    ``n_way`` is there for the Keras signature (which needs it to compile); PyTorch reads
    the number of classes from each episode.

    Example:
        >>> step = make_protonet_step(conv4_embedding(8), None, n_way=5)
        >>> callable(step)
        True
    """
    return lambda episode: protonet_step(embedding, optimizer, episode)


def make_pretrain_classifier_step(embedding: nn.Module, head: nn.Module, optimizer):
    """``step(images, labels) -> loss``: :func:`pretrain_classifier_step` with its arguments bound."""
    return lambda images, labels: pretrain_classifier_step(embedding, head, optimizer, images,
                                                           labels)

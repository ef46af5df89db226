"""Domain adaptation in PyTorch: gradient reversal, CORAL and MMD losses, a compact DANN loop.

The same pieces, with the same names, are in ``xfer_helpers.keras.adaptation``.

Example:
    >>> import torch
    >>> x = torch.ones(3, requires_grad=True)
    >>> grad_reverse(x, 0.5).sum().backward()
    >>> x.grad.tolist()
    [-0.5, -0.5, -0.5]
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..adaptation import (METHODS, annealed_lr, batch_plan, check_method,  # noqa: F401
                          check_training_args, dann_lambda)
from ..history import History

__all__ = ["GradientReversalFunction", "grad_reverse", "GradientReversal", "coral_loss", "mmd2",
           "DomainAdaptationNet", "small_cnn", "small_mlp", "adaptation_step", "train_adaptation",
           "predict_logits", "METHODS"]



class GradientReversalFunction(torch.autograd.Function):
    """Identity on the way forward; multiplies the gradient by -lambda on the way back."""

    @staticmethod
    def forward(ctx, x, lambda_):
        ctx.lambda_ = lambda_
        return x.view_as(x)          # a new tensor (view), so autograd calls our backward

    @staticmethod
    def backward(ctx, grad_output):
        return -ctx.lambda_ * grad_output, None   # no gradient for lambda itself


def grad_reverse(x: torch.Tensor, lambda_: float = 1.0) -> torch.Tensor:
    """Gradient reversal (Ganin & Lempitsky 2015): returns ``x``, its gradient becomes -lambda * gradient.

    Example:
        >>> x = torch.tensor([2.0], requires_grad=True)
        >>> (3 * grad_reverse(x, 1.0)).sum().backward(); x.grad.item()
        -3.0
    """
    return GradientReversalFunction.apply(x, float(lambda_))


class GradientReversal(nn.Module):
    """The reversal as a layer; set ``layer.lambda_`` during training (see :func:`dann_lambda`).

    Example:
        >>> GradientReversal(0.3)(torch.zeros(2)).tolist()
        [0.0, 0.0]
    """

    def __init__(self, lambda_: float = 1.0):
        super().__init__()
        self.lambda_ = lambda_

    def forward(self, x):
        return grad_reverse(x, self.lambda_)

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_}"


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Deep CORAL (Sun & Saenko 2016): ||C_s - C_t||_F^2 / (4 d^2) for two batches of d features.

    Example:
        >>> a = torch.randn(64, 8)
        >>> float(coral_loss(a, a))
        0.0
    """
    d = source.shape[1]
    difference = torch.cov(source.T) - torch.cov(target.T)   # unbiased (n - 1) covariances
    return (difference ** 2).sum() / (4 * d * d)


def mmd2(x: torch.Tensor, y: torch.Tensor, sigmas=(1.0,), unbiased: bool = True) -> torch.Tensor:
    """Squared MMD with a sum of Gaussian kernels of widths ``sigmas`` (see xfer_helpers.adaptation.mmd2).

    Example:
        >>> a = torch.randn(100, 2)
        >>> bool(mmd2(a, a + 3.0) > mmd2(a, torch.randn(100, 2)))
        True
    """
    z = torch.cat([x, y])
    squared = torch.cdist(z, z) ** 2
    k = sum(torch.exp(-squared / (2 * s ** 2)) for s in torch.as_tensor(sigmas, dtype=z.dtype).reshape(-1))
    m, n = len(x), len(y)
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    if unbiased:   # leave out each point's similarity with itself
        within = ((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
                  + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1)))
    else:
        within = kxx.mean() + kyy.mean()
    return within - 2 * kxy.mean()


class DomainAdaptationNet(nn.Module):
    """Features -> label classifier, and features -> gradient reversal -> domain discriminator.

    ``model(x)`` gives the class logits; ``model.domain_logits(features)`` the
    domain logit (target = 1) through the reversal layer ``model.reversal``.

    Example:
        >>> net = small_mlp(n_inputs=2, n_classes=2)
        >>> net(torch.zeros(5, 2)).shape, net.domain_logits(net.features(torch.zeros(5, 2))).shape
        (torch.Size([5, 2]), torch.Size([5, 1]))
    """

    def __init__(self, features: nn.Module, classifier: nn.Module, discriminator: nn.Module):
        super().__init__()
        self.features, self.classifier, self.discriminator = features, classifier, discriminator
        self.reversal = GradientReversal(0.0)

    def forward(self, x):
        return self.classifier(self.features(x))

    def domain_logits(self, features):
        return self.discriminator(self.reversal(features))


def small_cnn(n_classes: int = 10, in_channels: int = 3, channels: tuple[int, int] = (32, 48),
              width: int = 100, batch_norm: bool = False) -> DomainAdaptationNet:
    """Ganin et al.'s MNIST network for 28 x 28 images: features conv 5x5 - pool - conv 5x5 - pool.

    The features are the flattened output of the second pooling layer
    (``channels[1] * 4 * 4`` numbers), as in the paper; the label classifier and
    the domain classifier each have one hidden layer of ``width`` units. The
    paper's sizes are ``channels=(32, 48)`` and ``width=100``; smaller ones train
    faster. ``batch_norm=True`` adds a BatchNorm layer after each convolution.

    Example:
        >>> small_cnn()(torch.zeros(2, 3, 28, 28)).shape
        torch.Size([2, 10])
    """
    c1, c2 = channels
    norm = (lambda c: [nn.BatchNorm2d(c)]) if batch_norm else (lambda c: [])
    features = nn.Sequential(
        nn.Conv2d(in_channels, c1, 5), *norm(c1), nn.ReLU(), nn.MaxPool2d(2),      # 28 -> 24 -> 12
        nn.Conv2d(c1, c2, 5), *norm(c2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())  # 12 -> 8 -> 4
    classifier = nn.Sequential(nn.Linear(c2 * 4 * 4, width), nn.ReLU(), nn.Linear(width, n_classes))
    discriminator = nn.Sequential(nn.Linear(c2 * 4 * 4, width), nn.ReLU(), nn.Linear(width, 1))
    return DomainAdaptationNet(features, classifier, discriminator)


def small_mlp(n_inputs: int = 2, n_classes: int = 2, width: int = 32) -> DomainAdaptationNet:
    """Two hidden layers of ``width`` for features, a linear classifier, a small discriminator.

    Example:
        >>> small_mlp(n_inputs=384, n_classes=3)(torch.zeros(4, 384)).shape
        torch.Size([4, 3])
    """
    features = nn.Sequential(nn.Linear(n_inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
    classifier = nn.Linear(width, n_classes)
    discriminator = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1))
    return DomainAdaptationNet(features, classifier, discriminator)


def adaptation_step(model: DomainAdaptationNet, optimizer, x_source, y_source, x_target,
                    method: str = "dann", weight: float = 1.0, progress: float = 0.0) -> tuple[float, float]:
    """One training step: class loss on the source batch + the method's adaptation loss.

    ``dann``: the discriminator learns to tell source (0) from target (1); the
    reversal layer, at strength ``weight * dann_lambda(progress)``, pushes the
    features the other way. ``coral`` / ``mmd``: ``weight`` times the loss
    between source and target features. Source and target inputs go through
    the feature extractor together, as one batch, so BatchNorm layers (if any)
    normalise both with the same statistics. Returns (class loss, adaptation loss).

    Example:
        >>> net = small_mlp(); opt = torch.optim.Adam(net.parameters())
        >>> x, y = torch.randn(8, 2), torch.randint(0, 2, (8,))
        >>> len(adaptation_step(net, opt, x, y, torch.randn(8, 2), "coral"))
        2
    """
    check_method(method)
    model.train()
    optimizer.zero_grad()
    if method == "source_only":
        f_source = model.features(x_source)
    else:   # one batch, half source and half target (as Ganin et al.'s batches): BatchNorm sees both
        both = model.features(torch.cat([x_source, x_target]))
        f_source, f_target = both[:len(x_source)], both[len(x_source):]
    class_loss = F.cross_entropy(model.classifier(f_source), y_source)
    adapt_loss = torch.zeros((), device=class_loss.device)
    if method != "source_only":
        if method == "dann":
            model.reversal.lambda_ = weight * dann_lambda(progress)
            domains = torch.cat([torch.zeros(len(f_source)), torch.ones(len(f_target))]).to(f_source.device)
            logits = model.domain_logits(torch.cat([f_source, f_target])).squeeze(1)
            adapt_loss = F.binary_cross_entropy_with_logits(logits, domains)
        elif method == "coral":
            adapt_loss = weight * coral_loss(f_source, f_target)
        else:
            adapt_loss = weight * mmd2(f_source, f_target, sigmas=(0.5, 1.0, 2.0, 4.0, 8.0))
    (class_loss + adapt_loss).backward()
    optimizer.step()
    return class_loss.item(), adapt_loss.item()


@torch.no_grad()
def predict_logits(model: nn.Module, x, batch_size: int = 512) -> np.ndarray:
    """Class logits for a NumPy array of inputs, in evaluation mode.

    Example:
        >>> predict_logits(small_mlp(), np.zeros((3, 2), np.float32)).shape
        (3, 2)
    """
    model.eval()
    device = next(model.parameters()).device
    parts = [model(torch.as_tensor(x[i:i + batch_size], device=device)).cpu()
             for i in range(0, len(x), batch_size)]
    return torch.cat(parts).numpy()


def train_adaptation(model: DomainAdaptationNet, x_source, y_source, x_target=None, *, method: str = "dann",
                     epochs: int, batch_size: int = 64, lr: float = 1e-3, weight: float = 1.0,
                     optimizer: str = "adam", anneal: bool = False, eval_sets: dict | None = None,
                     seed: int = 0, progress: bool = True) -> History:
    """Train with labelled source batches and unlabelled target batches; return the course History.

    Every step takes ``batch_size`` source examples and as many target inputs
    (the target set is cycled). Batches are drawn with NumPy's generator seeded
    by ``seed``, the same order as the Keras version. ``optimizer`` is "adam"
    or "sgd" (momentum 0.9, as in the DANN paper), with learning rate ``lr``;
    ``anneal=True`` lowers it as in the paper: lr / (1 + 10 p)^0.75 at progress p.
    After each epoch, accuracy and loss on every set in ``eval_sets``
    (``{"source_val": (x, y), ...}``) go into the record as ``<name>_accuracy``
    and ``<name>_loss``. For the target oracle, pass the labelled target data
    as the source with ``method="source_only"``.

    Example:
        >>> x, y = np.random.randn(64, 2).astype(np.float32), np.random.randint(0, 2, 64)
        >>> h = train_adaptation(small_mlp(), x, y, x, epochs=1, eval_sets={"val": (x, y)}, progress=False)
        >>> "val_accuracy" in h.keys()
        True
    """
    from tqdm.auto import tqdm
    from .training import show_progress
    check_training_args(method, epochs, batch_size, x_source, y_source, x_target, optimizer)
    device = next(model.parameters()).device
    to_tensor = lambda a: torch.as_tensor(np.asarray(a), device=device)   # noqa: E731
    x_source, y_source = to_tensor(x_source), to_tensor(y_source).long()
    x_target = to_tensor(x_target) if x_target is not None else x_source
    optimizer = (torch.optim.Adam(model.parameters(), lr=lr) if optimizer == "adam"
                 else torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9))
    history = History(framework="PyTorch")
    plan = batch_plan(len(x_source), len(x_target), batch_size, epochs, seed)
    for epoch, batches in enumerate(tqdm(plan, total=epochs, desc=method,
                                       disable=not show_progress(progress, 0))):
        start, sums = time.perf_counter(), np.zeros(2)
        for s, t, progress_done in batches:
            for group in optimizer.param_groups:
                group["lr"] = annealed_lr(lr, progress_done, anneal)
            sums += adaptation_step(model, optimizer, x_source[s], y_source[s], x_target[t], method,
                                    weight, progress_done)
        seconds, steps = time.perf_counter() - start, len(batches)
        record = dict(epoch=epoch + 1, loss=sums.sum() / steps, class_loss=sums[0] / steps,
                      adapt_loss=sums[1] / steps, lr=optimizer.param_groups[0]["lr"], seconds=seconds,
                      samples_per_second=len(x_source) / seconds)
        for name, (x, y) in (eval_sets or {}).items():
            logits = torch.as_tensor(predict_logits(model, np.asarray(x)))
            labels = torch.as_tensor(np.asarray(y)).long()
            record[f"{name}_accuracy"] = (logits.argmax(1) == labels).float().mean().item()
            record[f"{name}_loss"] = F.cross_entropy(logits, labels).item()
        history.append(**record)
    return history

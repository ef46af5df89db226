"""Meta-learning in PyTorch: MAML (second and first order), Reptile; Prototypical Networks re-exported.

MAML works on a model's parameters as a plain dict, through
``torch.func.functional_call``: the adapted weights are new tensors computed
from the old ones, so the query loss can be differentiated *through* the
inner steps. ``create_graph=True`` keeps that path (second order);
``first_order=True`` cuts it (the gradient at the adapted weights is used as
the meta-gradient).

Example:
    >>> import torch
    >>> model = sinusoid_mlp()
    >>> params = dict(model.named_parameters())
    >>> x, y = torch.randn(5, 1), torch.randn(5, 1)
    >>> fast = inner_step(model, params, x, y, lr=0.01)
    >>> sorted(fast) == sorted(params), fast["0.weight"].requires_grad
    (True, True)
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from .protonets import (conv4_embedding, embed, images_to_tensor,  # noqa: F401 (meta.* in chapter 04)
                        make_pretrain_classifier_step, make_protonet_step, pretrain_classifier_step,
                        protonet_step, prototypes, prototypical_loss, squared_euclidean)

__all__ = ["sinusoid_mlp", "conv4_embedding", "images_to_tensor", "prototypes",
           "squared_euclidean", "prototypical_loss", "protonet_step", "embed",
           "pretrain_classifier_step", "forward", "per_task", "task_mse", "inner_step", "adapt",
           "maml_loss", "task_tensors", "maml_step", "reptile_step", "pretrain_step",
           "adaptation_curve", "adapted_predictions", "saved_tensor_bytes", "MAML",
           "make_protonet_step", "make_pretrain_classifier_step", "make_maml_step",
           "make_reptile_step", "make_pretrain_step"]


# ------------------------------------------------------------------ models
def sinusoid_mlp(hidden: tuple[int, ...] = (40, 40)) -> nn.Sequential:
    """The MAML paper's regressor: 1 -> 40 -> 40 -> 1 with ReLUs.

    Example:
        >>> sinusoid_mlp()(torch.zeros(3, 1)).shape
        torch.Size([3, 1])
    """
    layers, width = [], 1
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 1))


# --------------------------------------------------------------------- MAML
def forward(model: nn.Module, params: dict, x: torch.Tensor) -> torch.Tensor:
    """Run ``model`` with the weights in ``params`` (``torch.func.functional_call``).

    Many tasks at once: with ``x`` of shape (T, K, D) and every parameter with a
    leading task axis T (see :func:`per_task`), task t runs with its own weights
    (``torch.func.vmap``). One task: ``x`` is (K, D) and ``params`` the usual shapes.

    Example:
        >>> model = sinusoid_mlp()
        >>> params = per_task(dict(model.named_parameters()), 3)
        >>> forward(model, params, torch.zeros(3, 5, 1)).shape
        torch.Size([3, 5, 1])
    """
    if x.dim() == 3:
        return vmap(lambda p, xt: functional_call(model, p, (xt,)))(params, x)
    return functional_call(model, params, (x,))


def per_task(params: dict, n_tasks: int) -> dict:
    """The same weights for ``n_tasks`` tasks: a leading task axis, still tied to ``params``.

    Example:
        >>> per_task({"w": torch.ones(2, 3)}, 4)["w"].shape
        torch.Size([4, 2, 3])
    """
    return {k: v.expand(n_tasks, *v.shape) for k, v in params.items()}


def task_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each task, summed over tasks (one task: the plain MSE).

    Summing keeps each task's gradient equal to the gradient of its own MSE.

    Example:
        >>> task_mse(torch.zeros(2, 4, 1), torch.ones(2, 4, 1)).item()
        2.0
    """
    return ((prediction - target) ** 2).mean(dim=(-2, -1)).sum()


def inner_step(model: nn.Module, params: dict, x, y, lr: float,
               create_graph: bool = True) -> dict:
    """One SGD step on the support set, as new tensors: theta' = theta - lr * grad(MSE).

    ``create_graph=True`` keeps the graph of the gradient, so a loss computed
    with the adapted weights can be differentiated back through this step
    (second-order MAML). With ``False`` the gradient is a constant: theta' still
    depends on theta, but only through the identity (first order).

    Example:
        >>> model = sinusoid_mlp()
        >>> fast = inner_step(model, dict(model.named_parameters()), torch.ones(4, 1),
        ...                   torch.zeros(4, 1), lr=0.1)
        >>> len(fast), fast["0.weight"].requires_grad
        (6, True)
    """
    loss = task_mse(forward(model, params, x), y)
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
    return {name: p - lr * g for (name, p), g in zip(params.items(), grads)}


def adapt(model: nn.Module, params: dict, x, y, lr: float, steps: int = 1,
          first_order: bool = False) -> dict:
    """``steps`` inner SGD steps from ``params``; returns the adapted parameters.

    Example:
        >>> model = sinusoid_mlp()
        >>> fast = adapt(model, dict(model.named_parameters()), torch.ones(4, 1),
        ...              torch.zeros(4, 1), lr=0.1, steps=3)
        >>> fast["4.bias"].shape
        torch.Size([1])
    """
    for _ in range(steps):
        params = inner_step(model, params, x, y, lr, create_graph=not first_order)
    return params


def maml_loss(model: nn.Module, params: dict, x_support, y_support, x_query, y_query,
              inner_lr: float, steps: int = 1, first_order: bool = False) -> torch.Tensor:
    """Mean query MSE after adapting on the support set; its gradient is the meta-gradient.

    Second order: the gradient flows through the inner steps. First order: the
    inner gradients are constants, so the query gradient at the adapted weights
    reaches ``params`` unchanged. Works on one task or on T tasks at once.

    Example:
        >>> model = sinusoid_mlp()
        >>> x = torch.randn(5, 1)
        >>> loss = maml_loss(model, dict(model.named_parameters()), x, x, x, x, inner_lr=0.01)
        >>> loss.backward(); model[0].weight.grad.shape
        torch.Size([40, 1])
    """
    fast = adapt(model, params, x_support, y_support, inner_lr, steps, first_order)
    n_tasks = len(x_query) if x_query.dim() == 3 else 1
    return task_mse(forward(model, fast, x_query), y_query) / n_tasks


def task_tensors(tasks) -> tuple[torch.Tensor, ...]:
    """x_support, y_support, x_query, y_query of :class:`~xfer_helpers.datasets.SinusoidTasks` as tensors.

    Example:
        >>> from xfer_helpers.datasets import sample_sinusoid_tasks
        >>> task_tensors(sample_sinusoid_tasks(2, 5, 10))[2].shape
        torch.Size([2, 10, 1])
    """
    return tuple(torch.as_tensor(a) for a in (tasks.x_support, tasks.y_support,
                                              tasks.x_query, tasks.y_query))


def maml_step(model: nn.Module, optimizer, tasks, inner_lr: float = 0.01, steps: int = 1,
              first_order: bool = False) -> float:
    """One meta-update on a batch of sinusoid tasks (all tasks at once). Returns the meta-loss.

    Example:
        >>> from xfer_helpers.datasets import sample_sinusoid_tasks
        >>> model = sinusoid_mlp()
        >>> loss = maml_step(model, torch.optim.Adam(model.parameters(), 1e-3),
        ...                  sample_sinusoid_tasks(4, k_shot=5, k_query=5))
        >>> loss > 0
        True
    """
    params = per_task(dict(model.named_parameters()), len(tasks))
    meta_loss = maml_loss(model, params, *task_tensors(tasks), inner_lr, steps, first_order)
    optimizer.zero_grad()
    meta_loss.backward()
    optimizer.step()
    return meta_loss.item()


def reptile_step(model: nn.Module, tasks, inner_lr: float = 0.02, inner_steps: int = 5,
                 outer_lr: float = 0.1) -> float:
    """One Reptile update: SGD on each task, then move the weights towards the mean result.

    theta <- theta + outer_lr * (mean over tasks of theta_task - theta). Each
    task trains on its support and query points together (Reptile has no
    query loss). Returns the mean task MSE after the inner steps.

    Example:
        >>> from xfer_helpers.datasets import sample_sinusoid_tasks
        >>> model = sinusoid_mlp()
        >>> before = model[0].weight.detach().clone()
        >>> _ = reptile_step(model, sample_sinusoid_tasks(2, 5, 5))
        >>> bool((model[0].weight != before).any())
        True
    """
    xs, ys, xq, yq = task_tensors(tasks)
    x, y = torch.cat([xs, xq], dim=1), torch.cat([ys, yq], dim=1)
    theta = {k: v.detach() for k, v in model.named_parameters()}
    params = {k: v.clone().requires_grad_() for k, v in per_task(theta, len(tasks)).items()}
    for _ in range(inner_steps):
        params = {k: v.detach().requires_grad_()
                  for k, v in inner_step(model, params, x, y, inner_lr, create_graph=False).items()}
    with torch.no_grad():
        loss = task_mse(forward(model, params, x), y).item() / len(tasks)
        for k, weight in model.named_parameters():   # towards the mean adapted weights
            weight += outer_lr * (params[k].mean(0) - theta[k])
    return loss


def pretrain_step(model: nn.Module, optimizer, tasks) -> float:
    """The baseline's training step: plain regression on the points of all tasks pooled.

    A model trained this way learns the average curve (about zero), the
    "pretrained on all tasks" baseline of the MAML paper.

    Example:
        >>> from xfer_helpers.datasets import sample_sinusoid_tasks
        >>> model = sinusoid_mlp()
        >>> pretrain_step(model, torch.optim.Adam(model.parameters()), sample_sinusoid_tasks(4)) > 0
        True
    """
    xs, ys, xq, yq = task_tensors(tasks)
    loss = F.mse_loss(model(torch.cat([xs, xq], 1).reshape(-1, 1)),
                      torch.cat([ys, yq], 1).reshape(-1, 1))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


# ------------------------------------------- the training steps under their Keras names
# Keras compiles each training step once (tf.function), so xfer_helpers.keras.meta offers
# factories make_*_step(model, ...) -> step. The same factories here only bind the
# arguments (PyTorch needs no compiling), so a chapter drives both frameworks alike
# (the ProtoNet ones are in .protonets).

def make_maml_step(model: nn.Module, optimizer, inner_lr: float = 0.01, steps: int = 1,
                   first_order: bool = False):
    """``step(tasks) -> meta-loss``: :func:`maml_step` with its arguments bound.

    Example:
        >>> from xfer_helpers.datasets import sample_sinusoid_tasks
        >>> model = sinusoid_mlp()
        >>> step = make_maml_step(model, torch.optim.Adam(model.parameters(), 1e-3))
        >>> step(sample_sinusoid_tasks(4, 5, 5)) > 0
        True
    """
    return lambda tasks: maml_step(model, optimizer, tasks, inner_lr, steps, first_order)


def make_reptile_step(model: nn.Module, inner_lr: float = 0.02, inner_steps: int = 5):
    """``step(tasks, outer_lr) -> mean task MSE``: :func:`reptile_step` with its arguments bound."""
    return lambda tasks, outer_lr: reptile_step(model, tasks, inner_lr, inner_steps, outer_lr)


def make_pretrain_step(model: nn.Module, optimizer):
    """``step(tasks) -> MSE``: :func:`pretrain_step` with its arguments bound."""
    return lambda tasks: pretrain_step(model, optimizer, tasks)


def adaptation_curve(model: nn.Module, tasks, lr: float = 0.01, steps: int = 10) -> np.ndarray:
    """Mean query MSE after 0, 1, ..., ``steps`` SGD steps on each task's support set.

    The MAML paper's evaluation, used for every method and the baseline alike:
    plain SGD with learning rate ``lr`` from the model's weights.

    Example:
        >>> from xfer_helpers.datasets import sample_sinusoid_tasks
        >>> adaptation_curve(sinusoid_mlp(), sample_sinusoid_tasks(3, 5, 10), steps=2).shape
        (3,)
    """
    xs, ys, xq, yq = task_tensors(tasks)
    params = per_task({k: v.detach() for k, v in model.named_parameters()}, len(tasks))
    params = {k: v.clone().requires_grad_() for k, v in params.items()}
    curve = []
    for step in range(steps + 1):
        with torch.no_grad():
            curve.append(task_mse(forward(model, params, xq), yq).item() / len(tasks))
        if step < steps:
            params = {k: v.detach().requires_grad_()
                      for k, v in inner_step(model, params, xs, ys, lr, create_graph=False).items()}
    return np.array(curve)


def adapted_predictions(model: nn.Module, x_support, y_support, x, lr: float = 0.01,
                        steps: int = 10) -> list[np.ndarray]:
    """Predictions at ``x`` after 0, 1, ..., ``steps`` SGD steps on one task (for plots).

    Example:
        >>> xs = torch.zeros(5, 1)
        >>> len(adapted_predictions(sinusoid_mlp(), xs, xs, torch.zeros(7, 1), steps=2))
        3
    """
    params = {k: v.detach().clone().requires_grad_() for k, v in model.named_parameters()}
    out = []
    for step in range(steps + 1):
        with torch.no_grad():
            out.append(forward(model, params, torch.as_tensor(x)).numpy().ravel())
        if step < steps:
            params = {k: v.detach().requires_grad_() for k, v in
                      inner_step(model, params, torch.as_tensor(x_support),
                                 torch.as_tensor(y_support), lr, create_graph=False).items()}
    return out


def saved_tensor_bytes(fn) -> tuple[object, int]:
    """Run ``fn()``; return its result and the bytes autograd still holds for the backward pass.

    Counts the tensors saved for backward (``torch.autograd.graph.saved_tensors_hooks``)
    that are still alive when ``fn`` returns, i.e. the memory a training step
    holds between its forward and its backward pass; second-order MAML makes
    it larger. A tensor saved twice counts twice. On a GPU,
    ``torch.cuda.max_memory_allocated`` measures the whole peak instead.

    Example:
        >>> model = sinusoid_mlp()
        >>> loss, n = saved_tensor_bytes(lambda: model(torch.zeros(10, 1)).sum())
        >>> n > 0
        True
    """
    live = [0]

    class Saved:
        def __init__(self, tensor):
            self.tensor, self.nbytes = tensor, tensor.numel() * tensor.element_size()
            live[0] += self.nbytes

        def __del__(self):
            live[0] -= self.nbytes

    with torch.autograd.graph.saved_tensors_hooks(Saved, lambda saved: saved.tensor):
        result = fn()
    return result, live[0]


class MAML:
    """learn2learn-style reading of MAML: ``learner = maml.clone(); learner.adapt(loss)``.

    Example:
        >>> maml = MAML(sinusoid_mlp(), lr=0.01)
        >>> learner = maml.clone()
        >>> x = torch.randn(5, 1)
        >>> learner.adapt(F.mse_loss(learner(x), x))
        >>> F.mse_loss(learner(x), x).backward()      # the gradient reaches maml.module
        >>> maml.module[0].weight.grad is not None
        True
    """

    def __init__(self, module: nn.Module, lr: float, first_order: bool = False):
        self.module, self.lr, self.first_order = module, lr, first_order
        self.params = dict(module.named_parameters())

    def clone(self) -> "MAML":
        """A learner that starts at the current weights, still connected to them."""
        learner = MAML(self.module, self.lr, self.first_order)
        learner.params = dict(self.params)
        return learner

    def adapt(self, loss: torch.Tensor) -> None:
        """One inner SGD step on ``loss`` (computed with this learner)."""
        grads = torch.autograd.grad(loss, list(self.params.values()),
                                    create_graph=not self.first_order)
        self.params = {k: p - self.lr * g for (k, p), g in zip(self.params.items(), grads)}

    def __call__(self, x):
        return functional_call(self.module, self.params, (x,))

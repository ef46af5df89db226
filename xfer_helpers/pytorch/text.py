"""PyTorch pieces for BERT-style text classification: batches, pooling, a classifier, a schedule.

Training uses the course's ``xfer_helpers.pytorch.fit``: its loaders here yield
``({"input_ids", "attention_mask"}, labels)`` and ``fit`` calls ``model(**inputs)``.

Example:
    >>> from xfer_helpers.pytorch.text import TextClassifier, text_loader
    >>> model = TextClassifier(minilm_encoder(), num_classes=3, pooling="mean")   # doctest: +SKIP
    >>> history = fit(model, text_loader(batch, labels, shuffle=True), epochs=2)  # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..text import inference_batches, length_grouped_batches, warmup_linear
from .training import eval_mode, forward_logits, model_device, show_progress, to_device

POOLINGS = ("cls", "mean")


class _TextDataset(torch.utils.data.Dataset):
    def __init__(self, encodings, labels=None):
        self.inputs = {k: torch.as_tensor(encodings[k]) for k in ("input_ids", "attention_mask")}
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if self.labels is not None and len(self.labels) != len(self.inputs["input_ids"]):
            raise ValueError(f"labels and texts must match: {len(self.labels)} labels for "
                             f"{len(self.inputs['input_ids'])} texts")

    def __len__(self):
        return len(self.inputs["input_ids"])

    def __getitem__(self, i):
        item = {k: v[i] for k, v in self.inputs.items()}
        return item if self.labels is None else (item, self.labels[i])


class _LengthGroupedBatches(torch.utils.data.Sampler):
    """:func:`xfer_helpers.text.length_grouped_batches` as a batch sampler (a new order every epoch)."""

    def __init__(self, lengths, batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = np.asarray(lengths), batch_size, seed, 0

    def __iter__(self):
        for index in length_grouped_batches(self.lengths, self.batch_size, self.seed, self.epoch):
            yield index.tolist()
        self.epoch += 1  # a new order after each full pass

    def __len__(self):
        return -(-len(self.lengths) // self.batch_size)


def _collate_trimmed(items):
    """Default collation, then cut the padding columns that no text in this batch uses."""
    batch = torch.utils.data.default_collate(items)
    inputs = batch[0] if isinstance(batch, (list, tuple)) else batch
    longest = int(inputs["attention_mask"].sum(1).max())
    for key in ("input_ids", "attention_mask"):
        inputs[key] = inputs[key][:, :longest]
    return batch


def text_loader(encodings: dict, labels=None, batch_size: int = 32, shuffle: bool = False,
                seed: int = 0, group_by_length: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader of ``({"input_ids", "attention_mask"}, labels)`` batches (seeded shuffling).

    ``encodings`` comes from :func:`xfer_helpers.text.encode_texts`.
    ``group_by_length=True`` (for training) puts texts of similar length in the same
    batch and cuts each batch to its longest text: the same examples every epoch,
    far fewer padding tokens to compute on (Hugging Face's ``group_by_length``).
    Use it only with masked pooling: padding then changes nothing but the time.

    Example:
        >>> batch = {"input_ids": np.ones((5, 8), np.int64), "attention_mask": np.ones((5, 8), np.int64)}
        >>> inputs, y = next(iter(text_loader(batch, [0, 1, 2, 0, 1], batch_size=2)))
        >>> tuple(inputs["input_ids"].shape), y.tolist()
        ((2, 8), [0, 1])
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
    dataset = _TextDataset(encodings, labels)
    if group_by_length:
        if not shuffle:
            raise ValueError("group_by_length=True reorders the texts; use it for training (shuffle=True), "
                             "not for predictions, which must keep the order")
        lengths = dataset.inputs["attention_mask"].sum(1).numpy()
        return torch.utils.data.DataLoader(dataset, batch_sampler=_LengthGroupedBatches(lengths, batch_size, seed),
                                           collate_fn=_collate_trimmed)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size,
                                       shuffle=shuffle, generator=torch.Generator().manual_seed(seed))


def masked_mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors (N, T, H) over the real tokens only (mask 1) -> (N, H).

    Example:
        >>> hidden = torch.tensor([[[1.0], [3.0], [100.0]]])   # the last token is padding
        >>> masked_mean_pool(hidden, torch.tensor([[1, 1, 0]])).tolist()
        [[2.0]]
    """
    if hidden.dim() != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"expected hidden (N, T, H) and mask (N, T), got {tuple(hidden.shape)} and "
                         f"{tuple(attention_mask.shape)}")
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """(N, T, H) -> (N, H): the [CLS] vector (position 0) or the masked mean.

    Example:
        >>> pool(torch.ones(2, 5, 4), torch.ones(2, 5), "cls").shape
        torch.Size([2, 4])
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    return hidden[:, 0] if pooling == "cls" else masked_mean_pool(hidden, attention_mask)


class TextClassifier(nn.Module):
    """Encoder + pooling ([CLS] or masked mean) + dropout + a new linear ``classifier``.

    ``forward(input_ids, attention_mask)`` returns logits (N, num_classes). The encoder's
    own pooler (dense + tanh on [CLS]) is not used, so it is removed: it would be counted
    as trainable but never get a gradient.

    Example:
        >>> model = TextClassifier(minilm_encoder(), num_classes=3, pooling="mean")  # doctest: +SKIP
        >>> model.classifier                                                       # doctest: +SKIP
        Linear(in_features=384, out_features=3, bias=True)
    """

    def __init__(self, encoder: nn.Module, num_classes: int, pooling: str = "cls", dropout: float = 0.1):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be a whole number of at least 2, got {num_classes!r}")
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None
        self.encoder, self.pooling = encoder, pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_classes)

    def forward(self, input_ids, attention_mask):
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.classifier(self.dropout(pool(hidden, attention_mask, self.pooling)))


@torch.inference_mode()
def encoder_features(encoder: nn.Module, encodings: dict, batch_size: int = 64, by_length: bool = True,
                     progress: bool = True) -> dict[str, np.ndarray]:
    """Run a (frozen) encoder once; return pooled features (N, H) as NumPy, in the input order.

    Keys: ``"cls"`` ([CLS] vector), ``"mean"`` (masked mean) and ``"mean_unmasked"``
    (the mistake: padding averaged in). Train heads on these instead of re-running
    the encoder every epoch. ``by_length=True`` runs the texts longest first with each
    batch cut to its longest text (:func:`xfer_helpers.text.inference_batches`): faster,
    and the masked features do not change; the unmasked mean then averages in the
    padding of that batch, whatever it happens to be.

    Example:
        >>> features = encoder_features(minilm_encoder(), batch)   # doctest: +SKIP
        >>> features["mean"].shape                                 # doctest: +SKIP
        (2000, 384)
    """
    was_training = encoder.training
    encoder.eval()
    tensors = {k: torch.as_tensor(encodings[k]) for k in ("input_ids", "attention_mask")}
    out = {key: np.zeros((len(tensors["input_ids"]), encoder.config.hidden_size), np.float32)
           for key in ("cls", "mean", "mean_unmasked")}
    for index, width in tqdm(inference_batches(encodings["attention_mask"], batch_size, by_length),
                             desc="encoder features", disable=not show_progress(progress, 0), leave=False):
        inputs = {k: v[index, :width] for k, v in tensors.items()}
        hidden = encoder(**inputs).last_hidden_state
        out["cls"][index] = hidden[:, 0].numpy()
        out["mean"][index] = masked_mean_pool(hidden, inputs["attention_mask"]).numpy()
        out["mean_unmasked"][index] = hidden.mean(1).numpy()
    encoder.train(was_training)
    return out


def predict_texts(model: nn.Module, encodings: dict, batch_size: int = 128, probabilities: bool = False,
                  device=None) -> np.ndarray:
    """Logits (or softmax probabilities) of a text classifier for every text, in the input order.

    Like :func:`xfer_helpers.pytorch.predict`, with dynamic padding: the texts run longest
    first, each batch cut to its longest text (:func:`xfer_helpers.text.inference_batches`).
    With masked pooling the answers are those of fully padded batches, only sooner.

    Example:
        >>> predict_texts(model, test_batch, probabilities=True).shape   # doctest: +SKIP
        (1000, 3)
    """
    device = model_device(model, device)
    tensors = {k: torch.as_tensor(encodings[k]) for k in ("input_ids", "attention_mask")}
    out = None
    with eval_mode(model):
        for index, width in inference_batches(encodings["attention_mask"], batch_size):
            logits = forward_logits(model, to_device({k: v[index, :width] for k, v in tensors.items()}, device)).float()
            if out is None:
                out = torch.zeros(len(tensors["input_ids"]), logits.shape[1])
            out[torch.as_tensor(index)] = logits.cpu()
    return (out.softmax(-1) if probabilities else out).numpy()


def train_linear_head(features, labels, num_classes: int, epochs: int = 40, lr: float = 1e-2,
                      batch_size: int = 64, seed: int = 0) -> nn.Linear:
    """Train a linear classifier on fixed (cached) features with AdamW; return it.

    Example:
        >>> head = train_linear_head(np.random.rand(40, 8).astype("float32"), np.arange(40) % 2, 2, epochs=2)
        >>> head.out_features
        2
    """
    from . import fit
    from .data import to_dataloader
    features = np.asarray(features, np.float32)
    torch.manual_seed(seed)
    head = nn.Linear(features.shape[1], num_classes)
    fit(head, to_dataloader(features, np.asarray(labels), batch_size=batch_size, shuffle=True, seed=seed),
        epochs=epochs, lr=lr, progress=False, device="cpu")
    return head.eval()


def warmup_linear_scheduler(optimizer, total_steps: int, warmup_steps: int):
    """LambdaLR with :func:`xfer_helpers.text.warmup_linear`; step it after every update.

    With ``fit(..., scheduler=s, scheduler_step="batch")``. Same values as
    ``transformers.get_linear_schedule_with_warmup``.

    Example:
        >>> opt = torch.optim.AdamW(nn.Linear(2, 2).parameters(), lr=1e-3)
        >>> warmup_linear_scheduler(opt, total_steps=10, warmup_steps=2).get_last_lr()
        [0.0]
    """
    warmup_linear(0, total_steps, warmup_steps)  # checks the arguments now, not at the first step
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_linear(step, total_steps, warmup_steps))


def first_layers_encoder(num_layers: int = 1, name: str = "minilm") -> nn.Module:
    """The pretrained encoder cut to its first ``num_layers`` transformer layers (fast tests).

    Example:
        >>> first_layers_encoder(1).config.num_hidden_layers   # doctest: +SKIP
        1
    """
    from transformers import AutoModel

    from ..pretrained import text_model_dir
    from .models import _quiet_transformers
    if not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers must be at least 1, got {num_layers!r}")
    _quiet_transformers()
    return AutoModel.from_pretrained(text_model_dir(name), num_hidden_layers=num_layers).eval()

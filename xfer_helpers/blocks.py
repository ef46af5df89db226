"""Which blocks to train, framework-neutral: "the last N blocks", and gradual unfreezing's stages.

PyTorch and Keras name their blocks differently, but once each parameter (or
layer) is tagged with the block it belongs to, the rule is the same.

Example:
    >>> select_by_blocks([None, "b1", "b1", "b2", None], ["b1", "b2"], last_blocks=1)
    [3]
    >>> select_by_blocks([None, "b1", "b1", "b2", None], ["b1", "b2"], all_but_last_blocks=1)
    [0, 1, 2]
"""
from __future__ import annotations


def select_by_blocks(block_of: list, blocks: list, last_blocks: int | None = None,
                     all_but_last_blocks: int | None = None, hint: str = "") -> list[int]:
    """Indices of the items selected by ``last_blocks`` and/or ``all_but_last_blocks``.

    ``block_of[i]`` is the block of item i (None outside every block), in model
    order. ``last_blocks=N`` picks the items of the last N blocks;
    ``all_but_last_blocks=N`` picks every item before the first item of the
    N-th block from the end (0: up to the end of the last block). ``hint`` is
    added to the error message for an out-of-range N.
    """
    chosen: list[int] = []
    if last_blocks is not None:
        if not 1 <= last_blocks <= len(blocks):
            raise ValueError(f"last_blocks must be between 1 and {len(blocks)}{hint}, got {last_blocks}")
        chosen += [i for i, b in enumerate(block_of) if b in blocks[-last_blocks:]]
    if all_but_last_blocks is not None:
        if not 0 <= all_but_last_blocks <= len(blocks):
            raise ValueError(f"all_but_last_blocks must be between 0 and {len(blocks)}{hint}, "
                             f"got {all_but_last_blocks}")
        if all_but_last_blocks:
            cut = block_of.index(blocks[-all_but_last_blocks])
        else:  # everything up to the end of the last block
            cut = max(i for i, b in enumerate(block_of) if b is not None) + 1
        chosen += list(range(cut))
    return chosen


def unfreezing_stages(epochs: int, middle_blocks: int = 2) -> list[tuple[int, int | None]]:
    """Gradual unfreezing: ``(epochs, blocks unfrozen)`` for each stage, the epochs shared out.

    First the head alone (0 blocks) for a third of the epochs (at least one), then also the
    last ``middle_blocks`` blocks for half of the rest, then everything (``None``) for what
    is left. With few epochs there are fewer stages: a stage without epochs is dropped.

    Example:
        >>> unfreezing_stages(3), unfreezing_stages(9)
        ([(1, 0), (1, 2), (1, None)], [(3, 0), (3, 2), (3, None)])
        >>> unfreezing_stages(2), unfreezing_stages(1)
        ([(1, 0), (1, None)], [(1, 0)])
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    first = max(1, epochs // 3)
    second = (epochs - first) // 2
    plan = [(first, 0), (second, middle_blocks), (epochs - first - second, None)]
    return [(n, blocks) for n, blocks in plan if n > 0]

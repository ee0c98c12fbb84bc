"""Next-item training examples cut from user sequences, and shuffled mini-batches of them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from recwidgets.data.log import PAD
from recwidgets.errors import ConfigError

WINDOW_POLICIES = ("all", "last")


def next_item_windows(
    sequences: Sequence[np.ndarray], max_len: int, windows: str = "all"
) -> tuple[np.ndarray, np.ndarray]:
    """Cut sequences into left-padded (input, target) rows for next-item prediction.

    A window of ``w + 1`` consecutive items gives the input ``window[:-1]`` and the
    target ``window[1:]``, so position ``t`` is trained to predict the item after it. With
    ``windows="last"`` each user gives one window, the most recent ``max_len + 1`` items (the
    choice of the original SASRec code). With ``windows="all"`` a longer sequence is cut
    from the end into windows that overlap by one item, so every item after the first is a
    target exactly once. Only the first position of each earlier window loses the context
    before it. Sequences with fewer than 2 items give no window.

    Returns two int64 arrays of shape (n_windows, max_len), padded on the left with 0.
    """
    if windows not in WINDOW_POLICIES:
        raise ConfigError(f"windows={windows!r} is invalid; use one of {WINDOW_POLICIES}.")
    if max_len < 1:
        raise ConfigError(f"max_len={max_len} is invalid; pass 1 or more.")

    spans: list[np.ndarray] = []
    for sequence in sequences:
        sequence = np.asarray(sequence, dtype=np.int64)
        end = len(sequence)
        while end >= 2:
            start = max(0, end - max_len - 1)
            spans.append(sequence[start:end])
            if windows == "last":
                break
            # The next window ends at this window's first item, which becomes its last target.
            end = start + 1
            if start == 0:
                break

    inputs = np.full((len(spans), max_len), PAD, dtype=np.int64)
    targets = np.full((len(spans), max_len), PAD, dtype=np.int64)
    for row, span in enumerate(spans):
        width = len(span) - 1
        inputs[row, max_len - width :] = span[:-1]
        targets[row, max_len - width :] = span[1:]
    return inputs, targets


def iterate_batches(
    inputs: np.ndarray,
    targets: np.ndarray,
    batch_size: int,
    rng: np.random.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (inputs, targets) CPU tensor pairs of at most ``batch_size`` rows.

    Rows are shuffled with ``rng`` when one is given; the last batch may be smaller.
    """
    order = rng.permutation(len(inputs)) if rng is not None else np.arange(len(inputs))
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        yield torch.from_numpy(inputs[index]), torch.from_numpy(targets[index])

"""Self-attention weights of a sequential recommender: extraction, tidy data and aggregates.

Any wrapped model that follows the model protocol and also has
``attention(histories) -> list[Tensor]`` (one (B, H, L, L) tensor of softmax weights per
layer, query rows over key columns, computed in eval mode) can be read here, for example
:class:`recwidgets.models.sasrec.SASRec` (Kang and McAuley, "Self-Attentive Sequential
Recommendation", ICDM 2018).

Histories are left-padded with item id 0 to the model's ``max_len``, so column ``j`` of a
history of ``n`` items is a real item when ``j >= L - n``. A *valid* query or key is a
non-padding column. The *context* of a valid query ``q`` is the set of valid keys
``k <= q``, which is what a causal model may look at. ``q - k`` is the distance, 0 being
the query's own position.

The aggregates (recency profile, popularity buckets, entropy, first-position mass, head
similarity) are accumulated batch by batch, so they run over thousands of users without
holding every (U, layers, H, L, L) array in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from recwidgets.data.log import PAD
from recwidgets.data.split import Split
from recwidgets.errors import ConfigError
from recwidgets.models.base import pad_histories

logger = logging.getLogger(__name__)

#: Users per forward pass. At L=200, 2 layers and 2 heads one batch of weights is ~41 MB.
DEFAULT_BATCH_SIZE = 64

#: Weights per chunk of the aggregate computations (4M float64 values = 32 MB per temporary).
CHUNK_ELEMENTS = 4_000_000

__all__ = [
    "AttentionProfile",
    "AttentionResult",
    "attention_data",
    "attention_profile",
    "attention_weights",
    "compare_attention",
    "first_position_mass",
    "head_entropy",
    "head_similarity",
    "popularity_buckets",
    "popularity_profile",
    "recency_profile",
]


# ---------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class AttentionResult:
    """Attention weights of a set of users, with the padded histories they were computed on.

    ``weights`` is float32 of shape (U, n_layers, H, L, L): ``weights[u, l, h, q, k]`` is
    how much query position ``q`` attends to key position ``k`` in layer ``layers[l]`` and
    head ``h``. ``histories`` is the (U, L) int64 array of left-padded item ids the model
    read (padding 0). ``lengths`` is the number of valid (non-padding) columns per user,
    and ``truncated`` how many older items were cut off because the history was longer than
    the model's ``max_len``. ``users`` contains internal user ids, or the row index of each
    history when raw histories were passed.
    """

    weights: np.ndarray
    histories: np.ndarray
    lengths: np.ndarray
    users: np.ndarray
    layers: tuple[int, ...]
    truncated: np.ndarray = field(default=None)

    def __post_init__(self):
        if self.weights.ndim != 5:
            raise ConfigError(
                f"attention weights must have shape (U, layers, heads, L, L); got {self.weights.shape}."
            )
        n_users, n_layers, _, width, width_keys = self.weights.shape
        if width != width_keys or self.histories.shape != (n_users, width):
            raise ConfigError(
                f"attention weights of shape {self.weights.shape} do not match histories of shape "
                f"{self.histories.shape}; expected histories of shape ({n_users}, {width})."
            )
        if len(self.layers) != n_layers:
            raise ConfigError(f"layers={self.layers} names {len(self.layers)} layers but weights hold {n_layers}.")
        if self.truncated is None:
            object.__setattr__(self, "truncated", np.zeros(n_users, dtype=np.int64))

    @classmethod
    def from_array(cls, weights, histories, *, users=None, layers=None) -> "AttentionResult":
        """Wrap a hand-made (U, layers, H, L, L) array and its (U, L) left-padded histories."""
        weights = np.asarray(weights, dtype=np.float32)
        histories = np.asarray(histories, dtype=np.int64)
        return cls(
            weights=weights,
            histories=histories,
            lengths=_valid_lengths(histories),
            users=np.arange(len(histories)) if users is None else np.asarray(users, dtype=np.int64),
            layers=tuple(range(weights.shape[1])) if layers is None else tuple(int(layer) for layer in layers),
        )

    @property
    def n_heads(self) -> int:
        """Number of heads per layer."""
        return int(self.weights.shape[2])

    @property
    def width(self) -> int:
        """Padded history length L."""
        return int(self.weights.shape[3])

    @property
    def valid(self) -> np.ndarray:
        """Boolean (U, L) mask of non-padding columns."""
        return _valid_mask(self.lengths, self.width)

    @property
    def positions(self) -> np.ndarray:
        """Position of each column within the model's window, shape (U, L); -1 for padding.

        Position 0 is the oldest item the model read; add ``truncated`` for the position
        in the user's full history.
        """
        return _positions(self.lengths, self.width)


def _valid_lengths(histories: np.ndarray) -> np.ndarray:
    """Return the number of non-padding ids per left-padded row."""
    return (np.asarray(histories) != PAD).sum(axis=1).astype(np.int64)


def _valid_mask(lengths: np.ndarray, width: int) -> np.ndarray:
    """Return (U, L) booleans that mark the last ``lengths[u]`` columns of each row."""
    return np.arange(width)[None, :] >= (width - np.asarray(lengths))[:, None]


def _positions(lengths: np.ndarray, width: int) -> np.ndarray:
    starts = width - np.asarray(lengths)
    positions = np.arange(width)[None, :] - starts[:, None]
    return np.where(positions >= 0, positions, -1).astype(np.int64)


def _require_attention(model) -> None:
    if not callable(getattr(model, "attention", None)):
        raise ConfigError(
            f"{type(model).__name__} has no attention(histories) method, so its attention weights "
            "cannot be read; use a self-attention model such as recwidgets.models.sasrec.SASRec, or add "
            "attention(histories) returning one (B, heads, L, L) tensor per layer."
        )


def _is_id(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def resolve_histories(
    inputs, *, split: Split | None = None, part: str = "test"
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Turn user ids or histories into (row ids, list of chronological item-id arrays).

    ``inputs`` is one internal user id, a sequence of user ids, a list of item-id sequences,
    or a 2-D array or tensor of left-padded histories. User ids are looked up in the
    ``part`` evaluation set of ``split``, whose histories are what the model reads to
    predict that part's targets. For histories the row ids are 0..U-1.
    """
    if _is_id(inputs):
        inputs = [int(inputs)]
    if isinstance(inputs, torch.Tensor):
        inputs = inputs.detach().cpu().numpy()
    if isinstance(inputs, np.ndarray) and inputs.ndim == 2:
        histories = [row[row != PAD].astype(np.int64) for row in inputs]
        return np.arange(len(histories), dtype=np.int64), histories
    if isinstance(inputs, np.ndarray) and inputs.ndim == 1 and not np.issubdtype(inputs.dtype, np.integer):
        if inputs.dtype != object:
            raise ConfigError(f"user ids must be integers; got an array of dtype {inputs.dtype}.")
    if not isinstance(inputs, (Sequence, np.ndarray)) or isinstance(inputs, (str, bytes)):
        raise ConfigError(
            f"expected user ids or histories, got {type(inputs).__name__}; pass an int, a list of "
            "internal user ids, a list of item-id sequences or a (U, L) array of left-padded histories."
        )
    if len(inputs) == 0:
        raise ConfigError("no users or histories given; pass at least one.")

    if all(_is_id(value) for value in inputs):
        if split is None:
            raise ConfigError(
                f"user ids {list(inputs)[:5]} need split= to look up their histories; "
                "pass the Split, or pass the item-id histories themselves."
            )
        evalset = split.part(part)
        row_of = {int(user): row for row, user in enumerate(evalset.users)}
        missing = [int(user) for user in inputs if int(user) not in row_of]
        if missing:
            raise ConfigError(
                f"user(s) {missing[:5]} are not in the {part} set of this split "
                f"({len(evalset)} users, ids {int(evalset.users.min())}..{int(evalset.users.max())}); "
                "pass internal user ids from split.{part}.users."
            )
        histories = [np.asarray(evalset.histories[row_of[int(user)]], dtype=np.int64) for user in inputs]
        return np.asarray([int(user) for user in inputs], dtype=np.int64), histories

    histories = []
    for row, history in enumerate(inputs):
        if _is_id(history) or isinstance(history, (str, bytes)):
            raise ConfigError(
                f"inputs mix user ids and histories (row {row} is {history!r}); pass only one kind."
            )
        array = np.asarray(history, dtype=np.int64)
        if array.ndim != 1:
            raise ConfigError(f"history {row} has shape {array.shape}; each history must be 1-D item ids.")
        histories.append(array[array != PAD])
    return np.arange(len(histories), dtype=np.int64), histories


def _window(model, histories: list[np.ndarray]) -> tuple[int, list[np.ndarray], np.ndarray]:
    """Return the padded width, the truncated histories and how many items each lost."""
    max_len = getattr(model, "max_len", None)
    width = max_len if max_len is not None else max(max((len(history) for history in histories), default=0), 1)
    kept = [history[-width:] for history in histories]
    truncated = np.asarray([len(history) - len(tail) for history, tail in zip(histories, kept)], dtype=np.int64)
    return int(width), kept, truncated


def _layer_index(layers, n_layers: int) -> list[int]:
    if layers is None:
        return list(range(n_layers))
    if _is_id(layers):
        layers = [layers]
    chosen = []
    for layer in layers:
        if not _is_id(layer) or not -n_layers <= int(layer) < n_layers:
            raise ConfigError(f"layer {layer!r} is out of range; the model has {n_layers} layer(s), 0..{n_layers - 1}.")
        chosen.append(int(layer) % n_layers)
    return chosen


def _forward(model, padded: torch.Tensor, layers) -> tuple[np.ndarray, tuple[int, ...]]:
    """Run ``model.attention`` on one padded batch; return (B, layers, H, L, L) float32."""
    with torch.no_grad():
        maps = model.attention(padded.to(model.device))
    if isinstance(maps, torch.Tensor):
        maps = [maps]
    if len(maps) == 0:
        raise ConfigError(f"{type(model).__name__}.attention returned no layers; expected one tensor per layer.")
    batch, width = padded.shape
    for index, layer_map in enumerate(maps):
        if layer_map.ndim != 4 or layer_map.shape[0] != batch or layer_map.shape[2:] != (width, width):
            raise ConfigError(
                f"{type(model).__name__}.attention returned shape {tuple(layer_map.shape)} for layer {index}; "
                f"expected (batch, heads, L, L) = ({batch}, heads, {width}, {width})."
            )
        if layer_map.shape[1] != maps[0].shape[1]:
            raise ConfigError(
                f"layers have different head counts ({maps[0].shape[1]} and {layer_map.shape[1]}); "
                "attention extraction stacks layers and needs the same count in each."
            )
    chosen = _layer_index(layers, len(maps))

    # One (B, H, L, L) map per chosen layer, stacked to (B, layers, H, L, L) on the CPU.
    stacked = torch.stack([maps[layer].detach().float() for layer in chosen], dim=1)
    return stacked.cpu().numpy(), tuple(chosen)


def _batches(model, inputs, *, split, part, batch_size, layers):
    """Yield (row ids, padded (B, L) int64 array, lengths, truncated, weights, layers) per batch."""
    _require_attention(model)
    if not _is_id(batch_size) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} is invalid; pass a positive int such as {DEFAULT_BATCH_SIZE}.")
    ids, histories = resolve_histories(inputs, split=split, part=part)
    width, kept, truncated = _window(model, histories)
    for start in range(0, len(kept), batch_size):
        stop = start + batch_size
        padded = pad_histories(kept[start:stop], width)
        weights, chosen = _forward(model, padded, layers)
        padded_numpy = padded.numpy()
        yield ids[start:stop], padded_numpy, _valid_lengths(padded_numpy), truncated[start:stop], weights, chosen


def attention_weights(
    model,
    users,
    *,
    split: Split | None = None,
    part: str = "test",
    layers=None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> AttentionResult:
    """Compute the attention weights of ``model`` for some users or histories.

    ``users`` is an internal user id, a sequence of them (their ``part`` histories are taken
    from ``split``), a list of item-id histories, or a (U, L) array of left-padded histories.
    Histories longer than ``model.max_len`` keep their most recent items. ``layers`` selects
    layers by index (default all). The forward passes run on ``model.device`` in batches of
    ``batch_size``; the result is on the CPU as float32 with shape (U, layers, H, L, L).
    """
    parts = list(_batches(model, users, split=split, part=part, batch_size=batch_size, layers=layers))
    ids = np.concatenate([batch[0] for batch in parts])
    return AttentionResult(
        weights=np.concatenate([batch[4] for batch in parts]),
        histories=np.concatenate([batch[1] for batch in parts]),
        lengths=np.concatenate([batch[2] for batch in parts]),
        users=ids,
        layers=parts[0][5],
        truncated=np.concatenate([batch[3] for batch in parts]),
    )


def attention_data(
    source,
    users=None,
    *,
    split: Split | None = None,
    part: str = "test",
    layers=None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> pd.DataFrame:
    """Return attention weights as a tidy DataFrame with one row per valid query/key pair.

    ``source`` is an :class:`AttentionResult` or a model (then ``users`` and ``split`` are
    passed to :func:`attention_weights`). Columns: ``user``, ``layer``, ``head``,
    ``query_pos`` and ``key_pos`` (0 = oldest item the model read), ``query_item``,
    ``item`` (the key item) and ``weight``. Pairs with a padding query or key are left
    out; pairs with a key after the query are kept, so a causal leak shows up.
    """
    result = _as_result(source, users, split=split, part=part, layers=layers, batch_size=batch_size)
    n_users, n_layers, n_heads, width, _ = result.weights.shape
    valid = result.valid
    pair = valid[:, :, None] & valid[:, None, :]

    # (U, L, L) pair mask broadcast over layers and heads, then flattened in C order.
    mask = np.broadcast_to(pair[:, None, None, :, :], result.weights.shape)
    user_row, layer_row, head, query, key = np.nonzero(mask)
    positions = result.positions
    return pd.DataFrame(
        {
            "user": result.users[user_row],
            "layer": np.asarray(result.layers, dtype=np.int64)[layer_row],
            "head": head.astype(np.int64),
            "query_pos": positions[user_row, query],
            "key_pos": positions[user_row, key],
            "query_item": result.histories[user_row, query],
            "item": result.histories[user_row, key],
            "weight": result.weights[mask],
        }
    )


def _as_result(source, users, **options) -> AttentionResult:
    if isinstance(source, AttentionResult):
        if users is not None:
            raise ConfigError("users= is only used with a model; an AttentionResult already contains its users.")
        return source
    if users is None:
        raise ConfigError(f"pass users= (ids or histories) to read the attention of {type(source).__name__}.")
    return attention_weights(source, users, **options)


# ---------------------------------------------------------------------------------------
# Aggregates over many users
# ---------------------------------------------------------------------------------------


def popularity_buckets(popularity, n_buckets: int = 5) -> tuple[np.ndarray, pd.DataFrame]:
    """Split the catalog into ``n_buckets`` equal-size groups of items by popularity rank.

    ``popularity`` is the interaction count per internal item id, shape (n_items + 1,),
    index 0 being padding (for example ``split.train_popularity()``). Items are ranked by
    count (ties by id, so the split is deterministic), bucket 0 holding the least popular.
    Returns the bucket of each item id (-1 for padding) and a table with each bucket's item
    count, count range and share of all interactions.
    """
    popularity = np.asarray(popularity)
    if popularity.ndim != 1 or len(popularity) < 2:
        raise ConfigError(
            f"popularity must be a 1-D array of counts per item id with index 0 for padding; got shape {popularity.shape}."
        )
    n_items = len(popularity) - 1
    if not _is_id(n_buckets) or not 1 <= n_buckets <= n_items:
        raise ConfigError(f"n_buckets={n_buckets!r} is invalid; pass an int between 1 and the {n_items} items.")

    counts = popularity[1:]
    order = np.argsort(counts, kind="stable") + 1
    bucket_of = np.full(n_items + 1, -1, dtype=np.int64)
    rows = []
    total = max(float(counts.sum()), 1.0)
    for bucket, members in enumerate(np.array_split(order, n_buckets)):
        bucket_of[members] = bucket
        member_counts = popularity[members]
        rows.append(
            {
                "bucket": bucket,
                "n_items": len(members),
                "min_count": int(member_counts.min()),
                "max_count": int(member_counts.max()),
                "interaction_share": float(member_counts.sum()) / total,
            }
        )
    return bucket_of, pd.DataFrame(rows)


def _js_distance(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (base 2, in [0, 1]) between rows of two arrays along the last axis."""
    middle = 0.5 * (first + second)

    def kl(p):
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * (np.log2(np.where(p > 0, p, 1.0)) - np.log2(np.where(middle > 0, middle, 1.0))), 0.0)
        return terms.sum(axis=-1)

    divergence = 0.5 * kl(first) + 0.5 * kl(second)
    return np.sqrt(np.clip(divergence, 0.0, 1.0))


@dataclass(frozen=True, eq=False)
class AttentionProfile:
    """Attention statistics accumulated over many users.

    Tables, all per ``layer`` and ``head``:

    * ``heads``: ``entropy`` (nats) and ``normalized_entropy`` (entropy divided by the log of
      the query's context size, 0 = one key, 1 = uniform), ``first_mass`` (weight on the
      oldest valid item) with ``first_mass_uniform`` (the same under uniform attention),
      ``own_mass`` (weight on the query's own position), ``own_mass_last`` (the same for
      the last query, the one that produces the scores, of histories with at least
      ``min_keys`` items), ``uniform_distance`` (total
      variation distance to uniform weights over the context, 0 = exactly uniform),
      ``mean_distance`` (mean of query minus key, weighted by attention) and ``n_queries`` (queries with at least ``min_keys`` context keys, which these means use).
    * ``recency`` and ``recency_last``: ``mass`` per ``distance`` (query minus key) over all
      valid queries, or over the last query of histories with at least ``min_keys`` items. Masses over distances sum to 1 per head
      for a causal model; weight on future keys is counted in ``faults`` instead.
    * ``popularity``: ``mass`` per popularity ``bucket`` of the key item, with
      ``uniform_mass`` (the mass under uniform attention over the context) as a baseline;
      ``None`` without popularity counts.
    * ``head_pairs``: mean Jensen-Shannon distance (base 2) between two heads of a layer on
      the same query.
    * ``faults``: the largest weight sum on padding keys (``padding_mass``) and on valid
      future keys (``future_mass``) over all valid queries with the user that has it,
      ``non_finite`` values in valid query rows and ``row_sum_error`` (largest
      ``|sum - 1|`` of a valid query row).
    """

    heads: pd.DataFrame
    recency: pd.DataFrame
    recency_last: pd.DataFrame
    popularity: pd.DataFrame | None
    buckets: pd.DataFrame | None
    head_pairs: pd.DataFrame
    faults: pd.DataFrame
    users: np.ndarray
    layers: tuple[int, ...]
    n_heads: int
    width: int
    min_keys: int


class _ProfileAccumulator:
    """Running sums behind :class:`AttentionProfile`, fed one batch at a time."""

    def __init__(self, n_layers: int, n_heads: int, width: int, *, min_keys: int, bucket_of: np.ndarray | None):
        self.shape = (n_layers, n_heads)
        self.width = width
        self.min_keys = min_keys
        self.bucket_of = bucket_of
        self.n_buckets = 0 if bucket_of is None else int(bucket_of.max()) + 1
        zeros = lambda *extra: np.zeros(self.shape + extra)  # noqa: E731
        self.recency = zeros(width)
        self.recency_last = zeros(width)
        self.n_valid_queries = 0
        self.n_last = 0
        self.entropy = zeros()
        self.normalized_entropy = zeros()
        self.first_mass = zeros()
        self.own_mass = zeros()
        self.uniform_distance = zeros()
        self.first_uniform = 0.0
        self.n_context_queries = 0
        self.bucket_mass = zeros(max(self.n_buckets, 1))
        self.bucket_uniform = np.zeros(max(self.n_buckets, 1))
        self.pair_distance = {}
        self.padding_mass = zeros()
        self.padding_user = np.full(self.shape, -1, dtype=np.int64)
        self.future_mass = zeros()
        self.future_user = np.full(self.shape, -1, dtype=np.int64)
        self.non_finite = np.zeros(self.shape, dtype=np.int64)
        self.row_sum_error = zeros()
        self.users = []

    def add(self, ids: np.ndarray, histories: np.ndarray, lengths: np.ndarray, weights: np.ndarray) -> None:
        """Add one batch, in chunks small enough that the float64 temporaries stay near 32 MB each."""
        self.users.append(ids)
        per_user = max(int(np.prod(weights.shape[1:])), 1)
        step = max(1, CHUNK_ELEMENTS // per_user)
        for start in range(0, len(ids), step):
            stop = start + step
            self._add_chunk(ids[start:stop], histories[start:stop], lengths[start:stop], weights[start:stop])

    def _add_chunk(self, ids: np.ndarray, histories: np.ndarray, lengths: np.ndarray, weights: np.ndarray) -> None:
        width = weights.shape[3]
        valid = _valid_mask(lengths, width)
        finite = np.isfinite(weights)
        clean = np.where(finite, weights, 0.0).astype(np.float64)

        # Masks of shape (B, L, L): key columns over query rows.
        lower = np.tril(np.ones((width, width), dtype=bool))
        context = valid[:, :, None] & valid[:, None, :] & lower[None]
        future = valid[:, :, None] & valid[:, None, :] & ~lower[None]
        n_context = context.sum(axis=-1)
        query_valid = valid[:, None, None, :]
        self.n_valid_queries += int(valid.sum())
        self._add_faults(ids, valid, finite, clean, future, query_valid)

        # Recency: diagonal -d contains the pairs (q = k + d, k), so its key column decides validity.
        for distance in range(width):
            diagonal = np.diagonal(clean, offset=-distance, axis1=3, axis2=4)
            key_valid = valid[:, : width - distance]
            self.recency[..., distance] += (diagonal * key_valid[:, None, None, :]).sum(axis=(0, 3))
        # The last query of a history shorter than ``min_keys`` has no choice to make.
        has_items = lengths >= max(self.min_keys, 1)
        last_rows = clean[has_items, :, :, -1, ::-1]
        self.recency_last += (last_rows * valid[has_items, None, None, ::-1]).sum(axis=0)
        self.n_last += int(has_items.sum())

        # Entropy over valid keys, normalised by the log of the context size.
        enough = valid & (n_context >= max(self.min_keys, 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            plogp = np.where(clean > 0, clean * np.log(np.where(clean > 0, clean, 1.0)), 0.0)
        entropy = -(plogp * valid[:, None, None, None, :]).sum(axis=-1)
        normalizer = np.log(np.maximum(n_context, 2))[:, None, None, :]
        mask = enough[:, None, None, :]
        self.entropy += np.where(mask, entropy, 0.0).sum(axis=(0, 3))
        self.normalized_entropy += np.where(mask, entropy / normalizer, 0.0).sum(axis=(0, 3))
        self.n_context_queries += int(enough.sum())

        starts = width - lengths
        first = np.take_along_axis(clean, np.clip(starts, 0, width - 1)[:, None, None, None, None], axis=4)[..., 0]
        self.first_mass += np.where(mask, first, 0.0).sum(axis=(0, 3))
        self.first_uniform += float(np.where(enough, 1.0 / np.maximum(n_context, 1), 0.0).sum())
        own = np.diagonal(clean, axis1=3, axis2=4)
        self.own_mass += np.where(mask, own, 0.0).sum(axis=(0, 3))

        # Total variation distance to uniform weights over the context (0 = exactly uniform).
        uniform = context / np.maximum(n_context, 1)[:, :, None]
        distance_to_uniform = 0.5 * np.abs(clean - uniform[:, None, None]).sum(axis=-1)
        self.uniform_distance += np.where(mask, distance_to_uniform, 0.0).sum(axis=(0, 3))

        if self.bucket_of is not None:
            self._add_buckets(histories, valid, clean, context, n_context)

        for layer in range(self.shape[0]):
            for head_a in range(self.shape[1]):
                for head_b in range(head_a + 1, self.shape[1]):
                    distance = _js_distance(clean[:, layer, head_a], clean[:, layer, head_b])
                    key = (layer, head_a, head_b)
                    self.pair_distance[key] = self.pair_distance.get(key, 0.0) + float(distance[enough].sum())

    def _add_faults(self, ids, valid, finite, clean, future, query_valid) -> None:
        padding_keys = ~valid
        padding = np.where(query_valid, (clean * padding_keys[:, None, None, None, :]).sum(axis=-1), 0.0)
        leaked = np.where(query_valid, (clean * future[:, None, None, :, :]).sum(axis=-1), 0.0)
        row_error = np.where(query_valid, np.abs(clean.sum(axis=-1) - 1.0), 0.0)
        self.non_finite += (~finite & query_valid[..., None]).sum(axis=(0, 3, 4))
        self.row_sum_error = np.maximum(self.row_sum_error, row_error.max(axis=(0, 3)))
        for values, best, owner in ((padding, self.padding_mass, self.padding_user), (leaked, self.future_mass, self.future_user)):
            per_user = values.max(axis=3)
            batch_best = per_user.max(axis=0)
            better = batch_best > best
            owner[better] = ids[per_user.argmax(axis=0)][better]
            best[better] = batch_best[better]

    def _add_buckets(self, histories, valid, clean, context, n_context) -> None:
        key_bucket = np.where(valid, self.bucket_of[histories], -1)

        # One-hot (B, L, buckets), so the matmul sums the weight per bucket: (B, layers, H, L, buckets).
        onehot = (key_bucket[:, :, None] == np.arange(self.n_buckets)[None, None, :]).astype(np.float64)
        per_bucket = clean @ onehot[:, None, None, :, :]
        self.bucket_mass += (per_bucket * valid[:, None, None, :, None]).sum(axis=(0, 3))

        in_context = np.einsum("bqk,bkn->bqn", context.astype(np.float64), onehot)
        share = in_context / np.maximum(n_context, 1)[:, :, None]
        self.bucket_uniform += (share * valid[:, :, None]).sum(axis=(0, 1))

    def finish(self, layers: tuple[int, ...], buckets: pd.DataFrame | None) -> AttentionProfile:
        n_layers, n_heads = self.shape
        grid = pd.MultiIndex.from_product([layers, range(n_heads)], names=["layer", "head"]).to_frame(index=False)
        queries = max(self.n_context_queries, 1)
        valid_queries = max(self.n_valid_queries, 1)
        recency = self.recency / valid_queries
        distances = np.arange(self.width)
        heads = grid.assign(
            entropy=(self.entropy / queries).ravel(),
            normalized_entropy=(self.normalized_entropy / queries).ravel(),
            first_mass=(self.first_mass / queries).ravel(),
            first_mass_uniform=self.first_uniform / queries,
            own_mass=(self.own_mass / queries).ravel(),
            own_mass_last=(self.recency_last[..., 0] / max(self.n_last, 1)).ravel(),
            uniform_distance=(self.uniform_distance / queries).ravel(),
            mean_distance=((recency * distances).sum(axis=-1) / np.maximum(recency.sum(axis=-1), 1e-12)).ravel(),
            n_queries=self.n_context_queries,
        )

        def per_distance(values: np.ndarray) -> pd.DataFrame:
            frame = grid.loc[grid.index.repeat(self.width)].reset_index(drop=True)
            return frame.assign(distance=np.tile(distances, n_layers * n_heads), mass=values.reshape(-1))

        popularity = None
        if self.bucket_of is not None:
            popularity = grid.loc[grid.index.repeat(self.n_buckets)].reset_index(drop=True)
            popularity = popularity.assign(
                bucket=np.tile(np.arange(self.n_buckets), n_layers * n_heads),
                mass=(self.bucket_mass / valid_queries).reshape(-1),
                uniform_mass=np.tile(self.bucket_uniform / valid_queries, n_layers * n_heads),
            )

        pair_rows = [
            {"layer": layers[layer], "head_a": head_a, "head_b": head_b, "js_distance": total / queries}
            for (layer, head_a, head_b), total in sorted(self.pair_distance.items())
        ]
        head_pairs = pd.DataFrame(pair_rows, columns=["layer", "head_a", "head_b", "js_distance"])
        faults = grid.assign(
            padding_mass=self.padding_mass.ravel(),
            padding_user=self.padding_user.ravel(),
            future_mass=self.future_mass.ravel(),
            future_user=self.future_user.ravel(),
            non_finite=self.non_finite.ravel(),
            row_sum_error=self.row_sum_error.ravel(),
        )
        return AttentionProfile(
            heads=heads,
            recency=per_distance(recency),
            recency_last=per_distance(self.recency_last / max(self.n_last, 1)),
            popularity=popularity,
            buckets=buckets,
            head_pairs=head_pairs,
            faults=faults,
            users=np.concatenate(self.users) if self.users else np.zeros(0, dtype=np.int64),
            layers=layers,
            n_heads=n_heads,
            width=self.width,
            min_keys=self.min_keys,
        )


def _result_batches(result: AttentionResult, batch_size: int):
    for start in range(0, len(result.users), batch_size):
        stop = start + batch_size
        yield (
            result.users[start:stop],
            result.histories[start:stop],
            result.lengths[start:stop],
            result.truncated[start:stop],
            result.weights[start:stop],
            result.layers,
        )


def _source_batches(source, users, *, split, part, layers, batch_size):
    if isinstance(source, AttentionResult):
        if users is not None:
            raise ConfigError("users= is only used with a model; an AttentionResult already contains its users.")
        return _result_batches(source, batch_size)
    if users is None:
        raise ConfigError(f"pass users= (ids or histories) to read the attention of {type(source).__name__}.")
    return _batches(source, users, split=split, part=part, batch_size=batch_size, layers=layers)


def attention_profile(
    source,
    users=None,
    *,
    split: Split | None = None,
    part: str = "test",
    popularity=None,
    n_buckets: int = 5,
    min_keys: int = 2,
    layers=None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> AttentionProfile:
    """Accumulate attention statistics over many users in one batched pass.

    ``source`` is a model (with ``users`` as for :func:`attention_weights`) or an
    :class:`AttentionResult`. ``popularity`` (counts per item id) defaults to the training
    popularity of ``split``; without either the popularity table is ``None``. Entropy,
    first-position mass, own-position mass and head similarity average over valid queries
    with at least ``min_keys`` keys in their context, because a query that sees one key
    has no choice to make.
    """
    if not _is_id(min_keys) or min_keys < 1:
        raise ConfigError(f"min_keys={min_keys!r} is invalid; pass an int >= 1.")
    if popularity is None and split is not None:
        popularity = split.train_popularity()
    bucket_of, buckets = (None, None) if popularity is None else popularity_buckets(popularity, n_buckets)

    accumulator = None
    chosen = ()
    for ids, histories, lengths, _, weights, chosen in _source_batches(
        source, users, split=split, part=part, layers=layers, batch_size=batch_size
    ):
        if accumulator is None:
            accumulator = _ProfileAccumulator(
                weights.shape[1], weights.shape[2], weights.shape[3], min_keys=min_keys, bucket_of=bucket_of
            )
        if bucket_of is not None and histories.max(initial=0) >= len(bucket_of):
            raise ConfigError(
                f"history item id {int(histories.max())} is outside the popularity array of {len(bucket_of)} ids; "
                "pass counts for every item id of the model's catalog."
            )
        accumulator.add(ids, histories, lengths, weights)
    if accumulator is None:
        raise ConfigError("no users or histories given; pass at least one.")
    logger.debug("attention profile over %d users", sum(len(ids) for ids in accumulator.users))
    return accumulator.finish(tuple(chosen), buckets)


def recency_profile(source, users=None, *, query: str = "all", **options) -> pd.DataFrame:
    """Return attention mass per distance from the query (0 = own position), per layer and head.

    ``query="all"`` averages over every valid query; ``query="last"`` uses only the last
    position, whose output the model turns into scores. Other options are those of
    :func:`attention_profile`.
    """
    if query not in ("all", "last"):
        raise ConfigError(f"query={query!r} is invalid; use 'all' or 'last'.")
    profile = attention_profile(source, users, **options)
    return profile.recency if query == "all" else profile.recency_last


def popularity_profile(source, users=None, *, popularity=None, n_buckets: int = 5, **options) -> pd.DataFrame:
    """Return attention mass per popularity bucket of the key item, with the uniform baseline.

    Buckets come from :func:`popularity_buckets` (bucket 0 = least popular); their count
    ranges are in the ``min_count`` and ``max_count`` columns.
    """
    profile = attention_profile(source, users, popularity=popularity, n_buckets=n_buckets, **options)
    if profile.popularity is None:
        raise ConfigError("popularity_profile needs item counts; pass split= or popularity=.")
    return profile.popularity.merge(profile.buckets[["bucket", "min_count", "max_count"]], on="bucket")


def head_entropy(source, users=None, **options) -> pd.DataFrame:
    """Return the mean attention entropy per head, raw (nats) and normalised to [0, 1]."""
    profile = attention_profile(source, users, **options)
    return profile.heads[["layer", "head", "entropy", "normalized_entropy", "n_queries"]]


def first_position_mass(source, users=None, **options) -> pd.DataFrame:
    """Return the mean weight on the oldest valid item per head, with the uniform baseline."""
    profile = attention_profile(source, users, **options)
    return profile.heads[["layer", "head", "first_mass", "first_mass_uniform", "n_queries"]]


def head_similarity(source, users=None, **options) -> pd.DataFrame:
    """Return the mean Jensen-Shannon distance between each pair of heads of a layer."""
    return attention_profile(source, users, **options).head_pairs


def compare_attention(
    first,
    second,
    users=None,
    *,
    split: Split | None = None,
    part: str = "test",
    labels: tuple[str, str] = ("a", "b"),
    min_keys: int = 2,
    layers=None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> pd.DataFrame:
    """Compare the attention of two models (or two checkpoints) on the same users, per head.

    ``first`` and ``second`` are models, or two :class:`AttentionResult` objects over the
    same histories. Both must have the same layer and head counts. When their ``max_len``
    differ, both read the histories cut to the shorter window. Returns one row per layer
    and head: ``js_distance`` (mean Jensen-Shannon distance between the two models' rows
    for the same query) and, for each of normalised entropy, own-position mass,
    first-position mass and mean distance, the value per model (suffixed with ``labels``)
    and ``<name>_diff`` = second minus first.
    """
    if isinstance(first, AttentionResult) != isinstance(second, AttentionResult):
        raise ConfigError("compare two models or two AttentionResult objects, not one of each.")
    if isinstance(first, AttentionResult):
        if users is not None:
            raise ConfigError("users= is only used with models; AttentionResult objects already hold their users.")
        if not np.array_equal(first.histories, second.histories):
            raise ConfigError("the two AttentionResult objects were computed on different histories; use the same users.")
        first_result, second_result = first, second
    else:
        if users is None:
            raise ConfigError("pass users= (ids or histories) to compare two models.")
        _require_attention(first)
        _require_attention(second)
        ids, histories = resolve_histories(users, split=split, part=part)
        width = min(_window(first, histories)[0], _window(second, histories)[0])
        common = [history[-width:] for history in histories]
        first_result = attention_weights(first, common, layers=layers, batch_size=batch_size)
        second_result = attention_weights(second, common, layers=layers, batch_size=batch_size)
        first_result, second_result = (_crop(result, width, ids) for result in (first_result, second_result))
    if first_result.weights.shape[1:3] != second_result.weights.shape[1:3]:
        raise ConfigError(
            f"the models differ in layers x heads ({first_result.weights.shape[1:3]} vs "
            f"{second_result.weights.shape[1:3]}); compare models of the same architecture."
        )

    first_profile = attention_profile(first_result, min_keys=min_keys, batch_size=batch_size)
    second_profile = attention_profile(second_result, min_keys=min_keys, batch_size=batch_size)

    # Mean JS distance between the two models' rows of the same valid query.
    lower = np.tril(np.ones((first_result.width,) * 2, dtype=bool))
    valid = first_result.valid
    context = (valid[:, :, None] & valid[:, None, :] & lower[None]).sum(axis=-1)
    enough = valid & (context >= max(min_keys, 2))
    distance = _js_distance(first_result.weights.astype(np.float64), second_result.weights.astype(np.float64))
    js = np.where(enough[:, None, None, :], distance, 0.0).sum(axis=(0, 3)) / max(int(enough.sum()), 1)

    table = first_profile.heads[["layer", "head"]].copy()
    table["js_distance"] = js.ravel()
    for name in ("normalized_entropy", "own_mass", "first_mass", "mean_distance"):
        table[f"{name}_{labels[0]}"] = first_profile.heads[name].to_numpy()
        table[f"{name}_{labels[1]}"] = second_profile.heads[name].to_numpy()
        table[f"{name}_diff"] = table[f"{name}_{labels[1]}"] - table[f"{name}_{labels[0]}"]
    return table


def _crop(result: AttentionResult, width: int, ids: np.ndarray) -> AttentionResult:
    """Keep the last ``width`` columns, which hold every valid item of histories cut to ``width``."""
    return AttentionResult(
        weights=np.ascontiguousarray(result.weights[..., -width:, -width:]),
        histories=result.histories[:, -width:],
        lengths=result.lengths,
        users=ids,
        layers=result.layers,
    )

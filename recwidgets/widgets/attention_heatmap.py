"""AttentionHeatmap: query x key attention weights of one user's history, layer by layer and head by head."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import torch
import traitlets

from recwidgets.data.log import PAD
from recwidgets.data.split import Split, require_split
from recwidgets.errors import ConfigError
from recwidgets.explain.attention import AttentionResult, _require_attention, attention_data, attention_weights
from recwidgets.models.base import pad_histories
from recwidgets.widgets.base import ArrayTrait, RecWidget, array_to_json, validator

logger = logging.getLogger(__name__)

#: Head value that selects the mean over all heads of the layer.
MEAN_HEADS = -1

#: Default side of the square window of positions drawn at once; 50 x 50 cells stay quick
#: to draw and to send (10 KB of float32) for any history length.
DEFAULT_WINDOW = 50

#: Most users whose full attention is precomputed for the offline export: at L=200,
#: 2 layers and 2 heads one user is 640 KB of float32.
MAX_PRECOMPUTED_USERS = 20


def _payload_to_json(value: Any, widget: Any = None) -> Any:
    """Serialise nested dicts and lists, sending every numpy array as a binary buffer."""
    if isinstance(value, np.ndarray):
        return array_to_json(value)
    if isinstance(value, dict):
        return {key: _payload_to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_payload_to_json(item) for item in value]
    return value


def _payload_from_json(value: Any, widget: Any = None) -> Any:
    # The front end never writes these traits; keep whatever arrives.
    return value


class AttentionHeatmap(RecWidget):
    """Attention weights of one user's history as a query x key heatmap.

    ``model`` is a wrapped model with ``attention(histories)`` (for example a fitted
    :class:`~recwidgets.models.sasrec.SASRec`), and ``split`` gives the histories (of its
    ``part`` set), item titles, genres, timestamps and training popularity. ``users`` lists
    the internal user ids offered in the user picker, for example the users selected in
    another widget. ``user`` is the one shown, by default the first of ``users`` or else the
    first user of the split part.

    The controls pick the layer and the head, or the mean over heads (``head=-1``). A window
    of positions (``window_start``, ``window_size``) keeps long histories quick to draw. An
    overlay strip shows item popularity or recency, and a click on a cell pins that
    position, outlining its row and column. Below the heatmap, the view lists what the last
    position attends to next to the top-``k`` recommendations.

    While a kernel is attached only the visible slice (``matrix``, one layer, one head, one
    window) travels to the browser, as a binary buffer. :meth:`precompute` (called by
    :meth:`to_html`) adds the full (layers, heads, n, n) weights of a few users to the
    state, so the exported page switches layer, head, window and user without a kernel.
    """

    _esm_name = "attention_heatmap"

    users = traitlets.List(traitlets.Int(), help="Internal user ids offered in the user picker.").tag(sync=True)
    user = traitlets.Int(0, help="Internal user id whose history is shown.").tag(sync=True)
    layer = traitlets.Int(0, help="Attention layer shown, from 0.").tag(sync=True)
    head = traitlets.Int(0, help=f"Head shown, from 0; {MEAN_HEADS} shows the mean over the layer's heads.").tag(
        sync=True
    )
    n_layers = traitlets.Int(0, help="Number of attention layers of the model.").tag(sync=True)
    n_heads = traitlets.Int(0, help="Number of heads per layer.").tag(sync=True)
    window_start = traitlets.Int(0, help="First history position (0 = oldest item the model reads) in the window.").tag(
        sync=True
    )
    window_size = traitlets.Int(DEFAULT_WINDOW, help="Number of positions drawn on each axis.").tag(sync=True)
    pinned = traitlets.Int(-1, help="History position whose row and column are outlined; -1 for none.").tag(sync=True)
    overlay = traitlets.Unicode(
        "none", help='Strip drawn along both axes: "none", "popularity" (training count) or "recency" (age).'
    ).tag(sync=True)
    k = traitlets.Int(10, help="Number of recommendations listed beside the last position's attention.").tag(sync=True)
    user_data = traitlets.Dict(
        help="The shown user's history: user, length, truncated, items, titles, genres, timestamps (unix s, NaN "
        "when unknown), popularity, last_rows (layers, heads, length) and recommendations. Arrays travel as "
        "binary buffers.",
    ).tag(sync=True, to_json=_payload_to_json, from_json=_payload_from_json)
    matrix = ArrayTrait(
        help="float32 (rows, columns) slice of the shown layer and head for positions window_start to "
        "window_start + rows - 1 on both axes.",
    ).tag(sync=True)
    matrix_before = ArrayTrait(
        help="float32 (rows,): weight each query row of `matrix` puts on keys before the window.",
    ).tag(sync=True)
    matrix_key = traitlets.Dict(
        help="user, layer, head, start and size that `matrix` was computed for, so the view can tell a stale slice."
    ).tag(sync=True)
    precomputed = traitlets.List(
        traitlets.Dict(),
        help="Users whose full attention is in the state: the fields of user_data plus cube, float32 of shape "
        "(layers, heads, length, length). Filled by precompute() and to_html().",
    ).tag(sync=True, to_json=_payload_to_json, from_json=_payload_from_json)

    def __init__(
        self,
        model: Any,
        split: Split,
        users: Any = None,
        *,
        user: int | None = None,
        part: str = "test",
        k: int = 10,
        layer: int = 0,
        head: int = 0,
        window_size: int = DEFAULT_WINDOW,
        overlay: str = "none",
    ):
        _require_attention(model)
        require_split(split, "AttentionHeatmap")
        self._model = model
        self._split = split
        self._part = part
        self._evalset = split.part(part)
        self._row_of = {int(candidate): row for row, candidate in enumerate(self._evalset.users)}
        self._titles = split.log.item_titles()
        self._genres = _genre_labels(split.log)
        self._popularity = split.train_popularity()
        self._timestamps = _user_timestamps(split)
        self._result: AttentionResult | None = None
        self._scores: np.ndarray | None = None

        user_list = [] if users is None else [int(candidate) for candidate in np.asarray(users).ravel()]
        if user is None:
            user = user_list[0] if user_list else int(self._evalset.users[0])
        self._check_user(int(user))

        probe = attention_weights(model, [int(user)], split=split, part=part)
        super().__init__()
        with self.hold_sync():
            self.n_layers = probe.weights.shape[1]
            self.n_heads = probe.n_heads
            self.users = user_list
            self.k = k
            self.overlay = overlay
            self.window_size = window_size
            self.layer = layer
            self.head = head
            self._load_user(int(user), probe)
        self.observe_guarded(self._on_user, names=["user"])
        self.observe_guarded(self._on_users, names=["users"])
        self.observe_guarded(self._on_view, names=["layer", "head", "window_start", "window_size"])
        self.observe_guarded(self._on_k, names=["k"])

    # -- validation ------------------------------------------------------------------

    def _check_user(self, user: int) -> None:
        if user not in self._row_of:
            raise ConfigError(
                f"user {user} is not in the {self._part} set of this split; pick one of its "
                f"{len(self._row_of)} internal user ids (split.{self._part}.users)."
            )
        if len(self._evalset.histories[self._row_of[user]]) == 0:
            raise ConfigError(f"user {user} has an empty {self._part} history, so there is no attention to show.")

    @validator("layer")
    def _validate_layer(self, proposal: dict) -> int:
        value = int(proposal["value"])
        if self.n_layers and not 0 <= value < self.n_layers:
            raise ConfigError(f"layer={value} is out of range; the model has {self.n_layers} layer(s), 0..{self.n_layers - 1}.")
        return value

    @validator("head")
    def _validate_head(self, proposal: dict) -> int:
        value = int(proposal["value"])
        if self.n_heads and not MEAN_HEADS <= value < self.n_heads:
            raise ConfigError(
                f"head={value} is out of range; use 0..{self.n_heads - 1}, or {MEAN_HEADS} for the mean over heads."
            )
        return value

    @validator("window_size")
    def _validate_window_size(self, proposal: dict) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise ConfigError(f"window_size={value} is invalid; pass a number of positions >= 1.")
        return value

    @validator("window_start")
    def _validate_window_start(self, proposal: dict) -> int:
        length = int(self.user_data.get("length", 0)) if self.user_data else 0
        size = min(self.window_size, max(length, 1))
        return int(min(max(int(proposal["value"]), 0), max(length - size, 0)))

    @validator("overlay")
    def _validate_overlay(self, proposal: dict) -> str:
        value = str(proposal["value"])
        if value not in ("none", "popularity", "recency"):
            raise ConfigError(f"overlay={value!r} is invalid; use 'none', 'popularity' or 'recency'.")
        return value

    @validator("k")
    def _validate_k(self, proposal: dict) -> int:
        value = int(proposal["value"])
        if not 1 <= value <= self._model.n_items:
            raise ConfigError(f"k={value} is invalid; pass an int between 1 and the {self._model.n_items} items.")
        return value

    # -- observers -------------------------------------------------------------------

    def _on_user(self, change: dict) -> None:
        user = int(change["new"])
        self._check_user(user)
        with self.hold_sync():
            self._load_user(user, None)

    def _on_users(self, change: dict) -> None:
        users = [int(candidate) for candidate in change["new"]]
        for candidate in users:
            self._check_user(candidate)
        if users and self.user not in users:
            self.user = users[0]

    def _on_view(self, change: dict) -> None:
        self._send_matrix()

    def _on_k(self, change: dict) -> None:
        self.user_data = {**self.user_data, "recommendations": self._recommendations(self._scores)}

    # -- computation -----------------------------------------------------------------

    def _load_user(self, user: int, result: AttentionResult | None) -> None:
        if result is None:
            result = attention_weights(self._model, [user], split=self._split, part=self._part)
        self._result = result
        self._scores = self._score(user)
        payload = self._user_payload(user, result, self._scores)
        self.user_data = payload
        length = payload["length"]
        self.pinned = -1
        self.window_start = max(length - self.window_size, 0)
        self._send_matrix()
        if self.user != user:
            self.user = user

    def _valid_cube(self, result: AttentionResult, row: int = 0) -> np.ndarray:
        """Return the (layers, heads, n, n) weights between the valid positions of one user."""
        length = int(result.lengths[row])
        return np.ascontiguousarray(result.weights[row, :, :, -length:, -length:], dtype=np.float32)

    def _send_matrix(self) -> None:
        if self._result is None:
            return
        cube = self._valid_cube(self._result)
        length = cube.shape[-1]
        size = min(self.window_size, length)
        start = min(max(self.window_start, 0), max(length - size, 0))
        plane = cube[self.layer].mean(axis=0) if self.head == MEAN_HEADS else cube[self.layer, self.head]
        with self.hold_sync():
            self.matrix = plane[start : start + size, start : start + size]
            self.matrix_before = plane[start : start + size, :start].sum(axis=1).astype(np.float32)
            self.matrix_key = {"user": int(self.user_data["user"]), "layer": self.layer, "head": self.head, "start": start, "size": size}

    def _score(self, user: int) -> np.ndarray:
        history = np.asarray(self._evalset.histories[self._row_of[user]], dtype=np.int64)
        padded = pad_histories([history], self._model.max_len, self._model.device)
        with torch.no_grad():
            scores = self._model.score(padded).detach().float().cpu().numpy()[0].astype(np.float64)
        scores[PAD] = -np.inf
        scores[history] = -np.inf
        return scores

    def _recommendations(self, scores: np.ndarray | None) -> list[dict]:
        if scores is None:
            return []
        count = min(self.k, int(np.isfinite(scores).sum()))
        top = np.argsort(-scores, kind="stable")[:count]
        return [
            {"item": int(item), "title": self._titles[item], "genres": self._genres[item], "score": float(scores[item])}
            for item in top
        ]

    def _user_payload(self, user: int, result: AttentionResult, scores: np.ndarray | None) -> dict:
        length = int(result.lengths[0])
        items = result.histories[0, -length:]
        full_history = len(self._evalset.histories[self._row_of[user]])
        stamps = self._timestamps.get(user, np.zeros(0))
        if len(stamps) >= full_history:
            timestamps = stamps[full_history - length : full_history].astype(np.float64)
        else:
            timestamps = np.full(length, np.nan)
        cube = self._valid_cube(result)
        return {
            "user": int(user),
            "length": length,
            "truncated": int(result.truncated[0]),
            "items": items.astype(np.int32),
            "titles": [self._titles[item] for item in items],
            "genres": [self._genres[item] for item in items],
            "timestamps": timestamps,
            "popularity": self._popularity[items].astype(np.int32),
            "last_rows": np.ascontiguousarray(cube[:, :, -1, :]),
            "recommendations": self._recommendations(scores),
        }

    def precompute(self, users: Any = None) -> None:
        """Put the full attention of ``users`` (default: ``users``, else the shown user) into the state.

        The exported page and the live view then switch layer, head, window and user
        without asking Python. At most ``MAX_PRECOMPUTED_USERS`` users are accepted.
        """
        chosen = list(self.users) if users is None else [int(candidate) for candidate in np.asarray(users).ravel()]
        if not chosen:
            chosen = [self.user]
        if self.user not in chosen:
            chosen.insert(0, self.user)
        if len(chosen) > MAX_PRECOMPUTED_USERS:
            raise ConfigError(
                f"{len(chosen)} users are too many to precompute (at most {MAX_PRECOMPUTED_USERS}); pass fewer users."
            )
        for candidate in chosen:
            self._check_user(candidate)
        result = attention_weights(self._model, chosen, split=self._split, part=self._part)
        entries = []
        for row, candidate in enumerate(chosen):
            single = AttentionResult(
                weights=result.weights[row : row + 1],
                histories=result.histories[row : row + 1],
                lengths=result.lengths[row : row + 1],
                users=result.users[row : row + 1],
                layers=result.layers,
                truncated=result.truncated[row : row + 1],
            )
            scores = self._scores if candidate == self.user else self._score(candidate)
            entry = self._user_payload(candidate, single, scores)
            entry["cube"] = self._valid_cube(single)
            entries.append(entry)
        self.precomputed = entries
        logger.info("precomputed attention of %d user(s) for offline use", len(entries))

    def to_html(self, path, *, title: str | None = None, budget_mb: float = 20.0, users: Any = None) -> int:
        """Write a self-contained offline page; precomputes ``users`` first (see :meth:`precompute`)."""
        self.precompute(users)
        title = title or f"Attention weights of {getattr(self._model, 'name', 'the model')}"
        return super().to_html(path, title=title, budget_mb=budget_mb)

    # -- data ------------------------------------------------------------------------

    def attention_data(self) -> pd.DataFrame:
        """Return the shown user's attention, all layers and heads, as a tidy DataFrame.

        Columns are those of :func:`recwidgets.explain.attention.attention_data` plus the
        key item's ``title``.
        """
        if self._result is None:
            return pd.DataFrame()
        frame = attention_data(self._result)
        frame["title"] = [self._titles[item] for item in frame["item"].to_numpy()]
        return frame

    def data(self) -> pd.DataFrame:
        """Return what the last position attends to in the shown layer and head, largest first."""
        payload = self.user_data
        if not payload:
            return pd.DataFrame()
        rows = payload["last_rows"]
        weights = rows[self.layer].mean(axis=0) if self.head == MEAN_HEADS else rows[self.layer, self.head]
        frame = pd.DataFrame(
            {
                "position": np.arange(payload["length"]),
                "item": payload["items"],
                "title": payload["titles"],
                "weight": weights,
            }
        )
        return frame.sort_values("weight", ascending=False, kind="stable").reset_index(drop=True)

    def _fallback_frame(self) -> pd.DataFrame:
        return self.data().head(20)

    def _fallback_title(self) -> str:
        head = "mean over heads" if self.head == MEAN_HEADS else f"head {self.head}"
        return f"AttentionHeatmap: user {self.user}, layer {self.layer}, {head} (last position)"


def _genre_labels(log) -> list[str]:
    """Return one genre string per internal item id ("Action|Drama"; "" when unknown)."""
    labels = [""] * (log.n_items + 1)
    if log.items is not None and "genres" in log.items.columns:
        for item, genres in log.items["genres"].items():
            if 0 < int(item) < len(labels) and isinstance(genres, (tuple, list)):
                labels[int(item)] = "|".join(str(genre) for genre in genres)
    return labels


def _user_timestamps(split: Split) -> dict[int, np.ndarray]:
    """Return each user's chronological timestamps (unix seconds) from the full log.

    Histories of both split kinds are prefixes of a user's chronological sequence, so the
    first ``len(history)`` timestamps belong to the history.
    """
    frame = split.log.interactions
    users = frame["user"].to_numpy()
    stamps = frame["timestamp"].to_numpy()
    bounds = np.searchsorted(users, np.arange(split.log.n_users + 2))
    return {user: stamps[bounds[user] : bounds[user + 1]] for user in range(1, split.log.n_users + 1)}

"""The interaction log: the one data type every loader returns and every split reads."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recwidgets.errors import DataError

#: Internal id reserved for padding in both the user and the item vocabulary.
PAD = 0


@dataclass(frozen=True, eq=False)
class InteractionLog:
    """Interactions with contiguous internal ids, item and user metadata, and id vocabularies.

    ``interactions`` has the columns ``user`` and ``item`` (int64 internal ids, both starting
    at 1 because 0 is padding), ``timestamp`` (int64, seconds) and ``rating`` (float64, NaN
    when the source has none). Rows are sorted by user, then timestamp, then original row
    order, so each user's events are chronological with a stable tie-break.

    ``user_ids[i]`` and ``item_ids[i]`` give the original id of internal id ``i``; index 0
    is the padding placeholder. ``items`` is indexed by internal item id and has at least
    ``title`` (str) and ``genres`` (tuple of str) when the source provides them; ``users``
    is indexed by internal user id.
    """

    interactions: pd.DataFrame
    user_ids: np.ndarray
    item_ids: np.ndarray
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    name: str = "custom"
    variant: dict = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        """Number of real users (the vocabulary size minus the padding slot)."""
        return len(self.user_ids) - 1

    @property
    def n_items(self) -> int:
        """Number of real items (the vocabulary size minus the padding slot)."""
        return len(self.item_ids) - 1

    def __len__(self) -> int:
        return len(self.interactions)

    def item_popularity(self) -> np.ndarray:
        """Return interaction counts per internal item id, shape (n_items + 1,), padding 0."""
        return np.bincount(self.interactions["item"].to_numpy(), minlength=self.n_items + 1)

    def item_titles(self) -> list[str]:
        """Return one display title per internal item id (index 0 is ``"<pad>"``)."""
        titles = ["<pad>"] + [str(raw) for raw in self.item_ids[1:]]
        if self.items is not None and "title" in self.items.columns:
            for item, title in self.items["title"].items():
                if 0 < int(item) < len(titles) and isinstance(title, str):
                    titles[int(item)] = title
        return titles

    def describe(self) -> dict:
        """Return a summary that the protocol card embeds: name, variant and sizes."""
        return {
            "dataset": self.name,
            "variant": dict(self.variant),
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_interactions": len(self),
        }

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        items: pd.DataFrame | None = None,
        users: pd.DataFrame | None = None,
        name: str = "custom",
        variant: dict | None = None,
    ) -> "InteractionLog":
        """Build a log from raw ids.

        ``frame`` needs the columns ``user``, ``item`` and ``timestamp`` and may have
        ``rating``; ids may be of any hashable type. ``items`` (indexed by raw item id) and
        ``users`` (indexed by raw user id) are re-indexed to internal ids; rows for ids that
        never occur in ``frame`` are dropped.
        """
        missing = [column for column in ("user", "item", "timestamp") if column not in frame.columns]
        if missing:
            raise DataError(
                f"interaction frame is missing column(s) {missing}; found {list(frame.columns)}. "
                "Rename or map the columns to 'user', 'item' and 'timestamp'."
            )
        if len(frame) == 0:
            raise DataError("interaction frame is empty; load a file with at least one interaction.")

        timestamps = frame["timestamp"]
        if not pd.api.types.is_numeric_dtype(timestamps):
            if pd.api.types.is_datetime64_any_dtype(timestamps):
                # The datetime unit varies (pandas 3 parses strings to microseconds, Parquet
                # often stores milliseconds), so divide by a timedelta, not by 10**9.
                if getattr(timestamps.dt, "tz", None) is not None:
                    timestamps = timestamps.dt.tz_convert("UTC").dt.tz_localize(None)
                timestamps = (timestamps - pd.Timestamp(0)) // pd.Timedelta(seconds=1)
            else:
                numeric = pd.to_numeric(timestamps, errors="coerce")
                bad = timestamps[numeric.isna() & timestamps.notna()].iloc[:3].tolist()
                if bad:
                    raise DataError(
                        f"timestamp column contains non-numeric values such as {bad!r}; "
                        "pass unix seconds, or parse the column with pandas.to_datetime first."
                    )
                timestamps = numeric
        if timestamps.isna().any():
            raise DataError(
                f"timestamp column contains {int(timestamps.isna().sum())} missing value(s); "
                "drop those rows or fill them before loading."
            )
        for column in ("user", "item"):
            if frame[column].isna().any():
                raise DataError(
                    f"column '{column}' contains {int(frame[column].isna().sum())} missing id(s); "
                    "drop those rows before loading."
                )

        ordered = pd.DataFrame(
            {
                "raw_user": frame["user"].to_numpy(),
                "raw_item": frame["item"].to_numpy(),
                "timestamp": pd.to_numeric(timestamps).astype("int64").to_numpy(),
                "rating": (
                    pd.to_numeric(frame["rating"], errors="coerce").astype("float64").to_numpy()
                    if "rating" in frame.columns
                    else np.full(len(frame), np.nan)
                ),
                "row": np.arange(len(frame)),
            }
        )

        # Vocabularies are sorted raw ids, so internal ids are deterministic for a given file.
        user_vocab = pd.Index(pd.unique(ordered["raw_user"])).sort_values()
        item_vocab = pd.Index(pd.unique(ordered["raw_item"])).sort_values()
        ordered["user"] = user_vocab.get_indexer(ordered["raw_user"]) + 1
        ordered["item"] = item_vocab.get_indexer(ordered["raw_item"]) + 1

        # Chronological per user; the original row order breaks timestamp ties.
        ordered = ordered.sort_values(["user", "timestamp", "row"], kind="stable")
        interactions = ordered[["user", "item", "timestamp", "rating"]].reset_index(drop=True)
        interactions["user"] = interactions["user"].astype("int64")
        interactions["item"] = interactions["item"].astype("int64")

        user_ids = np.concatenate([np.array([None], dtype=object), user_vocab.to_numpy(dtype=object)])
        item_ids = np.concatenate([np.array([None], dtype=object), item_vocab.to_numpy(dtype=object)])

        def reindex(meta: pd.DataFrame | None, vocab: pd.Index) -> pd.DataFrame | None:
            if meta is None:
                return None
            meta = meta[~meta.index.duplicated(keep="first")]
            positions = vocab.get_indexer(meta.index)
            kept = meta[positions >= 0].copy()
            kept.index = pd.Index(positions[positions >= 0] + 1, name="internal_id")
            return kept.sort_index()

        return cls(
            interactions=interactions,
            user_ids=user_ids,
            item_ids=item_ids,
            items=reindex(items, item_vocab),
            users=reindex(users, user_vocab),
            name=name,
            variant=dict(variant or {}),
        )

    def with_interactions(self, interactions: pd.DataFrame, **variant) -> "InteractionLog":
        """Return a log over a subset of the internal-id rows of ``interactions``, ids re-packed.

        Filtering (k-core, implicit thresholds) drops users and items; the result gets new
        contiguous internal ids and keeps the raw ids and metadata of what survives.
        """
        raw = pd.DataFrame(
            {
                "user": self.user_ids[interactions["user"].to_numpy()],
                "item": self.item_ids[interactions["item"].to_numpy()],
                "timestamp": interactions["timestamp"].to_numpy(),
                "rating": interactions["rating"].to_numpy(),
            }
        )
        items = None
        if self.items is not None:
            items = self.items.copy()
            items.index = pd.Index(self.item_ids[items.index.to_numpy()])
        users = None
        if self.users is not None:
            users = self.users.copy()
            users.index = pd.Index(self.user_ids[users.index.to_numpy()])
        return InteractionLog.from_frame(
            raw, items=items, users=users, name=self.name, variant={**self.variant, **variant}
        )

    def sequences(self) -> list[np.ndarray]:
        """Return each user's chronological item sequence; index 0 is an empty array for padding."""
        users = self.interactions["user"].to_numpy()
        items = self.interactions["item"].to_numpy()
        bounds = np.searchsorted(users, np.arange(self.n_users + 2))
        return [items[bounds[u] : bounds[u + 1]] for u in range(self.n_users + 1)]

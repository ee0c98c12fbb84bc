"""Dashboard: metrics by segment, diagnosis findings and a per-user inspector, linked in one widget.

The three sections share one synced state, so the links work in the exported page too:

* a click on a segment of the metric table lists that segment's users (the lists of
  every segment are precomputed as binary arrays);
* a click on a user shows the inspector: the history with titles, the top-k
  recommendations, the attention of the last position (when the model has
  ``attention``) and the SHAP attributions of the top-1 item over the history (when
  :mod:`recwidgets.explain.shap_values` is importable);
* a finding's "show" link applies the view it names, such as a MetricPanel breakdown.

Inspector payloads are precomputed for a bounded set of users (those of the weakest
segments plus any requested); with a kernel, any other evaluated user is computed on
request.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import traitlets

from recwidgets.data.log import PAD
from recwidgets.errors import ConfigError
from recwidgets.models.base import pad_histories
from recwidgets.widgets.attention_heatmap import _payload_from_json, _payload_to_json
from recwidgets.widgets.base import ArrayTrait, RecWidget, validator
from recwidgets.widgets.diagnosis_report import _keys as _finding_keys
from recwidgets.widgets.diagnosis_report import _payload as _finding_payload
from recwidgets.widgets.metric_panel import (
    _arrays,
    _estimate_text,
    _estimates,
    _known_chart_metric,
    _known_k,
    _known_segment_by,
    _named_results,
    _segment_groups,
    _segment_labels,
)

logger = logging.getLogger(__name__)

#: Default bound on the users whose inspector payload goes into the state.
MAX_PRECOMPUTED_USERS = 50

#: Permutation pairs per SHAP explanation. They are few, so the dashboard shows a rough
#: estimate that the ShapExplorer widget can refine.
# NOTE: with 4 pairs the standard errors are not shown; small attributions may have the wrong sign.
SHAP_PAIRS = 4


def _shap_module():
    """Return :mod:`recwidgets.explain.shap_values`, or None when it is not importable."""
    try:
        from recwidgets.explain import shap_values
    except ImportError:
        return None
    return shap_values if hasattr(shap_values, "explain_recommendation") else None


class Dashboard(RecWidget):
    """Metrics, findings and a user inspector in one widget with linked selection.

    ``results`` is what :class:`~recwidgets.widgets.MetricPanel` takes (one
    ``EvaluationResult``, a list, or a dict name -> result) and ``split`` the Split they
    were evaluated on. ``model`` is the recommender the inspector explains; without it the
    recommendations come from the evaluated top-k lists and attention and SHAP are not
    shown. ``findings`` are :class:`~recwidgets.diagnose.finding.Finding` objects.
    ``users`` are internal user ids whose payloads are precomputed besides those of the
    weakest segments, up to ``max_users`` in all.

    Example::

        board = Dashboard({"SASRec": result}, split=split, model=sasrec, findings=findings)
        board.segment_by = "activity"
        board.selected_segment = board.weakest_segment()
        board.user = int(board.selected_users[0])
        board.user_data["recommendations"][0]["title"]
    """

    _esm_name = "dashboard"

    # -- metrics ---------------------------------------------------------------------------
    model_names = traitlets.List(traitlets.Unicode(), help="Display names of the compared models.").tag(sync=True)
    metric_names = traitlets.List(traitlets.Unicode(), help="Metric names without cutoff (NDCG, HR, ...).").tag(
        sync=True
    )
    ks = traitlets.List(traitlets.Int(), help="Cutoffs with precomputed values, ascending.").tag(sync=True)
    segment_groups = traitlets.List(
        traitlets.Dict(),
        help='Breakdowns as {"key", "label", "segments"}; the rows of `values` follow their segments in order.',
    ).tag(sync=True)
    values = ArrayTrait(
        help="float64 array (models, metrics, ks, segment rows, 3) of value, ci_low and ci_high; NaN when missing."
    ).tag(sync=True)
    counts = ArrayTrait(help="int32 array (models, segment rows): evaluated users per model and segment.").tag(sync=True)
    segment_user_ids = ArrayTrait(
        help="int32 array of the internal user ids of every segment row, concatenated in row order."
    ).tag(sync=True)
    segment_offsets = ArrayTrait(
        help="int32 array (segment rows + 1): the users of row r are segment_user_ids[offsets[r]:offsets[r + 1]]."
    ).tag(sync=True)
    k = traitlets.Int(10, help="Cutoff shown; one of `ks`.").tag(sync=True)
    segment_by = traitlets.Unicode(
        "activity", help='Breakdown shown: "" (all users), "activity" or "target_popularity".'
    ).tag(sync=True)
    chart_metric = traitlets.Unicode("", help="Metric of the segment table and of the weakest-segment choice.").tag(
        sync=True
    )
    selected_segment = traitlets.Unicode("", help="Label of the selected segment of `segment_by`; empty when none.").tag(
        sync=True
    )
    selected_users = ArrayTrait(help="int32 array of the users of the selected segment, ascending.").tag(sync=True)

    # -- findings --------------------------------------------------------------------------
    findings = traitlets.List(
        traitlets.Dict(),
        help="Findings as {key, id, severity, title, evidence, fix, reference, view}, errors first.",
    ).tag(sync=True)
    selected_finding = traitlets.Unicode("", help="Key of the finding whose view was last shown; empty when none.").tag(
        sync=True
    )
    selected_view = traitlets.Dict(help="The `view` of the selected finding; empty when none.").tag(sync=True)

    # -- inspector -------------------------------------------------------------------------
    user = traitlets.Int(-1, help="Internal id of the inspected user; -1 when none.").tag(sync=True)
    user_data = traitlets.Dict(
        help="Inspector payload of `user` (see `user_payload`); arrays inside travel as binary buffers.",
    ).tag(sync=True, to_json=_payload_to_json, from_json=_payload_from_json)
    user_payloads = traitlets.Dict(
        help="Precomputed inspector payloads by str(user id), so the offline page can switch users.",
    ).tag(sync=True, to_json=_payload_to_json, from_json=_payload_from_json)
    inspector_notes = traitlets.List(
        traitlets.Unicode(), help="Why parts of the inspector are missing (no model, no attention, no SHAP)."
    ).tag(sync=True)

    def __init__(
        self,
        results: Any,
        *,
        split: Any,
        model: Any = None,
        findings: Sequence[Any] | None = None,
        users: Sequence[int] | None = None,
        k: int = 10,
        segment_by: str = "activity",
        max_users: int = MAX_PRECOMPUTED_USERS,
        shap: bool | None = None,
    ):
        named = _named_results(results)
        if split is None or not hasattr(split, "test"):
            raise ConfigError(f"Dashboard needs split= the Split the results were evaluated on; got {type(split).__name__}.")
        if not isinstance(max_users, int) or max_users < 0:
            raise ConfigError(f"max_users={max_users!r} is invalid; pass a non-negative int such as {MAX_PRECOMPUTED_USERS}.")
        self._named = named
        self._split = split
        self._model = model
        self._result = _result_for(named, model)
        self._titles = split.log.item_titles()
        self._evalset = split.part("test")
        self._row_of = {int(user): row for row, user in enumerate(self._evalset.users)}
        self._topk_row = {int(user): row for row, user in enumerate(np.asarray(self._result.users))}
        self._payloads: dict[int, dict] = {}

        table = _estimates(named)
        self._table = table
        ks = sorted(int(value) for value in table["k"].unique())
        if k not in ks:
            raise ConfigError(f"k={k} has no evaluated values; use one of {ks}.")
        metrics = list(dict.fromkeys(table["metric"]))
        groups = _segment_groups(named)
        keys = [group["key"] for group in groups]
        if segment_by not in keys:
            raise ConfigError(f"segment_by={segment_by!r} is unknown; use one of {keys}.")
        self._members = _segment_members(named, groups)

        self._shap = _shap_module() if shap in (None, True) else None
        if shap is True and self._shap is None:
            raise ConfigError("shap=True, but recwidgets.explain.shap_values is not available; pass shap=None or False.")
        self._findings = list(findings or [])
        finding_keys = _finding_keys(self._findings)

        super().__init__()
        values, counts = _arrays(table, [name for name, _ in named], metrics, ks, groups)
        offsets = np.cumsum([0] + [len(members) for members in self._members]).astype(np.int32)
        with self.hold_sync():
            self.model_names = [name for name, _ in named]
            self.metric_names = metrics
            self.ks = ks
            self.segment_groups = groups
            self.values, self.counts = values, counts
            self.segment_user_ids = np.concatenate(self._members).astype(np.int32) if self._members else np.zeros(0, np.int32)
            self.segment_offsets = offsets
            self.k = k
            self.segment_by = segment_by
            self.chart_metric = "NDCG" if "NDCG" in metrics else metrics[0]
            self.selected_users = np.zeros(0, dtype=np.int32)
            self.findings = [_finding_payload(key, item) for key, item in zip(finding_keys, self._findings)]
            self.inspector_notes = self._notes()
        self._finding_keys = finding_keys
        self.observe_guarded(self._on_segment, names=["selected_segment"])
        self.observe_guarded(self._on_breakdown, names=["segment_by"])
        self.observe_guarded(self._on_finding, names=["selected_finding"])
        self.observe_guarded(self._on_user, names=["user"])
        self.precompute(self._default_users(users, max_users))

    # -- validation ------------------------------------------------------------------------

    @validator("k")
    def _check_k(self, proposal: dict) -> int:
        return _known_k(proposal["value"], self.ks)

    @validator("chart_metric")
    def _check_chart_metric(self, proposal: dict) -> str:
        return _known_chart_metric(proposal["value"], self.metric_names)

    @validator("segment_by")
    def _check_segment_by(self, proposal: dict) -> str:
        return _known_segment_by(proposal["value"], self.segment_groups)

    # -- segments --------------------------------------------------------------------------

    def segment_labels(self, segment_by: str | None = None) -> list[str]:
        """Return the segment labels of a breakdown (the current one by default)."""
        return _segment_labels(self.segment_groups, self.segment_by if segment_by is None else segment_by)

    def segment_users(self, label: str, segment_by: str | None = None) -> np.ndarray:
        """Return the internal ids of the users in one segment, ascending."""
        key = self.segment_by if segment_by is None else segment_by
        row = 0
        for group in self.segment_groups:
            for segment in group["segments"]:
                if group["key"] == key and segment == label:
                    return self._members[row].copy()
                row += 1
        raise ConfigError(f"{label!r} is not a segment of {key or 'all users'!r}; use one of {self.segment_labels(key)}.")

    def weakest_segment(self, segment_by: str | None = None, model: str | None = None) -> str:
        """Return the segment with the lowest ``chart_metric@k`` of ``model`` (default: the inspected one)."""
        key = self.segment_by if segment_by is None else segment_by
        name = model or self._inspected_name()
        rows = self._table[
            (self._table["segment_by"] == key)
            & (self._table["k"] == self.k)
            & (self._table["metric"] == self.chart_metric)
            & (self._table["model"] == name)
        ].dropna(subset=["value"])
        if rows.empty:
            return self.segment_labels(key)[0]
        return str(rows.sort_values(["value", "segment"]).iloc[0]["segment"])

    def _on_breakdown(self, change: dict) -> None:
        self.selected_segment = ""

    def _on_segment(self, change: dict) -> None:
        label = change["new"]
        if not label:
            self.selected_users = np.zeros(0, dtype=np.int32)
            return
        try:
            users = self.segment_users(label)
        except ConfigError:
            self.selected_users = np.zeros(0, dtype=np.int32)
            raise
        self.selected_users = users.astype(np.int32)

    # -- findings --------------------------------------------------------------------------

    def _on_finding(self, change: dict) -> None:
        key = change["new"]
        if not key:
            self.selected_view = {}
            return
        if key not in self._finding_keys:
            self.selected_view = {}
            raise ConfigError(f"selected_finding={key!r} is not a finding here; use one of {self._finding_keys}.")
        view = self.findings[self._finding_keys.index(key)]["view"]
        self.selected_view = dict(view)
        self.apply_view(view)

    def apply_view(self, view: dict) -> None:
        """Show what a finding's ``view`` names: a breakdown, a cutoff, a segment or a user.

        Keys of other widgets are ignored here; the front end names the widget to open.
        """
        with self.hold_trait_notifications():
            if view.get("segment_by") in [group["key"] for group in self.segment_groups]:
                self.segment_by = view["segment_by"]
            if view.get("k") in self.ks:
                self.k = int(view["k"])
            metric = view.get("chart_metric", view.get("metric"))
            if metric in self.metric_names:
                self.chart_metric = metric
        segment = view.get("segment")
        if isinstance(segment, str) and segment in self.segment_labels():
            self.selected_segment = segment
        if isinstance(view.get("user"), int) and view["user"] in self._row_of:
            self.user = view["user"]

    # -- inspector -------------------------------------------------------------------------

    def _inspected_name(self) -> str:
        return next(name for name, result in self._named if result is self._result)

    def _notes(self) -> list[str]:
        notes = []
        if self._model is None:
            notes.append("No model given: recommendations come from the evaluation; attention and SHAP are not shown.")
            return notes
        if not hasattr(self._model, "attention"):
            notes.append(f"{getattr(self._model, 'name', type(self._model).__name__)} has no attention weights.")
        if self._shap is None:
            notes.append("SHAP attributions are not available (recwidgets.explain.shap_values is not installed).")
        return notes

    def _default_users(self, users: Sequence[int] | None, max_users: int) -> list[int]:
        """Return the requested users, then users of each breakdown's weakest segment, up to ``max_users``."""
        chosen = [int(user) for user in (users or [])]
        for user in chosen:
            self._check_user(user)
        pools = []
        for group in self.segment_groups:
            if group["key"]:
                pools.append(self.segment_users(self.weakest_segment(group["key"]), group["key"]))
        # Alternate between the pools so every breakdown's weakest segment gets users.
        for position in range(max(max((len(pool) for pool in pools), default=0), 0)):
            for pool in pools:
                if len(chosen) >= max_users:
                    return chosen
                if position < len(pool) and int(pool[position]) not in chosen and int(pool[position]) in self._row_of:
                    chosen.append(int(pool[position]))
        return chosen[: max(max_users, len(users or []))]

    def _check_user(self, user: int) -> None:
        if user not in self._row_of:
            users = self._evalset.users
            raise ConfigError(
                f"user={user} is not in the test set of this split ({len(users)} users, ids "
                f"{int(users.min())}..{int(users.max())}); pick one from dashboard.selected_users."
            )

    def precompute(self, users: Sequence[int]) -> None:
        """Compute the inspector payloads of ``users`` and put them into the synced state."""
        for user in users:
            self._check_user(int(user))
        batch = {int(user): self.user_payload(int(user)) for user in users}
        self.user_payloads = {**self.user_payloads, **{str(user): payload for user, payload in batch.items()}}
        logger.debug("dashboard: %d user payloads precomputed", len(self.user_payloads))

    def precomputed_users(self) -> list[int]:
        """Return the users whose payloads are in the state, in insertion order."""
        return [int(user) for user in self.user_payloads]

    def _on_user(self, change: dict) -> None:
        user = int(change["new"])
        if user < 0:
            self.user_data = {}
            return
        self._check_user(user)
        self.user_data = self.user_payload(user)

    def user_payload(self, user: int) -> dict:
        """Return the inspector payload of one user.

        Keys: ``user``, ``segments`` (breakdown key -> label), ``items`` (int32, the history the
        model reads, oldest first), ``titles``, ``target`` and ``target_title`` (the held-out
        item), ``recommendations`` (list of {item, title, score, hit}), ``attention`` (float32,
        one weight per history item: what the last position attends to in the last layer,
        averaged over heads; absent without attention), ``shap`` (float32 attributions of the
        top-1 item per history item; absent when not available) and ``shap_label``.
        """
        self._check_user(user)
        if user in self._payloads:
            return self._payloads[user]
        row = self._row_of[user]
        history = np.asarray(self._evalset.histories[row], dtype=np.int64)
        max_len = getattr(self._model, "max_len", None) or len(history)
        items = history[-max_len:] if len(history) else history
        target = int(np.asarray(self._evalset.targets[row]).ravel()[0]) if _has_target(self._evalset, row) else PAD
        payload: dict = {
            "user": int(user),
            "segments": self._user_segments(user),
            "items": items.astype(np.int32),
            "titles": [self._titles[int(item)] for item in items],
            "truncated": int(len(history) - len(items)),
            "target": target,
            "target_title": self._titles[target] if target != PAD else "",
        }
        payload["recommendations"] = self._recommendations(user, history, target)
        if self._model is not None and hasattr(self._model, "attention") and len(items):
            payload["attention"] = self._last_attention(items)
        if self._model is not None and self._shap is not None and len(items) and payload["recommendations"]:
            top = int(payload["recommendations"][0]["item"])
            values = self._shap_values(history, top, user)
            if values is not None:
                payload["shap"] = values[-len(items):]
                payload["shap_label"] = f"score({self._titles[top]})"
        self._payloads[user] = payload
        return payload

    def _user_segments(self, user: int) -> dict:
        segments = self._result.segments
        ids = segments["user"].to_numpy() if "user" in segments.columns else segments.index.to_numpy()
        rows = np.flatnonzero(ids == user)
        if not len(rows):
            return {}
        record = segments.iloc[int(rows[0])]
        return {group["key"]: str(record[group["key"]]) for group in self.segment_groups if group["key"] and group["key"] in segments.columns}

    def _recommendations(self, user: int, history: np.ndarray, target: int) -> list[dict]:
        k = max(self.ks)
        if self._model is not None:
            padded = pad_histories([history], self._model.max_len, self._model.device)
            with torch.no_grad():
                scores = self._model.score(padded).detach().float().cpu().numpy()[0].astype(np.float64)
            scores[PAD] = -np.inf
            scores[history] = -np.inf
            count = min(k, int(np.isfinite(scores).sum()))
            top = np.argsort(-scores, kind="stable")[:count]
            ranked = [(int(item), float(scores[item])) for item in top]
        elif user in self._topk_row:
            top = np.asarray(self._result.topk)[self._topk_row[user], :k]
            ranked = [(int(item), None) for item in top if item > PAD]
        else:
            ranked = []
        return [
            {"item": item, "title": self._titles[item], "score": score, "hit": item == target} for item, score in ranked
        ]

    def _last_attention(self, items: np.ndarray) -> np.ndarray:
        """Return what the last position attends to: last layer, mean over heads, shape (len(items),)."""
        from recwidgets.explain.attention import attention_weights

        result = attention_weights(self._model, [items], layers=[-1])
        length = int(result.lengths[0])
        # (1, 1, H, L, L) -> (H, L) last query row -> (length,) over the valid keys.
        row = result.weights[0, 0, :, -1, :].mean(axis=0)
        return np.ascontiguousarray(row[-length:], dtype=np.float32)

    def _shap_values(self, history: np.ndarray, target: int, user: int) -> np.ndarray | None:
        try:
            explanation = self._shap.explain_recommendation(
                self._model, history, target, n_pairs=SHAP_PAIRS, progress=False, user=user
            )
        except Exception as error:
            # A failed sketch must not take the dashboard down, so the inspector notes that it is missing.
            logger.warning("dashboard: SHAP for user %d failed: %s", user, error)
            return None
        data = np.asarray(explanation.data)
        values = np.asarray(explanation.values, dtype=np.float32)
        return np.ascontiguousarray(values[data != PAD])

    # -- data ------------------------------------------------------------------------------

    def dashboard_data(self) -> pd.DataFrame:
        """Return one row per evaluated user of the inspected result.

        Columns: ``user``, one column per breakdown with the user's segment, ``precomputed``
        (whether the payload is in the state) and ``top1_title`` for precomputed users.
        """
        segments = self._result.segments
        ids = segments["user"].to_numpy() if "user" in segments.columns else segments.index.to_numpy()
        frame = pd.DataFrame({"user": ids.astype(np.int64)})
        for group in self.segment_groups:
            if group["key"] and group["key"] in segments.columns:
                frame[group["key"]] = segments[group["key"]].astype(str).to_numpy()
        stored = set(self.precomputed_users())
        frame["precomputed"] = frame["user"].isin(stored)
        top1 = {
            int(user): (payload["recommendations"][0]["title"] if payload["recommendations"] else "")
            for user, payload in self._payloads.items()
        }
        frame["top1_title"] = frame["user"].map(top1).fillna("")
        return frame

    def metrics_data(self) -> pd.DataFrame:
        """Return the long table of estimates (the MetricPanel's ``metrics_data``)."""
        return self._table.copy()

    def data(self) -> pd.DataFrame:
        return self.dashboard_data()

    def _fallback_frame(self) -> pd.DataFrame:
        rows = self._table[(self._table["segment_by"] == "") & (self._table["k"] == self.k)]
        cells = rows.assign(text=[_estimate_text(row) for row in rows.itertuples()])
        frame = cells.pivot_table(index="label", columns="model", values="text", aggfunc="first", sort=False)
        return frame.reindex(columns=self.model_names)

    def _fallback_title(self) -> str:
        return f"Dashboard: {', '.join(self.model_names)} at k={self.k}, {len(self._findings)} finding(s)"


def _has_target(evalset: Any, row: int) -> bool:
    targets = np.asarray(evalset.targets[row]).ravel()
    return len(targets) > 0 and int(targets[0]) != PAD


def _result_for(named: list[tuple[str, Any]], model: Any) -> Any:
    """Return the result of the inspected model (matched by name), else the first one."""
    if model is not None:
        wanted = str(getattr(model, "name", "")).lower()
        for name, result in named:
            if name.lower() == wanted or str(getattr(result, "model_name", "")).lower() == wanted:
                return result
    return named[0][1]


def _segment_members(named: list[tuple[str, Any]], groups: list[dict]) -> list[np.ndarray]:
    """Return the sorted user ids of each segment row over all results, in row order."""
    members = []
    for group in groups:
        for label in group["segments"]:
            chosen = []
            for _, result in named:
                segments = result.segments
                ids = segments["user"].to_numpy() if "user" in segments.columns else segments.index.to_numpy()
                if group["key"]:
                    if group["key"] not in segments.columns:
                        continue
                    ids = ids[segments[group["key"]].astype(str).to_numpy() == label]
                chosen.append(np.asarray(ids, dtype=np.int64))
            members.append(np.unique(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64))
    return members

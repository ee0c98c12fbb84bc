"""ShapExplorer: Shapley-value attributions of a recommendation to the items of a user's history."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import traitlets

from recwidgets.data.split import Split, require_split
from recwidgets.errors import ConfigError
from recwidgets.explain.shap_values import (
    ShapExplainer,
    attribution_summary,
    recommend,
    shap_frame,
)
from recwidgets.widgets.attention_heatmap import _genre_labels, _payload_from_json, _payload_to_json
from recwidgets.widgets.base import RecWidget, TraitValueError, validator

logger = logging.getLogger(__name__)

#: Most users whose explanations go into the state for the offline export.
MAX_PRECOMPUTED_USERS = 20

#: Seconds between progress messages sent to the front end during a computation.
PROGRESS_INTERVAL_S = 0.5

#: Explainer settings for interactive use: about +-0.05 at 95% joint confidence, and at
#: most 50,000 forward passes per explanation (the status line shows the reached error).
DEFAULT_EXPLAINER_OPTIONS = {"tolerance": 0.05, "max_evals": 50_000}


class SelectionError(TraitValueError):
    """An invalid user, target, contrast, k or view."""


class ShapExplorer(RecWidget):
    """Why a model recommends an item: Shapley values of the score over the user's history.

    ``model`` follows the model protocol (for example a fitted
    :class:`~recwidgets.models.sasrec.SASRec`); ``split`` gives the histories of its ``part``
    set, titles, genres and training popularity. ``users`` fills the user picker; ``user``
    is the one shown (default: the first of ``users``, else the first user of the part with
    a history).

    The view lists the top-``k`` recommendations with scores. Picking one as ``target``
    (default: the top-1) computes its explanation in the kernel. The view then redraws a
    waterfall (from the base value with every item hidden to the model's output) or a bar
    chart in history order. Setting ``versus`` to another item explains the contrast
    ``score(target) - score(versus)``. :meth:`compute_summary` (or the summary button)
    aggregates the top-1 explanations of many users by genre, position from the end and
    popularity bucket.

    ``output``, ``absence`` and ``explainer_options`` configure the
    :class:`~recwidgets.explain.shap_values.ShapExplainer`; the defaults aim at about
    +-0.05 within 50,000 forward passes, and the status line reports the reached standard
    error. :meth:`precompute` (called by :meth:`to_html`) stores the explanations of the
    top ``n_targets`` items of a few users in the state, so the exported page switches
    users, targets and contrasts (as differences of two stored explanations) offline.
    """

    _esm_name = "shap_explorer"

    users = traitlets.List(traitlets.Int(), help="Internal user ids offered in the user picker.").tag(sync=True)
    user = traitlets.Int(0, help="Internal user id whose history is explained.").tag(sync=True)
    k = traitlets.Int(10, help="Number of recommendations listed as targets.").tag(sync=True)
    target = traitlets.Int(0, help="Item id whose output is explained; set to the top-1 when the user changes.").tag(
        sync=True
    )
    versus = traitlets.Int(0, help="Item id B of the contrast score(target) - score(B); 0 for no contrast.").tag(
        sync=True
    )
    view = traitlets.Unicode("waterfall", help='Chart drawn: "waterfall" or "bar" (history order).').tag(sync=True)
    max_rows = traitlets.Int(
        15, help="Items drawn one per row in the waterfall; the rest are summed into one row."
    ).tag(sync=True)
    status = traitlets.Unicode(
        "", help="Progress message while the kernel computes an explanation; empty when idle."
    ).tag(sync=True)
    recommendations = traitlets.List(
        traitlets.Dict(), help="Top-k of the shown user: item, title, genres, score (best first)."
    ).tag(sync=True)
    result = traitlets.Dict(
        help="The shown explanation: user, target, versus, label, output, absence, method, base_value, "
        "explained_output, n_evals, max_standard_error, converged, and per history item (oldest first) "
        "items, positions (-1 is the most recent), titles, genres, popularity, values and errors. "
        "Arrays travel as binary buffers.",
    ).tag(sync=True, to_json=_payload_to_json, from_json=_payload_from_json)
    precomputed = traitlets.List(
        traitlets.Dict(),
        help="Users explained ahead for offline use: user, recommendations and explanations (entries shaped "
        "like result, one per target). Filled by precompute() and to_html().",
    ).tag(sync=True, to_json=_payload_to_json, from_json=_payload_from_json)
    summary = traitlets.Dict(
        help="Attributions over many users' top-1 explanations: n_users and rows (kind, group, "
        "mean_attribution, mean_abs_attribution, n)."
    ).tag(sync=True)
    summary_request = traitlets.Int(
        0, help="Incremented by the front end's summary button to ask the kernel for compute_summary()."
    ).tag(sync=True)

    def __init__(
        self,
        model: Any,
        split: Split,
        users: Any = None,
        *,
        user: int | None = None,
        part: str = "test",
        k: int = 10,
        output: str = "score",
        absence: str = "remove",
        explainer_options: dict | None = None,
        view: str = "waterfall",
    ):
        require_split(split, "ShapExplorer")
        options = {**DEFAULT_EXPLAINER_OPTIONS, **dict(explainer_options or {})}
        self._titles = split.log.item_titles()
        self._explainer = ShapExplainer(
            model, output=output, absence=absence, titles=self._titles, progress=False, **options
        )
        self._model = model
        self._split = split
        self._part = part
        self._evalset = split.part(part)
        self._row_of = {int(candidate): row for row, candidate in enumerate(self._evalset.users)}
        self._genres = _genre_labels(split.log)
        self._popularity = split.train_popularity()
        self._cache: dict[tuple[int, int, int], Any] = {}
        self._summary_frame = pd.DataFrame()
        self._loading = False

        user_list = [] if users is None else [int(candidate) for candidate in np.asarray(users).ravel()]
        for candidate in user_list:
            self._check_user(candidate)
        if user is None:
            user = user_list[0] if user_list else self._first_user()
        self._check_user(int(user))

        super().__init__()
        with self.hold_sync():
            self.users = user_list
            self.k = k
            self.view = view
            self._load_user(int(user))
        self.observe_guarded(self._on_user, names=["user"])
        self.observe_guarded(self._on_users, names=["users"])
        self.observe_guarded(self._on_target, names=["target", "versus"])
        self.observe_guarded(self._on_k, names=["k"])
        self.observe_guarded(self._on_summary_request, names=["summary_request"])

    # -- validation ------------------------------------------------------------------

    def _first_user(self) -> int:
        for row, history in enumerate(self._evalset.histories):
            if len(history):
                return int(self._evalset.users[row])
        raise ConfigError(f"no user of the {self._part} set has a history to explain.")

    def _check_user(self, user: int) -> None:
        if user not in self._row_of:
            raise ConfigError(
                f"user {user} is not in the {self._part} set of this split; pick one of its "
                f"{len(self._row_of)} internal user ids (split.{self._part}.users)."
            )
        if len(self._history(user)) == 0:
            raise ConfigError(f"user {user} has an empty {self._part} history, so there is nothing to explain.")

    def _history(self, user: int) -> np.ndarray:
        return np.asarray(self._evalset.histories[self._row_of[user]], dtype=np.int64)

    def _check_item(self, value: int, name: str) -> int:
        if not 1 <= value <= self._model.n_items:
            raise SelectionError(f"{name}={value} is not an item id; pass an internal id in [1, {self._model.n_items}].")
        return value

    @validator("target")
    def _validate_target(self, proposal: dict) -> int:
        value = int(proposal["value"])
        return value if value == 0 and self._loading else self._check_item(value, "target")

    @validator("versus")
    def _validate_versus(self, proposal: dict) -> int:
        value = int(proposal["value"])
        if value == 0:
            return 0
        self._check_item(value, "versus")
        if value == self.target:
            raise SelectionError(f"versus={value} equals the target; pick a different item B, or 0 for no contrast.")
        return value

    @validator("k")
    def _validate_k(self, proposal: dict) -> int:
        value = int(proposal["value"])
        if not 1 <= value <= self._model.n_items:
            raise SelectionError(f"k={value} is invalid; pass an int between 1 and the {self._model.n_items} items.")
        return value

    @validator("view")
    def _validate_view(self, proposal: dict) -> str:
        value = str(proposal["value"])
        if value not in ("waterfall", "bar"):
            raise SelectionError(f"view={value!r} is invalid; use 'waterfall' or 'bar'.")
        return value

    # -- observers -------------------------------------------------------------------

    def _on_user(self, change: dict) -> None:
        user = int(change["new"])
        self._check_user(user)
        with self.hold_sync():
            self._load_user(user)

    def _on_users(self, change: dict) -> None:
        users = [int(candidate) for candidate in change["new"]]
        for candidate in users:
            self._check_user(candidate)
        if users and self.user not in users:
            self.user = users[0]

    def _on_target(self, change: dict) -> None:
        if not self._loading:
            self._show()

    def _on_k(self, change: dict) -> None:
        self.recommendations = self._recommendations(self.user)

    def _on_summary_request(self, change: dict) -> None:
        self.compute_summary()

    # -- computation -----------------------------------------------------------------

    def _load_user(self, user: int) -> None:
        """Show ``user``: its top-k, its top-1 as target, no contrast."""
        recommendations = self._recommendations(user)
        self._loading = True
        try:
            if self.user != user:
                self.user = user
            self.recommendations = recommendations
            self.versus = 0
            self.target = recommendations[0]["item"] if recommendations else 0
        finally:
            self._loading = False
        self._show()

    def _recommendations(self, user: int) -> list[dict]:
        items, scores = recommend(self._model, self._history(user), self.k)
        return [
            {"item": int(item), "title": self._titles[item], "genres": self._genres[item], "score": float(score)}
            for item, score in zip(items, scores)
        ]

    def _progress(self, state: dict) -> None:
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_INTERVAL_S:
            self._last_progress = now
            self.status = f"Computing: {state['done']:,} of about {state['total']:,} forward passes"

    def explain(self, user: int | None = None, target: int | None = None, versus: int | None = None):
        """Return the ``shap.Explanation`` of ``target`` (or the contrast with ``versus``) for ``user``.

        Defaults are the shown user, target and contrast. Results are cached per
        (user, target, versus), so switching back is instant.
        """
        user = self.user if user is None else int(user)
        target = self.target if target is None else int(target)
        versus = self.versus if versus is None else int(versus)
        key = (user, target, versus)
        if key not in self._cache:
            self._last_progress = time.monotonic()
            self.status = "Computing\u2026"
            try:
                self._cache[key] = self._explainer.explain(
                    self._history(user), target, versus=versus or None, user=user, callback=self._progress
                )
            finally:
                self.status = ""
        return self._cache[key]

    def _show(self) -> None:
        if self.target == 0:
            return
        self.result = self._payload(self.explain())

    def _payload(self, explanation) -> dict:
        meta = explanation.meta
        items = np.asarray(explanation.data, dtype=np.int64)
        real = items != 0
        items = items[real]
        return {
            "user": meta.user,
            "target": meta.target,
            "versus": meta.versus or 0,
            "label": meta.label,
            "output": meta.output,
            "absence": meta.absence,
            "method": meta.method,
            "base_value": float(explanation.base_values),
            "explained_output": float(meta.explained_output),
            "n_evals": int(meta.n_evals),
            "max_standard_error": float(meta.max_standard_error),
            "converged": bool(meta.converged),
            "items": items.astype(np.int32),
            "positions": meta.positions[real].astype(np.int32),
            "titles": [self._titles[item] for item in items],
            "genres": [self._genres[item] for item in items],
            "popularity": self._popularity[items].astype(np.int32),
            "values": np.asarray(explanation.values, dtype=np.float64)[real],
            "errors": np.asarray(explanation.error_std, dtype=np.float64)[real],
        }

    def precompute(self, users: Any = None, n_targets: int = 3) -> None:
        """Store the explanations of each user's top ``n_targets`` items in the state.

        ``users`` defaults to ``users``, else the shown user; the shown user is always
        included. The exported page then offers these users and targets, and contrasts
        between two stored targets, without a kernel. At most ``MAX_PRECOMPUTED_USERS``.
        """
        chosen = list(self.users) if users is None else [int(candidate) for candidate in np.asarray(users).ravel()]
        if self.user not in chosen:
            chosen.insert(0, self.user)
        if len(chosen) > MAX_PRECOMPUTED_USERS:
            raise ConfigError(
                f"{len(chosen)} users are too many to precompute (at most {MAX_PRECOMPUTED_USERS}); pass fewer users."
            )
        if isinstance(n_targets, bool) or not isinstance(n_targets, int) or n_targets < 1:
            raise ConfigError(f"n_targets={n_targets!r} is invalid; pass an int >= 1.")
        for candidate in chosen:
            self._check_user(candidate)
        entries = []
        for candidate in chosen:
            recommendations = self._recommendations(candidate)
            targets = [entry["item"] for entry in recommendations[:n_targets]]
            if candidate == self.user and self.target not in targets:
                targets.append(self.target)
            explanations = [self._payload(self.explain(candidate, target, 0)) for target in targets]
            entries.append({"user": candidate, "recommendations": recommendations, "explanations": explanations})
        self.precomputed = entries
        logger.info("precomputed explanations of %d user(s) for offline use", len(entries))

    def compute_summary(self, users: Any = None, n_users: int = 20) -> pd.DataFrame:
        """Explain the top-1 item of many users and aggregate by genre, position and popularity.

        ``users`` defaults to ``users`` when set, else the first ``n_users`` users of the
        part with a history. Returns :func:`~recwidgets.explain.shap_values.attribution_summary`
        output and shows it in the view.
        """
        if users is None:
            users = list(self.users)
        chosen = [int(candidate) for candidate in np.asarray(users).ravel()] if len(users) else []
        if not chosen:
            chosen = [int(user) for user, history in zip(self._evalset.users, self._evalset.histories) if len(history)]
            chosen = chosen[:n_users]
        explanations = []
        for index, candidate in enumerate(chosen):
            self._check_user(candidate)
            self.status = f"Summary: explaining user {index + 1} of {len(chosen)}"
            top = self._recommendations(candidate)[0]["item"]
            explanations.append(self.explain(candidate, top, 0))
        self.status = ""
        frame = attribution_summary(
            shap_frame(explanations), log=self._split.log, popularity=self._popularity
        )
        self._summary_frame = frame
        self.summary = {
            "n_users": len(chosen),
            "output": self._explainer.output,
            "rows": [
                {
                    "kind": row.kind,
                    "group": str(row.group),
                    "mean_attribution": float(row.mean_attribution),
                    "mean_abs_attribution": float(row.mean_abs_attribution),
                    "n": int(row.n),
                }
                for row in frame.itertuples()
            ],
        }
        return frame

    def to_html(
        self, path, *, title: str | None = None, budget_mb: float = 20.0, users: Any = None, n_targets: int = 3
    ) -> int:
        """Write a self-contained offline page; precomputes ``users`` first (see :meth:`precompute`)."""
        self.precompute(users, n_targets)
        title = title or f"Shapley values of {getattr(self._model, 'name', 'the model')}'s recommendations"
        return super().to_html(path, title=title, budget_mb=budget_mb)

    # -- data ------------------------------------------------------------------------

    def shap_data(self) -> pd.DataFrame:
        """Return every explanation computed so far as one tidy DataFrame.

        Columns: ``user``, ``target``, ``versus`` (-1 without contrast), ``output``,
        ``position`` (-1 is the most recent item), ``item``, ``title``, ``attribution``,
        ``standard_error`` and ``base_value``.
        """
        return shap_frame(list(self._cache.values()))

    def summary_data(self) -> pd.DataFrame:
        """Return the last :meth:`compute_summary` result (empty before the first)."""
        return self._summary_frame.copy()

    def data(self) -> pd.DataFrame:
        """Return the shown explanation, one row per history item, largest magnitude first."""
        if not self.result:
            return pd.DataFrame()
        frame = shap_frame([self.explain()])
        order = frame["attribution"].abs().sort_values(ascending=False, kind="stable").index
        return frame.loc[order].reset_index(drop=True)

    def _fallback_frame(self) -> pd.DataFrame:
        columns = ["position", "title", "attribution", "standard_error"]
        return self.data()[columns].head(20) if self.result else pd.DataFrame()

    def _fallback_title(self) -> str:
        result = self.result
        if not result:
            return "ShapExplorer"
        return (
            f"ShapExplorer: user {self.user}, {result['label']} = {result['explained_output']:.4f} "
            f"(base {result['base_value']:.4f})"
        )


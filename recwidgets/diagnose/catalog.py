"""The documented list of finding ids: what each one means, where it is shown, and its source.

Every detector builds its findings through :func:`make_finding`, so ids, default views
and literature references live in one table. The ``attention.*`` ids and
``embedding.padding_row`` belong to ``recwidgets.diagnose.attention_checks``; they are
listed here so the report can describe them, but that module builds its own findings.

Widget names in ``view`` are the classes in ``recwidgets.widgets`` that show the evidence.
The other keys of ``view`` are trait values that select the right part of that widget, for
example ``{"widget": "MetricPanel", "segment_by": "activity"}``. Findings without a
dedicated chart (embeddings, data) point at ``DiagnosisReport``, whose evidence table is
the view.
"""

from __future__ import annotations

from dataclasses import dataclass

from recwidgets.diagnose.finding import Finding

JI_2023 = (
    'Yitong Ji, Aixin Sun, Jie Zhang and Chenliang Li, "A Critical Study on Data Leakage in '
    'Recommender System Offline Evaluation", ACM Transactions on Information Systems 41(3), 2023.'
)
KRICHENE_2020 = (
    'Walid Krichene and Steffen Rendle, "On Sampled Metrics for Item Recommendation", KDD 2020.'
)
ABDOLLAHPOURI_2019 = (
    'Himan Abdollahpouri, Robin Burke and Bamshad Mobasher, "Managing Popularity Bias in '
    'Recommender Systems with Personalized Re-ranking", FLAIRS 2019 (ARP and long-tail share).'
)
ROY_2007 = (
    'Olivier Roy and Martin Vetterli, "The Effective Rank: A Measure of Effective '
    'Dimensionality", EUSIPCO 2007.'
)
PRECHELT_1998 = (
    'Lutz Prechelt, "Early Stopping - But When?", in Neural Networks: Tricks of the Trade, '
    "Springer, 1998."
)


@dataclass(frozen=True)
class CatalogEntry:
    """One finding id: its category, a one-line meaning, the widget that shows it, its source.

    ``settings`` are trait values of ``widget`` that bring the evidence into view.
    """

    id: str
    meaning: str
    widget: str
    reference: str = ""
    settings: tuple[tuple[str, str], ...] = ()

    @property
    def category(self) -> str:
        """The part of the id before the first dot, such as ``"leakage"``."""
        return self.id.split(".", 1)[0]


_ENTRIES = (
    # Training curves.
    CatalogEntry(
        "fit.overfitting",
        "Validation metric peaked and then fell while the training loss kept falling.",
        "TrainingMonitor",
        PRECHELT_1998,
    ),
    CatalogEntry(
        "fit.underfitting",
        "The model does not beat the most-popular baseline, or its training loss stayed near chance.",
        "MetricPanel",
    ),
    CatalogEntry(
        "fit.divergence",
        "Training produced a NaN or infinite loss, or the gradient norm exploded.",
        "TrainingMonitor",
    ),
    # Leakage between training and test data.
    CatalogEntry(
        "leakage.global_timeline",
        "Test targets happen before the latest training event, so training saw the future.",
        "MetricPanel",
        JI_2023,
    ),
    CatalogEntry(
        "leakage.train_test_overlap",
        "Test (user, item) pairs also occur in that user's training data, beyond the usual repeat rate.",
        "MetricPanel",
    ),
    CatalogEntry(
        "leakage.target_in_history",
        "The test target is the last item of its own input history.",
        "MetricPanel",
    ),
    CatalogEntry(
        "leakage.implausible_metrics",
        "Full-ranking metrics are too high to be credible for next-item prediction.",
        "MetricPanel",
    ),
    # Evaluation protocol.
    CatalogEntry(
        "protocol.sampled_metrics",
        "Metrics rank the target against sampled negatives, not the full catalog.",
        "MetricPanel",
        KRICHENE_2020,
    ),
    CatalogEntry(
        "protocol.seen_items",
        "Items from the user's history stay in the ranking on data with few repeat interactions.",
        "MetricPanel",
    ),
    CatalogEntry(
        "protocol.ties",
        "Tied scores are not broken pessimistically, so constant scores look good.",
        "MetricPanel",
    ),
    CatalogEntry(
        "protocol.empty_test_users",
        "Users without a test target are averaged into the metrics.",
        "MetricPanel",
    ),
    # Popularity bias and cold start.
    CatalogEntry(
        "bias.popularity",
        "Recommendations concentrate on popular items far beyond what users consume.",
        "MetricPanel",
        ABDOLLAHPOURI_2019,
        (("chart_metric", "ARP"),),
    ),
    CatalogEntry(
        "coldstart.users",
        "The model is worse than the most-popular baseline for the least active users.",
        "MetricPanel",
        "",
        (("segment_by", "activity"),),
    ),
    CatalogEntry(
        "coldstart.items",
        "The model ranks the long-tail items users consume below where most-popular ranking puts them.",
        "MetricPanel",
        "",
        (("segment_by", "target_popularity"),),
    ),
    # Embedding health.
    CatalogEntry(
        "embedding.collapse",
        "Item embeddings span far fewer directions than their dimension (low effective rank).",
        "DiagnosisReport",
        ROY_2007,
    ),
    CatalogEntry(
        "embedding.norm_popularity",
        "Item embedding norms follow item popularity almost exactly.",
        "DiagnosisReport",
    ),
    CatalogEntry(
        "embedding.padding_row",
        "The padding embedding row is not zero, so padding leaks into attention.",
        "DiagnosisReport",
    ),
    # Attention (built by attention_checks).
    CatalogEntry(
        "attention.causal",
        "Attention reaches later positions, so the model reads the future during training.",
        "AttentionHeatmap",
    ),
    CatalogEntry("attention.padding", "Attention puts weight on padding positions.", "AttentionHeatmap"),
    CatalogEntry(
        "attention.invalid_weights",
        "Attention weights are NaN or infinite, or a query's weights do not sum to 1.",
        "AttentionHeatmap",
    ),
    CatalogEntry(
        "attention.collapsed_heads",
        "A head looks at one key only, or its weights do not depend on the keys at all.",
        "AttentionHeatmap",
    ),
    CatalogEntry("attention.redundant_heads", "Two heads of a layer have near-identical weights.", "AttentionHeatmap"),
    CatalogEntry(
        "attention.recency_collapse",
        "Every layer puts almost all weight on the query's own position, so the history is ignored.",
        "AttentionHeatmap",
    ),
    CatalogEntry(
        "attention.order_insensitive",
        "Shuffling the history (last item kept) leaves the top-k recommendations almost unchanged.",
        "AttentionHeatmap",
    ),
    # Data.
    CatalogEntry(
        "data.duplicates",
        "The log repeats identical (user, item, timestamp) events.",
        "DiagnosisReport",
    ),
    CatalogEntry(
        "data.timestamp_ties",
        "Most consecutive events of a user share a timestamp, so their order is arbitrary.",
        "DiagnosisReport",
    ),
    CatalogEntry(
        "data.unordered",
        "Training sequences are not chronological: timestamps decrease within a user.",
        "DiagnosisReport",
    ),
    CatalogEntry(
        "data.single_interaction",
        "Many users have a single interaction, which gives a next-item model nothing to learn.",
        "DiagnosisReport",
    ),
)

#: Every documented finding id, by id.
CATALOG: dict[str, CatalogEntry] = {entry.id: entry for entry in _ENTRIES}

#: Ids that ``recwidgets.diagnose.attention_checks`` may emit beyond the entries above.
ATTENTION_PREFIX = "attention."


def describe(finding_id: str) -> CatalogEntry:
    """Return the catalog entry of ``finding_id``; attention ids unknown here get a generic one."""
    if finding_id in CATALOG:
        return CATALOG[finding_id]
    if finding_id.startswith(ATTENTION_PREFIX):
        return CatalogEntry(finding_id, "Attention pattern finding.", "AttentionHeatmap")
    raise KeyError(f"unknown finding id {finding_id!r}; documented ids are {sorted(CATALOG)}.")


def make_finding(
    finding_id: str,
    severity: str,
    title: str,
    evidence: dict,
    fix: str,
    *,
    view: dict | None = None,
) -> Finding:
    """Build a Finding for a catalog id, with the catalog's reference and default widget.

    ``view`` entries are added to ``{"widget": <catalog widget>}``, for example a model name
    or a user id to select.
    """
    entry = CATALOG[finding_id]
    return Finding(
        id=finding_id,
        severity=severity,
        title=title,
        evidence=evidence,
        fix=fix,
        reference=entry.reference,
        view={"widget": entry.widget, **dict(entry.settings), **(view or {})},
    )

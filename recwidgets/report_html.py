"""Assemble the main job's offline HTML report from widgets and Altair charts."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from recwidgets.evaluation.segments import popularity_buckets

logger = logging.getLogger(__name__)


def long_tail_data(split) -> pd.DataFrame:
    """Return one row per item by popularity rank: rank, item, title, count, share, bucket."""
    popularity = split.train_popularity()
    labels = popularity_buckets(popularity)
    titles = split.log.item_titles()
    items = np.arange(1, len(popularity))
    order = items[np.lexsort((items, -popularity[1:]))]
    counts = popularity[order]
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(order) + 1),
            "item": order,
            "title": [titles[item] for item in order],
            "count": counts,
            "cumulative_share": np.cumsum(counts) / max(counts.sum(), 1),
            "bucket": labels[order],
        }
    )


def exposure_data(split, results: dict, k: int = 10) -> pd.DataFrame:
    """Return each model's share of top-k recommendations in the head, mid and tail buckets."""
    labels = popularity_buckets(split.train_popularity())
    rows = []
    for name, result in results.items():
        top = np.asarray(result.topk)[:, :k]
        top = top[top > 0]
        for bucket in ("head", "mid", "tail"):
            share = float(np.mean(labels[top] == bucket)) if top.size else float("nan")
            rows.append({"model": name, "bucket": bucket, "share": share})
    catalog = labels[1:]
    for bucket in ("head", "mid", "tail"):
        rows.append({"model": "catalog", "bucket": bucket, "share": float(np.mean(catalog == bucket))})
    return pd.DataFrame(rows)


def long_tail_chart(split):
    """Altair chart of training interactions per item by popularity rank, log scale."""
    import altair as alt

    data = long_tail_data(split)
    data = data[data["count"] > 0]
    return (
        alt.Chart(data, title="Training interactions per item (long tail)")
        # A line, because an area's baseline of 0 has no place on a log scale.
        .mark_line(interpolate="step-after", strokeWidth=2)
        .encode(
            x=alt.X("rank:Q", title="Item popularity rank"),
            y=alt.Y("count:Q", title="Training interactions", scale=alt.Scale(type="log")),
            color=alt.Color("bucket:N", title="Bucket", sort=["head", "mid", "tail"]),
            tooltip=["rank:Q", "title:N", "count:Q", alt.Tooltip("cumulative_share:Q", format=".1%")],
        )
        .properties(width=560, height=220)
    )


def exposure_chart(split, results: dict, k: int = 10):
    """Altair chart of each model's top-k exposure by popularity bucket, next to the catalog."""
    import altair as alt

    data = exposure_data(split, results, k=k)
    return (
        alt.Chart(data, title=f"Share of top-{k} recommendations by item popularity bucket")
        .mark_bar()
        .encode(
            y=alt.Y("model:N", title=None),
            x=alt.X("share:Q", title="Share", stack="normalize", axis=alt.Axis(format="%")),
            color=alt.Color("bucket:N", title="Bucket", sort=["head", "mid", "tail"]),
            order=alt.Order("bucket_order:Q"),
            tooltip=["model:N", "bucket:N", alt.Tooltip("share:Q", format=".1%")],
        )
        .transform_calculate(bucket_order="indexof(['head', 'mid', 'tail'], datum.bucket)")
        .properties(width=560, height=30 * (len(results) + 1))
    )


def findings_frame(findings) -> pd.DataFrame:
    """Return the findings as a table: severity, id, title, evidence and fix."""
    rows = [
        {
            "severity": finding.severity,
            "id": finding.id,
            "title": finding.title,
            "evidence": ", ".join(f"{key}={value}" for key, value in finding.evidence.items()),
            "fix": finding.fix,
        }
        for finding in findings
    ]
    return pd.DataFrame(rows, columns=["severity", "id", "title", "evidence", "fix"])


def write_report_html(path, *, log, split, models, results, findings, monitor=None) -> int:
    """Write the report page and return its size in bytes."""
    from recwidgets.export import Heading, Text, save_html
    from recwidgets.widgets import MetricPanel

    card = next(iter(results.values())).card
    items: list = [
        Text(
            f"{card.dataset}: {card.n_users} users, {card.n_items} items, {card.n_interactions} interactions; "
            f"split {card.split}. Every model is ranked against the full catalog with the same protocol, "
            "shown in the card below."
        ),
        Heading("Dashboard"),
        Text(
            "Click a segment to list its users and a user to see the history, the recommendations and their "
            "explanations; a finding's \"show\" link opens the view it names. Explanations are precomputed for "
            "users of the weakest segments."
        ),
        _dashboard(split, models, results, findings),
        Heading("Metrics"),
        MetricPanel(list(results.values())),
    ]

    if monitor is not None:
        items += [Heading("Training"), monitor]

    items += [Heading("Popularity and long tail"), long_tail_chart(split), exposure_chart(split, results, k=_display_k(results))]

    items.append(Heading("Diagnosis"))
    report_widget = _diagnosis_widget(findings)
    if report_widget is not None:
        items.append(report_widget)
    elif findings:
        items.append(findings_frame(findings))
    else:
        items.append(Text("No finding."))

    return save_html(Path(path), *items, title=f"recwidgets report: {card.dataset}")


def _display_k(results: dict) -> int:
    """Return 10 when it was evaluated, else the largest evaluated cutoff."""
    ks = next(iter(results.values())).k
    return 10 if 10 in ks else max(ks)


def _dashboard(split, models: dict, results: dict, findings):
    """Return the linked Dashboard, inspecting SASRec when it was trained, else the first model."""
    from recwidgets.widgets.dashboard import Dashboard

    name = "sasrec" if "sasrec" in models else next(iter(models), None)
    model = models.get(name) if name is not None else None
    return Dashboard(results, split=split, model=model, findings=findings, k=_display_k(results))


def _diagnosis_widget(findings):
    try:
        from recwidgets.widgets.diagnosis_report import DiagnosisReport
    except ImportError:
        return None
    return DiagnosisReport(findings)

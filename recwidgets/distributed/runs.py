"""Run folders: a checkpoint plus evaluation results that a notebook can open again.

Layout of a run folder::

    run.json                      format tag, result names, launch facts (world size, backend, timings)
    model.pt                      the SASRec checkpoint (``SASRec.save`` format)
    results/<slug>/result.json    model name, k, bootstrap settings, protocol card, metrics for reading
    results/<slug>/metrics.parquet  the metrics table (value, ci_low, ci_high, n_users)
    results/<slug>/per_user.parquet the per-user metric columns
    results/<slug>/ranking.parquet  user, target_ranks (list), topk (list), segment labels
    results/<slug>/negatives.npy    sampled negatives, only for sampled results

Parquet keeps float64 values and NaN bit for bit, so ``load_result`` rebuilds an
``EvaluationResult`` equal to the one saved.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recwidgets.data.split import ProtocolCard
from recwidgets.errors import ConfigError
from recwidgets.evaluation.result import EvaluationResult
from recwidgets.training.checkpoint import to_plain

logger = logging.getLogger(__name__)

RUN_FORMAT = "recwidgets.run"
RESULT_FORMAT = "recwidgets.evaluation_result"
VERSION = 1


def result_slug(name: str) -> str:
    """Return a folder name for a result name: lower case, runs of other characters as ``-``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "result"


def card_from_dict(data: dict) -> ProtocolCard:
    """Rebuild a ``ProtocolCard`` from ``ProtocolCard.to_dict`` output; unknown keys go to ``extra``."""
    known = {field.name for field in fields(ProtocolCard)}
    values = {name: value for name, value in data.items() if name in known}
    unknown = {name: value for name, value in data.items() if name not in known}
    if values.get("k") is not None:
        values["k"] = tuple(int(k) for k in values["k"])
    values["extra"] = {**(values.get("extra") or {}), **unknown}
    return ProtocolCard(**values)


def save_result(result: EvaluationResult, folder: str | os.PathLike, name: str | None = None) -> Path:
    """Write one ``EvaluationResult`` to ``folder`` (created) and return the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    meta = {
        "format": RESULT_FORMAT,
        "version": VERSION,
        "name": name or result.model_name,
        "model_name": result.model_name,
        "k": list(result.k),
        "coverage_counts": {str(k): int(count) for k, count in result.coverage_counts.items()},
        "n_users_without_targets": int(result.n_users_without_targets),
        "n_bootstrap": int(result.n_bootstrap),
        "confidence": float(result.confidence),
        "seed": int(result.seed),
        "sampled": result.negatives is not None,
        "card": to_plain(result.card.to_dict()),
        "metrics": result.to_dict(),
    }
    (folder / "result.json").write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n")

    result.metrics.to_parquet(folder / "metrics.parquet")
    result.per_user.to_parquet(folder / "per_user.parquet", index=False)
    ranking = pa.table(
        {
            "user": pa.array(np.asarray(result.users, dtype=np.int64)),
            "target_ranks": pa.array([np.asarray(r, dtype=np.int64) for r in result.target_ranks], pa.list_(pa.int64())),
            "topk": pa.array(list(np.asarray(result.topk, dtype=np.int64)), pa.list_(pa.int64())),
            **{
                f"segment_{column}": pa.array(result.segments[column].astype(object).tolist(), pa.string())
                for column in result.segments.columns
                if column != "user"
            },
        }
    )
    pq.write_table(ranking, folder / "ranking.parquet")
    if result.negatives is not None:
        np.save(folder / "negatives.npy", np.asarray(result.negatives))
    return folder


def load_result(folder: str | os.PathLike) -> EvaluationResult:
    """Read an ``EvaluationResult`` written by ``save_result``."""
    folder = Path(folder)
    meta_path = folder / "result.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{str(meta_path)!r} not found; point load_result at a folder written by save_result.")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != RESULT_FORMAT or int(meta.get("version", 0)) > VERSION:
        raise ConfigError(
            f"{str(meta_path)!r} is not a version <= {VERSION} {RESULT_FORMAT!r} file "
            f"(found format {meta.get('format')!r}, version {meta.get('version')!r})."
        )

    metrics = pd.read_parquet(folder / "metrics.parquet")
    per_user = pd.read_parquet(folder / "per_user.parquet")
    ranking = pq.read_table(folder / "ranking.parquet")
    users = ranking.column("user").to_numpy()
    target_ranks = [np.asarray(ranks, dtype=np.int64) for ranks in ranking.column("target_ranks").to_pylist()]
    topk_lists = ranking.column("topk").to_pylist()
    width = max(meta["k"])
    topk = np.asarray(topk_lists, dtype=np.int64).reshape(len(topk_lists), width)
    segments = pd.DataFrame({"user": users})
    for column in ranking.column_names:
        if column.startswith("segment_"):
            segments[column[len("segment_") :]] = pd.Series(ranking.column(column).to_pylist(), dtype=object)
    negatives_path = folder / "negatives.npy"
    negatives = np.load(negatives_path) if negatives_path.exists() else None

    return EvaluationResult(
        metrics=metrics,
        per_user=per_user,
        topk=topk,
        target_ranks=target_ranks,
        users=users,
        segments=segments,
        card=card_from_dict(meta["card"]),
        model_name=meta["model_name"],
        k=tuple(int(k) for k in meta["k"]),
        negatives=negatives,
        coverage_counts={int(k): int(count) for k, count in meta["coverage_counts"].items()},
        n_users_without_targets=int(meta["n_users_without_targets"]),
        n_bootstrap=int(meta["n_bootstrap"]),
        confidence=float(meta["confidence"]),
        seed=int(meta["seed"]),
    )


def save_run(
    folder: str | os.PathLike,
    model=None,
    results: dict[str, EvaluationResult] | None = None,
    info: dict | None = None,
) -> Path:
    """Write a run folder: ``model.pt`` (when ``model`` has ``save``), each result and ``run.json``.

    ``results`` maps display names (such as ``"test"``) to results; ``info`` is any plain
    data about the run (command, world size, timings), stored in ``run.json``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    used: set[str] = set()
    for name, result in (results or {}).items():
        slug = result_slug(name)
        while slug in used:
            slug += "-2"
        used.add(slug)
        save_result(result, folder / "results" / slug, name=name)
        entries.append({"name": name, "folder": f"results/{slug}"})
    if model is not None:
        model.save(folder / "model.pt")
    manifest = {
        "format": RUN_FORMAT,
        "version": VERSION,
        "model": "model.pt" if model is not None else None,
        "results": entries,
        "info": to_plain(info or {}),
    }
    (folder / "run.json").write_text(json.dumps(manifest, indent=2) + "\n")
    logger.info("wrote run folder %s with %d result(s)", folder, len(entries))
    return folder


def read_run_info(folder: str | os.PathLike) -> dict:
    """Return the ``run.json`` manifest of a run folder."""
    path = Path(folder) / "run.json"
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r} not found; pass a folder written by save_run or the distributed CLI.")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != RUN_FORMAT:
        raise ConfigError(f"{str(path)!r} is not a {RUN_FORMAT!r} manifest (found {manifest.get('format')!r}).")
    return manifest


def load_run(folder: str | os.PathLike, device: str = "auto"):
    """Open a run folder: return ``(model, {name: EvaluationResult})``.

    ``model`` is a ``SASRec`` loaded onto ``device``, or None for a run saved without one.
    Results keep the order they were saved in, so ``MetricPanel(list(results.values()))``
    shows them in that order.
    """
    from recwidgets.models.sasrec import SASRec

    folder = Path(folder)
    manifest = read_run_info(folder)
    model = SASRec.load(folder / manifest["model"], device=device) if manifest.get("model") else None
    results = {entry["name"]: load_result(folder / entry["folder"]) for entry in manifest["results"]}
    return model, results

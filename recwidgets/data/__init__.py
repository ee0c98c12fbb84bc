"""Interaction data: loaders, dataset resolution, preprocessing and splits."""

from recwidgets.data.datasets import KNOWN_DATASETS, cache_root, download_archive, load, locate
from recwidgets.data.loaders import load_ml100k, load_ml_latest_small, load_recbole_atomic, load_table
from recwidgets.data.log import PAD, InteractionLog
from recwidgets.data.preprocess import check_order, duplicates, kcore, to_implicit
from recwidgets.data.split import EvalSet, ProtocolCard, Split, leave_last_out, split, temporal

__all__ = [
    "KNOWN_DATASETS",
    "PAD",
    "EvalSet",
    "InteractionLog",
    "ProtocolCard",
    "Split",
    "cache_root",
    "check_order",
    "download_archive",
    "duplicates",
    "kcore",
    "leave_last_out",
    "load",
    "load_ml100k",
    "load_ml_latest_small",
    "load_recbole_atomic",
    "load_table",
    "locate",
    "split",
    "temporal",
    "to_implicit",
]

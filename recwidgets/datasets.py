"""Public entry point for datasets: ``recwidgets.datasets.load("ml-100k")``.

The implementation lives in :mod:`recwidgets.data`; this module gathers what a notebook needs.
"""

from recwidgets.data.datasets import (
    KNOWN_DATASETS,
    DatasetSpec,
    cache_root,
    detect_format,
    download_archive,
    load,
    load_path,
    locate,
    recbole_ml100k_path,
)
from recwidgets.data.loaders import load_ml100k, load_ml_latest_small, load_recbole_atomic, load_table
from recwidgets.data.preprocess import kcore, to_implicit

__all__ = [
    "KNOWN_DATASETS",
    "DatasetSpec",
    "cache_root",
    "detect_format",
    "download_archive",
    "kcore",
    "load",
    "load_ml100k",
    "load_ml_latest_small",
    "load_path",
    "load_recbole_atomic",
    "load_table",
    "locate",
    "recbole_ml100k_path",
    "to_implicit",
]

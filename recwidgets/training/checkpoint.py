"""Checkpoint files that load with ``torch.load(..., weights_only=True)``.

A checkpoint is a dict of plain data (str, int, float, bool, None, lists and dicts of
them) and tensors, tagged with a format name and version. ``weights_only=True`` refuses
to unpickle arbitrary objects, so loading a file from elsewhere cannot run code.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recwidgets.errors import ConfigError

logger = logging.getLogger(__name__)


def to_plain(value):
    """Convert numpy scalars and arrays, tuples and nested containers into plain Python data."""
    if isinstance(value, dict):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return [to_plain(item) for item in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def history_to_plain(history: pd.DataFrame) -> dict[str, list]:
    """Return a history DataFrame as ``{column: [values]}`` with plain floats, ints and bools."""
    return {str(column): to_plain(history[column].tolist()) for column in history.columns}


def history_from_plain(data: dict[str, list] | None) -> pd.DataFrame:
    """Rebuild the DataFrame that ``history_to_plain`` flattened (an empty frame for None)."""
    if not data:
        return pd.DataFrame()
    return pd.DataFrame(data)


def save_checkpoint(path: str | os.PathLike, payload: dict, *, kind: str, version: int = 1) -> Path:
    """Write ``payload`` plus the ``format`` and ``version`` tags to ``path`` with ``torch.save``.

    Parent folders are created. Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": kind, "version": int(version), **to_plain_payload(payload)}, path)
    logger.info("saved %s checkpoint to %s", kind, path)
    return path


def to_plain_payload(payload: dict) -> dict:
    """Convert every non-tensor value of ``payload`` to plain data, keeping tensors and state dicts."""
    plain = {}
    for key, value in payload.items():
        if isinstance(value, torch.Tensor):
            plain[key] = value.detach().cpu()
        elif isinstance(value, dict) and value and all(isinstance(item, torch.Tensor) for item in value.values()):
            plain[key] = {name: tensor.detach().cpu() for name, tensor in value.items()}
        else:
            plain[key] = to_plain(value)
    return plain


def load_checkpoint(path: str | os.PathLike, *, kind: str, max_version: int = 1) -> dict:
    """Read a checkpoint written by ``save_checkpoint`` with ``weights_only=True``.

    Raises ``FileNotFoundError`` for a missing file and ``ConfigError`` for a file that is not
    a ``kind`` checkpoint, was written by a newer version, or contains objects other than
    plain data and tensors.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} not found; check the path, or save a model there first.")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ConfigError(
            f"{str(path)!r} is not a plain-data checkpoint (weights_only loading failed: {error}). "
            "Only files written by recwidgets' save() can be loaded."
        ) from error
    except (RuntimeError, EOFError) as error:
        raise ConfigError(f"{str(path)!r} could not be read as a torch checkpoint: {error}.") from error
    if not isinstance(data, dict) or data.get("format") != kind:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ConfigError(f"{str(path)!r} is not a {kind!r} checkpoint (found format {found!r}).")
    if int(data.get("version", 0)) > max_version:
        raise ConfigError(
            f"{str(path)!r} has {kind} checkpoint version {data['version']}, newer than the supported "
            f"version {max_version}; upgrade recwidgets to load it."
        )
    return data

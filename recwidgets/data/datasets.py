"""Resolve a dataset name or path to an interaction log, downloading a known dataset if needed.

A known name is looked up in this order:

1. its environment variable (``RECWIDGETS_ML100K``, ``RECWIDGETS_ML_LATEST_SMALL``);
2. ``$RECWIDGETS_DATA_DIR/<name>``;
3. for ``ml-100k``, the copy bundled in the RecBole wheel on PyPI (``pip install --no-deps recbole``);
4. the cache (``cache_dir``, ``$RECWIDGETS_CACHE`` or ``~/.cache/recwidgets``);
5. a download from GroupLens into the cache, accepted only after a SHA-256 check.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Callable, NamedTuple

import pandas as pd

from recwidgets.data import preprocess
from recwidgets.data.loaders import load_ml100k, load_ml_latest_small, load_recbole_atomic, load_table
from recwidgets.data.log import InteractionLog
from recwidgets.errors import ConfigError, DataError, DatasetNotFoundError

logger = logging.getLogger(__name__)

#: Environment variable naming a folder that contains one subfolder per known dataset.
DATA_DIR_ENV = "RECWIDGETS_DATA_DIR"
#: Environment variable naming the download cache folder.
CACHE_ENV = "RECWIDGETS_CACHE"
#: Path of the ML-100K ratings inside the RecBole wheel (RecBole 1.2.1 atomic files).
RECBOLE_ML100K = "recbole/dataset_example/ml-100k/ml-100k.inter"

TABLE_OPTIONS = ("user_col", "item_col", "time_col", "rating_col", "items", "sep", "name")


@dataclass(frozen=True)
class DatasetSpec:
    """Download address, checksum and loader of a dataset that ``load`` accepts by name."""

    name: str
    url: str
    #: SHA-256 of the zip archive; ``None`` makes the download fail closed.
    sha256: str | None
    size: int
    #: Top-level folder inside the archive.
    archive_folder: str
    #: File whose presence marks a complete copy of the dataset.
    marker: str
    env_var: str
    loader: Callable[[Path], InteractionLog]


# Checksums as published by TensorFlow Datasets (tensorflow_datasets/url_checksums/movielens.txt,
# which lists URL, size in bytes and SHA-256) and matched by other projects that pin these archives.
KNOWN_DATASETS: dict[str, DatasetSpec] = {
    "ml-100k": DatasetSpec(
        name="ml-100k",
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        size=4_924_029,
        archive_folder="ml-100k",
        marker="u.data",
        env_var="RECWIDGETS_ML100K",
        loader=load_ml100k,
    ),
    "ml-latest-small": DatasetSpec(
        name="ml-latest-small",
        url="https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
        sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        size=978_202,
        archive_folder="ml-latest-small",
        marker="ratings.csv",
        env_var="RECWIDGETS_ML_LATEST_SMALL",
        loader=load_ml_latest_small,
    ),
}


class Location(NamedTuple):
    """Location of a known dataset: a folder (or file) and the source recorded in the variant."""

    path: Path
    source: str


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Return the download cache: ``cache_dir``, else ``$RECWIDGETS_CACHE``, else ``~/.cache/recwidgets``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path.home() / ".cache" / "recwidgets"


def recbole_ml100k_path() -> Path | None:
    """Return the ML-100K ``.inter`` file bundled in an installed RecBole wheel, or None.

    The file is found through the wheel's installed-files record, without importing RecBole,
    because ``import recbole`` pulls in heavy optional dependencies.
    """
    try:
        distribution = metadata.distribution("recbole")
    except metadata.PackageNotFoundError:
        return None
    for record in distribution.files or ():
        if str(record) == RECBOLE_ML100K:
            path = Path(distribution.locate_file(record))
            return path if path.exists() else None
    return None


def normalize_name(name: str) -> str:
    """Return the canonical spelling of a dataset name ("ML_100K" becomes "ml-100k")."""
    return name.strip().lower().replace("_", "-")


def locate(name: str, *, cache_dir: str | Path | None = None, download: bool = True) -> Location:
    """Find a known dataset, downloading it into the cache when no local copy exists.

    Raises DatasetNotFoundError for an unknown name, an environment variable that points at
    a folder without the dataset, or when nothing is found and ``download`` is False.
    """
    spec = _spec(name)
    tried = []

    explicit = os.environ.get(spec.env_var)
    if explicit:
        folder = Path(explicit).expanduser()
        if not (folder / spec.marker).exists():
            raise DatasetNotFoundError(
                f"{spec.env_var}={explicit} does not contain {spec.marker}; point it at the extracted "
                f"{spec.name} folder, or unset it to use the other sources."
            )
        return Location(folder, str(folder.resolve()))

    data_dir = os.environ.get(DATA_DIR_ENV)
    if data_dir:
        folder = Path(data_dir).expanduser() / spec.name
        if (folder / spec.marker).exists():
            return Location(folder, str(folder.resolve()))
        tried.append(f"{DATA_DIR_ENV}/{spec.name} ({folder})")

    if spec.name == "ml-100k":
        bundled = recbole_ml100k_path()
        if bundled is not None:
            return Location(bundled, "recbole-wheel")
        tried.append("the RecBole wheel (pip install --no-deps recbole)")

    cached = cache_root(cache_dir) / spec.name
    if (cached / spec.marker).exists():
        return Location(cached, "download")
    tried.append(f"the cache ({cached})")

    if not download:
        raise DatasetNotFoundError(
            f"dataset {spec.name!r} not found; looked in {', '.join(tried)}. Pass download=True to fetch "
            f"it from GroupLens, set {spec.env_var} to an extracted copy, or pass its folder as a path."
        )
    download_archive(spec.url, spec.sha256, cached, archive_folder=spec.archive_folder, marker=spec.marker)
    return Location(cached, "download")


def _spec(name: str) -> DatasetSpec:
    spec = KNOWN_DATASETS.get(normalize_name(name))
    if spec is None:
        raise _unknown_name_error(name)
    return spec


def _unknown_name_error(name: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"unknown dataset {name!r}; the known names are {sorted(KNOWN_DATASETS)}. "
        "A path also works: a MovieLens or RecBole folder, or a CSV, TSV or Parquet file."
    )


def download_archive(
    url: str,
    sha256: str | None,
    destination: str | Path,
    *,
    archive_folder: str | None,
    marker: str,
    timeout: float = 60.0,
) -> Path:
    """Download a zip archive, check its SHA-256 and extract it to ``destination``.

    ``archive_folder`` is the folder inside the archive whose content becomes
    ``destination`` (None: the whole archive). The archive is written to a temporary file
    next to ``destination`` and removed afterwards; on a checksum mismatch nothing is
    extracted. Without a checksum (``sha256=None``) nothing is downloaded.
    """
    destination = Path(destination)
    if not sha256:
        raise DatasetNotFoundError(
            f"no trusted SHA-256 checksum is known for {url}, so it is not downloaded. Download and "
            "verify the archive yourself, then pass the extracted folder as a path."
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    archive = Path(tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}-", suffix=".zip.part")[1])
    try:
        logger.info("downloading %s to %s", url, destination)
        digest = _fetch(url, archive, timeout)
        if digest != sha256.lower():
            raise DataError(
                f"SHA-256 of the download from {url} is {digest}, expected {sha256.lower()}; the file is "
                "damaged or was replaced, so it was deleted. Try again later, or download and verify it "
                "yourself and pass the extracted folder as a path."
            )
        _extract(archive, destination, archive_folder, marker)
    finally:
        archive.unlink(missing_ok=True)
    logger.info("extracted %s to %s", url, destination)
    return destination


def _fetch(url: str, target: Path, timeout: float) -> str:
    """Stream ``url`` into ``target`` and return the SHA-256 hex digest of the bytes."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, target.open("wb") as out:
            while chunk := response.read(1 << 16):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as error:
        raise DatasetNotFoundError(
            f"download of {url} failed ({error}); check the network connection, or download the archive "
            "yourself and pass the extracted folder as a path."
        ) from None
    return digest.hexdigest()


def _extract(archive: Path, destination: Path, archive_folder: str | None, marker: str) -> None:
    staging = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}-"))
    try:
        try:
            with zipfile.ZipFile(archive) as bundle:
                for member in bundle.infolist():
                    parts = PurePosixPath(member.filename).parts
                    # Refuse members that would land outside the staging folder.
                    if member.filename.startswith("/") or ".." in parts:
                        raise DataError(f"archive member {member.filename!r} has an unsafe path; the archive was not extracted.")
                    bundle.extract(member, staging)
        except zipfile.BadZipFile as error:
            raise DataError(f"downloaded archive is not a valid zip file ({error}).") from None

        content = staging / archive_folder if archive_folder else staging
        if not (content / marker).exists():
            raise DataError(
                f"downloaded archive has no {archive_folder + '/' if archive_folder else ''}{marker}; "
                "it is not the expected dataset."
            )
        if destination.exists():
            # A concurrent download finished first; keep its copy.
            logger.info("%s appeared while downloading; keeping the existing copy", destination)
            return
        os.replace(content, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def detect_format(path: Path, *, table_options: bool = False) -> str:
    """Return the layout of a dataset path: "ml-100k", "ml-latest-small", "recbole" or "table"."""
    if path.is_dir():
        if (path / "u.data").exists():
            return "ml-100k"
        if (path / "ratings.csv").exists() and (path / "movies.csv").exists():
            return "ml-latest-small"
        if any(path.glob("*.inter")):
            return "recbole"
        found = sorted(child.name for child in path.iterdir())[:10]
        raise DataError(
            f"folder {path} has no known dataset layout (it contains {found}); expected u.data (ML-100K), "
            "ratings.csv and movies.csv (ml-latest-small) or a RecBole .inter file. "
            "Pass the CSV, TSV or Parquet file itself to load it as a table."
        )
    if path.name == "u.data":
        return "ml-100k"
    if path.suffix == ".inter":
        return "recbole"
    if path.name == "ratings.csv" and (path.parent / "movies.csv").exists() and not table_options:
        return "ml-latest-small"
    return "table"


def load_path(path: str | Path, **table_options) -> InteractionLog:
    """Load a folder or file after detecting its format (see :func:`detect_format`)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetNotFoundError(
            f"dataset path {str(path)!r} not found; pass an existing folder or file, or one of the "
            f"known names {sorted(KNOWN_DATASETS)}."
        )
    unknown = sorted(set(table_options) - set(TABLE_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown}; the table options are {list(TABLE_OPTIONS)}.")

    kind = detect_format(path, table_options=bool(table_options))
    if kind != "table" and table_options:
        raise ConfigError(
            f"{path} is in {kind} format, which has fixed columns, so {sorted(table_options)} do not "
            "apply; leave them out, or pass a CSV, TSV or Parquet file."
        )
    if kind == "ml-100k":
        return load_ml100k(path)
    if kind == "ml-latest-small":
        return load_ml_latest_small(path)
    if kind == "recbole":
        return load_recbole_atomic(path)
    return load_table(path, **table_options)


def _normalize_recbole_ml100k(log: InteractionLog) -> InteractionLog:
    """Make the RecBole ML-100K metadata look like the GroupLens files.

    RecBole strips the year from titles ("Toy Story") and stores it in ``release_year``. It
    also keeps ages as strings. Appending the year restores the GroupLens title
    ("Toy Story (1995)") for 1,680 of the 1,682 items. The other two are the placeholder item
    267 ("unknown" in GroupLens, "unkonwn" in RecBole) and one title that RecBole shortened.
    """
    items = log.items
    if items is not None and {"title", "year"} <= set(items.columns):
        items = items.copy()
        with_year = items["year"].astype(str).str.fullmatch(r"\d{4}")
        items.loc[with_year, "title"] = items.loc[with_year, "title"] + " (" + items.loc[with_year, "year"] + ")"
    users = log.users
    if users is not None and "age" in users.columns:
        users = users.copy()
        users["age"] = pd.to_numeric(users["age"], errors="coerce")
    return dataclasses.replace(log, items=items, users=users, name="ml-100k")


def _load_known(name: str, *, cache_dir, download: bool) -> InteractionLog:
    spec = _spec(name)
    location = locate(spec.name, cache_dir=cache_dir, download=download)
    if location.source == "recbole-wheel":
        log = _normalize_recbole_ml100k(load_recbole_atomic(location.path))
    else:
        log = spec.loader(location.path)
    return dataclasses.replace(log, name=spec.name, variant={**log.variant, "source": location.source})


def load(
    name_or_path: str | Path,
    *,
    implicit_threshold: float | None = None,
    kcore: int | None = None,
    cache_dir: str | Path | None = None,
    download: bool = True,
    **table_options,
) -> InteractionLog:
    """Load a dataset by name ("ml-100k", "ml-latest-small") or from a folder or file.

    A folder or file is read after detecting its format (see :func:`detect_format`). A folder
    with ``u.data`` is ML-100K, one with ``ratings.csv`` and ``movies.csv`` is ml-latest-small,
    and a ``*.inter`` file is RecBole atomic. Any other CSV, TSV or Parquet file is read by
    :func:`load_table` with ``table_options`` (``user_col``, ``item_col``, ``time_col``,
    ``rating_col``, ``items``, ``sep``, ``name``).
    ``implicit_threshold`` keeps ratings >= the threshold (see :func:`to_implicit`), and
    ``kcore`` then keeps the k-core (see :func:`~recwidgets.data.preprocess.kcore`).
    ``log.variant["source"]`` records where the data came from: ``"recbole-wheel"``,
    ``"download"`` (the cache or a fresh download) or a path.
    """
    if isinstance(name_or_path, str) and normalize_name(name_or_path) in KNOWN_DATASETS:
        if table_options:
            raise ConfigError(
                f"{sorted(table_options)} only apply to CSV, TSV or Parquet files, not to the named "
                f"dataset {name_or_path!r}; leave them out."
            )
        log = _load_known(name_or_path, cache_dir=cache_dir, download=download)
    elif isinstance(name_or_path, (str, Path)) and Path(name_or_path).expanduser().exists():
        log = load_path(name_or_path, **table_options)
    elif isinstance(name_or_path, str) and not _looks_like_path(name_or_path):
        raise _unknown_name_error(name_or_path)
    elif isinstance(name_or_path, (str, Path)):
        log = load_path(name_or_path, **table_options)
    else:
        raise ConfigError(f"dataset {name_or_path!r} is neither a name nor a path; pass a str or a pathlib.Path.")

    if implicit_threshold is not None:
        log = preprocess.to_implicit(log, implicit_threshold)
    if kcore is not None:
        log = preprocess.kcore(log, kcore)
    return log


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or Path(text).suffix != ""

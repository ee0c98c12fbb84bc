"""Readers for MovieLens files, RecBole atomic files and generic interaction tables.

Every loader returns an :class:`~recwidgets.data.log.InteractionLog` and records the folder or
file it read in ``log.variant["source"]``. MovieLens is described in F. M. Harper and J. A.
Konstan, "The MovieLens Datasets: History and Context", ACM TiiS 5(4), 2015; the RecBole atomic
format in W. X. Zhao et al., "RecBole: Towards a Unified, Comprehensive and Efficient Framework
for Recommendation Algorithms", CIKM 2021.
"""

from __future__ import annotations

import csv
import difflib
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from recwidgets.data.log import InteractionLog
from recwidgets.errors import ConfigError, DataError, DatasetNotFoundError, RecwidgetsWarning

logger = logging.getLogger(__name__)

#: Genre names of ML-100K in flag order, used when a folder has no ``u.genre`` file.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip

#: The genre value that ml-latest-small writes for a movie without genres.
NO_GENRES = "(no genres listed)"

#: Compression suffixes that pandas reads transparently; they are skipped when detecting a format.
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst")
DELIMITED_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
PARQUET_SUFFIXES = (".parquet", ".pq")

# Words that hint at the intended column when a mapped column is missing.
# A word of a column name matches a hint it equals or, for hints of 4+ letters, starts with.
_ROLE_HINTS = {
    "user": ("user", "customer", "visitor", "session", "member", "uid"),
    "item": ("item", "movie", "product", "article", "track", "song", "book", "video", "sku", "iid"),
    "timestamp": ("time", "date", "ts", "when", "epoch", "created"),
    "rating": ("rating", "score", "stars", "value", "weight"),
}
_ROLE_OPTIONS = {"user": "user_col", "item": "item_col", "timestamp": "time_col", "rating": "rating_col"}


# ---------------------------------------------------------------------------------------------
# Shared helpers


def require_file(path: str | Path, what: str) -> Path:
    """Return ``path`` as a Path, raising DatasetNotFoundError that names it when it is missing."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetNotFoundError(f"{what} not found: {path}. Check the path, or pass the folder that contains it.")
    if path.is_dir():
        raise DataError(f"{what} is expected to be a file, but {path} is a folder.")
    return path


def _require_folder(folder: str | Path, marker: str, dataset: str) -> Path:
    folder = Path(folder).expanduser()
    if folder.is_file():
        folder = folder.parent
    if not (folder / marker).exists():
        found = sorted(child.name for child in folder.iterdir())[:10] if folder.is_dir() else []
        where = f"it contains {found}" if folder.is_dir() else "the folder does not exist"
        raise DatasetNotFoundError(
            f"{marker} not found in {folder} ({where}); pass the {dataset} folder that contains {marker}."
        )
    return folder


def read_delimited(path: Path, *, what: str, **options) -> pd.DataFrame:
    """Read a delimited text file with pandas, turning empty or malformed files into DataError."""
    try:
        frame = pd.read_csv(path, **options)
    except pd.errors.EmptyDataError:
        raise DataError(f"{what} {path} is empty (no header and no rows); check that the file was written completely.") from None
    except pd.errors.ParserError as error:
        raise DataError(f"{what} {path} could not be parsed ({error}); check the separator and the quoting.") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{what} {path} is not valid {error.encoding} text ({error.reason}); re-encode it as UTF-8.") from None
    if len(frame) == 0:
        raise DataError(f"{what} {path} has a header but no rows; load a file with at least one interaction.")
    return frame


def _suggest_column(role: str, found: list[str]) -> str | None:
    """Guess which of the ``found`` column names was meant for ``role``."""
    hints = _ROLE_HINTS.get(role, ())
    for name in found:
        # "movieId" and "movie_id" both give the words ["movie", "id"].
        words = re.findall(r"[a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name)).lower())
        for word in words:
            if any(word == hint or (len(hint) >= 4 and word.startswith(hint)) for hint in hints):
                return str(name)
    matches = difflib.get_close_matches(role, [str(name) for name in found], n=1, cutoff=0.5)
    return matches[0] if matches else None


def _missing_column_error(path: Path, role: str, column: str, found: list[str]) -> DataError:
    if len(found) == 1:
        # One column whose name contains a separator means the file was split on the wrong one.
        header = str(found[0])
        separators = [sep for sep in (",", "\t", ";", "|", "::") if sep in header]
        if separators:
            tab = separators[0] == "\t"
            python = "'\\t'" if tab else repr(separators[0])
            shell = "$'\\t'" if tab else repr(separators[0])
            return DataError(
                f"{path}: read as a single column {header!r}, so the separator is wrong; it looks like "
                f"{'a tab' if tab else python}. Pass sep={python} (command line: --sep {shell}), or leave sep out "
                "for a .csv or .tsv file."
            )
    option = _ROLE_OPTIONS[role]
    flag = "--" + option.replace("_", "-")
    guess = _suggest_column(role, found)
    value = guess if guess is not None else "NAME"
    return DataError(
        f"{path}: {role} column {column!r} not found; the file has the columns {[str(name) for name in found]}. "
        f"Map the right column with {option}={value!r} (command line: {flag} {value})."
    )


def parse_timestamps(values: pd.Series, *, source: str | Path, column: str) -> pd.Series:
    """Convert a timestamp column to int64 unix seconds.

    Numbers are taken as unix seconds. Strings are parsed with :func:`pandas.to_datetime` as
    ISO 8601 dates (time zone offsets are honoured, naive times are taken as UTC). Datetime
    columns, such as Parquet timestamps, are converted whatever their unit.
    """
    missing = values.isna()
    if missing.any():
        rows = values.index[missing][:3].tolist()
        raise DataError(
            f"{source}: timestamp column {column!r} has {int(missing.sum())} missing value(s), "
            f"for example at row(s) {rows}; drop or fill those rows before loading."
        )

    if pd.api.types.is_bool_dtype(values):
        raise DataError(f"{source}: timestamp column {column!r} contains booleans; map the time column with time_col=.")
    if pd.api.types.is_numeric_dtype(values):
        return _unix_seconds(values, source, column)
    if pd.api.types.is_datetime64_any_dtype(values):
        return _datetimes_to_seconds(values)

    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        return _unix_seconds(numeric, source, column)

    parsed = pd.to_datetime(values.astype(str), format="ISO8601", utc=True, errors="coerce")
    # A value is bad only when it is neither a number nor a date, so a few typos in a column of
    # unix seconds are reported by their own text, not by the valid numbers around them.
    failed = parsed.isna() & numeric.isna()
    if failed.any():
        examples = values[failed].iloc[:3].tolist()
        raise DataError(
            f"{source}: timestamp column {column!r} has {int(failed.sum())} value(s) that are neither unix "
            f"seconds nor ISO 8601 dates, such as {examples!r}. Convert them to unix seconds or to ISO 8601 "
            "(for example 2020-01-31 or 2020-01-31T12:00:00Z), or map another column with time_col=."
        )
    mixed = parsed.isna()
    if mixed.any():
        raise DataError(
            f"{source}: timestamp column {column!r} mixes unix numbers (such as {values[mixed].iloc[0]!r}) with "
            f"date strings (such as {values[~mixed].iloc[0]!r}); convert the column to one of the two formats."
        )
    return _datetimes_to_seconds(parsed)


# 10**11 seconds is the year 5138, while 10**11 milliseconds is 1973, so larger values are
# almost certainly milliseconds or finer.
_MAX_PLAUSIBLE_SECONDS = 10**11


def _unix_seconds(values: pd.Series, source, column: str) -> pd.Series:
    if pd.api.types.is_integer_dtype(values):
        seconds = values.astype("int64")
    else:
        seconds = values.astype("float64").astype("int64")
    if len(seconds) and int(seconds.abs().max()) >= _MAX_PLAUSIBLE_SECONDS:
        warnings.warn(
            f"{source}: timestamp column {column!r} has values up to {int(seconds.abs().max())}, which look like "
            "milliseconds, not unix seconds. The order of events is unaffected, but absolute cutoffs are read "
            "as seconds; divide the column by 1000 to get seconds.",
            RecwidgetsWarning,
            stacklevel=3,
        )
    return seconds


def _datetimes_to_seconds(values: pd.Series) -> pd.Series:
    # The datetime unit differs between sources (microseconds from pandas 3 string parsing,
    # milliseconds from many Parquet writers), so divide by a timedelta rather than a power of ten.
    if values.dt.tz is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return ((values - pd.Timestamp(0)) // pd.Timedelta(seconds=1)).astype("int64")


def _split_genres(value, sep: str = "|") -> tuple[str, ...]:
    """Turn a pipe-separated genre string (or a list from Parquet) into a tuple of names."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(str(genre) for genre in value)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ()
    text = str(value).strip()
    if text in ("", NO_GENRES):
        return ()
    return tuple(genre.strip() for genre in text.split(sep) if genre.strip() and genre.strip() != NO_GENRES)


# ---------------------------------------------------------------------------------------------
# MovieLens


def load_ml100k(folder: str | Path) -> InteractionLog:
    """Load the GroupLens MovieLens-100K folder (100,000 ratings by 943 users of 1,682 movies).

    Reads ``u.data`` (tab-separated user, item, rating, unix time), and, when present,
    ``u.item`` (latin-1, ``|``-separated: id, title, release date, video release date, IMDb URL
    and 19 genre flags named in ``u.genre``) and ``u.user`` (age, gender, occupation, zip code).
    ``items`` gets ``title``, ``genres`` (tuple of str), ``release_date`` and ``imdb_url``;
    ``users`` gets ``age``, ``gender``, ``occupation`` and ``zip_code``.
    """
    folder = _require_folder(folder, "u.data", "ML-100K")
    ratings = read_delimited(
        folder / "u.data", what="ML-100K ratings file", sep="\t", header=None, names=["user", "item", "rating", "timestamp"]
    )
    if ratings.isna().any().any():
        raise DataError(
            f"{folder / 'u.data'} has rows with fewer than 4 tab-separated fields; "
            "the expected row format is user<TAB>item<TAB>rating<TAB>unix time."
        )
    ratings["timestamp"] = parse_timestamps(ratings["timestamp"], source=folder / "u.data", column="timestamp")

    genres = _read_ml100k_genres(folder / "u.genre")
    items = _read_ml100k_items(folder / "u.item", genres)
    users = _read_ml100k_users(folder / "u.user")
    log = InteractionLog.from_frame(ratings, items=items, users=users, name="ml-100k", variant={"source": str(folder.resolve())})
    logger.info("loaded ML-100K from %s: %d interactions", folder, len(log))
    return log


def _read_ml100k_genres(path: Path) -> tuple[str, ...]:
    if not path.exists():
        return ML100K_GENRES
    table = read_delimited(
        path, what="ML-100K genre file", sep="|", header=None, names=["genre", "index"], encoding="latin-1"
    ).dropna()
    return tuple(table.sort_values("index")["genre"].astype(str))


def _read_ml100k_items(path: Path, genres: tuple[str, ...]) -> pd.DataFrame | None:
    if not path.exists():
        logger.info("%s not found; the log has no item titles or genres", path)
        return None
    names = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *genres]
    table = read_delimited(
        path,
        what="ML-100K item file",
        sep="|",
        header=None,
        names=names,
        encoding="latin-1",
        quoting=csv.QUOTE_NONE,
        dtype={"title": str, "release_date": str, "imdb_url": str},
        keep_default_na=False,
    )
    flags = table[list(genres)].to_numpy(dtype=np.int64)
    genre_names = np.array(genres, dtype=object)
    items = pd.DataFrame(
        {
            "title": table["title"].astype(str).str.strip().to_numpy(dtype=object),
            "genres": [tuple(genre_names[row == 1]) for row in flags],
            "release_date": table["release_date"].to_numpy(dtype=object),
            "imdb_url": table["imdb_url"].to_numpy(dtype=object),
        },
        index=pd.Index(table["item_id"].astype("int64"), name="item_id"),
    )
    return items


def _read_ml100k_users(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    table = read_delimited(
        path,
        what="ML-100K user file",
        sep="|",
        header=None,
        names=["user_id", "age", "gender", "occupation", "zip_code"],
        encoding="latin-1",
        dtype={"zip_code": str},
    )
    return table.set_index("user_id")


def load_ml_latest_small(folder: str | Path, *, tags: bool = True) -> InteractionLog:
    """Load the GroupLens ml-latest-small folder (100,836 ratings by 610 users).

    Reads ``ratings.csv`` (userId, movieId, rating, timestamp) and ``movies.csv`` (movieId,
    title, pipe-separated genres, where ``(no genres listed)`` becomes an empty tuple). With
    ``tags=True`` and a ``tags.csv`` present, ``items`` also gets a ``tags`` tuple per movie:
    its distinct tags in order of first use.

    NOTE: ``movies.csv`` lists 9,742 movies but only 9,724 of them have a rating, and the log's
    item vocabulary holds only items with interactions.
    """
    folder = _require_folder(folder, "ratings.csv", "ml-latest-small")
    ratings_path = folder / "ratings.csv"
    ratings = read_delimited(ratings_path, what="ratings file")
    _check_columns(ratings_path, ratings, {"user": "userId", "item": "movieId", "timestamp": "timestamp"})
    frame = pd.DataFrame(
        {
            "user": ratings["userId"],
            "item": ratings["movieId"],
            "timestamp": parse_timestamps(ratings["timestamp"], source=ratings_path, column="timestamp"),
            "rating": ratings["rating"] if "rating" in ratings.columns else np.nan,
        }
    )

    items = None
    movies_path = folder / "movies.csv"
    if movies_path.exists():
        movies = read_delimited(movies_path, what="movies file")
        _check_columns(movies_path, movies, {"item": "movieId"})
        items = pd.DataFrame(index=pd.Index(movies["movieId"], name="item_id"))
        if "title" in movies.columns:
            items["title"] = movies["title"].astype(str).to_numpy(dtype=object)
        if "genres" in movies.columns:
            items["genres"] = [_split_genres(value) for value in movies["genres"]]
        tags_path = folder / "tags.csv"
        if tags and tags_path.exists():
            items["tags"] = _aggregate_tags(tags_path, items.index)

    log = InteractionLog.from_frame(frame, items=items, name="ml-latest-small", variant={"source": str(folder.resolve())})
    logger.info("loaded ml-latest-small from %s: %d interactions", folder, len(log))
    return log


def _aggregate_tags(path: Path, item_index: pd.Index) -> list[tuple[str, ...]]:
    table = read_delimited(path, what="tags file", dtype={"tag": str})
    _check_columns(path, table, {"item": "movieId"})
    if "tag" not in table.columns:
        raise DataError(f"{path}: column 'tag' not found; the file has the columns {list(table.columns)}.")
    table = table.dropna(subset=["tag"])
    per_item: dict = {}
    for item, tag in zip(table["movieId"].to_numpy(), table["tag"].astype(str).str.strip()):
        per_item.setdefault(item, dict())[tag] = None
    return [tuple(per_item.get(item, {})) for item in item_index]


def _check_columns(path: Path, frame: pd.DataFrame, roles: dict[str, str]) -> None:
    for role, column in roles.items():
        if column not in frame.columns:
            raise _missing_column_error(path, role, column, list(frame.columns))


# ---------------------------------------------------------------------------------------------
# RecBole atomic files


def read_atomic_file(path: Path) -> pd.DataFrame:
    """Read one RecBole atomic file into a DataFrame with the field names as columns.

    Headers look like ``user_id:token``; ``token`` columns stay strings, ``float`` columns
    become numbers, and ``token_seq`` / ``float_seq`` columns become tuples split on spaces.
    """
    # Python strings (dtype=object) convert to numbers much faster than Arrow-backed strings.
    raw = read_delimited(
        path, what="RecBole atomic file", sep="\t", dtype=object, keep_default_na=False, quoting=csv.QUOTE_NONE
    )
    columns = {}
    for header in raw.columns:
        name, _, kind = str(header).partition(":")
        values = raw[header].astype(object)
        if kind == "float":
            numeric = pd.to_numeric(values.replace("", np.nan), errors="coerce")
            bad = values[numeric.isna() & (values != "")].iloc[:3].tolist()
            if bad:
                raise DataError(f"{path}: float field {header!r} contains non-numeric values such as {bad!r}.")
            columns[name] = numeric
        elif kind == "token_seq":
            columns[name] = [tuple(value.split()) for value in values]
        elif kind == "float_seq":
            columns[name] = [tuple(float(part) for part in value.split()) for value in values]
        else:
            columns[name] = values.str.strip().to_numpy(dtype=object)
    return pd.DataFrame(columns)


def _find_inter_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise DatasetNotFoundError(f"RecBole dataset not found: {path}. Pass the folder or its .inter file.")
    found = sorted(path.glob("*.inter"))
    if len(found) != 1:
        what = "no .inter file" if not found else f"{len(found)} .inter files ({[p.name for p in found]})"
        raise DataError(f"{path} contains {what}; pass the path of the one .inter file to load.")
    return found[0]


def load_recbole_atomic(path: str | Path) -> InteractionLog:
    """Load a RecBole atomic dataset: ``<name>.inter`` and, beside it, ``<name>.item`` and ``<name>.user``.

    ``path`` is the dataset folder (with exactly one ``.inter`` file) or the ``.inter`` file.
    The ``.inter`` file needs ``user_id``, ``item_id`` and ``timestamp`` fields and may have
    ``rating``. From the ``.item`` file, ``movie_title`` or ``title`` becomes ``title`` and
    ``class``, ``genre`` or ``genres`` becomes ``genres``; a ``release_year`` field is kept as
    ``year``. Every ``.user`` field except ``user_id`` is kept in ``users``.
    """
    inter_path = _find_inter_file(Path(path).expanduser())
    if inter_path.suffix != ".inter":
        raise DataError(f"{inter_path} is not a RecBole .inter file; pass the folder or the <name>.inter file.")
    inter = read_atomic_file(inter_path)
    for field_name, role in (("user_id", "user"), ("item_id", "item"), ("timestamp", "timestamp")):
        if field_name not in inter.columns:
            raise DataError(
                f"{inter_path}: {role} field {field_name!r} not found; the file has the fields {list(inter.columns)}. "
                "Rename the header to user_id:token, item_id:token and timestamp:float; sequential "
                "models need the timestamp to order each user's interactions."
            )
    frame = pd.DataFrame(
        {
            "user": inter["user_id"],
            "item": inter["item_id"],
            "timestamp": parse_timestamps(inter["timestamp"], source=inter_path, column="timestamp"),
            "rating": inter["rating"] if "rating" in inter.columns else np.nan,
        }
    )
    frame["user"] = _numeric_ids(frame["user"])
    frame["item"] = _numeric_ids(frame["item"])

    items = _read_atomic_items(inter_path.with_suffix(".item"), frame["item"].dtype)
    users = None
    user_path = inter_path.with_suffix(".user")
    if user_path.exists():
        users = read_atomic_file(user_path)
        if "user_id" in users.columns:
            users = users.set_index(pd.Index(_numeric_ids(users["user_id"]), name="user_id")).drop(columns="user_id")
        else:
            logger.warning("%s has no user_id field; user features are ignored", user_path)
            users = None

    log = InteractionLog.from_frame(frame, items=items, users=users, name=inter_path.stem, variant={"source": str(inter_path.parent.resolve())})
    logger.info("loaded RecBole atomic dataset %s: %d interactions", inter_path, len(log))
    return log


def _read_atomic_items(path: Path, id_dtype) -> pd.DataFrame | None:
    if not path.exists():
        return None
    table = read_atomic_file(path)
    if "item_id" not in table.columns:
        logger.warning("%s has no item_id field; item features are ignored", path)
        return None
    items = pd.DataFrame(index=pd.Index(_numeric_ids(table["item_id"]), name="item_id"))
    for source_field in ("movie_title", "title"):
        if source_field in table.columns:
            # Titles are token_seq fields; joining the tokens restores the title text.
            items["title"] = [" ".join(value) if isinstance(value, tuple) else str(value) for value in table[source_field]]
            break
    for source_field in ("class", "genre", "genres"):
        if source_field in table.columns:
            items["genres"] = [value if isinstance(value, tuple) else tuple(str(value).split()) for value in table[source_field]]
            break
    if "release_year" in table.columns:
        items["year"] = table["release_year"].to_numpy(dtype=object)
    if items.index.dtype != id_dtype:
        logger.debug("item ids in %s have dtype %s, interactions %s", path, items.index.dtype, id_dtype)
    return items


def _numeric_ids(values: pd.Series | np.ndarray) -> pd.Series:
    """Return integer ids when every token is an integer, so ids sort numerically; else strings."""
    series = pd.Series(values)
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().all() and (numeric == numeric.round()).all():
        return numeric.astype("int64")
    return series.astype(str)


# ---------------------------------------------------------------------------------------------
# Generic tables


def _table_format(path: Path, sep: str | None) -> tuple[str, str | None]:
    """Return ("parquet", None) or ("delimited", separator) for ``path``."""
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in PARQUET_SUFFIXES:
        return "parquet", None
    if sep is not None:
        return "delimited", sep
    if suffix in DELIMITED_SUFFIXES:
        return "delimited", DELIMITED_SUFFIXES[suffix]
    raise DataError(
        f"{path}: unknown file suffix {suffix or '(none)'!r}; use .csv, .tsv or .parquet, "
        "or pass sep= (command line: --sep) to read it as delimited text."
    )


def read_table(path: str | Path, *, sep: str | None = None, what: str = "table") -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file chosen by suffix (or by ``sep`` for other delimited text)."""
    path = require_file(path, what)
    kind, separator = _table_format(path, sep)
    if kind == "parquet":
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as error:
            raise DataError(f"{what} {path} could not be read as Parquet ({error}).") from None
        if len(frame.columns) == 0 or len(frame) == 0:
            raise DataError(f"{what} {path} has no rows; load a file with at least one interaction.")
        return frame
    return read_delimited(path, what=what, sep=separator)


def _check_distinct_roles(roles: dict[str, str]) -> None:
    """Raise ConfigError when one column is mapped to two roles (user and item, say)."""
    by_column: dict[str, str] = {}
    for role, column in roles.items():
        if column in by_column:
            first = by_column[column]
            raise ConfigError(
                f"column {column!r} is given as both the {first} column ({_ROLE_OPTIONS[first]}) and the {role} "
                f"column ({_ROLE_OPTIONS[role]}); map each role to its own column."
            )
        by_column[column] = role


def load_table(
    path: str | Path,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str = "timestamp",
    rating_col: str | None = None,
    items: str | Path | None = None,
    sep: str | None = None,
    name: str | None = None,
) -> InteractionLog:
    """Load interactions from any CSV, TSV or Parquet file, mapping its column names.

    ``time_col`` contains unix seconds or ISO 8601 date strings. ``rating_col`` is optional.
    ``items`` is an optional CSV or Parquet file with ``item_id``, ``title`` and ``genres``
    (pipe-separated) columns. ``sep`` overrides the separator that the suffix implies.
    ``name`` defaults to the file name without its suffixes.
    """
    path = require_file(path, "interaction file")
    table = read_table(path, sep=sep, what="interaction file")
    roles = {"user": user_col, "item": item_col, "timestamp": time_col}
    if rating_col is not None:
        roles["rating"] = rating_col
    _check_distinct_roles(roles)
    _check_columns(path, table, roles)

    frame = pd.DataFrame(
        {
            "user": table[user_col],
            "item": table[item_col],
            "timestamp": parse_timestamps(table[time_col], source=path, column=time_col),
        }
    )
    if rating_col is not None:
        ratings = pd.to_numeric(table[rating_col], errors="coerce")
        bad = table[rating_col][ratings.isna() & table[rating_col].notna()].iloc[:3].tolist()
        if bad:
            raise DataError(
                f"{path}: rating column {rating_col!r} contains non-numeric values such as {bad!r}; "
                "fix those rows or leave out rating_col= to load without ratings."
            )
        frame["rating"] = ratings

    item_table = None
    if items is not None:
        item_table = _read_item_table(items, frame["item"])

    log_name = name or path.name.split(".")[0]
    log = InteractionLog.from_frame(frame, items=item_table, name=log_name, variant={"source": str(path.resolve())})
    logger.info("loaded %s: %d interactions, %d users, %d items", path, len(log), log.n_users, log.n_items)
    return log


def _read_item_table(path: str | Path, interaction_items: pd.Series) -> pd.DataFrame:
    path = require_file(path, "item file")
    table = read_table(path, what="item file")
    if "item_id" not in table.columns:
        raise DataError(
            f"{path}: column 'item_id' not found; the item file has the columns {list(table.columns)}. "
            "Rename the id column to item_id (the other expected columns are title and genres)."
        )

    # Match the id type of the interactions, so that "42" and 42 refer to the same item.
    ids = table["item_id"]
    numeric = pd.to_numeric(ids, errors="coerce")
    if pd.api.types.is_integer_dtype(interaction_items) and numeric.notna().all():
        ids = numeric.astype("int64")
    else:
        ids = ids.astype(str)

    items = pd.DataFrame(index=pd.Index(ids.to_numpy(), name="item_id"))
    if "title" in table.columns:
        items["title"] = table["title"].astype(str).to_numpy(dtype=object)
    if "genres" in table.columns:
        items["genres"] = [_split_genres(value) for value in table["genres"]]
    matched = items.index.isin(pd.unique(interaction_items)).sum()
    if matched == 0:
        logger.warning("no item id in %s occurs in the interactions; check that both files use the same ids", path)
    return items

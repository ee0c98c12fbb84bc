"""Dataset resolution: names, paths, the RecBole wheel copy, the cache and checked downloads.

Downloads are served from a local http.server on 127.0.0.1 with archives the tests build;
no test contacts any other host.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import sys
import threading
import zipfile

import numpy as np
import pandas as pd
import pytest

import recwidgets.datasets
from recwidgets.data import datasets as resolution
from recwidgets.data.loaders import load_ml100k
from recwidgets.errors import ConfigError, DataError, DatasetNotFoundError

TINY_U_DATA = "1\t10\t5\t881250949\n1\t20\t3\t881250950\n2\t10\t4\t881250951\n"


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    """Clear every variable that steers resolution, and point the default cache into tmp_path."""
    for name in ("RECWIDGETS_ML100K", "RECWIDGETS_ML_LATEST_SMALL", "RECWIDGETS_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RECWIDGETS_CACHE", str(tmp_path / "default-cache"))


@pytest.fixture
def without_recbole(monkeypatch):
    monkeypatch.setattr(resolution, "recbole_ml100k_path", lambda: None)


@pytest.fixture(scope="module")
def recbole_inter():
    path = resolution.recbole_ml100k_path()
    if path is None:
        pytest.fail("the RecBole wheel is not installed; run: pip install --no-deps recbole")
    return path


def files_under(folder):
    return sorted(path for path in folder.rglob("*") if path.is_file())


def write_zip(path, members):
    with zipfile.ZipFile(path, "w") as bundle:
        for name, text in members.items():
            bundle.writestr(name, text)
    return hashlib.sha256(path.read_bytes()).hexdigest()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        QuietHandler.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/served on 127.0.0.1 and yield (base URL, folder); the server stops afterwards."""
    folder = tmp_path / "served"
    folder.mkdir()
    QuietHandler.requests = []
    handler = functools.partial(QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", folder
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# ---------------------------------------------------------------------------------------------
# Names and the RecBole wheel


def test_ml100k_from_recbole_wheel(recbole_inter, tmp_path):
    log = recwidgets.datasets.load("ml-100k", cache_dir=tmp_path / "cache", download=False)
    assert log.variant == {"source": "recbole-wheel"}
    assert log.name == "ml-100k"
    assert len(log) == 100_000
    assert log.n_users == 943
    assert log.n_items == 1_682
    assert "recbole" not in sys.modules


def test_recbole_wheel_matches_original(recbole_inter, ml100k_dir, tmp_path):
    bundled = recwidgets.datasets.load("ml-100k", cache_dir=tmp_path / "cache", download=False)
    original = load_ml100k(ml100k_dir)

    def triples(log):
        frame = pd.DataFrame(
            {
                "user": log.user_ids[log.interactions["user"].to_numpy()].astype(np.int64),
                "item": log.item_ids[log.interactions["item"].to_numpy()].astype(np.int64),
                "timestamp": log.interactions["timestamp"].to_numpy(),
            }
        )
        return frame.sort_values(["user", "item", "timestamp"]).to_numpy()

    np.testing.assert_array_equal(triples(bundled), triples(original))
    # Same raw ids give the same internal ids, so the internal frames match row for row.
    pd.testing.assert_frame_equal(bundled.interactions, original.interactions)


def test_recbole_wheel_metadata(recbole_inter, ml100k_dir, tmp_path):
    bundled = recwidgets.datasets.load("ml-100k", cache_dir=tmp_path / "cache", download=False)
    original = load_ml100k(ml100k_dir)
    toy_story = bundled.items.index[bundled.items["title"] == "Toy Story (1995)"]
    assert list(toy_story) == [1]
    assert bundled.items.loc[1, "genres"] == ("Animation", "Children's", "Comedy")
    assert (bundled.items["genres"] == original.items["genres"]).all()
    assert (bundled.items["title"] == original.items["title"]).sum() == 1_680
    assert bundled.users.loc[1, "age"] == 24


def test_name_spelling_normalized(recbole_inter, tmp_path):
    log = recwidgets.datasets.load("ML_100K", cache_dir=tmp_path / "cache", download=False)
    assert log.name == "ml-100k"


def test_unknown_name_lists_known_names():
    with pytest.raises(DatasetNotFoundError) as caught:
        recwidgets.datasets.load("ml-1m", download=False)
    message = str(caught.value)
    assert "'ml-1m'" in message
    assert "['ml-100k', 'ml-latest-small']" in message
    assert "path also works" in message


def test_missing_path_names_path(tmp_path):
    missing = tmp_path / "nothing" / "clicks.csv"
    with pytest.raises(DatasetNotFoundError, match="clicks.csv"):
        recwidgets.datasets.load(missing)


def test_table_options_rejected_for_names():
    with pytest.raises(ConfigError, match="user_col"):
        recwidgets.datasets.load("ml-100k", user_col="userId", download=False)


# ---------------------------------------------------------------------------------------------
# Resolution order


def test_env_var_takes_precedence(monkeypatch, ml100k_dir, recbole_inter, tmp_path):
    monkeypatch.setenv("RECWIDGETS_ML100K", str(ml100k_dir))
    log = recwidgets.datasets.load("ml-100k", cache_dir=tmp_path / "cache", download=False)
    assert log.variant == {"source": str(ml100k_dir.resolve())}
    # Only the GroupLens file keeps the "(V)" video marker in this title.
    assert "Land Before Time III: The Time of the Great Giving (1995) (V)" in set(log.items["title"])


def test_env_var_without_data_raises(monkeypatch, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("RECWIDGETS_ML100K", str(empty))
    with pytest.raises(DatasetNotFoundError) as caught:
        recwidgets.datasets.load("ml-100k", download=False)
    assert "RECWIDGETS_ML100K" in str(caught.value)
    assert str(empty) in str(caught.value)


def test_data_dir_before_recbole_wheel(monkeypatch, recbole_inter, tmp_path):
    folder = tmp_path / "data" / "ml-100k"
    folder.mkdir(parents=True)
    (folder / "u.data").write_text(TINY_U_DATA)
    monkeypatch.setenv("RECWIDGETS_DATA_DIR", str(tmp_path / "data"))
    log = recwidgets.datasets.load("ml-100k", download=False)
    assert len(log) == 3
    assert log.variant == {"source": str(folder.resolve())}


def test_data_dir_without_dataset_falls_through(monkeypatch, recbole_inter, tmp_path):
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("RECWIDGETS_DATA_DIR", str(tmp_path / "data"))
    log = recwidgets.datasets.load("ml-100k", download=False)
    assert log.variant == {"source": "recbole-wheel"}


def test_ml_latest_small_env_var(monkeypatch, ml_latest_small_dir):
    monkeypatch.setenv("RECWIDGETS_ML_LATEST_SMALL", str(ml_latest_small_dir))
    log = recwidgets.datasets.load("ml-latest-small", download=False)
    assert len(log) == 100_836
    assert log.n_users == 610
    assert log.name == "ml-latest-small"


def test_cache_hit_without_download(without_recbole, tmp_path):
    cached = tmp_path / "cache" / "ml-100k"
    cached.mkdir(parents=True)
    (cached / "u.data").write_text(TINY_U_DATA)
    log = recwidgets.datasets.load("ml-100k", cache_dir=tmp_path / "cache", download=False)
    assert len(log) == 3
    assert log.variant == {"source": "download"}


def test_cache_env_var(monkeypatch, without_recbole, tmp_path):
    cached = tmp_path / "env-cache" / "ml-100k"
    cached.mkdir(parents=True)
    (cached / "u.data").write_text(TINY_U_DATA)
    monkeypatch.setenv("RECWIDGETS_CACHE", str(tmp_path / "env-cache"))
    assert resolution.cache_root() == tmp_path / "env-cache"
    assert len(recwidgets.datasets.load("ml-100k", download=False)) == 3


def test_not_found_without_download(without_recbole, tmp_path):
    with pytest.raises(DatasetNotFoundError) as caught:
        recwidgets.datasets.load("ml-100k", cache_dir=tmp_path / "cache", download=False)
    message = str(caught.value)
    assert str(tmp_path / "cache" / "ml-100k") in message
    assert "download=True" in message
    assert "RECWIDGETS_ML100K" in message


# ---------------------------------------------------------------------------------------------
# Downloads from a local server


def test_download_into_cache(monkeypatch, without_recbole, server, tmp_path):
    base, served = server
    digest = write_zip(served / "ml-100k.zip", {"ml-100k/u.data": TINY_U_DATA, "ml-100k/README": "tiny"})
    spec = dataclasses.replace(resolution.KNOWN_DATASETS["ml-100k"], url=f"{base}/ml-100k.zip", sha256=digest)
    monkeypatch.setitem(resolution.KNOWN_DATASETS, "ml-100k", spec)
    cache = tmp_path / "cache"

    log = recwidgets.datasets.load("ml-100k", cache_dir=cache)
    assert len(log) == 3
    assert log.variant == {"source": "download"}
    assert files_under(cache) == [cache / "ml-100k" / "README", cache / "ml-100k" / "u.data"]
    assert QuietHandler.requests == ["/ml-100k.zip"]

    # The second load reads the cache and sends no request.
    recwidgets.datasets.load("ml-100k", cache_dir=cache)
    assert QuietHandler.requests == ["/ml-100k.zip"]


def test_download_wrong_checksum_leaves_nothing(server, tmp_path):
    base, served = server
    digest = write_zip(served / "ml-100k.zip", {"ml-100k/u.data": TINY_U_DATA})
    wrong = "0" * 64
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as caught:
        resolution.download_archive(
            f"{base}/ml-100k.zip", wrong, cache / "ml-100k", archive_folder="ml-100k", marker="u.data"
        )
    message = str(caught.value)
    assert digest in message
    assert wrong in message
    assert files_under(cache) == []
    assert not (cache / "ml-100k").exists()


def test_download_wrong_checksum_through_load(monkeypatch, without_recbole, server, tmp_path):
    base, served = server
    write_zip(served / "ml-100k.zip", {"ml-100k/u.data": TINY_U_DATA})
    spec = dataclasses.replace(resolution.KNOWN_DATASETS["ml-100k"], url=f"{base}/ml-100k.zip", sha256="f" * 64)
    monkeypatch.setitem(resolution.KNOWN_DATASETS, "ml-100k", spec)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="SHA-256"):
        recwidgets.datasets.load("ml-100k", cache_dir=cache)
    assert files_under(cache) == []


def test_download_without_checksum_fails_closed(server, tmp_path):
    base, served = server
    write_zip(served / "ml-100k.zip", {"ml-100k/u.data": TINY_U_DATA})
    with pytest.raises(DatasetNotFoundError, match="no trusted SHA-256"):
        resolution.download_archive(
            f"{base}/ml-100k.zip", None, tmp_path / "cache" / "ml-100k", archive_folder="ml-100k", marker="u.data"
        )
    assert QuietHandler.requests == []


def test_download_archive_without_marker(server, tmp_path):
    base, served = server
    digest = write_zip(served / "other.zip", {"ml-100k/notes.txt": "no ratings here"})
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"no ml-100k/u\.data"):
        resolution.download_archive(f"{base}/other.zip", digest, cache / "ml-100k", archive_folder="ml-100k", marker="u.data")
    assert files_under(cache) == []


def test_download_http_error(server, tmp_path):
    base, _ = server
    with pytest.raises(DatasetNotFoundError, match="missing.zip"):
        resolution.download_archive(
            f"{base}/missing.zip", "0" * 64, tmp_path / "cache" / "ml-100k", archive_folder="ml-100k", marker="u.data"
        )
    assert files_under(tmp_path / "cache") == []


def test_published_checksums_pinned():
    for spec in resolution.KNOWN_DATASETS.values():
        assert spec.url.startswith("https://files.grouplens.org/datasets/movielens/")
        assert len(spec.sha256) == 64
        assert int(spec.sha256, 16) >= 0


# ---------------------------------------------------------------------------------------------
# Paths


def test_path_ml100k_folder_and_file(ml100k_dir):
    for path in (ml100k_dir, ml100k_dir / "u.data", str(ml100k_dir)):
        log = recwidgets.datasets.load(path)
        assert len(log) == 100_000
        assert log.name == "ml-100k"


def test_path_ml_latest_small_folder(ml_latest_small_dir):
    log = recwidgets.datasets.load(ml_latest_small_dir)
    assert len(log) == 100_836
    assert "tags" in log.items.columns


def test_path_ratings_csv_with_options(ml_latest_small_dir):
    log = recwidgets.datasets.load(
        ml_latest_small_dir / "ratings.csv", user_col="userId", item_col="movieId", rating_col="rating"
    )
    assert len(log) == 100_836
    assert log.name == "ratings"
    assert log.items is None


def test_path_recbole_folder(recbole_inter):
    log = recwidgets.datasets.load(recbole_inter.parent)
    assert len(log) == 100_000
    assert log.items.loc[1, "title"] == "Toy Story"
    assert log.variant == {"source": str(recbole_inter.parent.resolve())}


def test_path_parquet_table(tmp_path):
    path = tmp_path / "events.parquet"
    pd.DataFrame({"uid": [1, 1, 2], "iid": ["a", "b", "a"], "ts": [1, 2, 3]}).to_parquet(path)
    log = recwidgets.datasets.load(path, user_col="uid", item_col="iid", time_col="ts")
    assert len(log) == 3
    assert log.variant == {"source": str(path.resolve())}


def test_path_unknown_layout(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"no known dataset layout.*notes\.txt"):
        recwidgets.datasets.load(tmp_path)


def test_table_options_rejected_for_movielens_folder(ml100k_dir):
    with pytest.raises(ConfigError, match="ml-100k format"):
        recwidgets.datasets.load(ml100k_dir, user_col="user")


def test_unknown_table_option(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp\n1,2,3\n")
    with pytest.raises(ConfigError, match="user_column"):
        recwidgets.datasets.load(path, user_column="user")


def test_load_applies_preprocessing(ml100k_dir):
    log = recwidgets.datasets.load(ml100k_dir, implicit_threshold=4, kcore=5)
    assert log.variant["implicit"] == "rating >= 4"
    assert log.variant["kcore"] == 5
    assert log.interactions["rating"].min() >= 4
    assert np.bincount(log.interactions["user"])[1:].min() >= 5
    assert log.item_popularity()[1:].min() >= 5

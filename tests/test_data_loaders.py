"""Loaders on the real MovieLens files, RecBole atomic files and generic tables, and their errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recwidgets.data.loaders import load_ml100k, load_ml_latest_small, load_recbole_atomic, load_table
from recwidgets.errors import ConfigError, DataError, DatasetNotFoundError, RecwidgetsWarning


@pytest.fixture(scope="module")
def ml100k(ml100k_dir):
    return load_ml100k(ml100k_dir)


@pytest.fixture(scope="module")
def ml_latest_small(ml_latest_small_dir):
    return load_ml_latest_small(ml_latest_small_dir)


def item_by_title(log, title):
    matches = log.items.index[log.items["title"] == title]
    assert len(matches) == 1, f"expected one item titled {title!r}, found {len(matches)}"
    return int(matches[0])


# ---------------------------------------------------------------------------------------------
# MovieLens


def test_ml100k_counts(ml100k):
    assert len(ml100k) == 100_000
    assert ml100k.n_users == 943
    assert ml100k.n_items == 1_682
    assert ml100k.name == "ml-100k"


def test_ml100k_toy_story_genres(ml100k):
    item = item_by_title(ml100k, "Toy Story (1995)")
    assert ml100k.items.loc[item, "genres"] == ("Animation", "Children's", "Comedy")
    assert ml100k.item_ids[item] == 1


def test_ml100k_genres_are_tuples_of_str(ml100k):
    genres = ml100k.items["genres"]
    assert all(isinstance(value, tuple) for value in genres)
    assert all(isinstance(name, str) for value in genres for name in value)
    # "Sci-Fi" and "Film-Noir" come from u.genre and stay single names.
    assert any("Sci-Fi" in value for value in genres)
    assert any("Film-Noir" in value for value in genres)


def test_ml100k_latin1_title(ml100k):
    # u.item is latin-1; a wrong encoding would garble or fail on accented titles.
    titles = set(ml100k.items["title"])
    assert any("é" in title for title in titles)


def test_ml100k_users(ml100k):
    users = ml100k.users
    assert len(users) == 943
    first = users.loc[1]
    assert int(first["age"]) == 24
    assert first["gender"] == "M"
    assert first["occupation"] == "technician"
    assert first["zip_code"] == "85711"


def test_ml100k_interactions_chronological(ml100k):
    frame = ml100k.interactions
    same_user = frame["user"].to_numpy()[1:] == frame["user"].to_numpy()[:-1]
    steps = np.diff(frame["timestamp"].to_numpy())
    assert (steps[same_user] >= 0).all()
    assert frame["rating"].between(1, 5).all()


def test_ml100k_variant_source(ml100k, ml100k_dir):
    assert ml100k.variant == {"source": str(ml100k_dir.resolve())}


def test_ml_latest_small_counts(ml_latest_small, ml_latest_small_dir):
    assert len(ml_latest_small) == 100_836
    assert ml_latest_small.n_users == 610
    # movies.csv lists 9,742 movies; 18 of them have no rating, so they are not in the vocabulary.
    assert len(pd.read_csv(ml_latest_small_dir / "movies.csv")) == 9_742
    assert ml_latest_small.n_items == 9_724
    assert len(ml_latest_small.items) == 9_724


def test_ml_latest_small_genres_and_tags(ml_latest_small):
    toy_story = item_by_title(ml_latest_small, "Toy Story (1995)")
    assert ml_latest_small.items.loc[toy_story, "genres"] == ("Adventure", "Animation", "Children", "Comedy", "Fantasy")
    assert ml_latest_small.items.loc[toy_story, "tags"] == ("pixar", "fun")
    no_genres = ml_latest_small.items["genres"].map(len) == 0
    assert no_genres.sum() > 0
    assert not any("(no genres listed)" in value for value in ml_latest_small.items["genres"])


def test_ml_latest_small_without_tags(ml_latest_small_dir):
    log = load_ml_latest_small(ml_latest_small_dir, tags=False)
    assert "tags" not in log.items.columns


def test_ml_latest_small_half_star_ratings(ml_latest_small):
    ratings = ml_latest_small.interactions["rating"]
    assert ratings.min() == 0.5
    assert ratings.max() == 5.0


def test_ml100k_missing_folder_names_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        load_ml100k(missing)


def test_ml100k_folder_without_u_data(tmp_path):
    (tmp_path / "ratings.csv").write_text("x\n")
    with pytest.raises(DatasetNotFoundError, match=r"u\.data.*ratings\.csv"):
        load_ml100k(tmp_path)


def test_ml100k_minimal_folder(tmp_path):
    (tmp_path / "u.data").write_text("1\t10\t5\t100\n1\t20\t3\t50\n2\t10\t4\t70\n")
    log = load_ml100k(tmp_path)
    assert len(log) == 3
    assert log.items is None
    assert list(log.sequences()[1]) == [2, 1]


def test_ml100k_short_rows_raise(tmp_path):
    (tmp_path / "u.data").write_text("1\t10\t5\n")
    with pytest.raises(DataError, match="fewer than 4"):
        load_ml100k(tmp_path)


# ---------------------------------------------------------------------------------------------
# RecBole atomic files


def write_atomic(folder, name="toy"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "7\t3\t4\t300\n"
        "7\t1\t5\t100\n"
        "8\t3\t2\t200\n"
        "7\t2\t3\t200\n"
    )
    (folder / f"{name}.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "1\tThe First One\t1990\tChildren's Sci-Fi\n"
        "2\tSecond\t1991\tDrama\n"
        "3\tThird \"Quoted\" Film\t1992\t\n"
    )
    (folder / f"{name}.user").write_text("user_id:token\tage:token\tgender:token\n7\t31\tF\n8\t44\tM\n")
    return folder / f"{name}.inter"


def test_recbole_atomic_parsing(tmp_path):
    inter = write_atomic(tmp_path / "toy")
    log = load_recbole_atomic(inter.parent)
    assert log.name == "toy"
    assert len(log) == 4
    assert log.n_users == 2
    assert log.n_items == 3
    assert list(log.item_ids[1:]) == [1, 2, 3]
    # User 7's events sorted by time: item 1 (t=100), item 2 (t=200), item 3 (t=300).
    assert [log.item_ids[i] for i in log.sequences()[1]] == [1, 2, 3]
    assert log.interactions["rating"].tolist() == [5.0, 3.0, 4.0, 2.0]


def test_recbole_atomic_item_fields(tmp_path):
    log = load_recbole_atomic(write_atomic(tmp_path / "toy"))
    items = log.items
    assert items.loc[1, "title"] == "The First One"
    assert items.loc[1, "genres"] == ("Children's", "Sci-Fi")
    assert items.loc[1, "year"] == "1990"
    assert items.loc[3, "title"] == 'Third "Quoted" Film'
    assert items.loc[3, "genres"] == ()


def test_recbole_atomic_user_fields(tmp_path):
    log = load_recbole_atomic(write_atomic(tmp_path / "toy"))
    assert log.users.loc[1, "age"] == "31"
    assert log.users.loc[2, "gender"] == "M"


def test_recbole_folder_with_two_inter_files(tmp_path):
    write_atomic(tmp_path, "one")
    write_atomic(tmp_path, "two")
    with pytest.raises(DataError, match=r"2 \.inter files"):
        load_recbole_atomic(tmp_path)


def test_recbole_missing_timestamp_field(tmp_path):
    (tmp_path / "bad.inter").write_text("user_id:token\titem_id:token\n1\t2\n")
    with pytest.raises(DataError, match="timestamp") as caught:
        load_recbole_atomic(tmp_path / "bad.inter")
    assert "['user_id', 'item_id']" in str(caught.value)


def test_recbole_non_numeric_float_field(tmp_path):
    (tmp_path / "bad.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n1\t2\tyesterday\n")
    with pytest.raises(DataError, match="yesterday"):
        load_recbole_atomic(tmp_path)


# ---------------------------------------------------------------------------------------------
# Generic tables


@pytest.fixture
def events():
    return pd.DataFrame(
        {
            "visitor": ["u2", "u1", "u1", "u2", "u1"],
            "product": [11, 10, 12, 10, 11],
            "when": [500, 100, 300, 400, 200],
            "stars": [1.0, 5.0, 4.0, 2.0, 3.0],
        }
    )


def check_events_log(log):
    assert len(log) == 5
    assert log.n_users == 2
    assert log.n_items == 3
    assert list(log.user_ids[1:]) == ["u1", "u2"]
    assert [log.item_ids[i] for i in log.sequences()[1]] == [10, 11, 12]
    assert [log.item_ids[i] for i in log.sequences()[2]] == [10, 11]
    assert log.interactions["rating"].tolist() == [5.0, 3.0, 4.0, 2.0, 1.0]


def test_table_csv_mapped_columns(tmp_path, events):
    path = tmp_path / "clicks.csv"
    events.to_csv(path, index=False)
    log = load_table(path, user_col="visitor", item_col="product", time_col="when", rating_col="stars")
    check_events_log(log)
    assert log.name == "clicks"


def test_table_one_column_two_roles(tmp_path, events):
    path = tmp_path / "clicks.csv"
    events.to_csv(path, index=False)

    with pytest.raises(ConfigError, match="'visitor' is given as both the user column .user_col. and the item"):
        load_table(path, user_col="visitor", item_col="visitor", time_col="when")


@pytest.mark.parametrize(("written", "given", "named"), [(",", ";", "','"), ("\t", ",", "a tab")])
def test_table_wrong_separator_named(tmp_path, events, written, given, named):
    path = tmp_path / "clicks.txt"
    events.to_csv(path, index=False, sep=written)

    with pytest.raises(DataError, match=f"read as a single column .* it looks like {named}"):
        load_table(path, user_col="visitor", item_col="product", time_col="when", sep=given)


def test_table_parquet_mapped_columns(tmp_path, events):
    path = tmp_path / "clicks.parquet"
    events.to_parquet(path, index=False)
    log = load_table(path, user_col="visitor", item_col="product", time_col="when", rating_col="stars", name="shop")
    check_events_log(log)
    assert log.name == "shop"


def test_table_tsv_by_suffix(tmp_path, events):
    path = tmp_path / "clicks.tsv"
    events.to_csv(path, index=False, sep="\t")
    log = load_table(path, user_col="visitor", item_col="product", time_col="when", rating_col="stars")
    check_events_log(log)


def test_table_explicit_separator(tmp_path, events):
    path = tmp_path / "clicks.txt"
    events.to_csv(path, index=False, sep=";")
    log = load_table(path, user_col="visitor", item_col="product", time_col="when", rating_col="stars", sep=";")
    check_events_log(log)


def test_table_iso_dates(tmp_path):
    path = tmp_path / "dated.csv"
    path.write_text(
        "user_id,item_id,timestamp\n"
        "1,5,2020-01-02\n"
        "1,6,2020-01-01T12:00:00Z\n"
        "2,5,2020-01-01T00:00:00+01:00\n"
    )
    log = load_table(path)
    times = log.interactions["timestamp"].tolist()
    assert times == [1577880000, 1577923200, 1577833200]


def test_table_parquet_datetime_column(tmp_path):
    frame = pd.DataFrame(
        {
            "user_id": [1, 1],
            "item_id": [2, 3],
            "timestamp": pd.to_datetime(["2021-06-01", "2021-06-02"]).astype("datetime64[ms]"),
        }
    )
    path = tmp_path / "dated.parquet"
    frame.to_parquet(path)
    log = load_table(path)
    assert log.interactions["timestamp"].tolist() == [1622505600, 1622592000]


def test_table_item_file(tmp_path, events):
    path = tmp_path / "clicks.csv"
    events.to_csv(path, index=False)
    items = tmp_path / "products.csv"
    items.write_text("item_id,title,genres\n10,Lamp,home|light\n11,Desk,home\n12,Pen,\n99,Unused,x\n")
    log = load_table(path, user_col="visitor", item_col="product", time_col="when", items=items)
    assert log.items.loc[1, "title"] == "Lamp"
    assert log.items.loc[1, "genres"] == ("home", "light")
    assert log.items.loc[3, "genres"] == ()
    assert len(log.items) == 3
    assert log.item_titles()[1:] == ["Lamp", "Desk", "Pen"]


# ---------------------------------------------------------------------------------------------
# Errors


def test_table_file_not_found(tmp_path):
    missing = tmp_path / "absent.csv"
    with pytest.raises(DatasetNotFoundError, match="absent.csv"):
        load_table(missing)


def test_table_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match=r"empty\.csv is empty"):
        load_table(path)


def test_table_header_only(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("user_id,item_id,timestamp\n")
    with pytest.raises(DataError, match=r"header\.csv has a header but no rows"):
        load_table(path)


def test_table_misnamed_user_column(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,timestamp\n1,2,3\n")
    with pytest.raises(DataError) as caught:
        load_table(path)
    message = str(caught.value)
    assert "'user_id'" in message
    assert "['userId', 'movieId', 'timestamp']" in message
    assert "user_col='userId'" in message
    assert "--user-col userId" in message


def test_table_misnamed_item_column(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("user_id,movieId,timestamp\n1,2,3\n")
    with pytest.raises(DataError, match=r"item_col='movieId'.*--item-col movieId"):
        load_table(path)


def test_table_misnamed_time_column(tmp_path):
    path = tmp_path / "clicks.csv"
    path.write_text("user_id,item_id,products,when\n1,2,3,4\n")
    with pytest.raises(DataError) as caught:
        load_table(path)
    message = str(caught.value)
    assert "time_col='when'" in message
    assert "--time-col when" in message


def test_table_milliseconds_warn(tmp_path):
    path = tmp_path / "clicks.csv"
    path.write_text("user_id,item_id,timestamp\n1,2,1600000000000\n1,3,1600000001000\n")
    with pytest.warns(RecwidgetsWarning, match="milliseconds"):
        log = load_table(path)
    assert log.interactions["timestamp"].tolist() == [1600000000000, 1600000001000]


def test_table_missing_rating_column(tmp_path):
    path = tmp_path / "clicks.csv"
    path.write_text("user_id,item_id,timestamp\n1,2,3\n")
    with pytest.raises(DataError, match=r"rating column 'score' not found.*rating_col="):
        load_table(path, rating_col="score")


def test_table_unparseable_timestamps(tmp_path):
    path = tmp_path / "clicks.csv"
    path.write_text("user_id,item_id,timestamp\n1,2,2020-01-01\n1,3,last tuesday\n2,3,31/12/2020 noon\n")
    with pytest.raises(DataError) as caught:
        load_table(path)
    message = str(caught.value)
    assert "'last tuesday'" in message
    assert "'31/12/2020 noon'" in message
    assert "2 value(s)" in message


def test_table_missing_timestamps(tmp_path):
    path = tmp_path / "clicks.csv"
    path.write_text("user_id,item_id,timestamp\n1,2,100\n1,3,\n")
    with pytest.raises(DataError, match=r"1 missing value\(s\)"):
        load_table(path)


def test_table_non_numeric_rating(tmp_path):
    path = tmp_path / "clicks.csv"
    path.write_text("user_id,item_id,timestamp,rating\n1,2,100,4\n1,3,200,great\n")
    with pytest.raises(DataError, match="'great'"):
        load_table(path, rating_col="rating")


def test_table_unknown_suffix(tmp_path):
    path = tmp_path / "clicks.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(DataError, match=r"'\.xlsx'.*sep="):
        load_table(path)


def test_item_file_without_id_column(tmp_path, events):
    path = tmp_path / "clicks.csv"
    events.to_csv(path, index=False)
    items = tmp_path / "products.csv"
    items.write_text("id,title\n10,Lamp\n")
    with pytest.raises(DataError, match=r"'item_id' not found.*\['id', 'title'\]"):
        load_table(path, user_col="visitor", item_col="product", time_col="when", items=items)


def test_timestamp_error_names_bad_values_among_numbers(tmp_path):
    from recwidgets.data.loaders import load_table
    from recwidgets.errors import DataError

    path = tmp_path / "log.csv"
    times = [str(1_000_000_000 + 60 * i) for i in range(50)] + ["yesterday", "abc"]
    pd.DataFrame({"user_id": [1] * 52, "item_id": list(range(52)), "timestamp": times}).to_csv(path, index=False)

    with pytest.raises(DataError) as error:
        load_table(path)

    message = str(error.value)
    assert "2 value(s)" in message
    assert "yesterday" in message
    assert "1000000000" not in message


def test_timestamp_mixing_numbers_and_dates_rejected(tmp_path):
    from recwidgets.data.loaders import load_table
    from recwidgets.errors import DataError

    path = tmp_path / "log.csv"
    pd.DataFrame({"user_id": [1, 1], "item_id": [1, 2], "timestamp": ["1000000000", "2020-01-31"]}).to_csv(
        path, index=False
    )

    with pytest.raises(DataError, match="mixes unix numbers"):
        load_table(path)

"""Attention extraction and aggregates, on hand-checkable models and arrays and on SASRec."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_attention import TinyAttention

from recwidgets.errors import ConfigError
from recwidgets.explain import (
    AttentionResult,
    attention_data,
    attention_profile,
    attention_weights,
    compare_attention,
    first_position_mass,
    head_entropy,
    head_similarity,
    popularity_buckets,
    popularity_profile,
    recency_profile,
)
from recwidgets.data import leave_last_out, load_ml100k
from recwidgets.models import SASRec, SASRecModule


@pytest.fixture(scope="module")
def ml100k_split(ml100k_dir):
    return leave_last_out(load_ml100k(ml100k_dir))


def untrained_sasrec(n_items: int = 30, *, max_len: int = 8, layers: int = 2, heads: int = 2, causal: bool = True) -> SASRec:
    """A randomly initialised SASRec behind the protocol, without training."""
    model = SASRec(max_len=max_len, hidden=16, layers=layers, heads=heads, causal=causal)
    model.module = SASRecModule(n_items, max_len=max_len, hidden=16, layers=layers, heads=heads, causal=causal).eval()
    model.n_items = n_items
    return model


# ---------------------------------------------------------------------------------------
# Extraction on the fixed-weight model


def test_tiny_weights_match_hand_values():
    result = attention_weights(TinyAttention(), [[5, 7, 9]])

    # Width 6, three padding columns then items 5, 7, 9 at columns 3, 4, 5.
    assert result.weights.shape == (1, 1, 2, 6, 6)
    assert result.weights.dtype == np.float32
    uniform_last = result.weights[0, 0, 0, 5]
    halving_last = result.weights[0, 0, 1, 5]
    np.testing.assert_allclose(uniform_last, [0, 0, 0, 1 / 3, 1 / 3, 1 / 3], atol=1e-6)
    np.testing.assert_allclose(halving_last, [0, 0, 0, 1 / 7, 2 / 7, 4 / 7], atol=1e-6)
    np.testing.assert_allclose(result.weights[0, 0, 1, 4], [0, 0, 0, 1 / 3, 2 / 3, 0], atol=1e-6)


def test_tiny_padding_and_future_exactly_zero():
    result = attention_weights(TinyAttention(max_len=6), [[1, 2], [3, 4, 5, 6, 7, 8]])
    valid = result.valid

    for user in range(2):
        weights = result.weights[user, 0]
        assert (weights[:, valid[user]][:, :, ~valid[user]] == 0).all()
        upper = np.triu(np.ones((6, 6), dtype=bool), k=1)
        assert (weights[:, upper] == 0).all()


def test_result_fields_for_histories():
    result = attention_weights(TinyAttention(max_len=4), [[1, 2], [3, 4, 5, 6, 7, 8]])

    np.testing.assert_array_equal(result.histories, [[0, 0, 1, 2], [5, 6, 7, 8]])
    np.testing.assert_array_equal(result.lengths, [2, 4])
    np.testing.assert_array_equal(result.truncated, [0, 2])
    np.testing.assert_array_equal(result.positions, [[-1, -1, 0, 1], [0, 1, 2, 3]])
    np.testing.assert_array_equal(result.users, [0, 1])
    assert result.layers == (0,)


def test_padded_tensor_input_equals_lists():
    from_lists = attention_weights(TinyAttention(max_len=5), [[1, 2, 3], [4]])
    padded = torch.tensor([[0, 0, 1, 2, 3], [0, 0, 0, 0, 4]])
    from_tensor = attention_weights(TinyAttention(max_len=5), padded)

    np.testing.assert_array_equal(from_lists.weights, from_tensor.weights)
    np.testing.assert_array_equal(from_lists.histories, from_tensor.histories)


def test_layer_selection():
    model = TinyAttention(layers=3)

    assert attention_weights(model, [[1, 2]]).weights.shape[1] == 3
    assert attention_weights(model, [[1, 2]], layers=[-1]).layers == (2,)
    assert attention_weights(model, [[1, 2]], layers=0).layers == (0,)
    with pytest.raises(ConfigError, match="layer 3 is out of range"):
        attention_weights(model, [[1, 2]], layers=[3])


def test_model_without_attention_rejected():
    class ScoresOnly:
        n_items, max_len, device = 5, 4, torch.device("cpu")

        def score(self, histories):
            return torch.zeros(histories.shape[0], 6)

    with pytest.raises(ConfigError, match="ScoresOnly has no attention"):
        attention_weights(ScoresOnly(), [[1, 2]])


def test_user_ids_need_split():
    with pytest.raises(ConfigError, match="need split="):
        attention_weights(TinyAttention(), [3, 4])


def test_bad_inputs_rejected():
    with pytest.raises(ConfigError, match="no users or histories"):
        attention_weights(TinyAttention(), [])
    with pytest.raises(ConfigError, match="mix user ids and histories"):
        attention_weights(TinyAttention(), [[1, 2], 3])
    with pytest.raises(ConfigError, match="batch_size=0"):
        attention_weights(TinyAttention(), [[1, 2]], batch_size=0)


def test_user_lookup_in_split(ml100k_split):
    users = ml100k_split.test.users[[0, 5]]
    result = attention_weights(TinyAttention(n_items=ml100k_split.log.n_items, max_len=20), users.tolist(), split=ml100k_split)

    np.testing.assert_array_equal(result.users, users)
    last_items = [int(ml100k_split.test.histories[i][-1]) for i in (0, 5)]
    np.testing.assert_array_equal(result.histories[:, -1], last_items)
    with pytest.raises(ConfigError, match="not in the test set"):
        attention_weights(TinyAttention(), [10**6], split=ml100k_split)


# ---------------------------------------------------------------------------------------
# Extraction on SASRec


def test_sasrec_shapes_in_eval_mode():
    model = untrained_sasrec(layers=2, heads=4)
    model.module.train()
    result = attention_weights(model, [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11, 12]])

    assert result.weights.shape == (2, 2, 4, 8, 8)
    assert not model.module.training


def test_sasrec_left_padding_has_no_nan():
    model = untrained_sasrec()
    histories = [list(range(1, length + 1)) for length in range(1, 9)]
    weights = attention_weights(model, histories).weights

    assert np.isfinite(weights).all()


def test_sasrec_rows_sum_to_one_over_valid_keys():
    model = untrained_sasrec()
    result = attention_weights(model, [[3, 1, 4], [1, 5, 9, 2, 6, 5, 3, 5]])

    for user in range(2):
        valid = result.valid[user]
        rows = result.weights[user][:, :, valid][..., valid]  # (layers, H, n, n)
        np.testing.assert_allclose(rows.sum(axis=-1), 1.0, atol=1e-5)
        padding_rows = result.weights[user][:, :, ~valid]
        assert (padding_rows == 0).all()
        padding_keys = result.weights[user][:, :, valid][..., ~valid]
        assert (padding_keys == 0).all()


def test_sasrec_causal_keys_are_zero():
    result = attention_weights(untrained_sasrec(), [[1, 5, 9, 2, 6, 5, 3, 5]])
    upper = np.triu(np.ones((8, 8), dtype=bool), k=1)

    assert (result.weights[..., upper] == 0).all()


def test_sasrec_non_causal_variant_sees_future():
    result = attention_weights(untrained_sasrec(causal=False), [[1, 5, 9, 2, 6]])
    upper = np.triu(np.ones((8, 8), dtype=bool), k=1)
    valid = result.valid[0]
    future = result.weights[0][:, :, valid][..., valid][..., upper[: valid.sum(), : valid.sum()]]

    assert future.sum() > 0


def test_batching_does_not_change_weights():
    model = untrained_sasrec()
    histories = [list(range(1, length + 2)) for length in range(7)]
    one_by_one = attention_weights(model, histories, batch_size=1)
    all_at_once = attention_weights(model, histories, batch_size=64)

    np.testing.assert_allclose(one_by_one.weights, all_at_once.weights, atol=1e-6)


# ---------------------------------------------------------------------------------------
# Tidy data


def test_tidy_frame_has_exactly_valid_pairs():
    result = attention_weights(TinyAttention(max_len=5, layers=2), [[5, 7, 9], [1, 2, 3, 4, 6]])
    frame = attention_data(result)

    assert list(frame.columns) == ["user", "layer", "head", "query_pos", "key_pos", "query_item", "item", "weight"]
    # (3 * 3 + 5 * 5) pairs x 2 layers x 2 heads.
    assert len(frame) == (9 + 25) * 2 * 2
    assert frame[["user", "layer", "head", "query_pos", "key_pos"]].duplicated().sum() == 0
    assert (frame["item"] != 0).all()
    assert (frame["query_item"] != 0).all()
    first_user = frame[(frame["user"] == 0) & (frame["layer"] == 0)]
    assert set(first_user["key_pos"]) == {0, 1, 2}


def test_tidy_frame_weights_and_items():
    frame = attention_data(TinyAttention(), [[5, 7, 9]])
    last = frame[(frame["head"] == 1) & (frame["query_pos"] == 2)].sort_values("key_pos")

    np.testing.assert_array_equal(last["item"], [5, 7, 9])
    np.testing.assert_allclose(last["weight"], [1 / 7, 2 / 7, 4 / 7], atol=1e-6)
    sums = frame.groupby(["layer", "head", "query_pos"])["weight"].sum()
    np.testing.assert_allclose(sums, 1.0, atol=1e-6)


def test_tidy_frame_needs_users_for_model():
    with pytest.raises(ConfigError, match="pass users="):
        attention_data(TinyAttention())


# ---------------------------------------------------------------------------------------
# Aggregates on a hand-built array


@pytest.fixture
def hand_result() -> AttentionResult:
    """One user, history [pad, 1, 2]; head 0 and head 1 differ only in the last row."""
    head_0 = [[0, 0, 0], [0, 1, 0], [0, 0.25, 0.75]]
    head_1 = [[0, 0, 0], [0, 1, 0], [0, 0.75, 0.25]]
    weights = np.array([[[head_0, head_1]]], dtype=np.float32)  # (1, 1, 2, 3, 3)
    return AttentionResult.from_array(weights, [[0, 1, 2]])


def test_hand_recency_profile(hand_result):
    profile = recency_profile(hand_result)
    head_0 = profile[profile["head"] == 0]["mass"].to_numpy()

    # Queries 1 and 2: distance 0 gets (1 + 0.75) / 2, distance 1 gets 0.25 / 2.
    np.testing.assert_allclose(head_0, [0.875, 0.125, 0.0])
    last = recency_profile(hand_result, query="last")
    np.testing.assert_allclose(last[last["head"] == 0]["mass"], [0.75, 0.25, 0.0])
    np.testing.assert_allclose(last[last["head"] == 1]["mass"], [0.25, 0.75, 0.0])


def test_hand_entropy(hand_result):
    table = head_entropy(hand_result).set_index("head")

    # Only query 2 has two keys; entropy of (0.25, 0.75), normalised by ln 2.
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert table.loc[0, "entropy"] == pytest.approx(entropy, abs=1e-6)
    assert table.loc[0, "normalized_entropy"] == pytest.approx(entropy / math.log(2), abs=1e-6)
    assert table.loc[0, "n_queries"] == 1


def test_hand_first_position_mass(hand_result):
    table = first_position_mass(hand_result).set_index("head")

    assert table.loc[0, "first_mass"] == pytest.approx(0.25)
    assert table.loc[1, "first_mass"] == pytest.approx(0.75)
    assert table.loc[0, "first_mass_uniform"] == pytest.approx(0.5)


def test_hand_popularity_profile(hand_result):
    # Item 2 is rarer than item 1, so it falls in bucket 0 of 2.
    table = popularity_profile(hand_result, popularity=[0, 10, 1], n_buckets=2)
    head_0 = table[table["head"] == 0].set_index("bucket")

    # Query 1 puts 1.0 on item 1; query 2 puts 0.25 on item 1 and 0.75 on item 2.
    assert head_0.loc[0, "mass"] == pytest.approx(0.375)
    assert head_0.loc[1, "mass"] == pytest.approx(0.625)
    assert head_0.loc[0, "uniform_mass"] == pytest.approx(0.25)
    assert head_0.loc[1, "uniform_mass"] == pytest.approx(0.75)
    assert head_0.loc[0, "max_count"] == 1


def test_hand_head_similarity(hand_result):
    table = head_similarity(hand_result)

    # JS divergence of (0.25, 0.75) and (0.75, 0.25) in bits, square-rooted.
    kl = 0.25 * math.log2(0.25 / 0.5) + 0.75 * math.log2(0.75 / 0.5)
    assert len(table) == 1
    assert table.loc[0, "js_distance"] == pytest.approx(math.sqrt(kl), abs=1e-6)


def test_hand_compare_swapped_heads(hand_result):
    swapped = AttentionResult.from_array(hand_result.weights[:, :, ::-1], hand_result.histories)
    table = compare_attention(hand_result, swapped, labels=("before", "after")).set_index("head")

    kl = 0.25 * math.log2(0.25 / 0.5) + 0.75 * math.log2(0.75 / 0.5)
    assert table.loc[0, "js_distance"] == pytest.approx(math.sqrt(kl), abs=1e-6)
    assert table.loc[0, "first_mass_before"] == pytest.approx(0.25)
    assert table.loc[0, "first_mass_after"] == pytest.approx(0.75)
    assert table.loc[0, "first_mass_diff"] == pytest.approx(0.5)
    assert table.loc[0, "normalized_entropy_diff"] == pytest.approx(0.0, abs=1e-9)


def test_compare_same_model_is_zero():
    model = untrained_sasrec()
    table = compare_attention(model, model, [[1, 2, 3, 4, 5], [6, 7, 8]])

    np.testing.assert_allclose(table["js_distance"], 0.0, atol=1e-6)
    assert len(table) == 4


def test_compare_rejects_other_architecture():
    with pytest.raises(ConfigError, match="differ in layers x heads"):
        compare_attention(untrained_sasrec(layers=2), untrained_sasrec(layers=1), [[1, 2, 3]])


def test_hand_fault_columns():
    # Query 2 leaks 0.1 onto the padding key and query 1 puts 0.2 on the future key.
    head = [[0, 0, 0], [0, 0.8, 0.2], [0.1, 0.3, 0.6]]
    result = AttentionResult.from_array(np.array([[[head]]], dtype=np.float32), [[0, 1, 2]])
    faults = attention_profile(result).faults.iloc[0]

    assert faults["padding_mass"] == pytest.approx(0.1)
    assert faults["future_mass"] == pytest.approx(0.2)
    assert faults["non_finite"] == 0


def test_popularity_buckets_equal_sizes():
    bucket_of, table = popularity_buckets(np.array([0, 5, 1, 9, 3, 7, 2]), n_buckets=3)

    assert bucket_of[0] == -1
    np.testing.assert_array_equal(table["n_items"], [2, 2, 2])
    # Ranked by count: items 2, 6 | 4, 1 | 5, 3.
    np.testing.assert_array_equal(bucket_of[1:], [1, 0, 2, 1, 2, 0])
    assert table["interaction_share"].sum() == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="n_buckets=7"):
        popularity_buckets(np.array([0, 5, 1, 9, 3, 7, 2]), n_buckets=7)


def test_profile_over_many_users_is_batched():
    model = TinyAttention(n_items=20, max_len=6)
    rng = np.random.default_rng(0)
    histories = [rng.integers(1, 21, size=rng.integers(1, 9)).tolist() for _ in range(50)]
    small_batches = attention_profile(model, histories, batch_size=7, popularity=np.arange(21))
    one_batch = attention_profile(model, histories, batch_size=64, popularity=np.arange(21))

    # Batches change only the order of float64 sums.
    pd.testing.assert_frame_equal(small_batches.heads, one_batch.heads, check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(small_batches.popularity, one_batch.popularity, check_exact=False, rtol=1e-9)
    recency = one_batch.recency.groupby("head")["mass"].sum()
    np.testing.assert_allclose(recency, 1.0, atol=1e-9)


def test_chunked_profile_matches_whole(monkeypatch):
    import recwidgets.explain.attention as attention_module

    model = untrained_sasrec()
    histories = [list(range(1, length + 2)) for length in range(8)]
    whole = attention_profile(model, histories, popularity=np.arange(31))
    monkeypatch.setattr(attention_module, "CHUNK_ELEMENTS", 1)
    one_user_at_a_time = attention_profile(model, histories, popularity=np.arange(31))

    pd.testing.assert_frame_equal(whole.heads, one_user_at_a_time.heads, check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(whole.head_pairs, one_user_at_a_time.head_pairs, check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(whole.faults, one_user_at_a_time.faults)

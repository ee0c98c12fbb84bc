"""OnlineUpdater on ML-100K: windows, table growth, full-history batches, undo, sparse updates, seeding.

The shared model is a small SASRec trained for one epoch on the ML-100K interactions before
the 0.9 timestamp quantile. Each test updates its own deep copy.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from recwidgets.data import InteractionLog, leave_last_out, load_ml100k
from recwidgets.errors import ConfigError, DataError
from recwidgets.models import SASRec
from recwidgets.online import FirstOrderModel, OnlineUpdater, OnlineWarning, WindowSpec, online_logs, window_spec
from recwidgets.online.stream import Stream

# Small measurement sets keep each apply to a second or two.
FAST = dict(max_eval_cases=300, forgetting_users=150, n_movers=5)


@pytest.fixture(scope="module")
def ml100k_log(ml100k_dir):
    return load_ml100k(ml100k_dir)


@pytest.fixture(scope="module")
def logs(ml100k_log):
    return online_logs(ml100k_log, 0.9)


@pytest.fixture(scope="module")
def trained(logs):
    """SASRec trained one epoch on the pre-cutoff log (leave-last-out, so the last pre-cutoff item is unseen)."""
    torch.set_num_threads(1)
    split = leave_last_out(logs.pre_cutoff, short_users="train")
    model = SASRec(max_len=20, hidden=16, layers=1, heads=1, epochs=1, batch_size=256, lr=5e-3, dropout=0.1, seed=0)
    return model.fit(split, validate=False, progress=False)


@pytest.fixture
def model(trained):
    return copy.deepcopy(trained)


def updater_for(model, logs, **options) -> OnlineUpdater:
    settings = {**FAST, "window": 1000, "steps": 3, "lr": 1e-3, "seed": 0, **options}
    return OnlineUpdater(model, logs.stream, cutoff=logs.cutoff, **settings)


def state_of(module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def assert_states_equal(left: dict, right: dict) -> None:
    assert left.keys() == right.keys()
    for name in left:
        assert left[name].shape == right[name].shape, name
        assert torch.equal(left[name], right[name]), name


def tensors_of(value, prefix="") -> dict[str, object]:
    """Flatten a nested optimizer state into {path: leaf}."""
    if isinstance(value, dict):
        flat = {}
        for key, item in value.items():
            flat.update(tensors_of(item, f"{prefix}/{key}"))
        return flat
    if isinstance(value, list):
        flat = {}
        for index, item in enumerate(value):
            flat.update(tensors_of(item, f"{prefix}/{index}"))
        return flat
    return {prefix: value}


def assert_optimizer_states_equal(left: dict, right: dict) -> None:
    flat_left, flat_right = tensors_of(left), tensors_of(right)
    assert flat_left.keys() == flat_right.keys()
    for path, value in flat_left.items():
        other = flat_right[path]
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, other), path
        else:
            assert value == other, path


# -- logs, streams and windows ------------------------------------------------------------


def toy_log() -> InteractionLog:
    """Users a, b (before the cutoff 100) and c (after); items x, y before, z and w after, z first."""
    frame = pd.DataFrame(
        {
            "user": ["a", "a", "b", "b", "a", "c", "c", "b"],
            "item": ["y", "x", "x", "y", "w", "z", "w", "z"],
            "timestamp": [10, 20, 30, 40, 150, 120, 400, 130],
        }
    )
    return InteractionLog.from_frame(frame, name="toy")


def test_online_logs_known_ids_first():
    log = toy_log()
    logs = online_logs(log, 100)

    assert logs.pre_cutoff.n_items == 2
    assert logs.pre_cutoff.n_users == 2
    # New items get ids after the known ones, in order of their first event: z (120), then w (150).
    assert list(logs.stream.item_ids[1:]) == ["x", "y", "z", "w"]
    assert list(logs.stream.user_ids[1:]) == ["a", "b", "c"]


def test_online_logs_keep_every_event():
    log = toy_log()
    logs = online_logs(log, 100)

    def raw_events(source: InteractionLog) -> set:
        frame = source.interactions
        return set(zip(source.user_ids[frame.user], source.item_ids[frame.item], frame.timestamp))

    assert raw_events(logs.stream) == raw_events(log)
    assert raw_events(logs.pre_cutoff) == {event for event in raw_events(log) if event[2] < 100}


def test_window_by_duration(logs):
    stream = Stream(logs.stream, logs.cutoff)
    window = stream.next_window(stream.first, logs.cutoff, window_spec("7D"))

    assert window.start == stream.first
    assert window.start_time == logs.cutoff
    assert window.end_time == logs.cutoff + 7 * 86400
    assert stream.times[window.start : window.stop].min() >= logs.cutoff
    assert stream.times[window.start : window.stop].max() < window.end_time
    assert stream.times[window.stop] >= window.end_time


def test_window_by_count(logs):
    stream = Stream(logs.stream, logs.cutoff)
    first = stream.next_window(stream.first, logs.cutoff, window_spec(500))
    second = stream.next_window(first.stop, first.end_time, window_spec(500))

    assert len(first) == 500
    assert second.start == first.stop
    assert len(second) == 500
    last = stream.next_window(len(stream) - 10, 0, window_spec(500))
    assert len(last) == 10
    assert stream.next_window(len(stream), 0, window_spec(500)) is None


def test_window_skips_quiet_period():
    logs = online_logs(toy_log(), 100)
    stream = Stream(logs.stream, 100)
    spec = WindowSpec(0.01, "hours")  # 36 s; events after the cutoff come at 120, 130, 150 and 400

    first = stream.next_window(stream.first, 100, spec)
    second = stream.next_window(first.stop, first.end_time, spec)
    third = stream.next_window(second.stop, second.end_time, spec)

    assert (first.start_time, first.end_time, len(first)) == (100, 136, 2)
    assert (second.start_time, len(second)) == (136, 1)
    # [172, 208) contains no event, so the third window starts at the next event instead.
    assert (third.start_time, third.end_time, len(third)) == (400, 436, 1)
    assert stream.next_window(third.stop, third.end_time, spec) is None


@pytest.mark.parametrize("window", ["abc", "30min", 0, -5, 1.5, True])
def test_window_spec_rejects(window):
    with pytest.raises(ConfigError):
        window_spec(window)


def test_window_spec_units():
    assert window_spec("7D") == WindowSpec(7, "days")
    assert window_spec("12h") == WindowSpec(12, "hours")
    assert window_spec(250) == WindowSpec(250, "interactions")
    assert window_spec(pd.Timedelta(days=2)).label() == "2 days"


# -- table growth -------------------------------------------------------------------------


def test_growth_keeps_existing_rows(model, logs):
    updater = updater_for(model, logs, window="7D", steps=0)
    before = model.module.item_embedding.weight.detach().clone()
    n_old = model.n_items
    window = updater.next_window()
    expected = int(updater.stream.items[: window.stop].max())
    assert expected > n_old  # the first week after the cutoff brings new items

    record = updater.apply()

    table = model.module.item_embedding.weight.detach()
    assert model.n_items == expected
    assert model.module.n_items == expected
    assert table.shape == (expected + 1, before.shape[1])
    assert record.n_new_items == expected - n_old
    assert torch.equal(table[: n_old + 1], before)
    assert torch.all(table[0] == 0)

    # New rows sit near the mean of the trained rows and differ from each other.
    new = table[n_old + 1 :]
    mean = before[1:].mean(0)
    spread = before[1:].std(0, unbiased=False)
    assert torch.all((new - mean).abs() <= 6 * 0.1 * spread + 1e-7)
    assert not torch.equal(new[0], new[1])

    # A history holding a new item scores without an IndexError, over the grown catalog.
    scores = model.score(torch.tensor([[0, 0, 1, 2, expected]]))
    assert scores.shape == (1, expected + 1)
    assert torch.isfinite(scores[0, 1:]).all()


def test_growth_of_user_and_untied_tables(logs):
    toy = FirstOrderModel(logs.pre_cutoff.n_items, logs.pre_cutoff.n_users, hidden=8, seed=0)
    tables = {name: table.detach().clone() for name, table in {**toy.item_tables(), **toy.user_tables()}.items()}
    updater = updater_for(toy, logs, window="7D", steps=0)
    window = updater.next_window()
    n_items = int(updater.stream.items[: window.stop].max())
    n_users = int(updater.stream.users[: window.stop].max())
    assert n_users > logs.pre_cutoff.n_users

    record = updater.apply()

    grown = {**toy.item_tables(), **toy.user_tables()}
    assert grown["item_embedding.weight"].shape[0] == n_items + 1
    assert grown["output.weight"].shape[0] == n_items + 1
    assert grown["output.bias"].shape == (n_items + 1,)
    assert grown["user_embedding.weight"].shape[0] == n_users + 1
    assert toy.n_users == n_users
    assert record.n_new_users > 0
    for name, old in tables.items():
        assert torch.equal(grown[name].detach()[: len(old)], old), name
    assert torch.all(grown["user_embedding.weight"].detach()[0] == 0)
    assert torch.all(grown["item_embedding.weight"].detach()[0] == 0)


def test_training_keeps_padding_rows(logs):
    toy = FirstOrderModel(logs.pre_cutoff.n_items, logs.pre_cutoff.n_users, hidden=8, seed=0)
    bias_pad = toy.module.output.bias.detach()[0].clone()
    updater = updater_for(toy, logs, steps=3, lr=0.05)

    updater.apply()

    assert torch.all(toy.module.item_embedding.weight.detach()[0] == 0)
    assert torch.all(toy.module.user_embedding.weight.detach()[0] == 0)
    assert torch.equal(toy.module.output.bias.detach()[0], bias_pad)


# -- training rows ------------------------------------------------------------------------


def test_batch_spans_the_cutoff(model, logs):
    updater = updater_for(model, logs, window="7D")
    stream = updater.stream
    window = updater.next_window()
    max_len = updater.max_len

    # A forgetting user with a few events in the window: the newest row must reach back
    # before the cutoff, and the held-out last pre-cutoff item must not be a target.
    chosen = None
    for user in updater.forgetting_set.users:
        positions = stream.positions(int(user))
        new = positions[(positions >= window.start) & (positions < window.stop)]
        if 1 <= len(new) <= max_len // 4:
            chosen = int(user)
            break
    assert chosen is not None

    batch = updater.build_batch(window)
    rows = np.flatnonzero(batch.users == chosen)
    assert len(rows) == 1  # the few new events fit in one window

    positions = stream.positions(chosen)
    positions = positions[positions < window.stop]
    sequence = stream.items[positions]
    inputs, targets = batch.inputs[rows[0]], batch.targets[rows[0]]
    width = min(len(sequence) - 1, max_len)
    assert inputs[inputs != 0].tolist() == sequence[-width - 1 : -1].tolist()
    assert (positions[-width - 1 : -1] < stream.first).any()  # context from before the cutoff

    held_out = int(np.flatnonzero(updater._heldout[positions])[0])
    offset = held_out - (len(sequence) - width)  # index of the held-out item among the row's targets
    assert 0 <= offset < width
    expected_targets = sequence[-width:].copy()
    expected_targets[offset] = 0
    assert targets[max_len - width :].tolist() == expected_targets.tolist()


def test_held_out_targets_never_trained(model, logs):
    updater = updater_for(model, logs, window="7D")
    held = {int(user): int(target[0]) for user, target in zip(updater.forgetting_set.users, updater.forgetting_set.targets)}

    # ML-100K has one rating per (user, item), so the held-out item occurs once in the user's sequence.
    n_as_input = 0
    for batch in (updater._replay_pool, updater.build_batch(updater.next_window())):
        for row in range(len(batch)):
            user = int(batch.users[row])
            if user not in held:
                continue
            assert held[user] not in batch.targets[row]
            n_as_input += int(held[user] in batch.inputs[row])
    # In the window rows the item stays in the context of later positions.
    assert n_as_input > 0


# -- undo, commit, reset ------------------------------------------------------------------


def test_undo_restores_parameters_and_optimizer(model, logs):
    updater = updater_for(model, logs, window="7D", optimizer_state="carry", steps=2)
    updater.apply()
    updater.commit()
    saved_parameters = state_of(model.module)
    saved_optimizer = updater.optimizer.state_dict()
    saved_position, saved_items = updater.position, model.n_items

    record = updater.apply()
    assert record.n_new_items > 0  # the second week grows the table again
    assert not torch.equal(model.module.blocks[0].attention.qkv.weight, saved_parameters["blocks.0.attention.qkv.weight"])

    undone = updater.undo()

    assert undone.status == "undone"
    assert_states_equal(state_of(model.module), saved_parameters)
    assert_optimizer_states_equal(updater.optimizer.state_dict(), saved_optimizer)
    assert model.n_items == saved_items
    assert model.module.item_embedding.num_embeddings == saved_items + 1
    assert updater.position == saved_position
    assert updater.online_data()["status"].tolist() == ["committed", "undone"]


def test_undo_of_first_fresh_update(model, logs):
    updater = updater_for(model, logs)
    original = state_of(model.module)
    updater.apply()

    updater.undo()

    assert_states_equal(state_of(model.module), original)
    assert updater.optimizer is None
    with pytest.raises(ConfigError, match="no pending update"):
        updater.undo()


def test_reset_returns_to_original(model, logs):
    updater = updater_for(model, logs, window="7D")
    original = state_of(model.module)
    updater.apply()
    updater.commit()
    updater.apply()

    updater.reset()

    assert_states_equal(state_of(model.module), original)
    assert updater.position == updater.stream.first
    assert set(updater.online_data()["status"]) == {"reset"}
    assert_states_equal(updater.original.parameters, original)


def test_lr_zero_changes_nothing(model, logs):
    updater = updater_for(model, logs, lr=0.0, steps=3, optimizer_state="carry")
    before = state_of(model.module)
    n_old = model.n_items

    record = updater.apply()

    assert record.steps_run == 3
    after = state_of(model.module)
    for name, tensor in before.items():
        assert torch.equal(after[name][: tensor.shape[0]], tensor), name
    assert model.n_items >= n_old
    assert record.plasticity_after == record.plasticity_before
    assert record.forgetting_after == record.forgetting_before
    assert record.jaccard_affected == 0.0


def test_failed_update_leaves_model_unchanged(model, logs):
    updater = updater_for(model, logs, window="7D")
    before = state_of(model.module)

    def fail(fraction, message):
        if message == "training":
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        updater.apply(progress=fail)

    assert_states_equal(state_of(model.module), before)
    assert updater.position == updater.stream.first
    assert updater.online_data().empty


# -- sparse updates -----------------------------------------------------------------------


def absent_rows_after_second_window(model, logs, sparse: bool) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Apply two windows with a carried optimizer; return the table before and after the second, and its items."""
    updater = updater_for(model, logs, sparse=sparse, optimizer_state="carry", steps=3, lr=5e-3)
    updater.apply()
    updater.commit()
    window = updater.next_window()
    present = updater.build_batch(window).items()
    before = model.module.item_embedding.weight.detach().clone()
    updater.apply()
    after = model.module.item_embedding.weight.detach()[: before.shape[0]]
    absent = np.setdiff1d(np.arange(1, before.shape[0]), present)
    return before, after, absent


def test_sparse_keeps_absent_rows(model, trained, logs):
    before, after, absent = absent_rows_after_second_window(model, logs, sparse=True)
    assert len(absent) > 100

    index = torch.from_numpy(absent)
    assert torch.equal(after[index], before[index])
    assert torch.equal(after[0], before[0])
    assert not torch.equal(after, before)  # rows of present items did move

    # Control: the dense update moves those rows (softmax gradient and carried momentum).
    dense_before, dense_after, dense_absent = absent_rows_after_second_window(copy.deepcopy(trained), logs, sparse=False)
    dense_index = torch.from_numpy(dense_absent)
    assert not torch.equal(dense_after[dense_index], dense_before[dense_index])


# -- measurements, seeding, settings ------------------------------------------------------


def test_record_measurements(model, logs):
    updater = updater_for(model, logs, window="7D", steps=3, lr=5e-3)

    record = updater.apply()
    row = updater.online_data().iloc[0]

    # Before the first update, the model is the original one.
    assert record.plasticity_before == record.plasticity_original
    assert record.forgetting_before == record.forgetting_original
    assert record.n_plasticity_cases > 0
    assert row["status"] == "pending"
    assert row["optimizer_state"] == "fresh"
    assert 0.0 <= row["jaccard_affected"] <= 1.0
    assert row["drift_l2_in"] > 0
    for column in ("plasticity_NDCG@10_after", "forgetting_HR@10_after", "drift_cos_out", "seconds_update"):
        assert np.isfinite(row[column]), column
    assert list(record.movers.columns) == ["user", "user_id", "jaccard", "in_window", "before", "after"]
    assert record.movers["jaccard"].is_monotonic_decreasing
    assert all(len(items) == updater.k for items in record.movers["after"])


def test_replay_rows_mixed_in(model, logs):
    updater = updater_for(model, logs, window="7D", replay=0.5, steps=2, batch_size=64)

    record = updater.apply()

    assert record.n_train_rows > 64
    assert record.n_replay_rows == 2 * 64  # replay 0.5: as many pre-cutoff rows as window rows per step


def test_seeded_update_reproducible(model, logs):
    updater = updater_for(model, logs, window="7D", steps=3, lr=5e-3, replay=0.25)
    first = updater.apply()
    state = state_of(model.module)
    updater.undo()

    second = updater.apply()

    assert_states_equal(state_of(model.module), state)
    assert second.plasticity_after == first.plasticity_after
    assert second.forgetting_after == first.forgetting_after
    assert second.loss_last == first.loss_last
    pd.testing.assert_frame_equal(second.movers, first.movers)


def test_stream_exhausted(model, logs):
    updater = updater_for(model, logs, window=len(logs.stream), steps=0)
    record = updater.apply()
    assert record.n_interactions == len(updater.stream) - updater.stream.first
    assert np.isnan(record.plasticity_after["NDCG@10"])  # no window follows the last one

    with pytest.raises(ConfigError, match="exhausted"):
        updater.apply()


def test_window_without_trainable_rows_warns(logs):
    toy = FirstOrderModel(logs.pre_cutoff.n_items, logs.pre_cutoff.n_users, seed=0)
    updater = updater_for(toy, logs, window=1)
    stream = updater.stream
    # Find a first event of a new user: its window has no (input, target) pair.
    position = next(p for p in range(stream.first, len(stream)) if stream.positions(int(stream.users[p]))[0] == p)
    updater._position = position

    with pytest.warns(OnlineWarning, match="no trainable row"):
        record = updater.apply()

    assert record.steps_run == 0


@pytest.mark.parametrize(
    ("option", "value"),
    [("lr", -1e-3), ("lr", float("nan")), ("steps", -1), ("replay", 0.95), ("optimizer_state", "warm"), ("k", 0)],
)
def test_invalid_settings_raise(model, logs, option, value):
    with pytest.raises(ConfigError, match=option):
        updater_for(model, logs, **{option: value})


def test_mismatched_ids_raise(model, ml100k_log, logs):
    with pytest.raises(DataError, match="online_logs"):
        OnlineUpdater(model, ml100k_log, cutoff=logs.cutoff, **FAST)

"""The generic training loop, next-item windows, losses and checkpoint files."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from recwidgets.errors import ConfigError
from recwidgets.training import (
    TrainingWarning,
    fit_loop,
    full_softmax_loss,
    iterate_batches,
    load_checkpoint,
    next_item_windows,
    resolve_device,
    sampled_bce_loss,
    save_checkpoint,
    seed_everything,
    train_epoch,
)
from recwidgets.training.checkpoint import history_from_plain, history_to_plain


def regression_problem(seed: int = 0):
    """A linear model and 4 batches of noiseless linear targets."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(64, 3, generator=generator)
    targets = inputs @ torch.tensor([[1.0], [-2.0], [0.5]])
    batches = [(inputs[i : i + 16], targets[i : i + 16]) for i in range(0, 64, 16)]
    torch.manual_seed(seed)
    return nn.Linear(3, 1), batches


def mse(module, batch):
    inputs, targets = batch
    return F.mse_loss(module(inputs), targets)


# -- windows and batches ------------------------------------------------------------------


def test_windows_all_cover_every_target_once():
    sequence = np.arange(1, 9)  # 8 items, max_len 3

    inputs, targets = next_item_windows([np.array([], dtype=np.int64), sequence], 3, "all")

    assert inputs.tolist() == [[5, 6, 7], [2, 3, 4], [0, 0, 1]]
    assert targets.tolist() == [[6, 7, 8], [3, 4, 5], [0, 0, 2]]
    assert sorted(targets[targets > 0].tolist()) == list(range(2, 9))


def test_windows_last_keeps_recent_items():
    inputs, targets = next_item_windows([np.arange(1, 9), np.array([4, 5]), np.array([7])], 3, "last")

    assert inputs.tolist() == [[5, 6, 7], [0, 0, 4]]
    assert targets.tolist() == [[6, 7, 8], [0, 0, 5]]


def test_windows_reject_unknown_policy():
    with pytest.raises(ConfigError, match="windows"):
        next_item_windows([np.arange(1, 4)], 3, "random")


def test_batches_cover_rows_once_in_seeded_order():
    inputs = np.arange(10).reshape(10, 1)
    targets = inputs + 100

    first = list(iterate_batches(inputs, targets, 4, np.random.default_rng(3)))
    second = list(iterate_batches(inputs, targets, 4, np.random.default_rng(3)))
    rows = torch.cat([batch[0] for batch in first]).flatten().tolist()

    assert [len(batch[0]) for batch in first] == [4, 4, 2]
    assert sorted(rows) == list(range(10))
    assert rows != list(range(10))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, second))
    assert all(torch.equal(batch[1], batch[0] + 100) for batch in first)


# -- devices and seeding ------------------------------------------------------------------


def test_resolve_device_auto_and_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"

    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_resolve_device_rejects_invalid_name():
    with pytest.raises(ConfigError, match="gpu0"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a missing CUDA")
def test_resolve_device_rejects_missing_cuda():
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")


def test_seed_everything_repeats_draws():
    rng = seed_everything(5)
    first = (random.random(), np.random.rand(), torch.rand(1).item(), rng.random())
    rng = seed_everything(5)
    second = (random.random(), np.random.rand(), torch.rand(1).item(), rng.random())

    assert first == second


def test_seed_everything_rejects_negative():
    with pytest.raises(ConfigError, match="seed"):
        seed_everything(-1)


# -- one epoch ----------------------------------------------------------------------------


def test_train_epoch_lowers_loss():
    module, batches = regression_problem()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)

    first = train_epoch(module, batches, optimizer, mse, torch.device("cpu"))
    for _ in range(5):
        last = train_epoch(module, batches, optimizer, mse, torch.device("cpu"))

    assert first.finite
    assert first.n_batches == 4
    assert last.train_loss < first.train_loss
    assert first.grad_norm > 0


def test_train_epoch_stops_before_non_finite_step():
    module, batches = regression_problem()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    poisoned = batches[:1] + [(batches[1][0], batches[1][1] * float("nan"))] + batches[2:]
    calls = []

    stats = train_epoch(
        module, poisoned, optimizer, mse, torch.device("cpu"), on_batch=lambda index, loss: calls.append(index)
    )

    assert not stats.finite
    assert stats.n_batches == 2
    assert calls == [0]
    assert all(torch.isfinite(parameter).all() for parameter in module.parameters())


def test_train_epoch_clips_gradients():
    module, batches = regression_problem()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.0)

    train_epoch(module, batches[:1], optimizer, mse, torch.device("cpu"), max_grad_norm=1e-3)
    clipped = torch.cat([parameter.grad.flatten() for parameter in module.parameters()]).norm()

    assert clipped <= 1e-3 + 1e-9


# -- the loop ---------------------------------------------------------------------------


def scripted_validation(values):
    """Return a validate() that yields the given NDCG@10 values in order."""
    remaining = list(values)
    return lambda: {"val_NDCG@10": remaining.pop(0), "val_HR@10": 0.0}


def test_fit_loop_early_stopping_restores_best_state():
    module, batches = regression_problem()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.05)
    states = {}

    def remember(event):
        if event["event"] == "epoch":
            states[event["epoch"]] = module.weight.detach().clone()

    result = fit_loop(
        module,
        lambda epoch: batches,
        mse,
        optimizer,
        epochs=10,
        device=torch.device("cpu"),
        validate=scripted_validation([0.1, 0.3, 0.2, 0.25, 0.1, 0.9]),
        patience=3,
        callbacks=[remember],
        progress=False,
    )

    assert result.stop_reason == "early stopping"
    assert len(result.history) == 5
    assert result.best_epoch == 2
    assert result.best_value == 0.3
    assert torch.equal(module.weight, states[2])
    assert not torch.equal(module.weight, states[5])
    assert [row["best_epoch"] for row in result.history] == [1, 2, 2, 2, 2]


def test_fit_loop_validates_every_n_epochs():
    module, batches = regression_problem()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.05)

    result = fit_loop(
        module,
        lambda epoch: batches,
        mse,
        optimizer,
        epochs=5,
        device=torch.device("cpu"),
        validate=scripted_validation([0.1, 0.2, 0.3]),
        patience=None,
        eval_every=2,
        progress=False,
    )
    validated = [row["epoch"] for row in result.history if "val_NDCG@10" in row]

    assert validated == [2, 4, 5]
    assert result.best_epoch == 5
    assert result.stop_reason == "max epochs"


def test_fit_loop_rejects_missing_monitor():
    module, batches = regression_problem()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.05)

    with pytest.raises(ConfigError, match="val_MRR@10"):
        fit_loop(
            module,
            lambda epoch: batches,
            mse,
            optimizer,
            epochs=2,
            device=torch.device("cpu"),
            validate=scripted_validation([0.1, 0.2]),
            monitor="val_MRR@10",
            progress=False,
        )


def test_fit_loop_non_finite_rolls_back():
    module, batches = regression_problem()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.05)
    poisoned = [(inputs, targets * float("inf")) for inputs, targets in batches]
    states = {}

    def remember(event):
        if event["event"] == "epoch":
            states[event["epoch"]] = module.weight.detach().clone()

    with pytest.warns(TrainingWarning, match="epoch 3"):
        result = fit_loop(
            module,
            lambda epoch: batches if epoch < 3 else [batches[0], *poisoned],
            mse,
            optimizer,
            epochs=6,
            device=torch.device("cpu"),
            callbacks=[remember],
            progress=False,
        )

    assert result.stop_reason == "non-finite loss"
    assert [row["finite"] for row in result.history] == [True, True, False]
    assert result.best_epoch == 2
    assert torch.equal(module.weight, states[2])


# -- losses -------------------------------------------------------------------------------


def test_full_softmax_loss_matches_manual():
    torch.manual_seed(0)
    hidden = torch.randn(2, 3, 4)
    weight = torch.randn(6, 4)
    targets = torch.tensor([[0, 2, 5], [0, 0, 1]])

    loss = full_softmax_loss(hidden, targets, weight)
    logits = hidden @ weight.t()
    manual = torch.stack(
        [
            -torch.log_softmax(logits[0, 1, 1:], -1)[2 - 1],
            -torch.log_softmax(logits[0, 2, 1:], -1)[5 - 1],
            -torch.log_softmax(logits[1, 2, 1:], -1)[1 - 1],
        ]
    ).mean()

    assert torch.allclose(loss, manual, atol=1e-6)


def test_sampled_bce_loss_matches_manual():
    torch.manual_seed(0)
    hidden = torch.randn(1, 2, 4)
    weight = torch.randn(4, 4)
    targets = torch.tensor([[2, 3]])

    loss = sampled_bce_loss(hidden, targets, weight, 2, torch.Generator().manual_seed(1))
    negatives = torch.randint(1, 4, (2, 2), generator=torch.Generator().manual_seed(1))
    negatives = torch.where(negatives == targets[0][:, None], negatives % 3 + 1, negatives)
    positive = (hidden[0] * weight[targets[0]]).sum(-1)
    negative = torch.einsum("nd,nkd->nk", hidden[0], weight[negatives])
    manual = -F.logsigmoid(positive).mean() - F.logsigmoid(-negative).sum(-1).mean()

    assert torch.all(negatives != targets[0][:, None])
    assert torch.allclose(loss, manual, atol=1e-6)


# -- checkpoints ----------------------------------------------------------------------------


def test_checkpoint_round_trip_plain_data(tmp_path):
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.5, 1.2], "val_NDCG@10": [np.nan, 0.1]})
    payload = {"weights": {"w": torch.ones(2)}, "history": history_to_plain(history), "shape": (3, 4)}

    path = save_checkpoint(tmp_path / "deep" / "file.pt", payload, kind="test.kind")
    raw = torch.load(path, weights_only=True)
    data = load_checkpoint(path, kind="test.kind")

    assert raw["format"] == "test.kind"
    assert torch.equal(data["weights"]["w"], torch.ones(2))
    assert data["shape"] == [3, 4]
    pd.testing.assert_frame_equal(history_from_plain(data["history"]), history)


def test_checkpoint_rejects_wrong_kind_and_version(tmp_path):
    path = save_checkpoint(tmp_path / "file.pt", {}, kind="test.kind", version=3)

    with pytest.raises(ConfigError, match="other.kind"):
        load_checkpoint(path, kind="other.kind")
    with pytest.raises(ConfigError, match="version 3"):
        load_checkpoint(path, kind="test.kind", max_version=2)


class Opaque:
    """A class that weights-only loading must refuse to rebuild."""


def test_checkpoint_rejects_pickled_objects(tmp_path):
    path = tmp_path / "object.pt"
    torch.save({"format": "test.kind", "object": Opaque()}, path)

    with pytest.raises(ConfigError, match="weights_only"):
        load_checkpoint(path, kind="test.kind")

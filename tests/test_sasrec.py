"""SASRec: attention properties on a tiny hand-built network, training and checkpoints on ML-100K."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from recwidgets.data.log import InteractionLog
from recwidgets.data.split import EvalSet, leave_last_out
from recwidgets.errors import ConfigError, DataError
from recwidgets.models import Recommender, SASRec, SASRecConfig, SASRecModule
from recwidgets.training import TrainingWarning

# Rows: partly padded, unpadded, one item, all padding.
HISTORIES = torch.tensor(
    [
        [0, 0, 3, 4, 5, 6],
        [1, 2, 3, 4, 5, 6],
        [0, 0, 0, 0, 0, 7],
        [0, 0, 0, 0, 0, 0],
    ]
)

TINY = dict(max_len=20, hidden=16, layers=1, heads=2, batch_size=64, dropout=0.1, lr=5e-3)


def tiny_module(causal: bool = True) -> SASRecModule:
    torch.manual_seed(0)
    return SASRecModule(10, max_len=6, hidden=8, layers=2, heads=2, dropout=0.0, causal=causal).eval()


@pytest.fixture(scope="module")
def small_split(ml100k_dir):
    """Leave-last-out split of the first 120 ML-100K users."""
    frame = pd.read_csv(ml100k_dir / "u.data", sep="\t", names=["user", "item", "rating", "timestamp"])
    frame = frame[frame["user"] <= 120]
    return leave_last_out(InteractionLog.from_frame(frame, name="ml-100k-slice"))


def test_attention_shape_per_layer():
    _, weights = tiny_module()(HISTORIES, return_attention=True)

    assert len(weights) == 2
    for layer in weights:
        assert layer.shape == (4, 2, 6, 6)


def test_attention_zero_on_padding_keys():
    _, weights = tiny_module()(HISTORIES, return_attention=True)
    padding_keys = (HISTORIES == 0)[:, None, None, :].expand(-1, 2, 6, -1)

    for layer in weights:
        assert torch.all(layer[padding_keys] == 0)


def test_attention_strictly_causal():
    _, weights = tiny_module()(HISTORIES, return_attention=True)
    above = torch.ones(6, 6, dtype=torch.bool).triu(diagonal=1)

    for layer in weights:
        assert torch.all(layer[..., above] == 0)


def test_attention_valid_rows_sum_to_one():
    _, weights = tiny_module()(HISTORIES, return_attention=True)
    valid_queries = (HISTORIES != 0)[:, None, :].expand(-1, 2, -1)

    for layer in weights:
        sums = layer.sum(-1)
        assert torch.allclose(sums[valid_queries], torch.ones(()), atol=1e-6)
        assert torch.all(sums[~valid_queries] == 0)


def test_attention_all_padding_gives_zero_rows():
    module = tiny_module()
    empty = torch.zeros(3, 6, dtype=torch.long)

    hidden, weights = module(empty, return_attention=True)
    fused_hidden = module(empty)
    scores = module.score_last(empty)

    for layer in weights:
        assert not torch.isnan(layer).any()
        assert torch.all(layer == 0)
    assert torch.all(hidden == 0)
    assert torch.all(fused_hidden == 0)
    assert not torch.isnan(scores).any()


def test_explicit_path_matches_fused():
    module = tiny_module()

    fused = module(HISTORIES)
    explicit, _ = module(HISTORIES, return_attention=True)

    assert torch.allclose(fused, explicit, atol=1e-5)


def test_explicit_matches_fused_non_causal():
    module = tiny_module(causal=False)

    fused = module(HISTORIES)
    explicit, _ = module(HISTORIES, return_attention=True)

    assert torch.allclose(fused, explicit, atol=1e-5)


def test_padding_hidden_states_zero():
    hidden = tiny_module()(HISTORIES)

    assert torch.all(hidden[HISTORIES == 0] == 0)
    assert torch.all(hidden[HISTORIES != 0].abs().sum(-1) > 0)


def test_causal_hidden_ignores_future_items():
    module = tiny_module()
    changed = HISTORIES.clone()
    changed[:, -1] = 9

    before = module(HISTORIES)
    after = module(changed)

    assert torch.allclose(before[:, :-1], after[:, :-1], atol=1e-6)
    assert not torch.allclose(before[:2, -1], after[:2, -1])


def test_non_causal_variant_sees_future():
    module = tiny_module(causal=False)
    above = torch.ones(6, 6, dtype=torch.bool).triu(diagonal=1)
    changed = HISTORIES.clone()
    changed[:, -1] = 9

    _, weights = module(HISTORIES, return_attention=True)
    before = module(HISTORIES)
    after = module(changed)

    # Row 1 has no padding, so every query there has later valid keys.
    assert torch.all(weights[0][1][:, above] > 0)
    assert not torch.allclose(before[1, :-1], after[1, :-1], atol=1e-4)


def test_attention_mask_subclass_hook():
    class SeeEverything(SASRecModule):
        def attention_mask(self, valid):
            length = valid.shape[1]
            return valid[:, None, None, :].expand(-1, 1, length, length)

    torch.manual_seed(0)
    module = SeeEverything(10, max_len=6, hidden=8, layers=1, heads=2, dropout=0.0).eval()
    _, weights = module(HISTORIES, return_attention=True)
    above = torch.ones(6, 6, dtype=torch.bool).triu(diagonal=1)

    assert torch.all(weights[0][1][:, above] > 0)


def test_narrow_input_scores_like_padded():
    module = tiny_module()

    wide = module.score_last(HISTORIES[:3])
    narrow = module.score_last(HISTORIES[:3, -4:])  # rows 0 and 2 lose only padding

    assert torch.allclose(wide[0], narrow[0], atol=1e-6)
    assert torch.allclose(wide[2], narrow[2], atol=1e-6)
    assert not torch.allclose(wide[1], narrow[1], atol=1e-6)


def test_long_input_keeps_recent_items():
    module = tiny_module()
    long = torch.tensor([[9, 9, 9, 1, 2, 3, 4, 5, 6]])

    assert torch.allclose(module.score_last(long), module.score_last(HISTORIES[1:2]), atol=1e-6)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_len", 0),
        ("hidden", -4),
        ("layers", 0),
        ("heads", 0),
        ("heads", 3),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("loss", "hinge"),
        ("n_negatives", 0),
        ("lr", 0.0),
        ("weight_decay", -1.0),
        ("batch_size", 0),
        ("epochs", 2.5),
        ("patience", 0),
        ("eval_every", 0),
        ("seed", -1),
        ("windows", "first"),
        ("max_grad_norm", 0.0),
        ("causal", "yes"),
    ],
)
def test_config_rejects_invalid_value(field, value):
    with pytest.raises(ConfigError) as error:
        SASRecConfig(**{field: value})

    message = str(error.value)
    assert field in message or (field == "heads" and "divisible" in message)


def test_config_defaults():
    config = SASRecConfig()

    assert (config.max_len, config.hidden, config.layers, config.heads) == (50, 64, 2, 2)
    assert (config.loss, config.lr, config.batch_size, config.patience, config.seed) == ("ce", 1e-3, 128, 5, 2020)
    assert SASRecConfig(patience=None).patience is None


def test_unknown_option_raises():
    with pytest.raises(ConfigError, match="hiden"):
        SASRec(hiden=32)


def test_overrides_apply_to_config():
    model = SASRec(SASRecConfig(hidden=32), layers=3)

    assert model.config.hidden == 32
    assert model.config.layers == 3
    assert model.max_len == 50


def test_score_before_fit_raises():
    with pytest.raises(ConfigError, match="not fitted"):
        SASRec().score(HISTORIES)


def test_fit_rejects_bad_epochs(small_split):
    with pytest.raises(ConfigError, match="epochs"):
        SASRec(**TINY).fit(small_split, epochs=0, progress=False, validate=False)


def test_ce_loss_decreases(small_split):
    model = SASRec(**TINY, loss="ce").fit(small_split, epochs=4, device="cpu", progress=False, validate=False)
    losses = model.history["train_loss"].to_numpy()

    assert len(losses) == 4
    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]


def test_bce_loss_decreases(small_split):
    model = SASRec(**TINY, loss="bce", n_negatives=4).fit(
        small_split, epochs=4, device="cpu", progress=False, validate=False
    )
    losses = model.history["train_loss"].to_numpy()

    assert np.all(np.isfinite(losses))
    assert losses[-1] < losses[0]


def test_fit_history_columns(small_split):
    model = SASRec(**TINY).fit(small_split, epochs=2, device="cpu", progress=False, validate=False)

    for column in ("epoch", "train_loss", "grad_norm", "seconds", "finite", "best_epoch"):
        assert column in model.history.columns
    assert model.history["epoch"].tolist() == [1, 2]
    assert model.best_epoch == 2
    assert model.stop_reason == "max epochs"
    assert isinstance(model, Recommender)


def test_same_seed_same_parameters(small_split):
    first = SASRec(**TINY).fit(small_split, epochs=2, device="cpu", seed=7, progress=False, validate=False)
    second = SASRec(**TINY).fit(small_split, epochs=2, device="cpu", seed=7, progress=False, validate=False)
    other = SASRec(**TINY).fit(small_split, epochs=2, device="cpu", seed=8, progress=False, validate=False)

    for name, tensor in first.module.state_dict().items():
        assert torch.equal(tensor, second.module.state_dict()[name]), name
    assert not torch.equal(first.item_embeddings(), other.item_embeddings())


def test_callbacks_receive_events(small_split):
    events = []
    SASRec(**TINY).fit(small_split, epochs=2, device="cpu", progress=False, validate=False, callbacks=[events.append])
    kinds = [event["event"] for event in events]
    epochs = [event for event in events if event["event"] == "epoch"]
    batches = [event for event in events if event["event"] == "batch"]

    assert kinds[-1] == "end"
    assert len(epochs) == 2
    assert {"epoch", "train_loss", "grad_norm", "seconds", "best_epoch"} <= set(epochs[0])
    assert batches[0]["batch"] == 1
    assert batches[-1]["batch"] == batches[-1]["n_batches"]
    assert events[-1]["stop_reason"] == "max epochs"


def test_non_finite_loss_stops_training(small_split):
    model = SASRec(**TINY)

    def poison(event):
        # Corrupt the weights during epoch 2, so the next batch's loss is NaN.
        if event["event"] == "batch" and event["epoch"] == 2 and event["batch"] == 1:
            with torch.no_grad():
                model.module.item_embedding.weight.fill_(float("nan"))

    with pytest.warns(TrainingWarning, match="loss became nan"):
        model.fit(small_split, epochs=5, device="cpu", progress=False, validate=False, callbacks=[poison])

    assert model.stop_reason == "non-finite loss"
    assert model.history["finite"].tolist() == [True, False]
    assert model.best_epoch == 1
    assert torch.isfinite(model.item_embeddings()).all()


def test_fit_without_training_pairs_raises():
    frame = pd.DataFrame({"user": [1, 1, 1, 2, 2, 2], "item": [1, 2, 3, 4, 5, 6], "timestamp": range(6)})
    split = leave_last_out(InteractionLog.from_frame(frame))

    with pytest.raises(DataError, match="2 or more"):
        SASRec(**TINY).fit(split, epochs=1, progress=False, validate=False)


def test_inference_shapes(small_split):
    model = SASRec(**TINY).fit(small_split, epochs=1, device="cpu", progress=False, validate=False)
    histories = [np.array([1, 2, 3]), np.array([5])]
    n_items = small_split.log.n_items

    assert model.score(histories).shape == (2, n_items + 1)
    assert model.hidden(histories).shape == (2, 20, 16)
    attention = model.attention(histories)
    assert len(attention) == 1
    assert attention[0].shape == (2, 2, 20, 20)
    assert model.item_embeddings().shape == (n_items + 1, 16)
    assert torch.all(model.item_embeddings()[0] == 0)
    assert model.score(torch.tensor([1, 2, 3])).shape == (1, n_items + 1)


def test_checkpoint_round_trip(small_split, tmp_path):
    model = SASRec(**TINY).fit(small_split, epochs=2, device="cpu", progress=False, validate=False)
    histories = [small_split.test.histories[i] for i in range(8)]
    path = model.save(tmp_path / "model.pt")

    raw = torch.load(path, weights_only=True)
    loaded = SASRec.load(path, device="cpu")

    assert raw["format"] == "recwidgets.sasrec"
    assert loaded.config == model.config
    assert loaded.n_items == model.n_items
    assert loaded.best_epoch == model.best_epoch
    assert torch.equal(loaded.score(histories), model.score(histories))
    pd.testing.assert_frame_equal(loaded.history, model.history, check_dtype=False)


def test_load_rejects_other_checkpoint(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, path)

    with pytest.raises(ConfigError, match="recwidgets.sasrec"):
        SASRec.load(path)
    with pytest.raises(FileNotFoundError):
        SASRec.load(tmp_path / "missing.pt")


def test_fit_warns_without_validation_targets(small_split):
    validation = small_split.validation
    no_targets = EvalSet(validation.users, validation.histories, [target[:0] for target in validation.targets])
    split = replace(small_split, validation=no_targets)

    with pytest.warns(TrainingWarning, match="no validation targets"):
        model = SASRec(**TINY).fit(split, epochs=1, device="cpu", progress=False)

    assert model.best_epoch == 1


def test_early_stopping_restores_best_epoch(small_split):
    from recwidgets.evaluation import evaluate

    model = SASRec(**TINY, patience=2).fit(small_split, epochs=30, device="cpu", progress=False)
    history = model.history.set_index("epoch")
    validation = history["val_NDCG@10"]

    restored = evaluate(model, small_split, part="validation", k=(10,), n_bootstrap=0).value("NDCG@10")

    assert model.stop_reason == "early stopping"
    assert model.best_epoch == int(validation.idxmax())
    assert model.best_epoch < int(history.index.max())
    assert restored == pytest.approx(validation[model.best_epoch], abs=1e-12)
    assert restored != pytest.approx(validation.iloc[-1], abs=1e-12)
    assert "val_HR@10" in history.columns

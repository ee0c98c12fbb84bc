"""Distributed training and sharded evaluation: 2 gloo processes on 127.0.0.1 against one process."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from recwidgets.data.loaders import load_ml100k
from recwidgets.data.split import leave_last_out
from recwidgets.distributed import (
    evaluate_sharded,
    explain_users_sharded,
    fit_distributed,
    gather_objects,
    launch_local,
    load_result,
    load_run,
    save_result,
    save_run,
    shard_bounds,
    shard_order,
    shard_users,
)
from recwidgets.distributed.cli import main as cli_main
from recwidgets.errors import ConfigError
from recwidgets.evaluation import evaluate
from recwidgets.models.sasrec import SASRec

N_USERS = 150
EVAL = {"k": (5, 10), "n_bootstrap": 200, "seed": 7, "batch_size": 32}
TRAIN = {"epochs": 2, "hidden": 16, "layers": 1, "heads": 1, "batch_size": 64, "patience": None, "seed": 3}
EXPLAINED_USERS = [3, 17, 40]


def small_split(data_dir):
    """The first ``N_USERS`` users of ML-100K, split leave-last-out."""
    log = load_ml100k(data_dir)
    frame = log.interactions
    return leave_last_out(log.with_interactions(frame[frame["user"] <= N_USERS]))


def explainer_for(model):
    from recwidgets.explain.shap_values import ShapExplainer

    return ShapExplainer(model, method="permutation", n_pairs=2, refine=False, seed=5, progress=False)


def ddp_worker(context, data_dir, out_dir):
    """One rank: DDP training, sharded evaluation and attribution; rank files for the parent to compare."""
    split = small_split(data_dir)
    model = fit_distributed(split, context=context, progress=False, **TRAIN)
    result = evaluate_sharded(model, split, context=context, **EVAL)
    frame = explain_users_sharded(explainer_for(model), split, EXPLAINED_USERS, context=context, dst=0)
    batches_seen = gather_objects(len(shard_order(100, 1, 0, context.rank, context.world_size)), context)

    torch.save(model.module.state_dict(), f"{out_dir}/state_{context.rank}.pt")
    save_result(result, f"{out_dir}/result_{context.rank}")
    if context.is_root:
        save_run(f"{out_dir}/run", model, {"test": result}, {"world_size": context.world_size})
        frame.to_parquet(f"{out_dir}/shap.parquet")
        (out_dir / "meta.json").write_text(
            json.dumps({"world_size": context.world_size, "per_rank_windows": batches_seen})
        )


@pytest.fixture(scope="module")
def ddp_run(ml100k_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("ddp")
    launch_local(ddp_worker, 2, ml100k_dir, out_dir)
    return out_dir


def assert_results_equal(left, right):
    pd.testing.assert_frame_equal(left.metrics, right.metrics, check_exact=True)
    pd.testing.assert_frame_equal(left.per_user, right.per_user, check_exact=True)
    pd.testing.assert_frame_equal(left.segments, right.segments, check_exact=True)
    np.testing.assert_array_equal(left.users, right.users)
    np.testing.assert_array_equal(left.topk, right.topk)
    assert len(left.target_ranks) == len(right.target_ranks)
    for a, b in zip(left.target_ranks, right.target_ranks):
        np.testing.assert_array_equal(a, b)
    assert left.card == right.card
    assert left.coverage_counts == right.coverage_counts


def test_shard_bounds_partition_users():
    for n_users, world, batch in [(10, 3, 3), (7, 2, 1), (5, 4, 4), (0, 2, 8), (1000, 2, 256)]:
        blocks = [shard_bounds(n_users, rank, world, batch) for rank in range(world)]
        covered = np.concatenate([np.arange(start, stop) for start, stop in blocks])
        np.testing.assert_array_equal(covered, np.arange(n_users))
        for start, _ in blocks:
            assert start % batch == 0 or start == n_users


def test_shard_users_rejects_bad_rank():
    with pytest.raises(ConfigError, match="rank=2 of world_size=2"):
        shard_users([1, 2, 3], 2, 2)


def test_shard_order_covers_epoch():
    parts = [shard_order(11, epoch=4, seed=1, rank=rank, world_size=3) for rank in range(3)]
    assert {len(part) for part in parts} == {4}
    assert set(np.concatenate(parts)) == set(range(11))
    np.testing.assert_array_equal(shard_order(11, 4, 1, 0, 1), np.random.default_rng([1, 4]).permutation(11))


def test_ddp_replicas_have_equal_parameters(ddp_run):
    first = torch.load(ddp_run / "state_0.pt", weights_only=True)
    second = torch.load(ddp_run / "state_1.pt", weights_only=True)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_ddp_ranks_split_the_windows(ddp_run):
    meta = json.loads((ddp_run / "meta.json").read_text())
    assert meta["world_size"] == 2
    assert meta["per_rank_windows"] == [50, 50]


def test_ddp_training_history(ddp_run):
    model, _ = load_run(ddp_run / "run", device="cpu")
    assert isinstance(model, SASRec)
    assert model.best_epoch == 2
    assert list(model.history["epoch"]) == [1, 2]
    assert np.isfinite(model.history["train_loss"]).all()
    assert model.history["train_loss"].iloc[1] < model.history["train_loss"].iloc[0]


def test_sharded_evaluation_equals_single_process(ddp_run, ml100k_dir):
    model, _ = load_run(ddp_run / "run", device="cpu")
    single = evaluate(model, small_split(ml100k_dir), **EVAL)
    for rank in (0, 1):
        assert_results_equal(load_result(ddp_run / f"result_{rank}"), single)


def test_sharded_attribution_equals_single_process(ddp_run, ml100k_dir):
    from recwidgets.explain.shap_values import shap_frame

    model, _ = load_run(ddp_run / "run", device="cpu")
    split = small_split(ml100k_dir)
    single = shap_frame(explainer_for(model).explain_users(split, EXPLAINED_USERS, progress=False))
    gathered = pd.read_parquet(ddp_run / "shap.parquet")
    assert list(gathered["user"].unique()) == EXPLAINED_USERS
    pd.testing.assert_frame_equal(gathered, single, check_exact=True)


def test_run_folder_round_trip(ddp_run):
    model, results = load_run(ddp_run / "run", device="cpu")
    assert list(results) == ["test"]
    assert_results_equal(results["test"], load_result(ddp_run / "result_0"))
    assert model.n_items > 0
    assert json.loads((ddp_run / "run" / "run.json").read_text())["info"]["world_size"] == 2


def test_cli_single_process_run(ml100k_dir, tmp_path):
    from recwidgets.widgets.metric_panel import MetricPanel

    code = cli_main(
        [
            "train",
            "--data", str(ml100k_dir),
            "--epochs", "1",
            "--hidden", "16",
            "--layers", "1",
            "--heads", "1",
            "--no-validate",
            "--bootstrap", "50",
            "--out", str(tmp_path / "run"),
        ]
    )
    assert code == 0
    model, results = load_run(tmp_path / "run", device="cpu")
    assert list(results) == ["test", "test, seen items kept"]
    assert results["test"].card.exclude_seen is True
    assert results["test, seen items kept"].card.exclude_seen is False
    assert results["test"].card.n_evaluated_users == 943
    panel = MetricPanel(list(results.values()))
    assert len(panel.model_names) == 2


def test_cli_reports_missing_run(ml100k_dir, tmp_path, capsys):
    code = cli_main(["evaluate", "--data", str(ml100k_dir), "--run", str(tmp_path / "absent")])
    assert code == 2
    assert "run.json" in capsys.readouterr().err

"""Attention health checks: planted faults on hand-checkable models, and a real SASRec on ML-100K."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from tiny_attention import TinyAttention

from recwidgets.data import leave_last_out, load_ml100k
from recwidgets.diagnose.attention_checks import (
    check_attention,
    check_order_sensitivity,
    check_padding_embedding,
)
from recwidgets.errors import ConfigError
from recwidgets.models import SASRec, SASRecModule

logger = logging.getLogger(__name__)

# Histories of 8 items from a 200-item catalog, so top-5 lists have room to move.
HISTORIES = [list(np.random.default_rng(seed).choice(np.arange(1, 201), size=8, replace=False)) for seed in range(40)]

HEALTHY_SLOPES = (0.3, 0.9)


def by_id(findings, finding_id):
    return [finding for finding in findings if finding.id == finding_id]


def healthy(**options) -> TinyAttention:
    return TinyAttention(n_items=200, max_len=10, slopes=HEALTHY_SLOPES, **options)


# ---------------------------------------------------------------------------------------
# Planted faults on the fixed-weight model


def test_healthy_tiny_model_has_no_finding():
    findings = check_attention(healthy(), users=HISTORIES, k=5)

    assert findings == []


def test_padding_leak_is_error():
    findings = check_attention(healthy(mask_padding=False), users=[[1, 2, 3], [4, 5, 6, 7, 8, 9]], k=5)
    padding = by_id(findings, "attention.padding")

    assert len(padding) == 1
    assert padding[0].severity == "error"
    assert padding[0].evidence["max_padding_mass"] > 0.5
    assert padding[0].view["widget"] == "AttentionHeatmap"


def test_future_leak_is_error():
    findings = check_attention(healthy(causal=False), users=HISTORIES, k=5)
    causal = by_id(findings, "attention.causal")

    assert len(causal) == 1
    assert causal[0].severity == "error"
    assert causal[0].evidence["max_future_mass"] > 0.5
    assert findings[0].severity == "error"


def test_unnormalised_weights_are_error():
    class Doubled(TinyAttention):
        def attention(self, histories):
            return [layer * 2 for layer in super().attention(histories)]

    findings = check_attention(Doubled(n_items=200, max_len=10, slopes=HEALTHY_SLOPES), users=HISTORIES, k=5)
    invalid = by_id(findings, "attention.invalid_weights")

    assert len(invalid) == 1
    assert invalid[0].evidence["max_row_sum_error"] == pytest.approx(1.0, abs=1e-5)


def test_nan_weights_are_error():
    class NotANumber(TinyAttention):
        def attention(self, histories):
            layers = super().attention(histories)
            layers[0][:, :, -1, -1] = float("nan")
            return layers

    findings = check_attention(NotANumber(n_items=200, max_len=10, slopes=HEALTHY_SLOPES), users=HISTORIES, k=5)
    invalid = by_id(findings, "attention.invalid_weights")

    assert len(invalid) == 1
    assert invalid[0].evidence["non_finite_values"] == 2 * len(HISTORIES)


def test_uniform_head_is_warning():
    findings = check_attention(TinyAttention(n_items=200, max_len=10, slopes=(0.0, 0.9)), users=HISTORIES, k=5)
    collapsed = by_id(findings, "attention.collapsed_heads")

    assert [(finding.evidence["head"], finding.severity) for finding in collapsed] == [(0, "warning")]
    assert collapsed[0].evidence["uniform_distance"] == pytest.approx(0.0, abs=1e-6)


def test_single_key_head_is_warning():
    findings = check_attention(TinyAttention(n_items=200, max_len=10, slopes=(30.0, 0.9)), users=HISTORIES, k=5)
    collapsed = by_id(findings, "attention.collapsed_heads")

    assert [(finding.evidence["head"], finding.severity) for finding in collapsed] == [(0, "warning")]
    assert "its own position" in collapsed[0].title
    recency = by_id(findings, "attention.recency_collapse")
    assert [finding.severity for finding in recency] == ["info"]


def test_all_heads_on_last_item_is_recency_warning():
    findings = check_attention(TinyAttention(n_items=200, max_len=10, slopes=(30.0, 20.0), layers=2), users=HISTORIES, k=5)
    recency = by_id(findings, "attention.recency_collapse")

    assert len(recency) == 1
    assert recency[0].severity == "warning"
    assert min(recency[0].evidence["own_mass_last_per_layer"]) > 0.9


def test_identical_heads_are_redundant():
    findings = check_attention(TinyAttention(n_items=200, max_len=10, slopes=(0.5, 0.5)), users=HISTORIES, k=5)
    redundant = by_id(findings, "attention.redundant_heads")

    assert len(redundant) == 1
    assert redundant[0].severity == "warning"
    assert redundant[0].evidence["js_distance"] == pytest.approx(0.0, abs=1e-6)


def test_similar_heads_are_info():
    findings = check_attention(TinyAttention(n_items=200, max_len=10, slopes=(0.5, 0.55)), users=HISTORIES, k=5)
    redundant = by_id(findings, "attention.redundant_heads")

    assert [finding.severity for finding in redundant] == ["info"]
    assert 0.01 <= redundant[0].evidence["js_distance"] < 0.05


def test_bag_of_items_is_order_insensitive():
    bag = TinyAttention(n_items=200, max_len=10, slopes=HEALTHY_SLOPES, score_heads=(0,))
    bag.slopes[0] = 0.0
    findings = check_order_sensitivity(bag, users=HISTORIES, k=5)

    assert len(findings) == 1
    assert findings[0].id == "attention.order_insensitive"
    assert findings[0].severity == "warning"
    assert findings[0].evidence["mean_overlap"] == pytest.approx(1.0)


def test_recency_weighted_model_is_order_sensitive():
    model = TinyAttention(n_items=200, max_len=10, slopes=(1.0, 1.0), score_heads=(1,))

    assert check_order_sensitivity(model, users=HISTORIES, k=5) == []


def test_order_check_skips_short_histories():
    assert check_order_sensitivity(healthy(), users=[[1, 2, 3]], k=5) == []


def test_padding_embedding_row():
    findings = check_padding_embedding(healthy(padding_embedding=0.5))

    assert [finding.id for finding in findings] == ["embedding.padding_row"]
    assert findings[0].severity == "error"
    assert findings[0].evidence["max_abs"] == pytest.approx(0.5)
    assert check_padding_embedding(healthy()) == []


def test_findings_are_json_serialisable():
    findings = check_attention(
        TinyAttention(n_items=200, max_len=10, causal=False, mask_padding=False, padding_embedding=1.0),
        users=HISTORIES,
        k=5,
    )

    assert {"attention.padding", "attention.causal", "embedding.padding_row"} <= {finding.id for finding in findings}
    for finding in findings:
        assert finding.fix
        assert finding.reference
        json.dumps(finding.to_dict())


def test_check_needs_users_or_split():
    with pytest.raises(ConfigError, match="pass split="):
        check_attention(healthy())


def test_check_rejects_model_without_attention():
    with pytest.raises(ConfigError, match="has no attention"):
        check_attention(object(), users=HISTORIES)


# ---------------------------------------------------------------------------------------
# SASRec trained briefly on ML-100K leave-last-out


@pytest.fixture(scope="module")
def ml100k_split(ml100k_dir):
    return leave_last_out(load_ml100k(ml100k_dir))


@pytest.fixture(scope="module")
def trained_sasrec(ml100k_split) -> SASRec:
    torch.manual_seed(0)
    model = SASRec(hidden=32, max_len=50, layers=2, heads=2, epochs=3, batch_size=128, patience=None, seed=0)
    return model.fit(ml100k_split, validate=False, progress=False, device="cpu")


@pytest.mark.slow
def test_trained_sasrec_raises_no_warning(trained_sasrec, ml100k_split):
    findings = check_attention(trained_sasrec, ml100k_split, seed=0)
    for finding in findings:
        logger.info("%s %s %s", finding.severity, finding.id, finding.evidence)

    assert [finding for finding in findings if finding.at_least_warning] == []


@pytest.mark.slow
def test_trained_sasrec_non_causal_copy_is_error(trained_sasrec, ml100k_split):
    config = trained_sasrec.config
    leaky = SASRec(config)
    leaky.module = SASRecModule(
        ml100k_split.log.n_items, max_len=config.max_len, hidden=config.hidden, layers=config.layers,
        heads=config.heads, causal=False,
    )
    leaky.module.load_state_dict(trained_sasrec.module.state_dict())
    leaky.module.eval()
    leaky.n_items = trained_sasrec.n_items
    findings = check_attention(leaky, ml100k_split, seed=0)
    causal = by_id(findings, "attention.causal")

    assert len(causal) == 1
    assert causal[0].severity == "error"
    assert causal[0].evidence["user"] in set(ml100k_split.test.users.tolist())

"""Embedding checks: effective rank and norm-popularity correlation on hand-made tables."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from recwidgets.diagnose.embedding_checks import check_embeddings, effective_rank, spearman


def _model(table: torch.Tensor):
    return SimpleNamespace(item_embeddings=lambda: table)


def test_effective_rank_identity():
    assert effective_rank(torch.eye(8)) == pytest.approx(8.0)


def test_effective_rank_rank_one():
    vector = torch.arange(1.0, 6.0)
    assert effective_rank(torch.outer(vector, torch.ones(4))) == pytest.approx(1.0, abs=1e-6)


def test_effective_rank_two_values():
    # Singular values 3 and 1: p = (0.75, 0.25), exp(H) = exp(-(0.75 ln 0.75 + 0.25 ln 0.25)).
    matrix = torch.diag(torch.tensor([3.0, 1.0]))
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert effective_rank(matrix) == pytest.approx(expected)


def test_spearman_monotone_and_reversed():
    values = np.array([1.0, 5.0, 2.0, 8.0])
    assert spearman(values, values**3) == pytest.approx(1.0)
    assert spearman(values, -values) == pytest.approx(-1.0)


def test_random_table_is_healthy():
    generator = torch.Generator().manual_seed(0)
    table = torch.randn(201, 16, generator=generator)
    popularity = np.concatenate([[0], np.arange(1, 201)])
    assert check_embeddings("m", _model(table), popularity) == []


def test_rank_one_table_collapses():
    generator = torch.Generator().manual_seed(0)
    table = torch.outer(torch.randn(201, generator=generator), torch.randn(16, generator=generator))
    findings = check_embeddings("m", _model(table))
    assert [finding.id for finding in findings] == ["embedding.collapse"]
    assert findings[0].evidence["effective_rank"] == pytest.approx(1.0, abs=0.01)
    assert findings[0].evidence["effective_rank_ratio"] == pytest.approx(1 / 16, abs=0.01)


def test_norm_set_to_popularity():
    generator = torch.Generator().manual_seed(0)
    directions = torch.nn.functional.normalize(torch.randn(201, 16, generator=generator), dim=1)
    popularity = np.concatenate([[0], np.random.default_rng(1).integers(1, 500, 200)])
    table = directions * torch.from_numpy(popularity).float()[:, None]
    findings = check_embeddings("m", _model(table), popularity)
    assert [finding.id for finding in findings] == ["embedding.norm_popularity"]
    assert findings[0].evidence["spearman_norm_log_popularity"] > 0.99


def test_untrained_rows_left_out():
    # Rows of items without training interactions stay random and are not measured.
    generator = torch.Generator().manual_seed(0)
    table = torch.randn(201, 16, generator=generator)
    table[1:101] = torch.outer(torch.randn(100, generator=generator), torch.randn(16, generator=generator))
    popularity = np.concatenate([[0], np.ones(100), np.zeros(100)])
    findings = check_embeddings("m", _model(table), popularity)
    assert findings[0].evidence["n_items"] == 100
    assert findings[0].id == "embedding.collapse"


def test_model_without_table_skipped():
    assert check_embeddings("m", SimpleNamespace()) == []

"""Next-item losses over hidden states and a (tied) item embedding table."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recwidgets.data.log import PAD


def full_softmax_loss(hidden: torch.Tensor, targets: torch.Tensor, item_weight: torch.Tensor) -> torch.Tensor:
    """Return the mean cross-entropy over the whole catalog at every non-padding target.

    ``hidden`` is (B, L, D), ``targets`` is (B, L) with 0 at padding, and ``item_weight``
    is the (n_items + 1, D) output embedding. Only the N non-padding positions are scored,
    so memory is N x (n_items + 1) logits rather than B x L x (n_items + 1). The padding
    column is excluded from the softmax.
    """
    valid = targets != PAD
    selected = hidden[valid]  # (N, D)
    logits = selected @ item_weight.t()  # (N, n_items + 1)
    logits = logits.float()
    logits[:, PAD] = float("-inf")
    return F.cross_entropy(logits, targets[valid])


def sampled_bce_loss(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    item_weight: torch.Tensor,
    n_negatives: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return binary cross-entropy of each target against ``n_negatives`` sampled items.

    This is the loss of the SASRec paper (Kang & McAuley, ICDM 2018): the target's score
    is pushed up and the scores of items drawn uniformly from the catalog are pushed down.
    Shapes follow ``full_softmax_loss``. Negatives are drawn on the CPU with ``generator``,
    so a seeded generator gives the same negatives on every device.

    NOTE: a negative may be an item the user has seen elsewhere in the sequence. Only a draw
    equal to the target itself is shifted to the next item id.
    """
    n_items = item_weight.shape[0] - 1
    valid = targets != PAD
    selected = hidden[valid]  # (N, D)
    positives = targets[valid]  # (N,)

    negatives = torch.randint(1, n_items + 1, (positives.shape[0], n_negatives), generator=generator)
    negatives = negatives.to(positives.device)
    negatives = torch.where(negatives == positives[:, None], negatives % n_items + 1, negatives)

    positive_scores = (selected * item_weight[positives]).sum(-1).float()  # (N,)
    negative_scores = torch.einsum("nd,nkd->nk", selected, item_weight[negatives]).float()  # (N, K)
    positive_loss = F.binary_cross_entropy_with_logits(positive_scores, torch.ones_like(positive_scores))
    negative_loss = F.binary_cross_entropy_with_logits(
        negative_scores, torch.zeros_like(negative_scores), reduction="none"
    ).sum(-1)
    return positive_loss + negative_loss.mean()

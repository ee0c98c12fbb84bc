"""Health checks of a self-attention recommender's attention weights and embeddings.

Each check returns a list of :class:`~recwidgets.diagnose.finding.Finding` (empty when
nothing is wrong) with a stable id:

========================== ======== ===================================================
id                         severity what it finds
========================== ======== ===================================================
attention.padding          error    weight on padding keys (must be exactly 0)
attention.causal           error    weight on keys after the query (the future)
attention.invalid_weights  error    NaN or infinite weights, or rows not summing to 1
attention.collapsed_heads  warning  a head that looks at one key only, or whose weights
                                    do not depend on the keys at all (exactly uniform)
attention.redundant_heads  warning  two heads of a layer with near-identical weights
                           / info
attention.recency_collapse warning  every layer puts almost all weight on the query's
                           / info   own position, so the history is ignored
attention.order_insensitive warning shuffling the history (last item kept) leaves the
                                    top-k recommendations almost unchanged
embedding.padding_row      error    a non-zero padding row in the item embedding table
========================== ======== ===================================================

Thresholds are module constants. Only a real fault raises warning or error; observations
that may be fine in a working model (a near-uniform head, a head that mostly attends to
its own position) are info. :func:`check_attention` runs every check.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from recwidgets.data.log import PAD
from recwidgets.data.split import Split
from recwidgets.diagnose.finding import Finding
from recwidgets.errors import ConfigError
from recwidgets.explain.attention import (
    DEFAULT_BATCH_SIZE,
    AttentionProfile,
    _require_attention,
    _window,
    attention_profile,
    resolve_histories,
)
from recwidgets.models.base import pad_histories

logger = logging.getLogger(__name__)

SASREC_REFERENCE = 'W.-C. Kang and J. McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018.'
HEADS_REFERENCE = 'P. Michel, O. Levy and G. Neubig, "Are Sixteen Heads Really Better than One?", NeurIPS 2019.'
BERT_ATTENTION_REFERENCE = (
    'K. Clark, U. Khandelwal, O. Levy and C. D. Manning, "What Does BERT Look At? An Analysis of '
    "BERT's Attention\", BlackboxNLP 2019."
)
RECLIST_REFERENCE = (
    'P. J. Chia, J. Tagliabue, F. Bianchi, C. He and B. Ko, "Beyond NDCG: behavioral testing of '
    'recommender systems with RecList", WWW 2022 Companion.'
)
EMBEDDING_REFERENCE = "torch.nn.Embedding(padding_idx=...): the padding row gets no gradient and stays as initialised."

#: Users sampled by check_attention when none are given: enough for stable means (each user
#: contributes up to max_len queries) while one CPU pass stays around a second at L=50.
DEFAULT_CHECK_USERS = 256

#: A masked key gets exactly 0: a -inf fill or a multiply by the mask gives exact zeros in
#: float32, so any positive weight on padding or on the future means the mask is missing.
PADDING_TOLERANCE = 0.0
FUTURE_TOLERANCE = 0.0

#: Largest accepted |row sum - 1| of a valid query row. float32 softmax rows are within about
#: 1e-6 of 1; 1e-2 still accepts weights returned in bfloat16 (8 significant bits).
ROW_SUM_TOLERANCE = 1e-2

#: Queries with fewer context keys are left out of the head statistics, because with 2 to 4
#: keys even a random head looks peaked or uniform.
MIN_CONTEXT_KEYS = 5

#: A head below this mean normalised entropy puts nearly all weight on one key per query.
#: One key at 99% of the weight among 5 keys already gives about 0.05.
COLLAPSED_ENTROPY = 0.05

#: A head closer than this (mean total variation distance) to uniform weights over the
#: context computes the same mean for every query: its query or key projection is dead.
#: SASRec (hidden 32, 2 layers, 2 heads) trained 1 to 20 epochs on ML-100K gave 0.057 or more.
UNIFORM_DISTANCE = 0.005

#: Heads whose mean normalised entropy exceeds this are reported as near-uniform. Info only:
#: the same SASRec gave 0.97 to 0.996 after 1 to 3 epochs and 0.76 to 0.92 after 20, and
#: works in both cases.
NEAR_UNIFORM_ENTROPY = 0.98

#: Two heads of one layer closer than this mean Jensen-Shannon distance (base 2, in [0, 1])
#: are copies of each other, which points at shared or identically initialised weights.
#: The same SASRec trainings gave 0.10 or more between heads.
REDUNDANT_DISTANCE = 0.01
#: Closer than this the pair is reported as similar (info).
SIMILAR_DISTANCE = 0.05

#: A head (or, for a warning, every layer on average) that puts more than this share of the
#: last query's weight on the query's own position ignores the rest of the history.
RECENCY_OWN_MASS = 0.9

#: Top-k overlap between original and shuffled histories (last item kept) at or above which
#: the model is called order-insensitive. A pure bag-of-items model scores exactly 1. Order
#: carries little signal on ML-100K, and the same SASRec scored 0.93 to 0.98 (k=10, 256
#: users), so a threshold of 0.95 would flag a working model.
ORDER_OVERLAP = 0.99
#: Histories shorter than this have too few orderings to test (4 items before the last).
MIN_SHUFFLE_LENGTH = 5


def _head_view(profile: AttentionProfile, layer: int, head: int, user: int | None = None) -> dict:
    view = {"widget": "AttentionHeatmap", "layer": int(layer), "head": int(head)}
    if user is None and len(profile.users):
        user = int(profile.users[0])
    if user is not None and user >= 0:
        view["user"] = int(user)
    return view


def check_padding(profile: AttentionProfile) -> list[Finding]:
    """Flag any attention weight on padding keys from a valid query (error)."""
    faults = profile.faults
    bad = faults[faults["padding_mass"] > PADDING_TOLERANCE]
    if bad.empty:
        return []
    worst = bad.loc[bad["padding_mass"].idxmax()]
    return [
        Finding(
            id="attention.padding",
            severity="error",
            title=f"attention puts weight on padding positions in {len(bad)} head(s)",
            evidence={
                "max_padding_mass": float(worst["padding_mass"]),
                "layer": int(worst["layer"]),
                "head": int(worst["head"]),
                "user": int(worst["padding_user"]),
                "heads_affected": [[int(row.layer), int(row.head)] for row in bad.itertuples()],
            },
            fix=(
                "mask padding keys before the softmax (key_padding_mask, or fill the scores of padding "
                "keys with -inf), so padding contributes exactly nothing to a real item's representation."
            ),
            reference=SASREC_REFERENCE,
            view=_head_view(profile, worst["layer"], worst["head"], int(worst["padding_user"])),
        )
    ]


def check_causal(profile: AttentionProfile) -> list[Finding]:
    """Flag any attention weight on a key after the query (error): training would see the future."""
    faults = profile.faults
    bad = faults[faults["future_mass"] > FUTURE_TOLERANCE]
    if bad.empty:
        return []
    worst = bad.loc[bad["future_mass"].idxmax()]
    return [
        Finding(
            id="attention.causal",
            severity="error",
            title=f"attention looks at later items (the future) in {len(bad)} head(s)",
            evidence={
                "max_future_mass": float(worst["future_mass"]),
                "layer": int(worst["layer"]),
                "head": int(worst["head"]),
                "user": int(worst["future_user"]),
                "heads_affected": [[int(row.layer), int(row.head)] for row in bad.itertuples()],
            },
            fix=(
                "apply a causal (lower-triangular) mask so position i attends only to positions <= i; "
                "without it every training target is visible in the input and offline metrics are inflated."
            ),
            reference=SASREC_REFERENCE,
            view=_head_view(profile, worst["layer"], worst["head"], int(worst["future_user"])),
        )
    ]


def check_invalid_weights(profile: AttentionProfile) -> list[Finding]:
    """Flag NaN or infinite weights, and valid query rows that do not sum to 1 (error)."""
    faults = profile.faults
    bad = faults[(faults["non_finite"] > 0) | (faults["row_sum_error"] > ROW_SUM_TOLERANCE)]
    if bad.empty:
        return []
    worst = bad.loc[bad["row_sum_error"].idxmax()]
    return [
        Finding(
            id="attention.invalid_weights",
            severity="error",
            title=f"attention weights are not a probability distribution in {len(bad)} head(s)",
            evidence={
                "non_finite_values": int(bad["non_finite"].sum()),
                "max_row_sum_error": float(bad["row_sum_error"].max()),
                "tolerance": ROW_SUM_TOLERANCE,
                "heads_affected": [[int(row.layer), int(row.head)] for row in bad.itertuples()],
            },
            fix=(
                "return softmax weights from attention(); NaN usually comes from a row whose keys are all "
                "masked (a padding query): give such rows a finite fill or zero them after the softmax."
            ),
            reference=SASREC_REFERENCE,
            view=_head_view(profile, worst["layer"], worst["head"]),
        )
    ]


def check_collapsed_heads(profile: AttentionProfile) -> list[Finding]:
    """Flag heads that attend to one key only or exactly uniformly (warning), near-uniform ones (info)."""
    findings = []
    heads = profile.heads
    if heads.empty or int(heads["n_queries"].max()) == 0:
        logger.info("collapsed-head check skipped: no query has %d context keys", profile.min_keys)
        return []
    for row in heads.itertuples():
        evidence = {
            "layer": int(row.layer),
            "head": int(row.head),
            "normalized_entropy": float(row.normalized_entropy),
            "uniform_distance": float(row.uniform_distance),
            "own_mass": float(row.own_mass),
            "first_mass": float(row.first_mass),
            "n_queries": int(row.n_queries),
        }
        if row.normalized_entropy < COLLAPSED_ENTROPY:
            target = "its own position" if row.own_mass > 0.5 else (
                "the first position" if row.first_mass > 0.5 else "a single key"
            )
            findings.append(
                Finding(
                    id="attention.collapsed_heads",
                    severity="warning",
                    title=f"layer {row.layer} head {row.head} attends almost only to {target}",
                    evidence={**evidence, "threshold": COLLAPSED_ENTROPY},
                    fix=(
                        "the head mixes no information across the history; check its attention mask and "
                        "temperature, lower the learning rate, or train with fewer heads."
                    ),
                    reference=BERT_ATTENTION_REFERENCE,
                    view=_head_view(profile, row.layer, row.head),
                )
            )
        elif row.uniform_distance < UNIFORM_DISTANCE:
            findings.append(
                Finding(
                    id="attention.collapsed_heads",
                    severity="warning",
                    title=f"layer {row.layer} head {row.head} gives every key the same weight",
                    evidence={**evidence, "threshold": UNIFORM_DISTANCE},
                    fix=(
                        "the head's weights do not depend on the keys, so its query or key projection "
                        "is dead (zero, frozen or never trained); check the initialisation and that "
                        "the projection receives gradients."
                    ),
                    reference=BERT_ATTENTION_REFERENCE,
                    view=_head_view(profile, row.layer, row.head),
                )
            )
        elif row.normalized_entropy > NEAR_UNIFORM_ENTROPY:
            findings.append(
                Finding(
                    id="attention.collapsed_heads",
                    severity="info",
                    title=f"layer {row.layer} head {row.head} spreads its weight almost uniformly",
                    evidence={**evidence, "threshold": NEAR_UNIFORM_ENTROPY},
                    fix="common after short training on small data; train longer if the head should specialise.",
                    reference=BERT_ATTENTION_REFERENCE,
                    view=_head_view(profile, row.layer, row.head),
                )
            )
    return findings


def check_redundant_heads(profile: AttentionProfile) -> list[Finding]:
    """Flag pairs of heads in one layer with near-identical weights (warning) or similar ones (info)."""
    findings = []
    for row in profile.head_pairs.itertuples():
        if row.js_distance >= SIMILAR_DISTANCE:
            continue
        copies = row.js_distance < REDUNDANT_DISTANCE
        findings.append(
            Finding(
                id="attention.redundant_heads",
                severity="warning" if copies else "info",
                title=(
                    f"layer {row.layer} heads {row.head_a} and {row.head_b} are "
                    + ("copies of each other" if copies else "very similar")
                ),
                evidence={
                    "layer": int(row.layer),
                    "heads": [int(row.head_a), int(row.head_b)],
                    "js_distance": float(row.js_distance),
                    "threshold": REDUNDANT_DISTANCE if copies else SIMILAR_DISTANCE,
                },
                fix=(
                    "check that the heads do not share weights and are initialised independently; "
                    "otherwise train with fewer heads, since one of them adds no capacity."
                    if copies
                    else "the heads overlap; fewer heads may do as well."
                ),
                reference=HEADS_REFERENCE,
                view=_head_view(profile, row.layer, row.head_a),
            )
        )
    return findings


def check_recency_collapse(profile: AttentionProfile) -> list[Finding]:
    """Flag attention that stays on the query's own position.

    The result is a warning when, in every layer, the heads' mean weight of the last query
    on its own position exceeds ``RECENCY_OWN_MASS``, because the scores then depend on the
    last item only. Single heads above it are info.
    """
    heads = profile.heads
    if heads["own_mass_last"].isna().all():
        return []
    per_layer = heads.groupby("layer")["own_mass_last"].mean()
    evidence = {
        "own_mass_last_per_layer": [round(float(value), 6) for value in per_layer.to_numpy()],
        "threshold": RECENCY_OWN_MASS,
    }
    if bool((per_layer > RECENCY_OWN_MASS).all()):
        worst_layer = int(per_layer.idxmax())
        return [
            Finding(
                id="attention.recency_collapse",
                severity="warning",
                title="every layer attends almost only to the last item, so the history is ignored",
                evidence=evidence,
                fix=(
                    "the model behaves like an item-to-item (first-order Markov) model; check the position "
                    "embeddings and the attention mask, and compare against a last-item baseline."
                ),
                reference=SASREC_REFERENCE,
                view=_head_view(profile, worst_layer, 0),
            )
        ]
    findings = []
    for row in heads[heads["own_mass_last"] > RECENCY_OWN_MASS].itertuples():
        findings.append(
            Finding(
                id="attention.recency_collapse",
                severity="info",
                title=f"layer {row.layer} head {row.head} attends almost only to the last item",
                evidence={**evidence, "layer": int(row.layer), "head": int(row.head), "own_mass_last": float(row.own_mass_last)},
                fix="other heads or layers still read the history; no action needed unless every head does this.",
                reference=SASREC_REFERENCE,
                view=_head_view(profile, row.layer, row.head),
            )
        )
    return findings


def attention_findings(profile: AttentionProfile) -> list[Finding]:
    """Run every check that reads only attention weights on an already computed profile."""
    findings = []
    for check in (
        check_padding,
        check_causal,
        check_invalid_weights,
        check_collapsed_heads,
        check_redundant_heads,
        check_recency_collapse,
    ):
        findings.extend(check(profile))
    return findings


def _top_k(model, histories: list[np.ndarray], k: int, batch_size: int) -> np.ndarray:
    """Return (U, k) top item ids per history, padding and already seen items excluded."""
    rows = []
    for start in range(0, len(histories), batch_size):
        batch = histories[start : start + batch_size]
        padded = pad_histories(batch, model.max_len, model.device)
        with torch.no_grad():
            scores = model.score(padded).detach().float().cpu()
        scores[:, PAD] = -torch.inf
        for row, history in enumerate(batch):
            scores[row, torch.tensor(np.asarray(history), dtype=torch.long)] = -torch.inf
        rows.append(torch.topk(scores, k, dim=1).indices.numpy())
    return np.concatenate(rows)


def check_order_sensitivity(
    model,
    split: Split | None = None,
    users=None,
    *,
    k: int = 10,
    seed: int = 0,
    part: str = "test",
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[Finding]:
    """Shuffle each history except its last item and compare top-k lists (a behavioural test).

    Only the part of the history the model reads (its last ``max_len`` items) is shuffled.
    The same items are excluded from both rankings, so any change comes from the order.
    A mean top-k overlap of at least ``ORDER_OVERLAP`` is a warning: the model treats the
    history as a bag of items plus the last one. Needs only ``score``.
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"k={k!r} is invalid; pass a positive int such as 10.")
    if users is None:
        users = _sample_users(split, part, None, seed)
    ids, histories = resolve_histories(users, split=split, part=part)
    _, kept, _ = _window(model, histories)
    usable = [index for index, history in enumerate(kept) if len(history) >= MIN_SHUFFLE_LENGTH]
    if not usable:
        logger.info("order-sensitivity check skipped: no history has %d or more items", MIN_SHUFFLE_LENGTH)
        return []
    if k > model.n_items:
        raise ConfigError(f"k={k} is larger than the catalog of {model.n_items} items; pass a smaller k.")

    rng = np.random.default_rng(seed)
    originals, shuffled = [], []
    for index in usable:
        history = kept[index]
        head = history[:-1]
        order = rng.permutation(len(head))
        # An identity permutation tests nothing, so draw again (at most a few times for 4 items).
        while np.array_equal(head[order], head) and len(np.unique(head)) > 1:
            order = rng.permutation(len(head))
        originals.append(history)
        shuffled.append(np.concatenate([head[order], history[-1:]]))

    before = _top_k(model, originals, k, batch_size)
    after = _top_k(model, shuffled, k, batch_size)
    overlap = np.array([len(np.intersect1d(a, b)) / k for a, b in zip(before, after)])
    mean_overlap = float(overlap.mean())
    logger.info("order sensitivity: mean top-%d overlap %.3f over %d users", k, mean_overlap, len(usable))
    if mean_overlap < ORDER_OVERLAP:
        return []
    return [
        Finding(
            id="attention.order_insensitive",
            severity="warning",
            title=f"shuffling the history barely changes the top-{k} (mean overlap {mean_overlap:.2f})",
            evidence={
                "mean_overlap": mean_overlap,
                "identical_share": float((overlap == 1.0).mean()),
                "k": int(k),
                "n_users": len(usable),
                "threshold": ORDER_OVERLAP,
            },
            fix=(
                "the model ignores the order of the history; check that position embeddings are added and "
                "that the causal mask is applied, and compare against a popularity or item-kNN baseline."
            ),
            reference=RECLIST_REFERENCE,
            view={"widget": "AttentionHeatmap", "user": int(ids[usable[0]])},
        )
    ]


def check_padding_embedding(model) -> list[Finding]:
    """Flag a non-zero padding row (id 0) in ``model.item_embeddings()`` (error)."""
    if not callable(getattr(model, "item_embeddings", None)):
        logger.info("padding-row check skipped: %s has no item_embeddings()", type(model).__name__)
        return []
    table = model.item_embeddings().detach().float().cpu()
    row = table[PAD]
    largest = float(row.abs().max()) if row.numel() else 0.0
    if largest == 0.0:
        return []
    return [
        Finding(
            id="embedding.padding_row",
            severity="error",
            title="the padding item embedding (id 0) is not zero",
            evidence={"max_abs": largest, "norm": float(row.norm()), "dim": int(row.numel())},
            fix=(
                "build the item embedding with padding_idx=0 and zero that row after any custom "
                "initialisation, so padding positions add nothing to the input."
            ),
            reference=EMBEDDING_REFERENCE,
            view={"widget": "EmbeddingProjector"},
        )
    ]


def _sample_users(split: Split | None, part: str, n_users: int | None, seed: int) -> np.ndarray:
    if split is None:
        raise ConfigError("pass split= (to sample users from) or users= (ids or histories).")
    evalset = split.part(part)
    lengths = np.array([len(history) for history in evalset.histories])
    candidates = evalset.users[lengths > 0]
    if len(candidates) == 0:
        raise ConfigError(f"no user in the {part} set of this split has a history; use another part or split.")
    count = min(n_users or DEFAULT_CHECK_USERS, len(candidates))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(candidates, size=count, replace=False))


def check_attention(
    model,
    split: Split | None = None,
    users=None,
    *,
    seed: int = 0,
    part: str = "test",
    n_users: int = DEFAULT_CHECK_USERS,
    k: int = 10,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[Finding]:
    """Run every attention and embedding health check on ``model``.

    ``users`` are internal user ids (histories from the ``part`` set of ``split``) or
    histories; by default ``n_users`` users of that set are drawn with ``seed``. Returns
    the findings of all checks, errors first.
    """
    _require_attention(model)
    if users is None:
        users = _sample_users(split, part, n_users, seed)
    profile = attention_profile(
        model, users, split=split, part=part, min_keys=MIN_CONTEXT_KEYS, batch_size=batch_size
    )
    findings = attention_findings(profile)
    findings.extend(check_order_sensitivity(model, split, users, k=k, seed=seed, part=part, batch_size=batch_size))
    findings.extend(check_padding_embedding(model))
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(findings, key=lambda finding: order[finding.severity])

"""Source of notebooks/05_cold_start.ipynb; build with python notebooks/build.py."""

# %% [markdown]
# # Cold start: how fast does the model become useful for a new user?
#
# A sequential model needs a history. For a user who arrives with none, this notebook measures how
# the quality of the recommendations grows as the user reveals 1, 3, 10 interactions, and compares
# five strategies:
#
# * `none`: the trained SASRec as it is, reading the revealed prefix;
# * `finetune`: a small per-user adapter (a feature-wise scale and shift of the final hidden
#   state) trained for a few gradient steps on the revealed prefix, starting from the identity;
# * `meta`: the same adapter, starting from values meta-learned across the training users
#   (first-order MAML), so that a few steps on a short prefix go further;
# * `popularity`: the most popular items, whatever the prefix;
# * `genre`: the most popular items of the genres in the prefix.
#
# A held-out share of users never reaches training, validation or early stopping; their first `n`
# interactions are revealed and interaction `n + 1` is the target.

# %%
import os

EPOCHS = int(os.environ.get("RECWIDGETS_EPOCHS", 1))
SEED = 0
COLD_SHARE = 0.1
PREFIX_LENGTHS = (1, 3, 10)
META_STEPS = 30  # outer meta-training updates; 200 is the library default for a full run
N_BOOTSTRAP = 200

# %%
import pandas as pd

import recwidgets as rw
from recwidgets.coldstart import AdaptationConfig, coldstart_curve, coldstart_finding, coldstart_items_finding, coldstart_split
from recwidgets.widgets.cold_start_curve import ColdStartCurve

# %% [markdown]
# ## Hold out cold users and train on the rest
#
# `coldstart_split` draws the cold users with a seed and splits the remaining (warm) users
# leave-last-out. The model is trained on the warm users only.

# %%
log = rw.datasets.load("ml-100k")
cold = coldstart_split(log, user_share=COLD_SHARE, seed=SEED)
print(f"{len(cold.cold_users)} cold users, {cold.split.card.n_test_users} warm test users")
model = rw.SASRec(epochs=EPOCHS, seed=SEED).fit(cold.split, progress=False)

# %% [markdown]
# ## The cold-start curve
#
# Every (strategy, `n`) cell is an ordinary full-ranking evaluation of the cold users, with the
# revealed items excluded and bootstrap intervals over users. The same users and resamples are
# used for every strategy at one `n`, so the strategies are compared on equal terms. Meta-training
# runs first. For each meta-step, its record has the query loss of the sampled training users from
# the start values (`query_loss_start`) and after the adaptation steps (`query_loss_adapted`).
# The gap between the two is what adaptation gains. Values that fall over the meta-steps show
# that the learned start improves.

# %%
adaptation = AdaptationConfig(meta_steps=META_STEPS, seed=SEED)
result = coldstart_curve(
    model, cold, ns=PREFIX_LENGTHS, adaptation=adaptation, n_bootstrap=N_BOOTSTRAP, seed=SEED
)
losses = result.meta.history[["query_loss_start", "query_loss_adapted"]]
pd.DataFrame({"first 10 meta-steps": losses.head(10).mean(), "last 10 meta-steps": losses.tail(10).mean()}).round(3)

# %% [markdown]
# The widget draws one line per strategy with its confidence band against `n`. The metric menu
# switches between HR, NDCG and MRR at each cutoff, and the segment menu splits the cold users by
# activity, gender or age. A click on a point lists the users evaluated there, worst first.
#
# **What to look for:** where the `none` line lies below `popularity`, serving the raw model to a
# new user is worse than serving the charts. The `n` at which the lines cross is how many
# interactions the model needs. A strategy that moves the crossing to the left shortens the cold
# phase.

# %%
curve = ColdStartCurve(result, metric="NDCG@10")
curve

# %%
ndcg = result.curve[result.curve["metric"] == "NDCG@10"]
ndcg.pivot_table(index="n", columns="strategy", values="value").round(4)

# %% [markdown]
# ## New items
#
# The same rankings show how items with few training interactions fare. Items are grouped by
# their number of training interactions (0, 1-4, 5-19, 20+). `exposure` is the group's share of
# the top-10 slots, and `hit_rate` the HR@10 of the users whose target is in the group (empty
# without such users). A model that never lists rare items cannot hit them either, however relevant they are.

# %%
items = result.items[result.items["n"] == PREFIX_LENGTHS[0]]
items.pivot_table(index="bucket", columns="strategy", values=["exposure", "hit_rate"]).reindex(list(result.item_buckets)).round(3)

# %% [markdown]
# ## As diagnosis findings
#
# `coldstart_finding` reports `coldstart.users` (a warning) when, at some `n` up to 5, the upper
# confidence bound of the plain model lies below the most-popular value. `coldstart_items_finding`
# reports `coldstart.items` when items with at most 4 training interactions are never listed
# (warning) or listed but never hit (info), given at least 5 such targets. An empty table means
# neither check fired.

# %%
findings = [coldstart_finding(result), coldstart_items_finding(result)]
pd.DataFrame(
    [{"id": item.id, "severity": item.severity, "title": item.title} for item in findings if item is not None],
    columns=["id", "severity", "title"],
)

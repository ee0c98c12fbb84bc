"""Source of notebooks/02_attention.ipynb; build with python notebooks/build.py."""

# %% [markdown]
# # Attention: what the SASRec layers look at
#
# SASRec predicts the next item from causal self-attention over the user's history. This notebook
# reads those attention weights three ways:
#
# 1. one user at a time in an `AttentionHeatmap` (query positions as rows, key positions as
#    columns, one layer and one head at a time),
# 2. aggregated over many users: attention mass by distance from the query, by item popularity,
#    head entropy and head similarity,
# 3. as automatic health checks, first on the trained model and then on a model that was built
#    to attend to the future, so you can see what a real fault looks like.
#
# Attention weights show where a model routes information, not why it recommends an item;
# notebook 03 measures that with Shapley values.

# %%
import os

EPOCHS = int(os.environ.get("RECWIDGETS_EPOCHS", 1))
SEED = 0
N_PROFILE_USERS = 300

# %%
import numpy as np
from IPython.display import display

import recwidgets as rw
from recwidgets.diagnose import Diagnosis
from recwidgets.diagnose.attention_checks import check_attention
from recwidgets.explain import compare_attention, head_entropy, head_similarity, popularity_profile, recency_profile
from recwidgets.widgets import AttentionHeatmap

# %%
log = rw.datasets.load("ml-100k")
split = rw.leave_last_out(log)
model = rw.SASRec(epochs=EPOCHS, seed=SEED).fit(split, progress=False)
print(f"trained {len(model.history)} epoch(s); best epoch {model.best_epoch} ({model.stop_reason})")

# %% [markdown]
# ## One user's attention
#
# The picker offers five test users: the two with the shortest, one with a median and the two
# with the longest histories. Each row is a query position (the model's state after reading that
# item) and each column a key position; darker cells carry more weight. The last row is the one
# that produces the recommendations, listed below the heatmap next to the items it attends to.
# The *Overlay* menu adds a strip with each item's training popularity or its age.
#
# **What to look for:** in a causal model the upper triangle (keys after the query) is empty. A
# head whose rows are all the same colour is close to uniform. A head with a single dark cell per
# row follows one item, often the query's own position or the oldest item.
#
# `precompute()` stores the full weights of the offered users in the widget state, so the saved
# notebook and its HTML export switch user, layer and head without a kernel.

# %%
lengths = np.array([len(history) for history in split.test.histories])
order = np.argsort(lengths, kind="stable")
picked = [int(split.test.users[row]) for row in (*order[:2], order[len(order) // 2], *order[-2:])]
heatmap = AttentionHeatmap(model, split, users=picked, user=picked[-1], overlay="popularity")
heatmap.precompute()
heatmap

# %% [markdown]
# ## Attention over many users
#
# The aggregates run batch by batch over a sample of test users.
#
# * **Recency**: the mass each head puts at distance 0 (the query's own item), 1 (the item
#   before it), and so on, for the last query, the one that scores. A sequential signal shows up
#   as mass concentrated on the last few items.
# * **Popularity**: mass per popularity bucket of the key item (bucket 0 contains the least
#   popular items) next to `uniform`, the mass that uniform attention over the same keys would give. A
#   head far above the uniform mass on the most popular bucket mostly routes popularity.
# * **Entropy**: 1 is uniform attention over the context, 0 is one key per query. Heads of an
#   under-trained model sit close to 1.
# * **Head similarity**: Jensen-Shannon distance between the heads of a layer (0 = identical
#   heads, which would make one of them redundant).

# %%
rng = np.random.default_rng(SEED)
profile_users = rng.choice(split.test.users, size=min(N_PROFILE_USERS, len(split.test.users)), replace=False)

recency = recency_profile(model, profile_users, split=split, query="last")
recency[recency["distance"] < 5].pivot_table(index="distance", columns=["layer", "head"], values="mass").round(3)

# %%
popularity = popularity_profile(model, profile_users, split=split)
by_bucket = popularity.pivot_table(index=["bucket", "min_count", "max_count"], columns=["layer", "head"], values="mass")
by_bucket["uniform"] = popularity.groupby("bucket")["uniform_mass"].first().to_numpy()
by_bucket.round(3)

# %%
display(head_entropy(model, profile_users, split=split).round(3))
head_similarity(model, profile_users, split=split).round(3)

# %% [markdown]
# ## Health checks
#
# `check_attention` runs the attention detectors of the diagnosis on a sample of test users.
# Weight on padding or on future keys is an error. The other checks look for invalid rows,
# collapsed or redundant heads, attention that ignores the history, and recommendations that do
# not change when the history is shuffled. An under-trained model usually gets only `info` findings (near-uniform heads).

# %%
findings = Diagnosis(check_attention(model, split, seed=SEED))
findings.frame()[["severity", "id", "title"]]

# %% [markdown]
# ## What a real fault looks like
#
# `causal=False` removes the causal mask, so during training every position can read the items
# after it, including the one it must predict. Its training loss then rewards copying from the
# input, and at serving time that future is not there. The same checks report it as
# `attention.causal`, an error, with the user and head where the most weight lands on the future.

# %%
leaky = rw.SASRec(epochs=1, seed=SEED, causal=False).fit(split, progress=False, validate=False)
Diagnosis(check_attention(leaky, split, seed=SEED)).frame()[["severity", "id", "title"]]

# %% [markdown]
# `compare_attention` puts the two models side by side per head: `js_distance` is the mean
# Jensen-Shannon distance between their rows for the same query, and each `*_diff` column is
# the leaky model minus the causal one. The leaky model's normalised entropy can exceed 1: the
# normalisation assumes a causal context (the keys up to the query), and the excess is weight
# on later keys.

# %%
comparison = compare_attention(model, leaky, profile_users[:100], split=split, labels=("causal", "leaky"))
columns = ["layer", "head", "js_distance", "normalized_entropy_causal", "normalized_entropy_leaky", "own_mass_causal", "own_mass_leaky"]
comparison[columns].round(3)

# %% [markdown]
# ## Conclusion
#
# Read the heatmap for single cases, the aggregates for what a head does in general, and the
# checks for faults that make numbers meaningless. A model that passes the checks but puts
# nearly uniform weight everywhere is not broken: the heads of a briefly trained SASRec are close
# to uniform. Train it longer (`RECWIDGETS_EPOCHS`) and compare the entropy and recency tables of
# the two runs.

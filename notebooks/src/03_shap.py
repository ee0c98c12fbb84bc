"""Source of notebooks/03_shap.ipynb; build with python notebooks/build.py."""

# %% [markdown]
# # Why this recommendation? Shapley values over the history
#
# Attention weights show where a model routes information; they do not say how much each history
# item changes the score of a recommended item. Shapley values do: each item of the history is a
# *player*. The *value* of a set of present items is the model's score for the target item when
# only those items are in the history. An item's Shapley value is its average marginal
# contribution over all orders in which items could be added. The values add up exactly to the
# difference between the score with the full history and the score with an empty one.
#
# This notebook explains single recommendations, groups the history by genre, explores users in a
# `ShapExplorer`, and finally checks how *faithful* Shapley values, attention weights and
# gradients are by deleting and inserting history items in their order of importance.

# %%
import os

EPOCHS = int(os.environ.get("RECWIDGETS_EPOCHS", 1))
SEED = 0
N_FAITHFULNESS_USERS = 8

# %%
import pandas as pd

import recwidgets as rw
from recwidgets.explain.faithfulness import faithfulness_table
from recwidgets.explain.shap_values import ShapExplainer, genre_groups, shap_frame
from recwidgets.widgets.shap_explorer import ShapExplorer

# %%
log = rw.datasets.load("ml-100k")
split = rw.leave_last_out(log)
model = rw.SASRec(epochs=EPOCHS, seed=SEED).fit(split, progress=False)
titles = log.item_titles()

# %% [markdown]
# ## One recommendation
#
# We explain the top-1 recommendation of one test user. The history has more items than the
# model reads (`max_len`), so the players are the most recent 50 items. With that many players
# the values are estimated by Kernel SHAP (a least-squares fit over random coalitions, each
# paired with its complement) until every value is within `tolerance` at 95% confidence.
# `error_std` is each value's standard error.

# %%
user = int(split.test.users[0])
history = split.test.histories[0]
explainer = ShapExplainer(model, titles=titles, tolerance=0.05, seed=SEED, progress=False)
explanation = explainer.explain(history, user=user)
print(explanation.cost)
print(f"explained output {explanation.meta.label} = {explanation.meta.explained_output:.4f}")
print(f"base value + sum of values = {float(explanation.base_values) + explanation.values.sum():.4f}")

# %% [markdown]
# The last two lines show the efficiency property: the base value (every item hidden) plus all
# Shapley values gives the explained score. Below, the history items with the largest absolute
# contributions; `position` -1 is the most recent item.

# %%
frame = shap_frame([explanation])
frame.reindex(frame["attribution"].abs().sort_values(ascending=False).index).head(10)[
    ["position", "title", "attribution", "standard_error"]
].round(4)

# %% [markdown]
# **What to look for:** a model that really reads the sequence spreads the contributions over
# several recent items. If nearly all of the attribution sits on position -1, the recommendation
# is mostly a function of the last item, as in a first-order Markov model.

# %% [markdown]
# ## Genres as players
#
# Players can be groups of positions. `genre_groups` makes one player per genre; an item with
# several genres is hidden as soon as one of its genres is absent. With 10 to 20 genres, exact
# enumeration would take 2^P forward passes, so a fixed number of permutation pairs keeps this
# cheap.

# %%
genres = genre_groups(history, log, max_len=model.max_len)
grouped = ShapExplainer(model, method="permutation", n_pairs=16, seed=SEED, progress=False).explain(
    history, explanation.meta.target, groups=genres, user=user
)
pd.DataFrame(
    {"genre": grouped.feature_names, "items": grouped.data, "attribution": grouped.values, "standard_error": grouped.error_std}
).sort_values("attribution", ascending=False).round(4)

# %% [markdown]
# ## Explore users in the widget
#
# The explorer lists the top-k recommendations of the chosen user. Picking one explains it as a
# waterfall from the base value to the score, or as bars in history order. Choosing a second item
# as *versus* explains the contrast between the two scores: why the model ranks one above the
# other.
#
# `precompute` stores the explanations of the top 2 items of the offered users in the widget
# state, so the saved notebook and its HTML export switch users and targets without a kernel.
# `compute_summary` aggregates the top-1 explanations of the offered users by genre, by position
# from the end and by popularity bucket.

# %%
explorer = ShapExplorer(model, split, users=[int(candidate) for candidate in split.test.users[:3]])
explorer.precompute(n_targets=2)
explorer.compute_summary()
explorer

# %%
explorer.summary_data().round(4).head(12)

# %% [markdown]
# ## How faithful are the explanations?
#
# An importance order is faithful when removing the items it ranks first makes the score drop
# fastest (*deletion*: a low area under the curve) and adding them back first makes it rise
# fastest (*insertion*: a high area). The table compares four orders on the same users and
# targets (each user's top-1, log-probability output). The orders come from Shapley values, the
# last layer's attention of the last query, gradient x input on the item embeddings, and a
# random permutation, the baseline every method must beat. `*_ci` is the half-width of a 95% normal interval over users.

# %%
faithfulness = faithfulness_table(model, split, users=N_FAITHFULNESS_USERS, seed=SEED, progress=False)
faithfulness.round(3)

# %% [markdown]
# **What to conclude:** trust a method's ranking of items only where it beats `random` on both
# curves by more than the intervals. Attention weights are not built to measure contributions to
# the output, so nothing guarantees that they beat random. With only a few users the intervals
# are wide: raise `N_FAITHFULNESS_USERS` for narrower ones.

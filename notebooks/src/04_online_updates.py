"""Source of notebooks/04_online_updates.ipynb; build with python notebooks/build.py."""

# %% [markdown]
# # Online updates: learn from new interactions without forgetting the old ones
#
# A deployed model goes stale: new items appear and tastes drift. This notebook trains SASRec on
# the interactions before a cutoff date, then replays the interactions after it in weekly windows
# and updates the model on each window with a few optimizer steps. Every update is measured
# before and after, test-then-train:
#
# * **plasticity**: NDCG@10 and HR@10 on the *next* window, which no update has trained on yet;
# * **forgetting**: the same metrics on a frozen set of users from before the cutoff;
# * **churn**: the Jaccard distance between each user's top-10 list before and after the update,
#   for users in the window (`jaccard_affected`) and everyone else (`jaccard_other`).
#
# Updates stay *pending* until committed, and `undo` restores the model exactly.

# %%
import os

EPOCHS = int(os.environ.get("RECWIDGETS_EPOCHS", 1))
SEED = 0
CUTOFF = 0.8  # quantile of the timestamps
N_WINDOWS = 2
MEASURE = {"max_eval_cases": 500, "forgetting_users": 300}  # cases per measurement; None measures all

# %%
import pandas as pd
import torch

import recwidgets as rw
from recwidgets.online import OnlineUpdater, online_logs
from recwidgets.widgets.online_update_panel import OnlineUpdatePanel

# %% [markdown]
# ## Train before the cutoff
#
# `online_logs` renumbers the log so that every item and user seen before the cutoff keeps the
# same id in the stream after it. New items get the next ids, and the updater grows the model's
# item table for them. The model trains on the pre-cutoff log (leave-last-out, users too short
# for a test item kept for training).

# %%
log = rw.datasets.load("ml-100k")
logs = online_logs(log, CUTOFF)
print(f"cutoff {pd.to_datetime(logs.cutoff, unit='s')}: {logs.pre_cutoff.n_items} items before, {logs.stream.n_items - logs.pre_cutoff.n_items} new after")
split = rw.leave_last_out(logs.pre_cutoff, short_users="train")
model = rw.SASRec(epochs=EPOCHS, seed=SEED).fit(split, progress=False)

# %% [markdown]
# ## Replay the stream
#
# Each window is one week of interactions. `run` applies and commits one window after another and
# returns one row per update.

# %%
updater = OnlineUpdater(model, logs.stream, cutoff=logs.cutoff, window="7D", steps=10, lr=1e-3, seed=SEED, **MEASURE)
updates = updater.run(N_WINDOWS)
columns = [
    "window", "start", "n_interactions", "n_new_items",
    "plasticity_NDCG@10_before", "plasticity_NDCG@10_after",
    "forgetting_NDCG@10_before", "forgetting_NDCG@10_after",
    "jaccard_affected", "jaccard_other",
]
updates[columns].round(4)

# %% [markdown]
# **What to conclude:** an update helps when plasticity *after* exceeds plasticity *before*. It
# loses old knowledge when forgetting *after* falls below *before*. Churn far above zero for users outside
# the window means the update moved everybody's recommendations, not only those of the users it
# trained on.

# %% [markdown]
# ## Undo an update
#
# The next update stays pending until it is committed. `undo` restores the parameters, the
# optimizer state, the table sizes and the stream position.

# %%
before = {name: tensor.clone() for name, tensor in model.module.state_dict().items()}
record = updater.apply(lr=1e-2)
print(f"applied update {record.update} (window {record.window}) with lr=0.01: {record.status}")
updater.undo()
restored = all(torch.equal(before[name], tensor) for name, tensor in model.module.state_dict().items())
print(f"after undo the parameters equal those before the update: {restored}")

# %% [markdown]
# ## Replay against forgetting
#
# Mixing pre-cutoff sequences into each step (`replay`) is a common remedy for forgetting.
# `reset` returns to the original model; the same windows are then replayed with half of each
# step's rows drawn from before the cutoff.

# %%
updater.reset()
history = updater.run(N_WINDOWS, replay=0.5)
# The history keeps every update; the reset and undone ones are marked by their status.
with_replay = history[history["status"] == "committed"]
comparison = pd.DataFrame(
    {
        "forgetting NDCG@10, no replay": updates["forgetting_NDCG@10_after"].to_numpy(),
        "forgetting NDCG@10, replay 0.5": with_replay["forgetting_NDCG@10_after"].to_numpy(),
        "plasticity NDCG@10, no replay": updates["plasticity_NDCG@10_after"].to_numpy(),
        "plasticity NDCG@10, replay 0.5": with_replay["plasticity_NDCG@10_after"].to_numpy(),
    },
    index=pd.Index(updates["window"], name="window"),
)
comparison.round(4)

# %% [markdown]
# ## The panel
#
# `OnlineUpdatePanel` drives the same updater interactively: sliders set the learning rate, the
# steps, the window size and the replay share of the next update. The buttons apply, undo,
# commit or reset it; an update trains in a background thread, so the kernel stays responsive. The chart shows plasticity and forgetting
# per update; the movers table lists the users whose top-10 list changed most. In the HTML
# export of this notebook the controls are disabled, because they need Python.

# %%
panel = OnlineUpdatePanel(updater)
panel

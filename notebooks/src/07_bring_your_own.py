"""Source of notebooks/07_bring_your_own.ipynb; build with python notebooks/build.py."""

# %% [markdown]
# # Bring your own data and model
#
# Your log will not be MovieLens and your model will not be SASRec. This notebook shows the two
# entry points for both:
#
# 1. **Data**: any CSV, TSV or Parquet file with a user, an item and a time column, whatever they
#    are called. Here we write such a file ourselves, with the columns `customer`, `product` and
#    `event_time` (ISO 8601 date-times), derived from MovieLens-100K.
# 2. **Model**: any `torch.nn.Module` that maps a batch of left-padded item-id histories
#    `(B, L)` to scores over the catalog `(B, n_items + 1)`. `TorchModuleRecommender` wraps it
#    into the model protocol that evaluation, diagnosis and the widgets read.
#
# The model here is a small GRU defined in the notebook and trained with a plain torch loop.

# %%
import os

EPOCHS = int(os.environ.get("RECWIDGETS_EPOCHS", 2))
SEED = 0
MAX_LEN = 50

# %%
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

import recwidgets as rw
from recwidgets.training import iterate_batches, next_item_windows

# %% [markdown]
# ## A log with its own column names
#
# We export MovieLens-100K with the original GroupLens ids and readable time stamps, as a shop's
# event export might look. The file goes to a temporary folder.

# %%
movielens = rw.datasets.load("ml-100k")
events = pd.DataFrame(
    {
        "customer": movielens.user_ids[movielens.interactions["user"].to_numpy()],
        "product": movielens.item_ids[movielens.interactions["item"].to_numpy()],
        "event_time": pd.to_datetime(movielens.interactions["timestamp"], unit="s").dt.strftime("%Y-%m-%dT%H:%M:%S"),
    }
)
folder = Path(tempfile.mkdtemp(prefix="recwidgets-byo-"))
csv_path = folder / "shop_events.csv"
events.to_csv(csv_path, index=False)
pd.read_csv(csv_path, nrows=5)

# %% [markdown]
# `rw.datasets.load` reads any table when you name its columns (`load_table` is the same
# loader without format detection). Time columns may hold unix seconds or ISO 8601 strings.
# The loader gives users and items contiguous internal ids starting at 1, because 0 is padding,
# and keeps the original ids in `log.user_ids` and `log.item_ids`.

# %%
log = rw.datasets.load(csv_path, user_col="customer", item_col="product", time_col="event_time")
log.describe()

# %% [markdown]
# A temporal split cuts the log at one point in time: training uses only events before the
# validation cutoff, and each test user's target is their first event after the test cutoff.
# Unlike leave-last-out, no test target happens before a training event.

# %%
split = rw.temporal(log, cutoff=0.8)
pd.DataFrame(split.card.rows(), columns=["field", "value"]).set_index("field")

# %% [markdown]
# ## A model of your own
#
# The GRU reads the left-padded history; with left padding its last output is the state after
# the most recent item. Its output layer scores every item id including 0 (padding), as the model
# protocol expects; evaluation never recommends column 0.

# %%
class GRURecommender(nn.Module):
    """Embed item ids, run a GRU over the history, score every item from each hidden state."""

    def __init__(self, n_items: int, dim: int = 64):
        super().__init__()
        self.embedding = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.gru = nn.GRU(dim, dim, batch_first=True)
        self.output = nn.Linear(dim, n_items + 1)

    def sequence_scores(self, histories: torch.Tensor) -> torch.Tensor:
        """Scores after every position: (B, L) item ids -> (B, L, n_items + 1)."""
        hidden, _ = self.gru(self.embedding(histories))
        return self.output(hidden)

    def forward(self, histories: torch.Tensor) -> torch.Tensor:
        """Scores for the item after the last position: (B, L) -> (B, n_items + 1)."""
        return self.sequence_scores(histories)[:, -1, :]


torch.manual_seed(SEED)
module = GRURecommender(log.n_items)

# %% [markdown]
# Training is next-item prediction at every position. `next_item_windows` cuts each training
# sequence into left-padded `(input, target)` rows of length `MAX_LEN`; padding targets (0) are
# ignored by the loss.

# %%
inputs, targets = next_item_windows(split.train_sequences(), MAX_LEN)
optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
rng = np.random.default_rng(SEED)

for epoch in range(1, EPOCHS + 1):
    module.train()
    losses = []
    for batch_inputs, batch_targets in iterate_batches(inputs, targets, batch_size=128, rng=rng):
        scores = module.sequence_scores(batch_inputs)
        loss = nn.functional.cross_entropy(scores.flatten(0, 1), batch_targets.flatten(), ignore_index=0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    print(f"epoch {epoch}: mean training loss {np.mean(losses):.3f} over {len(losses)} batches")

# %% [markdown]
# ## Evaluate it like any other model
#
# `TorchModuleRecommender` puts the module in eval mode and calls it under `torch.no_grad`.
# `max_len` is the history length it receives; longer histories keep their most recent items.

# %%
gru = rw.TorchModuleRecommender(module, n_items=log.n_items, name="gru", max_len=MAX_LEN)
results = {
    "GRU": rw.evaluate(gru, split, seed=SEED),
    "Popularity": rw.evaluate(rw.Popularity().fit(split), split, seed=SEED),
}
panel = rw.MetricPanel(results)
panel

# %% [markdown]
# **What to conclude:** the panel compares your model with the most-popular baseline under the
# same protocol card. If the GRU's interval lies below the baseline's, it has not yet learned
# more than popularity: train more epochs (`RECWIDGETS_EPOCHS`) before reading anything else
# into the numbers.
#
# The original ids are one lookup away: `log.item_ids[internal_id]` turns a recommendation back
# into your product id.

# %%
top = results["GRU"].topk[:3, :5]
pd.DataFrame(log.item_ids[top], index=log.user_ids[results["GRU"].users[:3]], columns=[f"#{rank}" for rank in range(1, 6)])

"""Source of notebooks/01_quickstart.ipynb; build with python notebooks/build.py."""

# %% [markdown]
# # Quick start: train, evaluate and diagnose a SASRec on MovieLens-100K
#
# This notebook runs the whole pipeline once:
#
# 1. load MovieLens-100K and split it (leave-last-out: each user's last item is the test target),
# 2. train a SASRec transformer while a `TrainingMonitor` draws the loss and validation curves,
# 3. train two baselines (most popular items, EASE) and evaluate all three with full-catalog ranking,
# 4. compare them in a `MetricPanel` with bootstrap confidence intervals and the protocol card,
# 5. run the diagnosis and read its findings.
#
# The kernel does every computation; the widgets only draw the results, so the saved notebook and
# its HTML export keep the views without a kernel.

# %% [markdown]
# ## Parameters
#
# `EPOCHS` is small so that the notebook runs in a couple of minutes on a laptop CPU. For a real
# run set the environment variable `RECWIDGETS_EPOCHS` (for example to 200; early stopping ends
# training when validation NDCG@10 stops improving).

# %%
import os

EPOCHS = int(os.environ.get("RECWIDGETS_EPOCHS", 2))
SEED = 0

# %%
import pandas as pd
from IPython.display import display

import recwidgets as rw
from recwidgets.diagnose import diagnose
from recwidgets.widgets import DiagnosisReport
from recwidgets.widgets.dashboard import Dashboard

pd.set_option("display.max_colwidth", 120)

# %% [markdown]
# ## Data and split
#
# `rw.datasets.load("ml-100k")` looks for a local copy first (`$RECWIDGETS_ML100K`,
# `$RECWIDGETS_DATA_DIR/ml-100k`, the RecBole wheel, the cache) and downloads from GroupLens
# only when none exists. The split's protocol card records how the numbers below are produced.

# %%
log = rw.datasets.load("ml-100k")
split = rw.leave_last_out(log)
pd.DataFrame(split.card.rows(), columns=["field", "value"]).set_index("field")

# %% [markdown]
# ## Train SASRec with a live monitor
#
# The monitor is a `fit` callback: it receives one event per batch and per epoch. The left chart
# shows the training loss (per step and per epoch), the right one validation NDCG@10 and HR@10.
# The dashed line marks the best epoch, whose parameters the model keeps.
#
# **What to look for:** the training loss should fall steadily. A validation curve that peaks and
# then falls while the loss keeps falling is overfitting. A validation curve that is still rising
# at the last epoch means that more epochs would help.

# %%
monitor = rw.TrainingMonitor(total_epochs=EPOCHS)
display(monitor)
sasrec = rw.SASRec(epochs=EPOCHS, seed=SEED).fit(split, callbacks=[monitor], progress=False)

# %%
sasrec.history[["epoch", "train_loss", "val_NDCG@10", "val_HR@10"]]

# %% [markdown]
# ## Baselines and evaluation
#
# Every model is evaluated the same way: the whole catalog is ranked for each test user, the
# items of the user's history are excluded, ties count against the target, and 1000 bootstrap
# resamples of users give 95% confidence intervals.

# %%
popularity = rw.Popularity().fit(split)
ease = rw.EASE().fit(split)
models = {"SASRec": sasrec, "Popularity": popularity, "EASE": ease}
results = {name: rw.evaluate(model, split, seed=SEED) for name, model in models.items()}
rw.compare(results).xs("value", axis=1, level="field").round(4)

# %% [markdown]
# ## Compare the models
#
# The panel shows every metric at the chosen cutoff `k` with its confidence interval, a bar chart
# of one metric across cutoffs, and the protocol card. The *Breakdown* menu splits users by
# activity quartile or by the popularity of their test item.
#
# **What to conclude:** two models differ reliably only where their intervals do not overlap.
# A sequential model that does not beat the most-popular baseline has learned little beyond item
# popularity. The popularity breakdown shows whether a model wins only on head items.

# %%
panel = rw.MetricPanel(results)
panel

# %% [markdown]
# ## Diagnosis
#
# `diagnose` runs every detector that has its inputs: data checks, leakage, protocol, training
# curves, popularity bias, cold start, embeddings and attention. The report groups the findings
# by severity. Each finding has an id, the evidence behind it, a suggested fix, the literature
# where one exists, and the widget that shows the evidence.
#
# **What to expect here:** leave-last-out on ML-100K puts many users' test items before other
# users' training events, so `leakage.global_timeline` is expected. A temporal split
# (`rw.temporal(log)`) avoids it. With the few epochs of this notebook, `fit.underfitting` may
# report that SASRec does not beat the popularity baseline.

# %%
diagnosis = diagnose(split=split, models=models, results=results, seed=SEED)
DiagnosisReport(diagnosis)

# %% [markdown]
# ## Everything linked: the dashboard
#
# The dashboard puts the metrics by user segment, the findings and a user inspector side by side.
# A click on a segment lists its users. A click on a user shows the history, the top-10
# recommendations, the attention of the last position and a rough Shapley estimate for the top
# item from 4 permutation pairs, which `ShapExplorer` in notebook 03 refines. A finding's *show* link
# applies the view it names. The inspector data of the users of the weakest segments (up to 50
# users) is computed ahead, so these links also work in the HTML export.
#
# **What to look for:** the weakest segment is where a model fails first; compare its users'
# histories with those of the strongest segment.

# %%
Dashboard(results, split=split, model=sasrec, findings=diagnosis)

# %% [markdown]
# ## Rich display with the IPython extension
#
# After `%load_ext recwidgets`, a bare expression shows recwidgets objects as widgets: an
# evaluation result as a `MetricPanel`, a fitted SASRec as a `TrainingMonitor` of its history,
# a diagnosis as a report.

# %%
%load_ext recwidgets

# %%
results["EASE"]

# %%
sasrec

# %% [markdown]
# ## Share the result
#
# `rw.save_html` writes one self-contained HTML file that works offline, with the same views.

# %%
size = rw.save_html("quickstart.html", panel, monitor, title="MovieLens-100K quick start")
print(f"wrote quickstart.html ({size / 1e6:.2f} MB)")

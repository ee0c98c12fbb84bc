"""Source of notebooks/06_diagnosis.ipynb; build with python notebooks/build.py."""

# %% [markdown]
# # Diagnosis with planted faults
#
# A detector is only useful if it fires on the fault it is meant for and stays quiet otherwise.
# This notebook checks both on data where the truth is known:
#
# 1. a synthetic log (1,000 users, 300 items, popularity skew and learnable item-to-item
#    sequels) with a global temporal split, a tiny SASRec, the most-popular baseline and EASE:
#    the *clean setup*;
# 2. copies of the clean setup with one fault planted each, from `recwidgets.diagnose.faults`:
#    duplicated events, a test target inside its own history, sampled negatives, a diverged
#    training run, a model that attends to the future, and so on;
# 3. `diagnose` on every setup, and a table of which finding ids fired at warning level or above.
#
# `python -m recwidgets.diagnose.suite` runs the same comparison for every planted fault.

# %%
SEED = 0
FAULT_NAMES = [
    "duplicated events",
    "target inside its history",
    "sampled negatives",
    "overfitting",
    "diverged training",
    "non-causal attention",
    "popularity collapse",
    "short histories fail",
    "rank-1 item embeddings",
]

# %%
import pandas as pd
from IPython.display import display

import recwidgets as rw
from recwidgets.diagnose import CATALOG
from recwidgets.diagnose.faults import FAULTS, clean_setup
from recwidgets.synthetic import synthetic_log
from recwidgets.widgets import DiagnosisReport

pd.set_option("display.max_colwidth", 120)

# %% [markdown]
# ## The clean setup
#
# A clean setup must not raise anything at warning level. Findings at `info` level are
# observations (for example near-uniform attention heads of a small model) and may appear.

# %%
log = synthetic_log(1000, 300, seed=SEED)
clean = clean_setup(log, rw.temporal(log), seed=SEED)
clean_diagnosis = clean.diagnose()
print(f"{len(log):,} interactions; warnings or errors on the clean setup: {sorted(clean_diagnosis.ids('warning')) or 'none'}")
rw.compare(clean.results).xs("value", axis=1, level="field").loc[["NDCG@10", "HR@10", "Coverage@10"]].round(4)

# %% [markdown]
# ## Plant the faults
#
# Each planting function returns a copy of the clean setup with one fault and the finding id it
# must raise (`expected`). `also` lists ids that the fault legitimately causes too: a diverged
# run, for example, also fails to beat the popularity baseline.

# %%
rows = []
planted = {}
for name in FAULT_NAMES:
    plant, expected = FAULTS[name]
    setup = plant(clean)
    diagnosis = setup.diagnose()
    fired = sorted(diagnosis.ids("warning"))
    planted[name] = (setup, diagnosis)
    rows.append(
        {
            "fault": name,
            "expected": expected,
            "caught": expected in fired,
            "also fired (known side effect)": ", ".join(sorted(set(fired) & set(setup.also))),
            "also fired (unexpected)": ", ".join(sorted(set(fired) - {expected} - set(setup.also))),
        }
    )
table = pd.DataFrame(rows).set_index("fault")
table

# %% [markdown]
# **What to conclude:** every `caught` entry should be `True` and the *unexpected* column empty.
# A planted fault that is not caught means that a detector threshold no longer matches the data.
# An unexpected id means that a detector reacts to something other than its fault.

# %% [markdown]
# ## One diagnosis in detail
#
# The sampled-negatives fault evaluates the models against 100 random negatives per user instead
# of the full catalog. Sampled metrics are much higher than full-ranking ones and can even change
# the order of models (Krichene and Rendle, KDD 2020). The report lists each finding with its
# evidence, the fix, the reference and the widget that shows the numbers. The severity menu
# hides the info-level observations.

# %%
setup, diagnosis = planted["sampled negatives"]
DiagnosisReport(diagnosis)

# %%
finding = next(item for item in diagnosis if item.id == "protocol.sampled_metrics")
finding.evidence

# %% [markdown]
# The metric panel of the faulty setup shows the same warning above its table, and every label
# marks its value as a sampled number.

# %%
rw.MetricPanel(setup.results)

# %% [markdown]
# ## A training fault
#
# The overfitting setup trains a larger model without dropout or early stopping on 150 users.
# Its monitor shows what `fit.overfitting` measures: validation NDCG@10 peaks and then falls while
# the training loss keeps falling.

# %%
overfit_setup, overfit_diagnosis = planted["overfitting"]
overfit_model = overfit_setup.models["sasrec"]
display(rw.TrainingMonitor.from_history(overfit_model.history, stop_reason=overfit_model.stop_reason))
next(item for item in overfit_diagnosis if item.id == "fit.overfitting").evidence

# %% [markdown]
# ## Every finding id
#
# The catalog lists each documented id with its meaning and the widget that shows its evidence.

# %%
pd.DataFrame([(entry.id, entry.meaning, entry.widget) for entry in CATALOG.values()], columns=["id", "meaning", "widget"])

# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exploring the identity graph
#
# One run of a snapshot, resolved into people: the headline numbers, where the findings are, who has
# accounts in several portals, and what the orphans (people disabled in every IdP that knows them, with
# LearnUpon accounts still enabled) can still reach.
#
# `DB` is any idgraph snapshot; the default is the demo's (`idgraph demo`), built on first use if missing.
# `RUN_ID = None` reads the newest run.

# %%
# %matplotlib inline
import pandas as pd
from IPython.display import display

from graph import notebook_api as nb
from graph.api import load_run

pd.set_option("display.max_colwidth", 80)

# %% tags=["parameters"]
DB = "idgraph-demo/idgraph.db"
RUN_ID = None

# %%
ig = load_run(nb.locate_snapshot(DB), RUN_ID)
findings = ig.findings_df()

# %% [markdown]
# ## Headline

# %%
nb.headline(ig, findings)

# %% [markdown]
# ## Findings by portal and by code
# Severity rises for admin and manager accounts. A portal whose crawl did not complete shows only the
# verdicts that did not depend on it (see the access review notebook for what was withheld).

# %%
nb.findings_chart(findings, ig.sources.portals)

# %%
nb.findings_by_portal(findings, ig.sources.portals)

# %%
nb.findings_by_code(findings)

# %% [markdown]
# ## Accounts per portal and people in several portals
# A per-portal review never sees these people whole: one identity, accounts in every portal.

# %%
ig.accounts_by_portal()

# %%
multi = ig.multi_portal_people()
print(f"{len(multi)} of {len(ig.resolution.persons)} people have accounts in two or more portals")
multi.head(10)

# %% [markdown]
# ## Orphans: what they can still reach
# Every group and course held by the *enabled* accounts of people disabled in the IdPs, across all
# portals — the access a departed person keeps until someone disables the accounts.

# %%
exposure = nb.orphan_exposure(ig, findings)
orphans = nb.orphan_summary(findings, exposure)
print(f"{len(orphans)} orphans hold {len(exposure)} group memberships and course enrollments")
orphans.head(10)

# %%
nb.held_items_chart(exposure)

# %%
nb.held_items(exposure).head(10)

# %% [markdown]
# ## One orphan's neighbourhood
# The orphan with the most portals and holdings: their IdP identity, their accounts, and what each
# account holds. `ig.neighbourhood` builds just this part of the graph from the snapshot; avoid
# `ig.graph` (the whole graph) on large estates.

# %%
if len(orphans):
    person = orphans.index[0]
    display(nb.orphan_neighbourhood(ig, person, radius=2))
    display(ig.exposure(person))
else:
    print("no orphans in this run")

# %%
ig.close()

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
# # Access review of one run
#
# A reviewer's walk through one run: first what the run could **not** see (an absence read from a failed
# crawl proves nothing), then each finding with its evidence, then what changed since the previous run,
# and finally a CSV for the ticket.
#
# Parameters: `DB` (a snapshot; the demo's by default), `RUN_ID` (`None`: the newest run) and `OUT` (the
# CSV to write; `None`: `access-review-run<N>.csv` next to the snapshot).

# %%
# %matplotlib inline
import pandas as pd
from IPython.display import Markdown, display

from graph import notebook_api as nb
from graph.api import load_run

pd.set_option("display.max_colwidth", 80)

# %% tags=["parameters"]
DB = "idgraph-demo/idgraph.db"
RUN_ID = None
OUT = None

# %%
db = nb.locate_snapshot(DB)
ig = load_run(db, RUN_ID)
findings = ig.findings_df()
print(f"run {ig.run.id} of {db}: {ig.run.status}, started {ig.run.started_at}")
domains = ", ".join(ig.settings.managed_domains) or "none"
print(f"review settings: managed domains {domains}; dormant after {ig.settings.dormant_days} days")

# %% [markdown]
# ## 1. Coverage first
# Every source of the run, incomplete ones on top.

# %%
nb.coverage_table(ig)

# %% [markdown]
# What this run could not judge at all, and the verdicts the rules withheld because a source they need
# did not complete. A withheld verdict is not a clean bill of health: re-crawl that source.

# %%
gaps = nb.not_covered(ig)
print(f"Not covered: {len(gaps)} gaps." if len(gaps) else "Not covered: nothing, every account was judged.")
gaps if len(gaps) else None

# %%
held_back = nb.withheld(ig)
print(f"Verdicts withheld: {len(held_back)}." if len(held_back) else "Verdicts withheld: none.")
held_back if len(held_back) else None

# %% [markdown]
# Every account that was read is judged, even when its listing broke off; where a listing did not
# finish, findings may be missing (nobody knows which accounts were not read).

# %%
missing = nb.may_be_missing(ig)
print(f"Findings may be missing: {len(missing)} gaps." if len(missing) else "Findings may be missing: none.")
missing if len(missing) else None

# %% [markdown]
# ## 2. The findings, code by code, with their evidence

# %%
nb.findings_chart(findings, ig.sources.portals)

# %%
for code, row in nb.findings_by_code(findings).iterrows():
    display(Markdown(f"### `{code}` — {row['meaning']}: {row['total']} accounts, {row['people']} people"))
    if row["total"]:
        display(nb.evidence_table(findings, code).head(10))

# %% [markdown]
# ## 3. What changed since the previous run
# *new*: found now, not before; *resolved*: found before, re-checked now and gone; *not re-checked*: found
# before, but its portal or rule could not be judged now, so nothing is known; *still open*: in both.

# %%
changes = nb.run_changes(ig)
if changes.previous_run_id is None:
    print(f"Run {ig.run.id} is the first recorded run: every finding is new.")
else:
    table = nb.changes_table(changes)
    moved = table[table["change"] != "still_open"]
    print(
        f"Since run {changes.previous_run_id}: {len(changes.new)} new, {len(changes.resolved)} resolved, "
        f"{len(changes.not_rechecked)} not re-checked, {len(changes.still_open)} still open."
    )
    display(nb.changes_summary(changes))
    display(moved.head(20) if len(moved) else Markdown("*Nothing changed: every finding is still open.*"))

# %% [markdown]
# ## 4. The ticket
# The findings to act on, worst first: the report's contract columns, whether each is new, when it was
# first seen, and the evidence in plain columns. Findings this run could not re-check stay on the ticket
# as `not_rechecked`, from the run that last saw them: a failed crawl does not close anything.

# %%
ticket = nb.ticket_table(ig, findings, changes)
path = nb.export_ticket(ticket, OUT or nb.default_ticket_path(db, ig.run.id))
print(f"wrote {len(ticket)} findings to {path}")
ticket.head(10)

# %%
ig.close()

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
# # The identity graph in Neo4j
#
# Export one run into Neo4j (`graph.neo4j_export.export_run`, the same code as `idgraph export neo4j`),
# then run the saved Cypher queries of the library (`graph/queries/*.yaml`) from Python, each result a
# DataFrame.
#
# The Neo4j cells run only when `NEO4J_URI` is set (with `NEO4J_USER` / `NEO4J_PASSWORD` unless the
# server has auth disabled, and optionally `NEO4J_DATABASE`); without it this notebook says how to enable
# them and ends cleanly. Parameters: `DB` (the demo's snapshot by default) and `RUN_ID` (`None`: newest).

# %%
import pandas as pd
from IPython.display import Markdown, display

from graph import notebook_api as nb
from graph.api import load_run
from graph.neo4j_export import export_run

pd.set_option("display.max_colwidth", 80)

# %% tags=["parameters"]
DB = "idgraph-demo/idgraph.db"
RUN_ID = None

# %%
server = nb.Neo4jTarget.from_env()
print(nb.NEO4J_HOWTO if server is None else f"Neo4j: {server.uri}, database {server.database}")

# %% [markdown]
# The query library, whether or not a server is there:

# %%
nb.query_library()

# %% [markdown]
# ## Export the run
# Idempotent: exporting the same run again changes nothing. A run older than one already in the
# database is refused (it would roll the graph back).

# %%
if server:
    db = nb.locate_snapshot(DB)
    stats = export_run(db, server.uri, run_id=RUN_ID, auth=server.auth, database=server.database)
    print(f"exported run {stats.run_id}: {stats.rows_written} rows in {stats.seconds:.1f} s")
    display(nb.export_table(stats))

# %% [markdown]
# ## Run the library from Python
# Coverage first (read it before trusting any absence), then the orphans and what they still hold.

# %%
if server:
    driver = server.driver()
    display(nb.query_df(driver, "coverage", database=server.database))

# %%
if server:
    orphans = nb.query_df(driver, "orphan_accounts", database=server.database)
    print(f"{len(orphans)} orphan accounts")
    display(orphans.head(10))

# %%
if server:
    display(nb.query_df(driver, "orphan_access", database=server.database).head(10))
    display(nb.query_df(driver, "people_in_several_portals", {"min_portals": 3}, server.database).head(10))

# %% [markdown]
# ## Same answers both ways
# Findings per code from the networkx rules, from the exported Finding nodes, and recomputed by each
# finding's Cypher query straight from the graph.

# %%
if server:
    with load_run(db, stats.run_id) as ig:
        agreement = nb.parity(driver, ig.findings_df(), server.database)
    display(agreement)
    display(Markdown("**All three agree.**" if agreement["agree"].all() else "**They disagree: see above.**"))

# %%
if server:
    driver.close()

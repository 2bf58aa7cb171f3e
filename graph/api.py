"""The small API notebooks and reports share: one run, its people, its findings, its graph.

    ig = load_run("idgraph.db", managed_domains=["acme.com"])
    ig.findings_df()                      # verdicts, evaluated once
    ig.person("Ana@ACME.com")             # accounts and identities of one person
    ig.neighbourhood("person:ana@acme.com", radius=2)   # a small networkx graph, built on demand

Findings come from the resolution (plain objects) in seconds even for a million accounts; the whole
networkx graph (`.graph`) is built only when asked for, because at that size it costs about a minute and
several GB (see BENCHMARKS.md). `neighbourhood` never needs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from functools import cached_property
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd

from crawler.closing import ClosedOnExit
from crawler.coverage import SourceCoverage
from crawler.runs import RunInfo
from crawler.snapshot_reader import SnapshotReader
from crawler.store import SnapshotStore
from crawler.vocabulary import is_disabled
from graph.build import LocalGraph, build_graph
from graph.history import load_review_settings, save_review_settings
from graph.model import CONTRACT_COLUMNS, FindingSet
from graph.resolve import Account, Collision, Person, Resolution, fold, gc_paused, load_resolution
from graph.rules import AccountDetails, ReviewSettings, RuleInput, Sources, evaluate, parse_time


def display_name(record: dict[str, Any]) -> str | None:
    """First and last name as LearnUpon has them, blank parts dropped; None when there is neither."""
    parts = (record.get("first_name"), record.get("last_name"))
    return " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip()) or None


# The columns of `IdentityGraph.exposure`: one row per group or course an account still holds.
EXPOSURE_COLUMNS = (
    "person",
    "portal",
    "learnupon_user_id",
    "email",
    "enabled",
    "kind",
    "id",
    "title",
    "status",
)


class IdentityGraph(ClosedOnExit):
    """One run of the snapshot, resolved into people; findings and graphs derived on demand."""

    def __init__(
        self, store: SnapshotStore, run: RunInfo, settings: ReviewSettings, *, owns_store: bool
    ) -> None:
        self.store = store
        self.run = run
        self.settings = settings
        self._owns_store = owns_store
        # A private read-only connection when the snapshot is a file: our temp tables never meet a writer's.
        in_memory = str(store.path) == ":memory:"
        self._snapshot = store.reader() if in_memory else SnapshotReader.open(store.path)
        self.coverage: list[SourceCoverage] = store.coverage(run.id)
        self.resolution: Resolution = load_resolution(self._snapshot, run.id)
        self.sources = Sources.from_coverage(
            self.coverage, self.resolution, store.quarantined_addresses(run.id)
        )
        self._findings: FindingSet | None = None
        self._local = LocalGraph(self._snapshot, run.id, self.resolution, self.sources)

    # --- lifecycle ------------------------------------------------------------------------------------
    def close(self) -> None:
        self._snapshot.close()  # closes only a connection it opened
        if self._owns_store:
            self.store.close()

    # --- verdicts --------------------------------------------------------------------------------------
    def rule_input(self) -> RuleInput:
        started = parse_time(self.run.started_at)
        if started is None:
            raise ValueError(f"run {self.run.id} has no usable started_at ({self.run.started_at!r})")
        return RuleInput(self.run.id, started.astimezone(UTC), self.resolution, self.sources, self.settings)

    def findings(self) -> FindingSet:
        """Every rule over this run, evaluated once (then cached), with groups and enrollments as evidence."""
        if self._findings is None:
            with gc_paused():
                self._findings = evaluate(
                    self.rule_input(),
                    lambda keys: AccountDetails(*self._snapshot.account_details(self.run.id, keys)),
                )
                # Names are read for the finding accounts only, not carried by the resolution.
                records = self._snapshot.user_records(
                    self.run.id, {(f.portal, f.learnupon_user_id) for f in self._findings.findings}
                )
                for f in self._findings.findings:
                    record = records.get((f.portal or "", f.learnupon_user_id or 0))
                    if record is not None and (name := display_name(record)):
                        f.evidence["name"] = name
        return self._findings

    def save_settings(self) -> None:
        """Remember this run's review settings in the snapshot (reports can then run without a config)."""
        save_review_settings(self.store, self.run.id, self.settings)

    # --- people ------------------------------------------------------------------------------------------
    @property
    def collisions(self) -> list[Collision]:
        return self.resolution.collisions

    @property
    def unmatchable(self) -> list[Account]:
        return self.resolution.unmatchable

    def person(self, email: str) -> Person | None:
        """The person behind any of their addresses (case-insensitive): accounts and identities."""
        return self.resolution.person_for(email)

    def multi_portal_people(self) -> pd.DataFrame:
        """People with accounts in two or more portals: the ones a single portal's review would miss."""
        rows = []
        for person in self.resolution.persons.values():
            portals = sorted({a.portal for a in person.accounts})
            if len(portals) > 1:
                rows.append(
                    {
                        "person": person.key,
                        "portals": portals,
                        "portal_count": len(portals),
                        "accounts": len(person.accounts),
                        "enabled_accounts": sum(a.enabled for a in person.accounts),
                    }
                )
        frame = pd.DataFrame(
            rows, columns=["person", "portals", "portal_count", "accounts", "enabled_accounts"]
        )
        return frame.sort_values(["portal_count", "person"], ascending=[False, True], ignore_index=True)

    # --- frames ------------------------------------------------------------------------------------------
    def accounts_df(self) -> pd.DataFrame:
        accounts = self.resolution.accounts
        return pd.DataFrame(
            {
                "node_id": [a.node_id for a in accounts],
                "portal": [a.portal for a in accounts],
                "learnupon_user_id": [a.id for a in accounts],
                "email": [a.email for a in accounts],
                "username": [a.username for a in accounts],
                "person": [a.person for a in accounts],
                "match": [a.match.value for a in accounts],
                "user_type": [a.user_type for a in accounts],
                "enabled": [a.enabled for a in accounts],
                "last_sign_in_at": pd.to_datetime(
                    [a.last_sign_in_at for a in accounts], utc=True, format="ISO8601"
                ),
                "created_at": pd.to_datetime([a.created_at for a in accounts], utc=True, format="ISO8601"),
            }
        )

    def accounts_by_portal(self) -> pd.DataFrame:
        """Per portal: accounts, enabled, how they matched the IdPs, and whether its crawl completed."""
        frame = self.accounts_df()
        counts = frame.groupby("portal").agg(accounts=("node_id", "size"), enabled=("enabled", "sum"))
        matches = frame.pivot_table(
            index="portal", columns="match", values="node_id", aggfunc="size", fill_value=0
        )
        out = counts.join(matches).reindex(sorted(self.sources.portals), fill_value=0)
        for column in ("matched", "no_identity", "collision", "no_email"):
            if column not in out:
                out[column] = 0
        out["complete"] = [self.sources.portals.get(p) is None for p in out.index]
        out.index.name = "portal"
        return out.astype({"accounts": int, "enabled": int})

    def persons_df(self) -> pd.DataFrame:
        rows = []
        for person in self.resolution.persons.values():
            statuses = [i.status for i in person.identities]
            rows.append(
                {
                    "person": person.key,
                    "accounts": len(person.accounts),
                    "enabled_accounts": sum(a.enabled for a in person.accounts),
                    "portals": len({a.portal for a in person.accounts}),
                    "identities": len(person.identities),
                    "idps": ";".join(sorted({i.source for i in person.identities})) or None,
                    "idp_statuses": ";".join(statuses) or None,
                    "idp_disabled": bool(statuses) and all(is_disabled(s) for s in statuses),
                }
            )
        return pd.DataFrame(
            rows,
            columns=[
                "person",
                "accounts",
                "enabled_accounts",
                "portals",
                "identities",
                "idps",
                "idp_statuses",
                "idp_disabled",
            ],
        )

    def findings_df(self) -> pd.DataFrame:
        """One row per finding: the contract columns, id, person, then the evidence as a dict."""
        findings = self.findings().findings
        rows = [{**f.as_row(), "evidence": f.evidence} for f in findings]
        columns = [*CONTRACT_COLUMNS, "finding_id", "person", "evidence"]
        return pd.DataFrame(rows, columns=columns)

    # --- graphs ------------------------------------------------------------------------------------------
    @cached_property
    def graph(self) -> nx.DiGraph:
        """The whole networkx graph of the run, built on first use (about a minute at 1M accounts)."""
        with gc_paused():
            return build_graph(
                self._snapshot, self.run.id, self.resolution, self.sources.portals, self.sources.idps
            )

    def neighbourhood(self, node_id: str, radius: int = 1) -> nx.DiGraph:
        """Every node within `radius` hops of `node_id` (either direction) and the edges between them.

        Same answer as `networkx.ego_graph(self.graph, node_id, radius, undirected=True)`, but built from
        the snapshot around the node, so it costs milliseconds instead of the whole graph.
        """
        if "graph" in self.__dict__:
            return nx.ego_graph(self.graph, node_id, radius=radius, undirected=True).copy()
        return self._local.ego(node_id, radius)

    def exposure(self, person: str | Person, *, include_disabled: bool = False) -> pd.DataFrame:
        """Groups and courses a person's enabled accounts still hold: what an orphan can still reach."""
        target = person if isinstance(person, Person) else self.person(person)
        columns = list(EXPOSURE_COLUMNS)
        if target is None:
            return pd.DataFrame(columns=columns)
        rows: list[dict[str, Any]] = []
        for account in target.accounts:
            if not (account.enabled or include_disabled):
                continue
            for kind, item_id, title, status in self._local.holdings(account):
                rows.append(
                    {
                        "person": target.key,
                        "portal": account.portal,
                        "learnupon_user_id": account.id,
                        "email": account.email,
                        "enabled": account.enabled,
                        "kind": kind,
                        "id": item_id,
                        "title": title,
                        "status": status,
                    }
                )
        return pd.DataFrame(rows, columns=columns)


def load_run(
    source: str | Path | SnapshotStore,
    run_id: int | None = None,
    *,
    managed_domains: Iterable[str] | None = None,
    dormant_days: int | None = None,
) -> IdentityGraph:
    """Open one run (the newest by default) of a snapshot, resolved and ready to query.

    Review settings: each argument left as None falls back to what was saved for this run
    (`IdentityGraph.save_settings` / `graph.history.save_review_settings`), then to () and 90 days.
    """
    if isinstance(source, SnapshotStore):
        store, owns = source, False
    else:
        if not Path(source).exists():
            raise FileNotFoundError(f"no snapshot at {source}")
        store, owns = SnapshotStore(source), True
    try:
        run = store.run(run_id)
        saved = load_review_settings(store, run.id) or ReviewSettings()
        settings = ReviewSettings(
            tuple(saved.managed_domains if managed_domains is None else (fold(d) for d in managed_domains)),
            saved.dormant_days if dormant_days is None else dormant_days,
            saved.exclude,
            saved.max_exception_days,
        )
        return IdentityGraph(store, run, settings, owns_store=owns)
    except BaseException:
        if owns:
            store.close()
        raise

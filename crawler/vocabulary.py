"""The words every layer shares, defined once: identity statuses and which count as disabled, user types and
which rank as privileged, finding codes and severities, and the graph's node labels and relationship types.

It sits at the bottom of the import graph (it imports nothing of ours), so the crawl, the rules, the Neo4j
model, the Cypher library's checks, the notebooks and remediation all read the same definitions — a status
added here is added everywhere. See docs/architecture.md, "Where each concept lives".
"""

from __future__ import annotations

from enum import StrEnum

# -- identities ------------------------------------------------------------------------------------------


class IdentityStatus(StrEnum):
    """What the IdP lets the person do, whatever the vendor calls it."""

    ACTIVE = "active"
    DISABLED = "disabled"
    NOT_ACTIVATED = "not_activated"
    DELETED = "deleted"


# The statuses that mean "the IdP no longer lets this person in". `not_activated` is not among them: the
# person was never let in, which is a different finding (or none).
DISABLED_STATUSES = frozenset({IdentityStatus.DISABLED, IdentityStatus.DELETED})


def is_disabled(status: str | None) -> bool:
    """A status the IdPs use for someone they no longer let in; an unknown or missing one is not."""
    return status in DISABLED_STATUSES


# -- LearnUpon user types --------------------------------------------------------------------------------

# LearnUpon's documented user types; anything else — a missing type included — ranks like an admin.
UNKNOWN_USER_TYPE = "unknown"
UNPRIVILEGED_USER_TYPES = frozenset({"learner", "instructor"})


def is_privileged(user_type: str | None) -> bool:
    """Fail-closed: only a type LearnUpon documents as unprivileged is treated as one."""
    return (user_type or UNKNOWN_USER_TYPE).casefold() not in UNPRIVILEGED_USER_TYPES


# -- findings --------------------------------------------------------------------------------------------


class Code(StrEnum):
    """Finding codes: a public contract (docs/architecture.md, "Public contracts")."""

    IDP_DISABLED_ACTIVE = "idp_disabled_active"
    NOT_IN_IDP = "not_in_idp"
    PARTIALLY_OFFBOARDED = "partially_offboarded"
    DORMANT = "dormant"
    DUPLICATE_ACCOUNT = "duplicate_account"
    ACTIVE_AFTER_OFFBOARDING = "active_after_offboarding"


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.HIGH: 1, Severity.MEDIUM: 2, Severity.LOW: 3}

# Findings whose remedy is "disable the account": the account belongs to nobody the IdPs let in. These are
# also the verdicts that rest on the IdPs, so `remediate apply` skips one whose person is active again.
REMEDIABLE = frozenset({Code.IDP_DISABLED_ACTIVE, Code.NOT_IN_IDP, Code.ACTIVE_AFTER_OFFBOARDING})

# -- the graph (networkx kinds, Neo4j labels, relationship types) ----------------------------------------

# networkx node kind -> Neo4j label
NODE_LABELS_BY_KIND = {
    "person": "Person",
    "account": "LearnUponAccount",
    "portal": "Portal",
    "group": "Group",
    "course": "Course",
    "identity": "IdPIdentity",
    "idp": "IdP",
}
FINDING_LABEL = "Finding"
RUN_LABEL = "IdgraphRun"
NODE_LABELS = (*NODE_LABELS_BY_KIND.values(), FINDING_LABEL, RUN_LABEL)
REL_TYPES = ("HAS_ACCOUNT", "IN_PORTAL", "MEMBER_OF", "ENROLLED_IN", "HAS_IDENTITY", "FROM", "HAS_FINDING")

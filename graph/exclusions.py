"""`[[review.exclude]]` rules applied to a run's accounts: known service and break-glass accounts leave the
headline, but never silently — every excluded account is counted and listed with the rule that excluded it.

Rules are matched against the account as LearnUpon has it (email as a case-insensitive glob; username and
user type case-insensitively; the portal exactly); every matcher a rule gives must match. A rule whose
`expires` date has passed at the run's start excludes nothing, and is listed as expired, so a break-glass
rule nobody renewed brings its accounts back by itself (NIST AC-2(2)).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from fnmatch import fnmatchcase
from typing import Any

from crawler.config import ExcludeRule
from graph.resolve import Account


def _same(a: str | None, b: str | None) -> bool:
    return (a or "").strip().casefold() == (b or "").strip().casefold()


def rule_expired(rule: ExcludeRule, as_of: datetime) -> bool:
    """Past its `expires` date (the rule holds through that day, UTC)."""
    if rule.expires is None:
        return False
    return as_of >= datetime.combine(rule.expires, time.max, tzinfo=UTC)


def matches(rule: ExcludeRule, account: Account) -> bool:
    """Every matcher the rule gives holds for this account."""
    if rule.portal is not None and account.portal != rule.portal:
        return False
    if rule.user_type is not None and not _same(account.user_type, rule.user_type):
        return False
    if rule.username is not None and (account.username is None or not _same(account.username, rule.username)):
        return False
    if rule.email is not None:
        email = (account.email or "").strip().casefold()
        if not email or not fnmatchcase(email, rule.email.strip().casefold()):
            return False
    return True


@dataclass(frozen=True)
class Exclusions:
    """Which accounts of one run the rules exclude, and the rules that no longer do (expired)."""

    rules: tuple[ExcludeRule, ...]
    by_account: dict[tuple[str, int], str]  # (portal, id) -> the id of the first rule that matched
    expired: tuple[str, ...]  # ids of rules past their expiry at the run's start

    @classmethod
    def of(cls, rules: Sequence[ExcludeRule], accounts: Iterable[Account], as_of: datetime) -> Exclusions:
        live = [r for r in rules if not rule_expired(r, as_of)]
        by_account: dict[tuple[str, int], str] = {}
        for account in accounts:
            rule = next((r for r in live if matches(r, account)), None)
            if rule is not None:
                by_account[account.key] = rule.id
        expired = tuple(r.id for r in rules if rule_expired(r, as_of))
        return cls(tuple(rules), by_account, expired)

    def rule_of(self, portal: str | None, user_id: int | None) -> str | None:
        """The rule that excludes this account, or None."""
        if portal is None or user_id is None:
            return None
        return self.by_account.get((portal, user_id))

    def counts(self) -> dict[str, int]:
        """Accounts excluded per rule id, every rule listed (a rule that matched nothing shows 0)."""
        out = {r.id: 0 for r in self.rules}
        for rule_id in self.by_account.values():
            out[rule_id] += 1
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One row per rule: what it matches, why, until when, and how many accounts it excluded."""
        counts = self.counts()
        return [
            {
                "rule": r.id,
                "reason": r.reason,
                "email": r.email,
                "username": r.username,
                "portal": r.portal,
                "user_type": r.user_type,
                "expires": r.expires.isoformat() if r.expires else None,
                "state": "expired" if r.id in self.expired else "in force",
                "accounts": counts[r.id],
            }
            for r in self.rules
        ]

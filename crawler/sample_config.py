"""`idgraph init`: a commented sample config that validates as written, so a new user edits instead of
guessing. Every key it shows is in the README's configuration reference."""

from __future__ import annotations

SAMPLE_CONFIG = """\
# idgraph config. Secrets never go in this file: each *_env key names an environment variable.
# Every key, with its default: README.md, "Configuration reference".

[review]
managed_domains = ["example.com"]   # emails here must exist in an IdP (else: not_in_idp)
dormant_days = 90                   # no sign-in for this many days (or never): dormant
# max_exception_days = 365          # the longest exception `idgraph review import` accepts
# [[review.exclude]]                # a known service or break-glass account: listed, never in the headline
# id = "break-glass"
# reason = "sealed emergency admin, owned by IT security"
# email = "breakglass-*@example.com"  # or username, portal, user_type (every one given must match)
# expires = 2026-12-31

# [crawl]
# crawl_deadline_seconds = 3600     # unfinished sources end incomplete after this long

# [remediation]
# key_env = "IDGRAPH_REMEDIATION_KEY"   # authenticates remediation plans and the audit log
# plan_max_age_hours = 72

[[portals]]
name = "emea"
base_url = "https://example-emea.learnupon.com"   # https; plain http only for loopback hosts
username_env = "LU_EMEA_USERNAME"                # Settings > Integrations > API: the API username
password_env = "LU_EMEA_PASSWORD"                # ... and the API key
# requests_per_minute = 300
# budget_share = 0.8                # leave the rest of the minute budget to the portal's other integrations

[[idps]]
name = "okta"
type = "okta"                       # okta | entra | google | scim | csv
base_url = "https://example.okta.com"
token_env = "OKTA_API_TOKEN"        # an SSWS token with read access to users

# [[idps]]
# name = "entra"
# type = "entra"
# tenant_id = "00000000-0000-0000-0000-000000000000"
# client_id = "00000000-0000-0000-0000-000000000000"
# client_secret_env = "ENTRA_CLIENT_SECRET"

# [[idps]]
# name = "hr"
# type = "csv"
# path = "hr-export.csv"
# columns = { id = "employee_id", email = "work_email", status = "state" }
# active_values = ["active"]
# disabled_values = ["terminated", "leave"]
"""

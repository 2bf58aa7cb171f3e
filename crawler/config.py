"""The TOML config: portals, IdPs and review settings, validated before anything touches the network.

Secrets never live in the file: it names environment variables, and `load_config` resolves them into
`SecretStr` values that only the HTTP layer unwraps. Every validation failure becomes a line naming the
offending field, and one `ConfigError` carries all of them (schema errors and unset environment variables
alike), so a new user fixes a config in one pass and `idgraph crawl` exits 2 having written nothing.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from crawler.redact import REDACTOR


class ConfigError(ValueError):
    """The config's problems, each one line that names its field; one problem reads as that line."""

    def __init__(self, *problems: str) -> None:
        self.problems = tuple(problems)
        if len(problems) == 1:
            super().__init__(problems[0])
        else:
            super().__init__(f"{len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems))


def is_loopback_host(host: str | None) -> bool:
    """True for localhost and loopback addresses: the only hosts where plain http is allowed."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_base_url(url: str) -> str:
    """Accept https anywhere and http only on loopback; strip the trailing slash. Credentials in the URL
    are refused without being echoed."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "must not carry credentials (user:password@host); secrets go in environment variables "
            "(the URL is not shown)"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL, got {url!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(f"plain http is only allowed for loopback hosts, use https for {parts.hostname}")
    return url.rstrip("/")


def check_api_root(url: str) -> str:
    """A base URL for an API that idgraph appends `/api/v1` to: one pasted with it already (from the
    vendor's docs) would crawl `/api/v1/api/v1/users`, so the suffix is stripped, with a warning."""
    url = check_base_url(url)
    if url.casefold().endswith("/api/v1"):
        stripped = url[: -len("/api/v1")]
        logging.getLogger("idgraph.config").warning(
            "base_url %s ends in /api/v1, which idgraph adds itself; using %s", url, stripped
        )
        return stripped
    return url


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExcludeRule(_Strict):
    """`[[review.exclude]]`: known service and break-glass accounts, out of the findings but never out of
    sight — every report counts and lists what a rule excluded, under the rule's id (graph.exclusions).

    Every matcher given must match (email is a case-insensitive glob; the others exact, case-insensitive
    but the portal name); a rule past `expires` (a date, UTC) excludes nothing and the report says so.
    """

    id: str = Field(min_length=1, max_length=80)
    reason: str = Field(min_length=1, max_length=500)
    email: str | None = None
    username: str | None = None
    portal: str | None = None
    user_type: str | None = None
    expires: date | None = None

    @model_validator(mode="after")
    def _matches_something(self) -> ExcludeRule:
        if not any((self.email, self.username, self.portal, self.user_type)):
            raise ValueError(
                f"rule {self.id!r} matches every account: give email, username, portal or user_type"
            )
        return self


class ReviewConfig(_Strict):
    managed_domains: list[str] = Field(default_factory=list)
    dormant_days: int = Field(default=90, ge=1)
    exclude: list[ExcludeRule] = Field(default_factory=list)
    max_exception_days: int = Field(default=365, ge=1, le=3660)

    @field_validator("managed_domains")
    @classmethod
    def _casefold_domains(cls, domains: list[str]) -> list[str]:
        return [d.strip().casefold().lstrip("@") for d in domains if d.strip()]

    @field_validator("exclude")
    @classmethod
    def _unique_rule_ids(cls, rules: list[ExcludeRule]) -> list[ExcludeRule]:
        ids = [r.id for r in rules]
        if twice := sorted({i for i in ids if ids.count(i) > 1}):
            raise ValueError(f"rule id {twice[0]!r} is used twice: each rule needs its own id")
        return rules


class CrawlConfig(_Strict):
    """Tuning shared by every source; the defaults suit real portals."""

    request_timeout_seconds: float = Field(default=60.0, gt=0)
    connect_timeout_seconds: float = Field(default=15.0, gt=0)
    max_concurrency_per_source: int = Field(default=8, ge=1, le=64)
    # Against a hostile or broken source: each limit, when hit, ends that source incomplete with a reason.
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, description="per response, decompressed")
    max_pages_per_listing: int = Field(default=100_000, ge=1)
    max_pages_without_new: int = Field(default=20, ge=1, description="pages in a row with no new record")
    max_retry_after_seconds: float = Field(default=300.0, gt=0, description="Retry-After is clamped to this")
    crawl_deadline_seconds: float | None = Field(default=None, gt=0, description="unfinished sources stop")


class PortalConfig(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    base_url: str
    username_env: str
    password_env: str
    requests_per_minute: int = Field(default=300, ge=1, description="hard ceiling per rate window")
    rate_window_seconds: float = Field(
        default=60.0,
        gt=0,
        description="the portal's rate window: 60 s on LearnUpon, shorter for the simulator",
    )
    budget_share: float = Field(default=0.8, gt=0, le=1, description="share of the minute budget we may use")
    weekly_reserve: int = Field(default=50_000, ge=0, description="stop before the week budget drops below")
    username: SecretStr | None = Field(default=None, exclude=True)
    password: SecretStr | None = Field(default=None, exclude=True)

    _check_url = field_validator("base_url")(classmethod(lambda cls, v: check_api_root(v)))


class _IdPBase(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    requests_per_minute: int = Field(default=600, ge=1)


class OktaConfig(_IdPBase):
    type: Literal["okta"]
    base_url: str
    token_env: str
    auth_scheme: Literal["SSWS", "Bearer"] = "SSWS"
    max_concurrency: int = Field(default=2, ge=1, le=10, description="Okta's concurrency limit is org-wide")
    token: SecretStr | None = Field(default=None, exclude=True)

    _check_url = field_validator("base_url")(classmethod(lambda cls, v: check_api_root(v)))


class EntraConfig(_IdPBase):
    type: Literal["entra"]
    tenant_id: str
    client_id: str
    client_secret_env: str
    login_url: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com"
    client_secret: SecretStr | None = Field(default=None, exclude=True)

    _check_urls = field_validator("login_url", "graph_url")(classmethod(lambda cls, v: check_base_url(v)))


class GoogleConfig(_IdPBase):
    type: Literal["google"]
    key_file: Path = Field(description="service-account JSON key with domain-wide delegation")
    subject: str = Field(description="the admin to impersonate")
    base_url: str = "https://admin.googleapis.com"
    customer: str = "my_customer"

    _check_url = field_validator("base_url")(classmethod(lambda cls, v: check_base_url(v)))


class ScimConfig(_IdPBase):
    type: Literal["scim"]
    base_url: str
    token_env: str
    page_size: int = Field(default=100, ge=1, le=1000)
    token: SecretStr | None = Field(default=None, exclude=True)

    _check_url = field_validator("base_url")(classmethod(lambda cls, v: check_base_url(v)))


class CsvColumns(_Strict):
    id: str = "id"
    email: str = "email"
    status: str = "status"
    aliases: str | None = None
    status_changed_at: str | None = None
    last_login: str | None = None


class CsvConfig(_IdPBase):
    type: Literal["csv"]
    path: Path
    columns: CsvColumns = Field(default_factory=CsvColumns)
    active_values: list[str] = Field(default_factory=lambda: ["active", "enabled", "true"])
    disabled_values: list[str] = Field(
        default_factory=lambda: ["disabled", "inactive", "terminated", "false"]
    )
    not_activated_values: list[str] = Field(default_factory=lambda: ["pending", "staged"])


class RemediationConfig(_Strict):
    """`[remediation]`: the key that authenticates plans and audit entries, named by an env var."""

    key_env: str | None = None
    plan_max_age_hours: int = Field(default=72, ge=1, le=24 * 90)
    key: SecretStr | None = Field(default=None, exclude=True)


class _AlertBase(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")


class JsonLinesAlert(_AlertBase):
    """One JSON object per line, appended to a file (or written to stdout) for a SIEM to ship."""

    type: Literal["jsonl"]
    path: str = Field(default="-", min_length=1, description='a file, or "-" for stdout')


class WebhookAlert(_AlertBase):
    """A POST of the alert's JSON, signed with HMAC-SHA256 over `timestamp + "." + body`."""

    type: Literal["webhook"]
    url: str
    secret_env: str
    timeout_seconds: float = Field(default=10.0, gt=0)
    secret: SecretStr | None = Field(default=None, exclude=True)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        check_base_url(url)  # https, or http on loopback; no credentials in it
        return url


class SlackAlert(_AlertBase):
    """A Slack-compatible incoming webhook. Its URL is the credential, so the file names its env var."""

    type: Literal["slack"]
    url_env: str
    timeout_seconds: float = Field(default=10.0, gt=0)
    url: SecretStr | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _check_url(self) -> SlackAlert:
        if self.url is not None:
            try:
                check_base_url(self.url.get_secret_value())
            except ValueError:
                raise ValueError(
                    f"url_env: the URL in {self.url_env} must be https (http only on loopback), without "
                    "credentials in it (the URL is not shown)"
                ) from None
        return self


AlertConfig = Annotated[JsonLinesAlert | WebhookAlert | SlackAlert, Field(discriminator="type")]
ALERT_TYPES: dict[str, type[_AlertBase]] = {
    "jsonl": JsonLinesAlert,
    "webhook": WebhookAlert,
    "slack": SlackAlert,
}


class WatchConfig(_Strict):
    """`[watch]`: what `idgraph watch` does beyond reading the IdPs' change feeds."""

    interval_seconds: float = Field(default=60.0, ge=1, description="between rounds; --interval overrides it")
    remediation_log: Path | None = Field(
        default=None, description="audit log of `remediate apply`: alert when LearnUpon re-enables those"
    )


@dataclass(frozen=True)
class IdpType:
    """One IdP `type` of the config, and everything else that knows it — the one place a vendor is added.

    `source` and `fake` are dotted paths, imported on first use: the config must not import the network
    code, and an Okta-only run loads no JWT library.
    """

    config: type[_IdPBase]
    source: str  # module with `open_source(cfg, connector, crawl_config)` (crawler.idp)
    fake: str | None  # "module:Class" of the faithful fake server (crawler.idp.fakes); None for a file
    secrets: tuple[tuple[str, str], ...] = ()  # (env-var field, secret field it fills)
    lookup_by_email: bool = False  # `remediate apply` can re-check a person in it (remediation.idp_check)
    feed: str | None = None  # module with `open_feed(cfg, connector, crawl_config)` (crawler.feeds); None:
    # the IdP publishes no change feed, and only the daily crawl sees its changes


IDP_TYPES: dict[str, IdpType] = {
    "okta": IdpType(
        OktaConfig,
        "crawler.idp.okta",
        "crawler.idp.fakes.okta:OktaFake",
        (("token_env", "token"),),
        True,
        feed="crawler.feeds.okta_log",
    ),
    "entra": IdpType(
        EntraConfig,
        "crawler.idp.entra",
        "crawler.idp.fakes.entra:EntraFake",
        (("client_secret_env", "client_secret"),),
        feed="crawler.feeds.graph_delta",
    ),
    "google": IdpType(
        GoogleConfig,
        "crawler.idp.google",
        "crawler.idp.fakes.google:GoogleFake",
        feed="crawler.feeds.google_reports",
    ),
    "scim": IdpType(
        ScimConfig, "crawler.idp.scim", "crawler.idp.fakes.scim:ScimFake", (("token_env", "token"),)
    ),
    "csv": IdpType(CsvConfig, "crawler.idp.csv_source", None),
}

# The union pydantic validates `[[idps]]` with; spelled out for the type checker, and held to the
# registry at import time so a vendor cannot be half-added.
IdPConfig = Annotated[
    OktaConfig | EntraConfig | GoogleConfig | ScimConfig | CsvConfig, Field(discriminator="type")
]
if set(get_args(get_args(IdPConfig)[0])) != {t.config for t in IDP_TYPES.values()}:
    raise RuntimeError("crawler.config: IdPConfig and IDP_TYPES name different IdP config classes")

# For each config class: the env-var field and the secret field it fills.
_SECRET_FIELDS: dict[type[BaseModel], list[tuple[str, str]]] = {
    PortalConfig: [("username_env", "username"), ("password_env", "password")],
    **{t.config: list(t.secrets) for t in IDP_TYPES.values() if t.secrets},
    WebhookAlert: [("secret_env", "secret")],
    SlackAlert: [("url_env", "url")],
}


class Config(_Strict):
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    crawl: CrawlConfig = Field(default_factory=CrawlConfig)
    portals: list[PortalConfig] = Field(default_factory=list)
    idps: list[IdPConfig] = Field(default_factory=list)
    remediation: RemediationConfig = Field(default_factory=RemediationConfig)
    watch: WatchConfig = Field(default_factory=WatchConfig)
    alerts: list[AlertConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        sinks: dict[str, int] = {}
        for index, alert in enumerate(self.alerts):
            if alert.name in sinks:
                first = sinks[alert.name]
                raise ValueError(
                    f"alerts[{index}].name: duplicate sink name {alert.name!r} (alerts[{first}])"
                )
            sinks[alert.name] = index
        seen: dict[str, str] = {}
        for kind, items in (("portals", self.portals), ("idps", self.idps)):
            for index, item in enumerate(items):
                if item.name in seen:
                    raise ValueError(
                        f"{kind}[{index}].name: duplicate source name {item.name!r} "
                        f"(already used by {seen[item.name]})"
                    )
                seen[item.name] = f"{kind}[{index}]"
        if not self.portals and not self.idps:
            raise ValueError("portals: the config names no portal and no IdP; nothing to crawl")
        return self

    def source_names(self) -> list[str]:
        return [p.name for p in self.portals] + [i.name for i in self.idps]


def _field_path(loc: tuple[Any, ...]) -> str:
    """Render a pydantic error location as `portals[1].base_url`, dropping union tags."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif (part in IDP_TYPES and out.startswith("idps")) or (
            part in ALERT_TYPES and out.startswith("alerts")
        ):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _resolve_secrets(raw: dict[str, Any], env: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    """Fill the secret fields from the environment variables the file names; each problem is appended to
    `problems`, so an unset variable is reported beside every other mistake in the file."""
    resolved = dict(raw)
    for kind, cls_for in (
        ("portals", lambda _: PortalConfig),
        ("idps", _idp_class),
        ("alerts", _alert_class),
    ):
        items = []
        for index, item in enumerate(resolved.get(kind) or []):
            if not isinstance(item, dict):
                items.append(item)
                continue
            item = dict(item)
            config_class = cls_for(item)
            secret_fields = _SECRET_FIELDS.get(config_class, []) if config_class is not None else []
            for env_field, secret_field in secret_fields:
                if secret_field in item:
                    problems.append(
                        f"{kind}[{index}].{secret_field}: secrets never go in the config file; "
                        f"set {env_field} to the name of an environment variable"
                    )
                    del item[secret_field]  # never validated, so never echoed
                    continue
                var = item.get(env_field)
                if not isinstance(var, str) or not var:
                    continue  # pydantic reports the missing/invalid field itself
                if not _ENV_NAME.match(var):
                    # Likely a secret pasted where its variable's name belongs: never echo it.
                    problems.append(
                        f"{kind}[{index}].{env_field}: must be the NAME of an environment variable "
                        "(letters, digits and _, not starting with a digit); the value given is not shown"
                    )
                    continue
                value = env.get(var)
                if not value:
                    problems.append(f"{kind}[{index}].{env_field}: environment variable {var} is not set")
                    continue
                item[secret_field] = value
            items.append(item)
        if kind in resolved:
            resolved[kind] = items
    return _resolve_remediation_key(resolved, env, problems)


def _resolve_remediation_key(
    resolved: dict[str, Any], env: Mapping[str, str], problems: list[str]
) -> dict[str, Any]:
    """`[remediation] key_env`: the same rules as every other secret (never in the file, must be set)."""
    table = resolved.get("remediation")
    if not isinstance(table, dict):
        return resolved
    if "key" in table:
        problems.append(
            "remediation.key: secrets never go in the config file; "
            "set key_env to the name of an environment variable"
        )
        resolved["remediation"] = table = {k: v for k, v in table.items() if k != "key"}
    var = table.get("key_env")
    if isinstance(var, str) and var:
        if not env.get(var):
            problems.append(f"remediation.key_env: environment variable {var} is not set")
        else:
            resolved["remediation"] = {**table, "key": env[var]}
    return resolved


def _idp_class(item: dict[str, Any]) -> type[BaseModel] | None:
    kind = IDP_TYPES.get(str(item.get("type")))
    return None if kind is None else kind.config


def _alert_class(item: dict[str, Any]) -> type[BaseModel] | None:
    return ALERT_TYPES.get(str(item.get("type")))


def parse_config(raw: dict[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Validate a parsed TOML document; raise one ConfigError naming every bad field."""
    env = os.environ if env is None else env
    problems: list[str] = []
    resolved = _resolve_secrets(raw, env, problems)
    try:
        config = Config.model_validate(resolved)
    except ValidationError as exc:
        problems += [_problem(error) for error in exc.errors()]
    if problems:
        raise ConfigError(*dict.fromkeys(problems))  # each once, in the file's order
    register_secrets(config)
    return config


def _problem(error: Any) -> str:
    """One pydantic error as `field: what is wrong`."""
    where = _field_path(error["loc"]) or "config"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        where = f"{where}.type"
    if message.startswith(f"{where}:") or ("[" in message.split(":")[0] and ":" in message):
        return message  # a model validator already named the field
    if "[" in where and re.match(r"^[a-z_]+: ", message):  # a table's check that names its own key
        return f"{where}.{message}"
    return f"{where}: {message}"


def register_secrets(config: Config) -> None:
    """Every secret the config resolved, and its derived forms, into the process-wide redactor."""
    for portal in config.portals:
        REDACTOR.add_basic(
            portal.username.get_secret_value() if portal.username else None,
            portal.password.get_secret_value() if portal.password else None,
        )
    for idp in config.idps:
        for name in ("token", "client_secret"):
            value = getattr(idp, name, None)
            if isinstance(value, SecretStr):
                REDACTOR.add(value.get_secret_value())
    for alert in config.alerts:
        for name in ("secret", "url"):
            value = getattr(alert, name, None)
            if isinstance(value, SecretStr):
                REDACTOR.add(value.get_secret_value())


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config: {path} is not valid TOML: {exc}") from None


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a TOML config file."""
    return parse_config(_read_toml(path), env)


def load_review_config(path: Path) -> ReviewConfig:
    """Only the `[review]` table of a config file: what offline commands (report, export) need.

    Nothing else is validated and no secret is resolved, so a reviewer can point `report --config` and
    `export neo4j --config` at the crawl's config without its credentials; both read it the same way.
    """
    try:
        return ReviewConfig.model_validate(_read_toml(path).get("review", {}))
    except ValidationError as exc:
        raise ConfigError(*(_problem({**e, "loc": ("review", *e["loc"])}) for e in exc.errors())) from None

"""The remediation key: one secret that authenticates plans and audit entries (HMAC-SHA256).

A plain hash proves nothing: whoever edits a plan or appends to the log can recompute it. A MAC under a key
that only the people allowed to plan and apply hold can not be recomputed by anyone else. The key comes
from an environment variable — named by `[remediation] key_env` in the config, or by `--key-env` — and is
never printed, logged or written anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from crawler.config import Config

MIN_KEY_BYTES = 16


class KeyMissing(ValueError):
    """No usable key; the message names the variable or config field to set, never the value."""


def resolve_key(config: Config | None, key_env: str | None = None) -> bytes:
    """The key from `--key-env VAR` if given, else from the config's `[remediation] key_env`."""
    if key_env:
        value = os.environ.get(key_env)
        if not value:
            raise KeyMissing(f"--key-env: environment variable {key_env} is not set")
        where = f"environment variable {key_env}"
    elif config is not None and config.remediation.key is not None:
        value = config.remediation.key.get_secret_value()
        where = f"environment variable {config.remediation.key_env}"
    else:
        raise KeyMissing(
            "no remediation key: set [remediation] key_env in the config (or pass --key-env VAR) "
            "to an environment variable holding the key"
        )
    key = value.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise KeyMissing(f"the remediation key in {where} is shorter than {MIN_KEY_BYTES} bytes")
    return key


def mac(key: bytes, content: bytes) -> str:
    """HMAC-SHA256 of `content`, hex."""
    return hmac.new(key, content, hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two MACs or hashes (exact: no prefix, no case folding)."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))

"""What a directory's 401/403 most likely means, said where the coverage row shows it.

Every vendor refuses a request with the same bare status; what to fix differs (a Graph permission, Google's
domain-wide delegation, an Okta or SCIM token). A refused token request (`TokenRefused`) already says what
was wrong with the credentials, so it passes through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from crawler.errors import AuthError
from crawler.idp.tokens import TokenRefused


@contextmanager
def auth_hint(hint: Callable[[], str]) -> Iterator[None]:
    """Append `hint()` (read when the error happens) to an AuthError raised inside the block."""
    try:
        yield
    except TokenRefused:
        raise
    except AuthError as exc:
        raise AuthError(f"{exc}; {hint()}", status=exc.status) from None

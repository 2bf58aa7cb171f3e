"""Find one person's accounts in a portal: `GET /users/search?email=`, one address, one request.

For the watcher: a person the IdP just disabled is looked up in every portal instead of crawling it.
A 404 or an empty `user` list means no account holds *that address* (LearnUpon's docs do not say which
one it sends). Never `GET /users?email=`: `/users` ignores filters it does not know and answers the whole
roster. `/users/search` is trusted no further: every record must hold the address asked for
(case-insensitively), or the search was not applied and nothing can be concluded — a failed lookup,
never "absent". A record that cannot be read fails the lookup too, rather than passing for "not there".
One request per address: without `LU-Has-Next-Page`, a page shorter than any page size LearnUpon uses is
the last one, so no empty page is fetched to prove it.
"""

from __future__ import annotations

from pydantic import ValidationError

from crawler.errors import NotFoundError, SourceError
from crawler.http import SourceHttp
from crawler.learnupon.dialect import USERS, parse_user
from crawler.learnupon.paging import iterate_pages
from crawler.records import LUUser

PURPOSE = "user_lookup"
SMALLEST_PAGE = 50  # the smallest page size LearnUpon is known to use (the seed's); the real API uses 500


async def find_accounts(http: SourceHttp, base_url: str, email: str) -> list[LUUser]:
    """The portal's accounts whose email is `email` (casefolded); [] when none holds it."""
    wanted = email.strip().casefold()
    if not wanted or any(c.isspace() for c in wanted):
        raise SourceError(f"{http.name}: cannot look up an empty address or one with spaces")
    url = f"{base_url.rstrip('/')}/api/v1/users/search"
    found: list[LUUser] = []
    pages = 0
    try:
        async for page in iterate_pages(http, url, {"email": email.strip()}, USERS, purpose=PURPOSE):
            pages += 1
            for raw in page.records:
                try:
                    user = parse_user(raw)
                except (ValidationError, ValueError, TypeError) as exc:
                    raise SourceError(
                        f"{http.name}: an account the search returned cannot be read "
                        f"({type(exc).__name__}); the lookup is incomplete"
                    ) from None
                if (user.email or "").strip().casefold() != wanted:
                    raise SourceError(
                        f"{http.name}: /users/search returned an account with another address; the "
                        "search was not applied, so the lookup proves nothing"
                    )
                found.append(user)
            if page.has_next_header is None and len(page.records) < SMALLEST_PAGE:
                break  # no header (the seed's dialect): a page this short cannot be followed by another
    except NotFoundError:
        if pages:  # a 404 after a page was read is a failure, not an answer
            raise
        return []
    return found

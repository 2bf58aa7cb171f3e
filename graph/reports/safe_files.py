"""Owner-only report files: reports name people and their access, so nobody else on the host reads them.

The writing itself is `crawler.private` (plans, audit logs and the snapshot use it too); this module names
it for the report writers.
"""

from __future__ import annotations

from crawler.private import make_private_dirs, write_private

ensure_private_dir = make_private_dirs

__all__ = ["ensure_private_dir", "write_private"]

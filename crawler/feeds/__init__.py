"""Change feeds: what the IdPs and LearnUpon publish about changes, read from a stored cursor.

A full crawl is the ground truth; the feeds only bring detection forward. None of them is exactly-once or
guaranteed complete (../shared/reference/change-feeds.md), so every item a feed yields is a *state
assertion* ("this identity is disabled, as of this time"), de-duplicated by its key, and a feed's cursor is
saved only after what it yielded was processed. `events.py` holds the shapes every feed hands the watcher.
"""

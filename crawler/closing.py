"""`with X(...) as x:` for the snapshot's owners: leaving the block closes, error or not."""

from __future__ import annotations

from typing import Self


class ClosedOnExit:
    """Mix in to a class with a `close()`: the `with` block hands back the object and closes it on leaving."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

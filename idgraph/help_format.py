"""`--help` that shows a flag as a flag: `--quiet`, not `--quiet <bool>`.

Typer's rich renderer (0.29) prints a type after every option, flags included (`--help <bool>`); its
plain renderer does not. A flag takes no value, so no type is shown: `TyperOption.display_type_rich`
answers None for flags, which the rich renderer already handles (an empty type cell). Applied when
`idgraph.cli` is imported; `tests/test_cli_help.py` checks every command under both renderers.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperOption

_original = TyperOption.display_type_rich


def _display_type_rich(self: TyperOption, ctx: Any) -> str | None:
    if self.is_flag and not self.count:
        return None
    return _original(self, ctx)


def show_flags_as_flags() -> None:
    """Install the fix (idempotent)."""
    TyperOption.display_type_rich = _display_type_rich  # type: ignore[method-assign]  # the fix itself

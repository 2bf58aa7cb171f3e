"""Text from a source, for a terminal: never markup, never a control sequence.

A server's error message, an email or a display name is data. Printed through rich as markup, `[/bold]`
crashes the print and `[link=…]` becomes a clickable link; printed raw, an ESC sequence drives the
terminal. `plain` makes such a string a rich `Text` (no markup parsing) with every C0/C1 control
character (and DEL) shown as a visible `\\xNN` escape; `escaped` does the same for a string that is
interpolated into markup. `readable` lays a result table out for 80 columns.
"""

from __future__ import annotations

import re

from rich import box
from rich.markup import escape
from rich.table import Table
from rich.text import Text

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def visible(text: object) -> str:
    """`text` as a string with C0/C1 control characters replaced by `\\xNN` escapes."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def plain(text: object, style: str = "") -> Text:
    """A rich `Text` of source-derived `text`: markup is not interpreted, control characters escaped."""
    return Text(visible(text), style=style)


def escaped(text: object) -> str:
    """Source-derived `text` for interpolation into a markup string."""
    return escape(visible(text))


def readable(table: Table) -> Table:
    """`table` laid out to stay whole at 80 columns (a pipe, a file, a cron mail, a narrow terminal): no box,
    one blank between columns, and a cell too long for its column folds onto the next line instead of being
    cut to "…" (a header cut to "comple…" or an email cut short is worse than a taller table)."""
    table.box = box.SIMPLE_HEAD
    table.show_edge = False
    table.pad_edge = False
    table.collapse_padding = True
    for column in table.columns:
        if column.overflow == "ellipsis":
            column.overflow = "fold"
    return table

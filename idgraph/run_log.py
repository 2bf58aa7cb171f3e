"""What a command tells its operator besides its result, and the one summary event a scheduler reads.

A command's result goes to stdout; everything else — progress, log lines, errors — goes to stderr, as
text for a person or, with `--log-format json`, as one JSON object per line for a scheduler. A long
command runs inside `command_log(...)`: whatever way it ends (done, incomplete, bad usage, snapshot
error, Ctrl-C, a crash), the last JSON line is exactly one `"event": "summary"` with the exit code and
what the command learnt on the way (`record_*`). The README lists the fields ("Logs for schedulers").

New commands use it the same way:

    with command_log("watch", log_format, quiet) as run:
        ...
        run.record_coverage(result.coverage)
        raise typer.Exit(code)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, RenderableType

from crawler.logs import setup_logging
from crawler.terminal import escaped, plain
from crawler.vocabulary import Code

if TYPE_CHECKING:
    from crawler.coverage import SourceCoverage
    from graph.model import FindingSet

SUMMARY_EVENT = "summary"
EXIT_CRASHED = 1  # an uncaught exception: Python's own exit code for it


class LogFormat(StrEnum):
    text = "text"
    json = "json"


LogFormatOpt = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        case_sensitive=False,
        help="text (for people) or json (one object per line on stderr, ending with a summary event).",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display; warnings only.")]

_errors = Console(stderr=True)
_events = logging.getLogger("idgraph.events")  # errors and the summary: shown whatever --quiet says


@dataclass
class CommandLog:
    """One command's log format and the summary it ends with; `record_*` fills the summary as it runs."""

    command: str
    log_format: LogFormat = LogFormat.text
    fields: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> bool:
        return self.log_format is LogFormat.json

    def record(self, **fields: Any) -> None:
        """Add command-specific fields to the summary (run_id, counts, a plan hash…)."""
        self.fields.update(fields)

    def record_coverage(self, coverage: Iterable[SourceCoverage]) -> None:
        """The run's sources and whether every one of them was read completely."""
        sources = [
            {"source": c.source, "kind": c.kind, "complete": c.complete, "error": c.error} for c in coverage
        ]
        self.record(sources=sources, complete=all(s["complete"] for s in sources))

    def record_findings(self, findings: FindingSet) -> None:
        """Findings by code, every code present: a count, or null where the verdict was withheld for
        everyone (a withheld count is never 0); what was withheld where, and where findings may be
        missing."""
        withheld_for_all = findings.withheld()
        counts: dict[str, int | None] = {code.value: 0 for code in Code}
        for finding in findings.findings:
            counts[finding.code.value] = (counts[finding.code.value] or 0) + 1
        for code in withheld_for_all:
            counts[code.value] = None
        self.record(
            run_id=findings.run_id,
            findings=counts,
            withheld=[
                {"code": u.code.value, "scope": u.scope, "reason": u.reason} for u in findings.unavailable
            ],
            recall_gaps=[{"code": g.code.value, "portal": g.portal} for g in findings.recall_gaps],
        )

    def error(self, message: str, **fields: Any) -> None:
        """One error line on stderr: `idgraph: …` for a person, an `error` event for a scheduler."""
        self.fields.setdefault("error", message)
        if self.json:
            _events.error(message, extra={"event": "error", **fields})
        else:
            shown = "\n".join(escaped(line) for line in message.splitlines())  # control characters shown
            _errors.print(f"[bold red]idgraph:[/] {shown}", highlight=False, soft_wrap=True)

    def info(self, message: str, **fields: Any) -> None:
        """A note for the operator (stderr), whole on one line; an `info` event for a scheduler."""
        if self.json:
            _events.info(message, extra=fields)
        else:
            _errors.print(plain(message), highlight=False, soft_wrap=True)

    def show(self, renderable: RenderableType) -> None:
        """What a person reads before answering a prompt (a table of what will change): stderr, text only;
        a scheduler has the plan file and the summary instead."""
        if not self.json:
            _errors.print(renderable)

    def notice(self, message: str, **fields: Any) -> None:
        """A warning for the operator (stderr), whole on one line; a `warning` event for a scheduler."""
        if self.json:
            _events.warning(message, extra=fields)
        else:
            _errors.print(plain(message, style="yellow"), highlight=False, soft_wrap=True)

    def summary(self, exit_code: int) -> None:
        if not self.json:
            return  # a person reads the result itself; the summary is for schedulers
        fields = {
            "event": SUMMARY_EVENT,
            "command": self.command,
            "exit_code": exit_code,
            "run_id": None,
            "complete": None,
            **self.fields,
            "seconds": round(time.monotonic() - self.started, 3),
        }
        _events.info("%s finished: exit %d", self.command, exit_code, extra=fields)


_active: CommandLog | None = None


def fail(message: str, exit_code: int, **fields: Any) -> typer.Exit:
    """Report an error in the running command's log format; `raise fail(...)` ends the command."""
    (_active or CommandLog("idgraph")).error(message, **fields)
    return typer.Exit(exit_code)


@contextmanager
def command_log(
    command: str, log_format: LogFormat = LogFormat.text, quiet: bool = False
) -> Iterator[CommandLog]:
    """Route logging for this command and end it with one summary event, however it ends."""
    global _active
    setup_logging(log_format.value, quiet)
    _events.setLevel(logging.INFO)
    run = _active = CommandLog(command, log_format)
    code = EXIT_CRASHED
    try:
        yield run
        code = 0
    except typer.Exit as exc:  # the command chose its exit code
        code = exc.exit_code
        raise
    except KeyboardInterrupt:
        code = 130
        raise
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_CRASHED
        raise
    except BaseException as exc:
        run.fields.setdefault("error", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        run.summary(code)
        _active = None

"""Every command's `--help`, under typer's rich and plain renderers, with TERM=dumb and not on a terminal:
flags shown as flags (`--quiet`, never `--quiet <bool>`), no markup eaten or shown escaped (`[review]`
once vanished, `\\[remediation]` once showed its backslash), every option explained, every command with
an example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
import typer
import typer.core
from typer.testing import CliRunner

from idgraph.cli import app

BOX = re.compile(r"[│╭╮╰╯─┃━]")


def commands() -> Iterator[tuple[list[str], typer.core.TyperCommand | typer.core.TyperGroup]]:
    """(path, command) for the root, every group and every command under it."""
    root = typer.main.get_command(app)
    stack: list[tuple[list[str], object]] = [([], root)]
    while stack:
        path, command = stack.pop()
        yield path, command  # type: ignore[misc]
        for name, sub in getattr(command, "commands", {}).items():
            stack.append(([*path, name], sub))


ALL = sorted((path for path, _ in commands()), key=" ".join)


def render(path: list[str], *, renderer: str, monkeypatch: pytest.MonkeyPatch) -> str:
    if renderer == "plain":
        monkeypatch.setattr(typer.core, "HAS_RICH", False)  # what TYPER_USE_RICH=0 selects
    env = {"COLUMNS": "80", **({"TERM": "dumb"} if renderer == "rich, TERM=dumb" else {})}
    result = CliRunner().invoke(app, [*path, "--help"], env=env)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("renderer", ["rich", "rich, TERM=dumb", "plain"])
@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "idgraph")
def test_help_shows_flags_as_flags_and_every_word_of_every_help_text(
    path: list[str], renderer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = render(path, renderer=renderer, monkeypatch=monkeypatch)
    command = dict((" ".join(p), c) for p, c in commands())[" ".join(path)]
    words = " ".join(BOX.sub(" ", text).split())

    assert "<bool>" not in text and "BOOLEAN" not in text
    assert "\\[" not in text, "an escaped bracket shows its backslash"
    assert "Example" in text, "every --help shows an example"
    for param in command.params:
        if param.name == "help":
            continue
        assert param.help, f"{param.name} has no help text"
        shown = param.help.replace("`", "")  # markdown shows `code` without its backticks
        assert " ".join(shown.split()[:3]) in words.replace("`", ""), (param.name, param.help)
        if isinstance(param, typer.core.TyperOption) and param.is_flag:
            for line in text.splitlines():
                cells = BOX.sub(" ", line).split()
                if param.opts[0] in cells:
                    after = cells[cells.index(param.opts[0]) + 1 :]
                    assert not after or not after[0].startswith("<"), line  # no type after a flag
                    assert not any(cell.startswith("<") and cell.endswith(">") for cell in after[:2]), line


def test_the_installed_entry_point_shows_flags_as_flags_when_piped() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "idgraph", "crawl", "--help"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "80", "TERM": "dumb"},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    quiet = next(line for line in shown.stdout.splitlines() if "--quiet" in line)
    assert "<bool>" not in shown.stdout and "<" not in quiet.split("--quiet")[1].split("No progress")[0]

"""The rich consoles every command prints through (stdout for results, stderr for errors)."""

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def say(line: str) -> None:
    """One plain line on stdout: no markup, no highlighting, never wrapped (paths and messages stay whole)."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)

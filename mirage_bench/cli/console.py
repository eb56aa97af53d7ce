"""The rich consoles every command prints through (stdout for results, stderr for errors)."""

from rich.console import Console

console = Console()
err_console = Console(stderr=True)

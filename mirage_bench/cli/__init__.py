"""The ``mirage-bench`` command line: a thin Typer layer over the library.

Each command parses its options, builds a configuration and calls one library function; heavy imports
happen inside the commands. Library errors (:class:`MirageBenchError`) are caught once, here, printed
and turned into exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from mirage_bench.cli import cards as cards_cli
from mirage_bench.cli import doctor as doctor_cli
from mirage_bench.cli import mini as mini_cli
from mirage_bench.cli.console import console, err_console
from mirage_bench.errors import MirageBenchError

EXIT_LIBRARY_ERROR = 2


class _ErrorReportingGroup(TyperGroup):
    """Prints library errors as messages (no traceback) unless --debug was given."""

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except MirageBenchError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_LIBRARY_ERROR) from None


app = typer.Typer(
    cls=_ErrorReportingGroup,
    name="mirage-bench",
    help="Benchmark detectors of AI-generated images: train, evaluate across generators and degradations, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for library errors."),
) -> None:
    ctx.obj = {"debug": debug}


app.command("doctor")(doctor_cli.doctor)
app.command("mini-build")(mini_cli.mini)
app.add_typer(cards_cli.detectors_app, name="detectors")
app.add_typer(cards_cli.protocols_app, name="protocols")


def main() -> None:
    app()


__all__ = ["app", "main", "console"]

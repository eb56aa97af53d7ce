"""The ``mirage-bench`` command line: a thin Typer layer over the library.

Each command parses its options, builds a configuration and calls one library function; heavy imports
happen inside the commands. Library errors (:class:`MirageBenchError`) are caught once, here, printed
and turned into exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import typer
from rich.markup import escape
from typer.core import TyperGroup

from mirage_bench.cli import cards as cards_cli
from mirage_bench.cli import data as data_cli
from mirage_bench.cli import degradations as degradations_cli
from mirage_bench.cli import doctor as doctor_cli
from mirage_bench.cli import mini as mini_cli
from mirage_bench.cli import predict as predict_cli
from mirage_bench.cli import report as report_cli
from mirage_bench.cli import reproduce as reproduce_cli
from mirage_bench.cli import run as run_cli
from mirage_bench.cli import weights as weights_cli
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
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
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
app.add_typer(cards_cli.detectors_app, name="detectors")
app.add_typer(cards_cli.protocols_app, name="protocols")
data_cli.data_app.command("mini")(mini_cli.mini)
app.add_typer(data_cli.data_app, name="data")
app.add_typer(degradations_cli.degradations_app, name="degradations")
app.add_typer(weights_cli.weights_app, name="weights")
app.command("train")(run_cli.train)
app.command("eval")(run_cli.evaluate)
app.command("run")(run_cli.run)
app.command("report")(report_cli.report)
app.command("leaderboard")(report_cli.leaderboard)
app.command("ablate")(report_cli.ablate)
app.command("check")(report_cli.check)
app.command("predict")(predict_cli.predict)
app.command("score-file")(predict_cli.score_file)
app.command("reproduce")(reproduce_cli.reproduce)


def main() -> None:
    app()


__all__ = ["app", "main", "console"]

"""Options shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

RecipeDirs = typer.Option(None, "--recipes", help="Extra folder of detector recipe cards (*.yaml); repeatable.")
ProtocolDirs = typer.Option(None, "--protocols", help="Extra folder of protocol cards (*.yaml); repeatable.")
Wide = typer.Option(False, "--wide", help="Print every column, however wide (default: the columns that fit the terminal; "
                    "the written files always hold them all).")
Overrides = typer.Option(None, "--set", help="Override a card value: --set train.lr=1e-4 (repeatable).")


def as_list(values: Optional[List[Path | str]]) -> list:
    return list(values or [])

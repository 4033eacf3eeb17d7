"""What every command prints through: one console for results, one for progress and
errors, one JSON writer and one table shape."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def print_json(value: Any) -> None:
    """Plain JSON on stdout (no colour, no wrapping) for scripts to read."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def table(rows: list[dict], title: str | None = None) -> Table:
    """Rows of dicts as a table, one column per key of the first row."""
    shown = Table(title=title)
    for key in rows[0] if rows else []:
        shown.add_column(key.replace("_", " "))
    for row in rows:
        shown.add_row(*("" if v is None else str(v) for v in row.values()))
    return shown


def show_pairs(value: dict[str, Any], as_json: bool) -> None:
    """A single record: JSON, or a two-column table of its fields."""
    if as_json:
        print_json(value)
        return
    shown = Table(show_header=False)
    for key, item in value.items():
        shown.add_row(key.replace("_", " "), str(item))
    out.print(shown)

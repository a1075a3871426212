"""The table printed at the end of `rlhfc run` (data on stdout)."""

from __future__ import annotations

import click


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "—"
    return str(value)


def print_results(result) -> None:
    from rich.console import Console
    from rich.table import Table

    summary = result.summary or {}
    console = Console()
    rows = summary.get("results", [])
    if not rows:
        click.echo(f"run finished on {result.device}: {len(result.ran)} stages ran, "
                   f"{len(result.cached)} cached; results in {result.run_dir}")
        return
    metrics = []
    for row in rows:
        for key in row.get("metrics", {}):
            if key not in metrics:
                metrics.append(key)
    table = Table(title=f"{summary.get('experiment', '')} — final evaluation", show_lines=False)
    table.add_column("branch")
    table.add_column("of")
    for key in metrics:
        table.add_column(key, justify="right")
    for row in rows:
        table.add_row(row.get("branch", ""), row.get("of", ""),
                      *[_fmt(row.get("metrics", {}).get(k)) for k in metrics])
    console.print(table)
    click.echo(f"device {result.device}: {len(result.ran)} stages ran, {len(result.cached)} cached; "
               f"run directory {result.run_dir}")

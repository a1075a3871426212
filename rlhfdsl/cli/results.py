"""The table printed at the end of `rlhfc run` (data on stdout): one table per policy (and per
reward model fitted without a policy), a row per metric, a column per sweep branch. A metric
with a value before optimisation (`gold_reward_init`) shows as `before → after`."""

from __future__ import annotations

import click


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "—"
    return str(value)


def _rows(metrics_by_branch: dict[str, dict], branches: list[str]) -> list[tuple[str, list[str]]]:
    names: list[str] = []
    for metrics in metrics_by_branch.values():
        for key in metrics:
            if key not in names and not key.endswith("_init"):
                names.append(key)
    rows = []
    for name in sorted(names, key=lambda n: (n.split(".")[0] != n, n)):
        cells = []
        for branch in branches:
            metrics = metrics_by_branch.get(branch, {})
            value = metrics.get(name)
            before = metrics.get(f"{name}_init")
            cells.append(f"{_fmt(before)} → {_fmt(value)}" if before is not None else _fmt(value))
        rows.append((name, cells))
    return rows


def _short(branch: str) -> str:
    """`pi.objective.kl=0.05,rm.ensemble=4` → `kl=0.05 ensemble=4`."""
    if branch == "base":
        return "value"
    parts = []
    for part in branch.split(","):
        path, _, value = part.partition("=")
        parts.append(f"{path.split('.')[-1]}={value}")
    return " ".join(parts)


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
    by_of: dict[str, dict[str, dict]] = {}
    rounds: dict[str, int] = {}
    kinds: dict[str, str] = {}
    for row in rows:
        by_of.setdefault(row["of"], {})[row["branch"]] = row.get("metrics", {})
        rounds[row["of"]] = row.get("round") or 0
        kinds[row["of"]] = row.get("kind", "policy")
    for of, metrics_by_branch in by_of.items():
        branches = list(metrics_by_branch)
        title = f"{summary.get('experiment', '')}: {kinds[of]} `{of}`, round {rounds[of] + 1}"
        table = Table(title=title, title_justify="left")
        table.add_column("metric")
        for branch in branches:
            table.add_column(_short(branch), justify="right")
        for name, cells in _rows(metrics_by_branch, branches):
            table.add_row(name, *cells)
        console.print(table)
    click.echo(f"device {result.device}: {len(result.ran)} stages ran, {len(result.cached)} cached; "
               f"run directory {result.run_dir}")

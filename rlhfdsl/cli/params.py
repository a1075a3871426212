"""Options shared by several commands."""

from __future__ import annotations

import click

set_option = click.option(
    "--set", "sets", multiple=True, metavar="PATH=VALUE",
    help="Override a value, as written in a spec: --set pi.objective.kl=0.1 (repeatable).")
format_option = click.option(
    "--format", "fmt", type=click.Choice(["human", "json"]), default="human", show_default=True,
    help="Diagnostics for people, or JSON for editors and CI.")
imports_option = click.option(
    "--allow-outside-imports", is_flag=True,
    help="Let `import` reach files outside the spec's directory tree.")

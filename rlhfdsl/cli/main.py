"""`rlhfc`: check, plan, graph, fmt, schema, explain, run, report."""

from __future__ import annotations

import sys
import traceback

import click

from rlhfdsl import __version__
from rlhfdsl.cli.params import format_option, imports_option, set_option

EXIT_ERRORS = 1
EXIT_FMT_CHANGES = 3
EXIT_INTERNAL = 70
ISSUES_URL = "the rlhfdsl issue tracker"


class _Group(click.Group):
    """Turns any unexpected exception into an 'internal error' message, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            import os
            import tempfile

            fd, path = tempfile.mkstemp(prefix="rlhfc-crash-", suffix=".txt")
            with os.fdopen(fd, "w") as handle:
                traceback.print_exc(file=handle)
            click.echo(f"internal error: {type(exc).__name__}: {exc}\n"
                       f"  this is a bug in rlhfc, not in your spec; nothing you computed was lost.\n"
                       f"  please report it to {ISSUES_URL} with the details saved in {path}",
                       err=True)
            sys.exit(EXIT_INTERNAL)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rlhfc")
def main() -> None:
    """rlhfc: compile and run RLHF experiments written in the .rlhf language."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True))
@set_option
@format_option
@imports_option
@click.option("--deny-warnings", is_flag=True, help="Treat warnings as errors.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing for clean files.")
def check(files, sets, fmt, allow_outside_imports, deny_warnings, quiet) -> None:
    """Parse and type-check specs; report every error found (no torch import)."""
    from rlhfdsl.api import check_file
    from rlhfdsl.render import print_diagnostics, to_json

    failed = False
    reports = []
    for path in files:
        checked = check_file(path, tuple(sets), allow_outside_imports=allow_outside_imports)
        diagnostics = checked.all_diagnostics
        bad = any(d.is_error for d in diagnostics) or (deny_warnings and diagnostics)
        failed = failed or bool(bad)
        if fmt == "json":
            reports.append(to_json(path, diagnostics))
        else:
            print_diagnostics(path, checked.loaded.sources, diagnostics, quiet=quiet)
    if fmt == "json":
        click.echo(reports[0] if len(reports) == 1 else "[" + ",\n".join(reports) + "]")
    sys.exit(EXIT_ERRORS if failed else 0)


@main.command()
@click.argument("code")
def explain(code: str) -> None:
    """Explain an error code (`rlhfc explain E0201`)."""
    from rlhfdsl.errors import CODES, explain as explain_code

    text = explain_code(code)
    if text is None:
        click.echo(f"error: no such code `{code}`; codes are {', '.join(sorted(CODES))}", err=True)
        sys.exit(2)
    click.echo(text, nl=False)


@main.command()
@click.option("--of", "of", type=click.Choice(["ast", "spec"]), default="spec", show_default=True,
              help="`spec`: every block's keys with types, ranges, defaults and docs; "
                   "`ast`: the syntax tree of a parsed file.")
def schema(of: str) -> None:
    """Print the JSON Schema of the language (for editors)."""
    import json

    if of == "ast":
        from rlhfdsl.ast import Module

        data = Module.model_json_schema()
    else:
        from rlhfdsl.spec import Spec

        data = Spec.model_json_schema()
        data["title"] = "rlhfdsl spec"
    click.echo(json.dumps(data, indent=2, sort_keys=True))

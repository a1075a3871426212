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
    from rlhfdsl.api import compile_file
    from rlhfdsl.render import print_diagnostics, to_json

    failed = False
    reports = []
    for path in files:
        compiled = compile_file(path, tuple(sets), allow_outside_imports=allow_outside_imports)
        diagnostics = compiled.diagnostics
        bad = any(d.is_error for d in diagnostics) or (deny_warnings and diagnostics)
        failed = failed or bool(bad)
        if fmt == "json":
            reports.append(to_json(path, diagnostics))
        else:
            print_diagnostics(path, compiled.sources, diagnostics, quiet=quiet,
                              library=compiled.library)
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
@click.option("--format", "fmt", type=click.Choice(["json", "markdown"]), default="json",
              show_default=True, help="JSON Schema, or the language reference in Markdown.")
def schema(of: str, fmt: str) -> None:
    """Print the JSON Schema of the language (for editors), or its reference in Markdown."""
    import json

    if fmt == "markdown":
        from rlhfdsl.reference import language_reference

        click.echo(language_reference(), nl=False)
        return
    if of == "ast":
        from rlhfdsl.ast import Module

        data = Module.model_json_schema()
    else:
        from rlhfdsl.spec import Spec

        data = Spec.model_json_schema()
        data["title"] = "rlhfdsl spec"
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _compile_or_exit(path: str, sets, allow_outside_imports: bool, fmt: str = "human"):
    """Compile a spec; on errors print them and exit 1 (warnings are printed and go on)."""
    from rlhfdsl.api import compile_file
    from rlhfdsl.render import print_diagnostics, to_json

    compiled = compile_file(path, tuple(sets), allow_outside_imports=allow_outside_imports)
    diagnostics = compiled.diagnostics
    if compiled.library:
        from rlhfdsl.errors import Diagnostic

        diagnostics = diagnostics + [Diagnostic(
            "E0206", f"`{path}` declares no `task`: it is a library of declarations",
            help="import it from a spec that declares an experiment and a task, and run that")]
    if not compiled.ok or compiled.library:
        if fmt == "json":
            click.echo(to_json(path, diagnostics))
        else:
            print_diagnostics(path, compiled.sources, diagnostics)
        sys.exit(EXIT_ERRORS)
    if diagnostics:
        print_diagnostics(path, compiled.sources, diagnostics, quiet=True)
    return compiled


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@set_option
@imports_option
@click.option("--cache", "cache", default=None, metavar="DIR",
              help="Stage cache (default: $RLHF_CACHE or .rlhf-cache).")
@click.option("--runs", "runs", default=None, metavar="DIR", help="Runs directory (default: runs).")
@click.option("--format", "fmt", type=click.Choice(["human", "json"]), default="human",
              show_default=True)
@click.option("-v", "--verbose", is_flag=True, help="Also list what each stage needs.")
def plan(file, sets, allow_outside_imports, cache, runs, fmt, verbose) -> None:
    """Show the stages a run executes, in order, with their hashes, inputs, and which are cached."""
    from rlhfdsl.graph import to_json as graph_json
    from rlhfdsl.plan import cache_root, plan as make_plan, previous_lock, run_dir

    compiled = _compile_or_exit(file, sets, allow_outside_imports)
    lowered = compiled.lowered
    spec = compiled.spec
    status = make_plan(lowered, cache_root(cache),
                       previous_lock(run_dir(runs, spec.experiment.name)))
    if fmt == "json":
        click.echo(graph_json(lowered, status), nl=False)
        return
    stages = lowered.stages()
    todo = sum(not status[s.id].cached for s in stages)
    branches = len(compiled.checked.branches)
    click.echo(f"plan for {file}: {len(stages)} stages"
               + (f" over {branches} sweep branches" if branches > 1 else "")
               + f", {len(stages) - todo} cached, {todo} to run")
    width = max(len(s.id) for s in stages)
    click.echo(f"  {'key':<12}  {'stage':<{width}}  {'Eq.4':<6}  {'status':<9}  needs / why")
    for s in stages:
        st = status[s.id]
        needs = ", ".join(i for ids in s.inputs.values() for i in ids)
        state = "cached" if st.cached else "run"
        click.echo(f"  {s.short:<12}  {s.id:<{width}}  {s.symbol:<6}  {state:<9}  {st.reason}")
        if verbose and needs:
            click.echo(f"  {'':<12}  {'':<{width}}  {'':<6}  {'':<9}  needs {needs}")


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@set_option
@imports_option
@click.option("--format", "fmt", type=click.Choice(["dot", "mermaid", "json"]), default="dot",
              show_default=True)
def graph(file, sets, allow_outside_imports, fmt) -> None:
    """Print the stage graph as DOT, Mermaid or JSON."""
    from rlhfdsl import graph as export

    compiled = _compile_or_exit(file, sets, allow_outside_imports)
    writer = {"dot": export.to_dot, "mermaid": export.to_mermaid, "json": export.to_json}[fmt]
    click.echo(writer(compiled.lowered), nl=False)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--check", "check_only", is_flag=True,
              help="Change nothing; exit 3 when a file is not formatted.")
@click.option("--diff", "show_diff", is_flag=True, help="Print the changes as a unified diff.")
def fmt(files, check_only, show_diff) -> None:
    """Rewrite specs in the canonical format (comments kept; idempotent)."""
    from rlhfdsl.errors import CompileError
    from rlhfdsl.fmt import diff, format_source
    from rlhfdsl.render import print_diagnostics
    from rlhfdsl.resolve import read_source

    unformatted = []
    failed = False
    for path in files:
        text, problem = read_source(path)
        if problem is not None:
            print_diagnostics(path, {}, [problem])
            failed = True
            continue
        try:
            formatted = format_source(text, path)
        except CompileError as exc:
            print_diagnostics(path, {path: text}, exc.diagnostics)
            failed = True
            continue
        if formatted == text:
            continue
        unformatted.append(path)
        if show_diff:
            click.echo(diff(text, formatted, path), nl=False)
        if not check_only:
            _write_atomically(path, formatted)
            click.echo(f"formatted {path}", err=True)
    if failed:
        sys.exit(EXIT_ERRORS)
    if check_only and unformatted:
        for path in unformatted:
            click.echo(f"would reformat {path}", err=True)
        sys.exit(EXIT_FMT_CHANGES)


def _write_atomically(path: str, text: str) -> None:
    import os
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".rlhfc-fmt-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _backend(name: str):
    """The executor registered under entry point group `rlhfdsl.backends` (as sqlglot dialects)."""
    from importlib.metadata import entry_points

    found = {ep.name: ep for ep in entry_points(group="rlhfdsl.backends")}
    if name not in found:
        click.echo(f"error: no backend named `{name}`; installed: {', '.join(sorted(found)) or 'none'}",
                   err=True)
        sys.exit(2)
    return found[name].load()


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@set_option
@imports_option
@click.option("--backend", "backend_name", default="torch", show_default=True,
              help="Executor, by entry point name (group `rlhfdsl.backends`).")
@click.option("--device", default=None, type=click.Choice(["auto", "cpu", "cuda", "mps"]),
              help="Override the spec's device.")
@click.option("--cache", "cache", default=None, metavar="DIR",
              help="Stage cache (default: $RLHF_CACHE or .rlhf-cache).")
@click.option("--runs", "runs", default=None, metavar="DIR", help="Runs directory (default: runs).")
@click.option("--fresh", is_flag=True, help="Recompute every stage, ignoring the cache.")
@click.option("--allow-plugins", is_flag=True, help="Let specs run user scorers (plugin(...)).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def run(file, sets, allow_outside_imports, backend_name, device, cache, runs, fresh,
        allow_plugins, quiet) -> None:
    """Run the experiment: every stage not yet cached, then the results table."""
    from rlhfdsl.plan import cache_root, run_dir

    compiled = _compile_or_exit(file, sets, allow_outside_imports)
    if allow_plugins:
        import os

        # `plugin("module:function")` finds modules next to the spec, as well as installed ones.
        sys.path.insert(0, os.path.dirname(os.path.abspath(file)))
    executor_class = _backend(backend_name)
    executor = executor_class()
    target = run_dir(runs, compiled.spec.experiment.name)
    from backends.base import StageFailure

    try:
        result = executor.run(compiled, cache=cache_root(cache), run_dir=target, device=device,
                              fresh=fresh, allow_plugins=allow_plugins, show_progress=not quiet)
    except StageFailure as failure:
        click.echo(f"error: {failure}", err=True)
        if failure.help:
            click.echo(f"  = help: {failure.help}", err=True)
        click.echo("  stages that finished are cached: rerun the same command to resume", err=True)
        sys.exit(EXIT_ERRORS)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: finished stages are cached; rerun the same command to resume",
                   err=True)
        sys.exit(130)
    from rlhfdsl.cli.results import print_results

    print_results(result)

"""The checker: a resolved spec (see :mod:`rlhfdsl.resolve`) → a typed, checked experiment.

Phases run in order, each only when the ones before found no errors; within a phase every error
is collected. After conversion, the passes are pure functions of the :class:`Context`, listed
once, in order, in :data:`PASSES`.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field

from rlhfdsl import ast
from rlhfdsl.check import arithmetic, names, rules, warnings
from rlhfdsl.check.context import Context
from rlhfdsl.check.convert import Converter, SpanIndex
from rlhfdsl.check.declarations import convert_spec
from rlhfdsl.errors import Diagnostic, Label
from rlhfdsl.resolve import Loaded, _override
from rlhfdsl.spec import Spec
from rlhfdsl.spec.experiment import SINGLETONS
from rlhfdsl.spec.data import to_data

PASSES = (
    names.resolve_references,
    names.fill_defaults,
    rules.type_rules,
    arithmetic.arithmetic,
    warnings.warnings,
)


@dataclass
class Branch:
    """One point of the sweep grid: the swept paths with their values, and the spec there."""

    label: tuple[tuple[str, object], ...]
    spec: Spec

    @property
    def id(self) -> str:
        return ",".join(f"{path}={_short(value)}" for path, value in self.label) or "base"


def _short(value: object) -> str:
    data = to_data(value)
    if isinstance(data, dict):
        return str(data.get("type", data))
    return str(data)


@dataclass
class Checked:
    loaded: Loaded
    spec: Spec | None = None
    spans: SpanIndex | None = None
    branches: list[Branch] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.spec is not None and not any(d.is_error for d in self.all_diagnostics)

    @property
    def all_diagnostics(self) -> list[Diagnostic]:
        found = list(self.loaded.diagnostics) + list(self.diagnostics)
        unique = list(dict.fromkeys(found))
        return sorted(unique, key=Diagnostic.sort_key)


def check_declarations(declarations: list[ast.Declaration], name: str, main_file: str | None = None,
                       extended: set[str] = frozenset(), base: Converter | None = None,
                       ) -> tuple[Context | None, list[Diagnostic]]:
    """Convert and run every pass; (context, diagnostics). ``base``: see :func:`convert_spec`."""
    spec, conv = convert_spec(declarations, name, base)
    diagnostics = list(conv.diagnostics)
    declared = {d.name: d.keyword for d in declarations if d.name and d.keyword not in SINGLETONS}
    if spec is None:
        return None, diagnostics + names.check_references(conv.references, declared)
    ctx = Context(spec=spec, spans=conv.spans, references=conv.references,
                  expressions=conv.expressions, declared=declared, main_file=main_file,
                  extended=set(extended), converter=conv)
    for run in PASSES:
        found = run(ctx)
        diagnostics.extend(found)
        if any(d.is_error for d in found):
            return None, diagnostics
    return ctx, diagnostics


def check(loaded: Loaded) -> Checked:
    """Check a loaded spec and expand its sweeps. Never raises for a user error."""
    result = Checked(loaded=loaded)
    if not loaded.ok:
        return result
    name = os.path.splitext(os.path.basename(loaded.path))[0] or "experiment"
    ctx, diagnostics = check_declarations(loaded.declarations, name, loaded.path, loaded.extended)
    result.diagnostics.extend(diagnostics)
    if ctx is None:
        return result
    result.spec, result.spans = ctx.spec, ctx.spans
    result.branches = _branches(loaded, name, ctx, result.diagnostics)
    return result


def _branches(loaded: Loaded, name: str, base: Context, out: list[Diagnostic]) -> list[Branch]:
    if not loaded.sweeps:
        return [Branch(label=(), spec=base.spec)]
    seen: dict[str, ast.Sweep] = {}
    for sweep in loaded.sweeps:
        dotted = sweep.path.dotted
        if dotted in seen:
            out.append(Diagnostic("E0801", f"`{dotted}` is swept twice", span=sweep.path.span,
                                  label="second sweep",
                                  related=(Label(seen[dotted].path.span, "first sweep"),),
                                  help="merge the two lists"))
            return []
        seen[dotted] = sweep
        if not sweep.values.items:
            out.append(Diagnostic("E0801", f"the sweep over `{dotted}` has no values",
                                  span=sweep.values.span, label="empty list",
                                  help="give at least one value"))
            return []
    branches: list[Branch] = []
    grid = itertools.product(*[[(s, v) for v in s.values.items] for s in loaded.sweeps])
    for point in grid:
        declarations = loaded.declarations
        probe = Loaded(path=loaded.path)
        for sweep, value in point:
            declarations = _override(probe, declarations, sweep.path, value)
        if probe.diagnostics:
            out.extend(probe.diagnostics)
            return []
        # Only the declarations a sweep path touches are converted again.
        ctx, diagnostics = check_declarations(declarations, name, loaded.path, loaded.extended,
                                              base=base.converter)
        errors = [d for d in diagnostics if d.is_error]
        if ctx is None or errors:
            where = ", ".join(f"{s.path.dotted} = {_source(v)}" for s, v in point)
            out.extend(_in_branch(d, where) for d in errors)
            return []
        label = tuple((s.path.dotted, _value_at(ctx.spec, s.path.parts)) for s, _ in point)
        branches.append(Branch(label=label, spec=ctx.spec))
    return branches


def _source(value: ast.Value) -> str:
    return getattr(value, "text", None) or getattr(value, "dotted", None) or value.node


def _in_branch(d: Diagnostic, where: str) -> Diagnostic:
    return Diagnostic(d.code, d.message, span=d.span, label=d.label, help=d.help,
                      notes=d.notes + (f"in the sweep branch where {where}",), related=d.related,
                      severity=d.severity)


def _value_at(spec: Spec, parts: tuple[str, ...]) -> object:
    """The typed value a sweep path points at, for the branch label."""
    from rlhfdsl.spec.experiment import DECLARATIONS, SINGLETONS

    head, rest = parts[0], parts[1:]
    node: object = None
    if head in SINGLETONS:
        node = getattr(spec, DECLARATIONS[head][0])
    else:
        for keyword, (field_name, _model) in DECLARATIONS.items():
            if keyword not in SINGLETONS and head in getattr(spec, field_name):
                node = getattr(spec, field_name)[head]
                break
    for part in rest:
        if node is None:
            return None
        members = {m.name: m for m in getattr(node, "groups", ()) + getattr(node, "ai", ())}
        if part in members:
            node = members[part]
        elif part == "from":
            node = getattr(node, "from_", None)
        else:
            node = getattr(node, part, None)
    return node

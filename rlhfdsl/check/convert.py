"""Syntax tree → typed spec, guided by the typed spec's own field types.

For each declaration the converter walks the body alongside the model's fields and reports, with
the smallest span, everything that does not fit: unknown keys (with did-you-mean), duplicate
keys, wrong types, unknown choices, bad call arguments, wrong units, out-of-range values,
keys or functions of the other task domain, and missing keys. It validates as it goes, so the
models are then built without a second validation (see :mod:`rlhfdsl.spec.data`).

It also records where every value came from (:class:`SpanIndex`) and every reference to another
declaration, for the passes that follow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic.fields import FieldInfo

from rlhfdsl import ast
from rlhfdsl.ast import construct
from rlhfdsl.check.expressions import ExpressionChecks, _count
from rlhfdsl.check.types import (
    INVALID, NoneType, _choices_of, _fields_of, _is_union, _node_word, _ref_of, _required,
    describe, tag_of, unwrap,
)
from rlhfdsl.errors import Diagnostic, Label, did_you_mean, one_of
from rlhfdsl.spec import base as sb
from rlhfdsl.spec.data import build

MAX_RANGE = 1_000_000

Path = tuple[str, ...]


@dataclass
class Reference:
    """`from = crowd`: a name that must resolve to a declaration of ``kind``."""

    kind: str
    name: str
    span: ast.Span
    path: Path


@dataclass
class SpanIndex:
    """Where each value of the typed spec came from, by path (`("policy", "pi", "steps")`)."""

    values: dict[Path, ast.Span] = field(default_factory=dict)
    keys: dict[Path, ast.Span] = field(default_factory=dict)
    declarations: dict[Path, ast.Span] = field(default_factory=dict)

    def value(self, *path: str) -> ast.Span | None:
        return self.values.get(path) or self.keys.get(path) or self.declaration(*path)

    def key(self, *path: str) -> ast.Span | None:
        return self.keys.get(path) or self.values.get(path) or self.declaration(*path)

    def declaration(self, *path: str) -> ast.Span | None:
        while path:
            if path in self.declarations:
                return self.declarations[path]
            path = path[:-1]
        return None


class Converter(ExpressionChecks):
    """Converts declarations of one spec; collects diagnostics, spans and references."""

    def __init__(self, domain: str | None) -> None:
        self.domain = domain
        self.diagnostics: list[Diagnostic] = []
        self.spans = SpanIndex()
        self.references: list[Reference] = []
        self.expressions: list[tuple[Path, sb.Expr]] = []
        # id(declaration) → (declaration, converted value), for reuse by sweep branches
        self.converted: dict[int, tuple[Any, Any]] = {}

    # ------------------------------------------------------------------ reporting

    def error(self, code: str, message: str, span: ast.Span | None, label: str = "",
              help: str | None = None, related: tuple[Label, ...] = ()) -> Any:
        self.diagnostics.append(Diagnostic(code, message, span=span, label=label, help=help,
                                           related=related))
        return INVALID

    def wrong_type(self, node: Any, tp: Any, path: Path) -> Any:
        key = path[-1] if path else "value"
        return self.error("E0302", f"`{key}` takes {describe(tp)}", node.span,
                          label=f"found {_node_word(node)}")

    # ------------------------------------------------------------------ models from bodies

    def fields_of(self, cls: type[sb.SpecModel], skip: set[str]) -> dict[str, tuple[str, FieldInfo]]:
        return _fields_of(cls, frozenset(skip))

    def body(self, cls: type[sb.SpecModel], body: ast.Body, path: Path, owner: ast.Span,
             skip: set[str] = frozenset(), given: set[str] = frozenset(),
             what: str | None = None) -> dict[str, Any]:
        """Convert the `key = value` and `key { }` entries of a body into field values."""
        fields = _fields_of(cls, frozenset(skip) | {"name"})
        values: dict[str, Any] = {}
        seen: dict[str, ast.Span] = {}
        what = what or (f"`{path[0]}`" if path else "this block")
        for entry in body.entries:
            if not isinstance(entry, (ast.Assign, ast.Block)):
                continue
            key = entry.key
            if key in seen:
                self.error("E0205", f"`{key}` is given twice", entry.key_span,
                           label="given again here",
                           related=(ast_label(seen[key], "first given here"),),
                           help="remove one of them")
                continue
            seen[key] = entry.key_span
            if key not in fields:
                hint = did_you_mean(key, fields)
                self.error("E0301", f"unknown key `{key}` in {what}", entry.key_span,
                           label="not a key of this block",
                           help=hint or f"the keys are {one_of(fields)}")
                continue
            name, info = fields[key]
            sub = path + (key,)
            self.spans.keys[sub] = entry.key_span
            node = entry.value if isinstance(entry, ast.Assign) else entry
            self.spans.values[sub] = node.span
            if not self.domain_fits(list(info.metadata), entry.key_span, f"`{key}`"):
                continue
            value = self.value(node, info.annotation, list(info.metadata), sub)
            if value is not INVALID:
                values[name] = value
        for key, name, info in _required(cls, frozenset(skip)):
            if name not in values and name not in given and key not in seen:
                self.error("E0304", f"{what} needs `{key}`", owner,
                           label=f"`{key}` is missing", help=f"add `{key} = ...`: {info.description}")
        return values

    def domain_fits(self, meta: list, span: ast.Span, what: str) -> bool:
        for m in meta:
            if isinstance(m, sb.Domain) and self.domain and m.name != self.domain:
                self.error("E0503", f"{what} belongs to {m.name} tasks", span,
                           label=f"this task is a {self.domain} task",
                           help=f"remove it, or use a {m.name} task")
                return False
        return True

    # ------------------------------------------------------------------ values

    def value(self, node: Any, tp: Any, meta: list, path: Path) -> Any:
        tp, more = unwrap(tp)
        meta = meta + more
        if isinstance(node, ast.Block):
            if isinstance(tp, type) and issubclass(tp, sb.SpecModel) and not issubclass(tp, sb.Choice) \
                    and tp not in (sb.Budget, sb.Length, sb.Expr):
                return self.block(node, tp, path)
            return self.error("E0302", f"`{node.key}` takes a value, not a block", node.key_span,
                              label="a block", help=f"write `{node.key} = ...` with {describe(tp)}")
        if tp is sb.Expr:
            return self.expression_field(node, meta, path)
        if _is_union(tp):
            return self.union(node, tp, meta, path)
        choices = _choices_of(tp)
        if choices:
            return self.choice(node, choices, meta, path)
        if get_origin(tp) is Literal:
            return self.literal(node, get_args(tp), path)
        if get_origin(tp) is tuple:
            return self.sequence(node, get_args(tp)[0], meta, path)
        if tp in (sb.Budget, sb.Length):
            return self.quantity_model(node, tp, meta, path)
        if isinstance(tp, type) and issubclass(tp, sb.SpecModel):
            return self.error("E0302", f"`{path[-1]}` takes a block", node.span,
                              label=f"found {_node_word(node)}",
                              help=f"write `{path[-1]} {{ ... }}`")
        if tp is bool:
            if isinstance(node, ast.Bool):
                return node.value
            return self.wrong_type(node, tp, path)
        if tp is int or tp is float:
            return self.number(node, tp, meta, path)
        if tp is str:
            return self.string(node, meta, path)
        return self.wrong_type(node, tp, path)

    def block(self, node: ast.Block, cls: type[sb.SpecModel], path: Path) -> Any:
        values = self.body(cls, node.body, path, node.key_span, what=f"`{node.key}`")
        return build(cls, **values)

    def number(self, node: Any, tp: type, meta: list, path: Path) -> Any:
        units = next((m for m in meta if isinstance(m, sb.Units)), None)
        value: Any
        if isinstance(node, ast.Number):
            value = node.value
        elif isinstance(node, ast.Path) and node.parts == ("inf",):
            value = math.inf
        elif isinstance(node, ast.Unary) and node.op == "-" and isinstance(node.operand, ast.Path) \
                and node.operand.parts == ("inf",):
            value = -math.inf
        elif isinstance(node, ast.Quantity) and units is not None:
            if node.unit not in units.allowed:
                return self.error("E0306", f"`{path[-1]}` is not measured in `{node.unit}`",
                                  node.span, label="wrong unit",
                                  help=f"use {one_of(units.allowed)}")
            value = node.value.value * sb.TIME_UNITS.get(node.unit, 1.0)
        elif isinstance(node, ast.Quantity):
            return self.error("E0306", f"`{path[-1]}` takes a plain number, without a unit",
                              node.span, label=f"`{node.unit}` is not expected here",
                              help=f"write `{path[-1]} = {node.value.text}`")
        else:
            return self.wrong_type(node, tp, path)
        if tp is int:
            if isinstance(value, float):
                if not math.isfinite(value) or value != int(value):
                    return self.error("E0302", f"`{path[-1]}` takes a whole number", node.span,
                                      label="not a whole number")
                value = int(value)
        else:
            value = float(value)
        return self.in_range(value, meta, node.span, path)

    def in_range(self, value: float, meta: list, span: ast.Span, path: Path) -> Any:
        for m in meta:
            bad = None
            if isinstance(m, at.Ge) and not value >= m.ge:
                bad = f"must be at least {m.ge}"
            elif isinstance(m, at.Gt) and not value > m.gt:
                bad = f"must be greater than {m.gt}"
            elif isinstance(m, at.Le) and not value <= m.le:
                bad = f"must be at most {m.le}"
            elif isinstance(m, at.Lt) and not value < m.lt:
                bad = f"must be less than {m.lt}"
            if bad:
                return self.error("E0401", f"`{path[-1]}` is out of range", span, label=bad,
                                  help=_range_help(meta))
        return value

    def string(self, node: Any, meta: list, path: Path) -> Any:
        ref = next((m for m in meta if isinstance(m, sb.RefTo)), None)
        if isinstance(node, ast.Path) and len(node.parts) == 1:
            if ref is not None:
                self.references.append(Reference(ref.kind, node.parts[0], node.span, path))
            return node.parts[0]
        if isinstance(node, ast.String):
            if ref is not None:
                return self.error("E0302", f"`{path[-1]}` takes the name of a `{ref.kind}` declaration",
                                  node.span, label="a string, not a name",
                                  help=f"write the name without quotes: `{node.value}`")
            return node.value
        if ref is not None:
            return self.error("E0302", f"`{path[-1]}` takes the name of a `{ref.kind}` declaration",
                              node.span, label=f"found {_node_word(node)}")
        return self.error("E0302", f"`{path[-1]}` takes a string", node.span,
                          label=f"found {_node_word(node)}", help='write it in double quotes: "..."')

    def literal(self, node: Any, allowed: tuple, path: Path) -> Any:
        if isinstance(node, ast.Path) and len(node.parts) == 1:
            word = node.parts[0]
        elif isinstance(node, ast.String):
            word = node.value
        elif isinstance(node, ast.Bool) and node.value in allowed:
            return node.value
        else:
            return self.error("E0302", f"`{path[-1]}` takes one of {one_of(map(str, allowed))}",
                              node.span, label=f"found {_node_word(node)}")
        if word in allowed:
            return word
        words = [str(a) for a in allowed]
        return self.error("E0303", f"unknown choice `{word}` for `{path[-1]}`", node.span,
                          label="not one of the choices",
                          help=did_you_mean(word, words) or f"choose one of {one_of(words)}")

    def sequence(self, node: Any, item_tp: Any, meta: list, path: Path) -> Any:
        items = node.items if isinstance(node, ast.List) else (node,)
        item_base, _ = unwrap(item_tp)
        out: list = []
        ok = True
        for i, item in enumerate(items):
            if isinstance(item, ast.Range) and item_base is int:
                if item.stop < item.start:
                    self.error("E0401", "empty range", item.span, label="the end is before the start",
                               help=f"write `{item.stop}..{item.start}`")
                    ok = False
                    continue
                if item.stop - item.start >= MAX_RANGE:
                    self.error("E0401", "range too long", item.span,
                               label=f"more than {MAX_RANGE} indices")
                    ok = False
                    continue
                out.extend(range(item.start, item.stop + 1))
                continue
            value = self.value(item, item_tp, [], path + (str(i),))
            if value is INVALID:
                ok = False
            else:
                out.append(value)
        return tuple(out) if ok else INVALID

    def quantity_model(self, node: Any, tp: type, meta: list, path: Path) -> Any:
        units = next((m for m in meta if isinstance(m, sb.Units)), None)
        allowed = units.allowed if units else (("labels",) if tp is sb.Budget else ("tokens",))
        default = units.default if units else allowed[0]
        if isinstance(node, ast.Number):
            amount, unit = node.value, default
        elif isinstance(node, ast.Quantity):
            if node.unit not in allowed:
                return self.error("E0306", f"`{path[-1]}` is not measured in `{node.unit}`",
                                  node.span, label="wrong unit", help=f"use {one_of(allowed)}")
            amount, unit = node.value.value, node.unit
        else:
            return self.wrong_type(node, tp, path)
        if tp is sb.Budget:
            if unit in sb.TIME_UNITS:
                amount, unit = float(amount) * sb.TIME_UNITS[unit], "seconds"
            if not amount > 0 or not math.isfinite(amount):
                return self.error("E0401", f"`{path[-1]}` must be positive", node.span,
                                  label="not a positive amount")
            return build(sb.Budget, amount=float(amount), unit=unit)
        if isinstance(amount, float) and amount != int(amount):
            return self.error("E0302", "a length is a whole number", node.span,
                              label="not a whole number")
        if amount < 0:
            return self.error("E0401", "a length cannot be negative", node.span, label="negative")
        return build(sb.Length, amount=int(amount), unit=unit)

    # ------------------------------------------------------------------ unions and choices

    def union(self, node: Any, tp: Any, meta: list, path: Path) -> Any:
        alternatives = [a for a in get_args(tp) if a is not NoneType]
        if len(alternatives) == 1:
            # `Optional[X]`: omitting the key is how one says "none" (an AI's `scorer`, a
            # view's `truncate`).
            return self.value(node, alternatives[0], meta, path)
        choices = _choices_of(Union[tuple(alternatives)]) if alternatives else None
        if choices:
            return self.choice(node, choices, meta, path)
        # A mixed union: pick the alternative by the shape of the node.
        by_kind: dict[str, Any] = {}
        choice_classes: list[type[sb.Choice]] = []
        for alt in alternatives:
            base, _ = unwrap(alt)
            sub = _choices_of(alt)
            if sub:
                choice_classes.extend(sub)
                by_kind.setdefault("choice", alt)
            elif get_origin(base) is Literal:
                by_kind["literal"] = alt
            elif base in (int, float):
                by_kind["number"] = alt
            elif base is str:
                by_kind["str"] = alt
            elif get_origin(base) is tuple:
                by_kind["tuple"] = alt
            elif base is bool:
                by_kind["bool"] = alt
        kind = None
        if isinstance(node, (ast.Number, ast.Quantity)) or (
                isinstance(node, ast.Unary) and node.op == "-"):
            kind = "number"
        elif isinstance(node, ast.Path) and node.parts == ("inf",) and "number" in by_kind:
            kind = "number"
        elif isinstance(node, ast.String):
            kind = "str" if "str" in by_kind else "literal"
        elif isinstance(node, ast.List):
            kind = "tuple"
        elif isinstance(node, ast.Bool):
            kind = "bool"
        elif isinstance(node, (ast.Call, ast.Object)):
            kind = "choice"
        elif isinstance(node, ast.Path) and len(node.parts) == 1:
            word = node.parts[0]
            literal = by_kind.get("literal")
            if literal is not None and word in get_args(unwrap(literal)[0]):
                kind = "literal"
            elif any(tag_of(c) == word for c in choice_classes):
                kind = "choice"
            elif "str" in by_kind:
                kind = "str"
            elif "choice" in by_kind:
                kind = "choice"
            elif literal is not None:
                kind = "literal"
        if kind is None or kind not in by_kind:
            return self.wrong_type(node, tp, path)
        if kind == "choice":
            alt_meta = unwrap(by_kind["choice"])[1]
            return self.choice(node, choice_classes, meta + alt_meta, path)
        alt, alt_meta = unwrap(by_kind[kind])
        return self.value(node, alt, meta + alt_meta, path)

    def choice(self, node: Any, classes: list[type[sb.Choice]], meta: list, path: Path) -> Any:
        tags = {tag_of(c): c for c in classes}
        key = path[-1] if path else "value"
        if isinstance(node, ast.Path) and len(node.parts) == 1:
            name, name_span = node.parts[0], node.span
        elif isinstance(node, (ast.Call, ast.Object)):
            name, name_span = node.name, node.name_span
        else:
            return self.error("E0302", f"`{key}` takes {one_of(tags)}", node.span,
                              label=f"found {_node_word(node)}")
        cls = tags.get(name)
        if cls is None:
            # A bare name may be a reference, for unions that hold a reference choice
            # (`backbone = tiny` names a model, `reward = rm` a reward declaration).
            by_ref = [c for c in classes if c.positional and _ref_of(c, c.positional[0])]
            if by_ref and isinstance(node, ast.Path):
                cls = by_ref[0]
                sub = path
                ref = _ref_of(cls, cls.positional[0])
                if not self.domain_fits_choice(cls, node.span, f"`{key} = {name}`"):
                    return INVALID
                self.references.append(Reference(ref.kind, name, node.span, sub))
                return build(cls, **{cls.positional[0]: name})
            words = [t for t in tags]
            return self.error("E0303", f"unknown choice `{name}` for `{key}`", name_span,
                              label="not one of the choices",
                              help=did_you_mean(name, words) or f"choose one of {one_of(words)}")
        if not self.domain_fits_choice(cls, name_span, f"`{name}`"):
            return INVALID
        for m in meta:
            if isinstance(m, sb.Domain) and self.domain and m.name != self.domain:
                return self.error("E0503", f"`{name}` belongs to {m.name} tasks", name_span,
                                  label=f"this task is a {self.domain} task")
        values: dict[str, Any] = {}
        fields = self.fields_of(cls, set())
        if isinstance(node, ast.Call):
            if not self.arguments(cls, node.args, node.kwargs, node.span, fields, values, path):
                return INVALID
        elif isinstance(node, ast.Object):
            before = len(self.diagnostics)
            values = self.body(cls, node.body, path, node.name_span, what=f"`{name}`")
            if len(self.diagnostics) > before:
                return INVALID
            return build(cls, **values)
        missing = [k for k, (n, info) in fields.items() if info.is_required() and n not in values]
        if missing:
            example = _example_call(cls)
            return self.error("E0305", f"`{name}` needs `{missing[0]}`", node.span,
                              label=f"`{missing[0]}` is missing", help=f"write `{example}`")
        return build(cls, **values)

    def domain_fits_choice(self, cls: type[sb.Choice], span: ast.Span, what: str) -> bool:
        domain = getattr(cls, "DOMAIN", None)
        if domain and self.domain and domain != self.domain:
            self.error("E0503", f"{what} belongs to {domain} tasks", span,
                       label=f"this task is a {self.domain} task",
                       help=_domain_help(cls, self.domain))
            return False
        return True

    def arguments(self, cls: type[sb.Choice], args: tuple, kwargs: tuple, span: ast.Span,
                  fields: dict, values: dict, path: Path) -> bool:
        name = tag_of(cls)
        ok = True
        if cls.variadic:
            if args:
                fname, info = fields[cls.variadic]
                item_tp = get_args(unwrap(info.annotation)[0])[0]
                seq = self.sequence(construct(ast.List, span=span, items=args), item_tp, [],
                                    path + (cls.variadic,))
                if seq is INVALID:
                    ok = False
                else:
                    values[fname] = seq
        else:
            if len(args) > len(cls.positional):
                extra = args[len(cls.positional)]
                self.error("E0305", f"`{name}` takes {_count(len(cls.positional))} positional "
                           "argument" + ("" if len(cls.positional) == 1 else "s"), extra.span,
                           label="one too many", help=f"write `{_example_call(cls)}`")
                return False
            for arg, key in zip(args, cls.positional):
                fname, info = fields[key]
                value = self.value(arg, info.annotation, list(info.metadata), path + (key,))
                if value is INVALID:
                    ok = False
                else:
                    values[fname] = value
        for kw in kwargs:
            if kw.name not in fields:
                self.error("E0305", f"`{name}` has no argument `{kw.name}`", kw.name_span,
                           label="unknown argument",
                           help=did_you_mean(kw.name, fields)
                           or (f"its arguments are {one_of(fields)}" if fields
                               else f"`{name}` takes no arguments"))
                ok = False
                continue
            fname, info = fields[kw.name]
            if fname in values:
                self.error("E0305", f"`{kw.name}` is given twice", kw.name_span,
                           label="already given")
                ok = False
                continue
            value = self.value(kw.value, info.annotation, list(info.metadata), path + (kw.name,))
            if value is INVALID:
                ok = False
            else:
                values[fname] = value
        return ok


# ---------------------------------------------------------------------------- helpers

def ast_label(span: ast.Span, text: str) -> Label:
    return Label(span, text)


def _example_call(cls: type[sb.Choice]) -> str:
    name = tag_of(cls)
    examples = {"likert": "likert(5)", "ranking": "ranking(4)", "best_of": "best_of(4)",
                "label": "label(good, bad)", "best_of_n": "best_of_n(16)",
                "multi_objective": "multi_objective(2)", "mixture": "mixture(2)",
                "agreement": "agreement(0.73)", "accuracy": "accuracy(0.8)",
                "expert": "expert(features(0..7), 4.0)", "file": 'file("data.jsonl")',
                "features": "features(0..7)", "regex": 'regex("[0-9]+")',
                "gold": "gold(crowd)", "adaptive": "adaptive(target = 6.0)"}
    return examples.get(name, f"{name}(...)")


def _domain_help(cls: type[sb.Choice], domain: str) -> str:
    if domain == "text":
        return "text tasks use a `model` declaration's name here"
    return "bandit tasks use `linear`, `tabular` (or `mlp` for rewards) here"


def _range_help(meta: list) -> str:
    low = high = None
    low_open = high_open = False
    for m in meta:
        if isinstance(m, at.Ge):
            low = m.ge
        elif isinstance(m, at.Gt):
            low, low_open = m.gt, True
        elif isinstance(m, at.Le):
            high = m.le
        elif isinstance(m, at.Lt):
            high, high_open = m.lt, True
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    return f"the accepted range is {lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"

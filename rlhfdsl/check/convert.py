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

import functools
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic.fields import FieldInfo

from rlhfdsl import ast
from rlhfdsl.ast import construct
from rlhfdsl.errors import Diagnostic, Label, did_you_mean, one_of
from rlhfdsl.spec import base as sb
from rlhfdsl.spec.data import build
from rlhfdsl.spec.expressions import ARITHMETIC, COMPARISONS, FUNCTIONS, LOGICAL, NAMES

NoneType = type(None)
INVALID: Any = object()
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


_UNWRAPPED: dict[int, tuple[Any, Any, list]] = {}


def unwrap(tp: Any) -> tuple[Any, list]:
    """Strip ``Annotated`` layers, collecting their metadata (FieldInfo constraints expanded).
    Memoised by identity: annotations live as long as their classes."""
    hit = _UNWRAPPED.get(id(tp))
    if hit is not None and hit[0] is tp:
        return hit[1], list(hit[2])
    result = _unwrap(tp)
    _UNWRAPPED[id(tp)] = (tp, result[0], result[1])
    return result[0], list(result[1])


def _unwrap(tp: Any) -> tuple[Any, list]:
    meta: list = []
    while get_origin(tp) is not None and hasattr(tp, "__metadata__"):
        meta.extend(tp.__metadata__)
        tp = get_args(tp)[0]
    expanded: list = []
    for m in meta:
        if isinstance(m, FieldInfo):
            expanded.extend(m.metadata)
        else:
            expanded.append(m)
    return tp, expanded


def _is_union(tp: Any) -> bool:
    return get_origin(tp) is Union or type(tp).__name__ == "UnionType"


_CHOICES: dict[int, tuple[Any, Any]] = {}


def _choices_of(tp: Any) -> list[type[sb.Choice]] | None:
    """The Choice classes of a (possibly nested) union of choices, or None if it is not one."""
    hit = _CHOICES.get(id(tp))
    if hit is not None and hit[0] is tp:
        return hit[1]
    found = _find_choices(tp)
    _CHOICES[id(tp)] = (tp, found)
    return found


def _find_choices(tp: Any) -> list[type[sb.Choice]] | None:
    tp, _ = unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, sb.Choice):
        return [tp]
    if _is_union(tp):
        found: list[type[sb.Choice]] = []
        for alt in get_args(tp):
            sub = _choices_of(alt)
            if sub is None:
                return None
            found.extend(sub)
        return found
    return None


@functools.lru_cache(maxsize=None)
def tag_of(cls: type[sb.Choice]) -> str:
    return cls.model_fields["type"].default


def spec_key(name: str, info: FieldInfo) -> str:
    return info.alias or name


def describe(tp: Any) -> str:
    """What a value of this type looks like, for `expected ...` labels."""
    tp, meta = unwrap(tp)
    if any(isinstance(m, sb.RefTo) for m in meta):
        kind = next(m.kind for m in meta if isinstance(m, sb.RefTo))
        return f"the name of a `{kind}` declaration"
    if any(isinstance(m, sb.IsExpr) for m in meta) or tp is sb.Expr:
        result = next((m.result for m in meta if isinstance(m, sb.IsExpr)), "number")
        return "a condition" if result == "condition" else "an expression"
    choices = _choices_of(tp)
    if choices:
        return one_of(tag_of(c) for c in choices)
    if _is_union(tp):
        parts = [describe(a) for a in get_args(tp) if a is not NoneType]
        return " or ".join(dict.fromkeys(parts))
    if get_origin(tp) is Literal:
        return one_of(str(a) for a in get_args(tp))
    if get_origin(tp) is tuple:
        return "a list of " + describe(get_args(tp)[0]).removeprefix("a ").removeprefix("an ")
    if tp is bool:
        return "`true` or `false`"
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if tp is sb.Budget:
        return "a number of `labels`, or a time (`seconds`, `minutes`, `hours`)"
    if tp is sb.Length:
        return "a length in `tokens`, `chars` or `words`"
    if isinstance(tp, type) and issubclass(tp, sb.SpecModel):
        return "a block `{ ... }`"
    return "a value"


_NODE_WORDS = {
    "number": "a number", "string": "a string", "bool": "a boolean", "path": "a name",
    "range": "a range", "quantity": "a quantity", "list": "a list", "call": "a call",
    "object": "a block", "unary": "an expression", "binary": "an expression",
    "block": "a block",
}


def _node_word(node: Any) -> str:
    return _NODE_WORDS.get(getattr(node, "node", ""), "this value")


class Converter:
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

    # ------------------------------------------------------------------ expressions

    def expression_field(self, node: Any, meta: list, path: Path) -> Any:
        want = next((m.result for m in meta if isinstance(m, sb.IsExpr)), "number")
        result = self.expression(node, path)
        if result is INVALID:
            return INVALID
        expr, kind = result
        if kind != want:
            return self.error("E0309", f"`{path[-1]}` must be a {want}", node.span,
                              label=f"this is a {kind}",
                              help="compare it with a threshold, e.g. `feature(3) > 0.5`"
                              if want == "condition" else
                              "use `if(condition, a, b)` to turn a condition into a number")
        self.expressions.append((path, expr))
        return expr

    def expression(self, node: Any, path: Path) -> Any:
        """(Expr, result kind) or INVALID; every problem found is reported."""
        E = sb.Expr
        if isinstance(node, ast.Number):
            return build(E, op="num", value=node.value), "number"
        if isinstance(node, ast.Bool):
            return build(E, op="bool", value=node.value), "condition"
        if isinstance(node, ast.String):
            return build(E, op="str", value=node.value), "string"
        if isinstance(node, ast.Range):
            return build(E, op="range", args=(build(E, op="num", value=node.start),
                                              build(E, op="num", value=node.stop))), "range"
        if isinstance(node, ast.List):
            items = [self.expression(i, path) for i in node.items]
            if any(i is INVALID for i in items):
                return INVALID
            return build(E, op="list", args=tuple(i[0] for i in items)), "list"
        if isinstance(node, ast.Path):
            name = node.dotted
            if name in NAMES:
                domain, _doc = NAMES[name]
                if not self.expression_domain(domain, name, node.span):
                    return INVALID
                return build(E, op="name", value=name), "number"
            if name in FUNCTIONS:
                return self.error("E0305", f"`{name}` needs arguments", node.span,
                                  label="a function", help=f"write `{_function_example(name)}`")
            return self.error("E0308", f"unknown name `{name}` in an expression", node.span,
                              label="not a value of the expression language",
                              help=did_you_mean(name, list(NAMES) + list(FUNCTIONS))
                              or "see the expression reference in the README")
        if isinstance(node, ast.Call):
            return self.call_expression(node, path)
        if isinstance(node, ast.Unary):
            inner = self.expression(node.operand, path)
            if inner is INVALID:
                return INVALID
            want = "condition" if node.op == "not" else "number"
            if inner[1] != want:
                return self.error("E0309", f"`{node.op}` takes a {want}", node.operand.span,
                                  label=f"this is a {inner[1]}")
            return build(E, op="not" if node.op == "not" else "neg", args=(inner[0],)), want
        if isinstance(node, ast.Binary):
            left = self.expression(node.left, path)
            right = self.expression(node.right, path)
            if left is INVALID or right is INVALID:
                return INVALID
            if node.op in LOGICAL:
                want, result = "condition", "condition"
            elif node.op in COMPARISONS:
                want, result = "number", "condition"
            else:
                assert node.op in ARITHMETIC
                want, result = "number", "number"
            for side, (_, kind) in ((node.left, left), (node.right, right)):
                if kind != want:
                    return self.error("E0309", f"`{node.op}` takes {want}s", side.span,
                                      label=f"this is a {kind}")
            return build(E, op=node.op, args=(left[0], right[0])), result
        return self.error("E0309", f"{_node_word(node)} cannot be part of an expression",
                          node.span, label="not an expression")

    def expression_domain(self, domain: str, name: str, span: ast.Span) -> bool:
        if domain != "any" and self.domain and domain != self.domain:
            self.error("E0503", f"`{name}` belongs to {domain} tasks", span,
                       label=f"this task is a {self.domain} task",
                       help="bandit values use `feature(i)`, `weights([...])` and `action`; text "
                            "values use scorers such as `sentiment` and `length(n)`")
            return False
        return True

    def call_expression(self, node: ast.Call, path: Path) -> Any:
        E = sb.Expr
        fn = FUNCTIONS.get(node.name)
        if fn is None:
            return self.error("E0308", f"unknown function `{node.name}`", node.name_span,
                              label="not a function of the expression language",
                              help=did_you_mean(node.name, FUNCTIONS)
                              or "see the expression reference in the README")
        if not self.expression_domain(fn.domain, node.name, node.name_span):
            return INVALID
        if node.kwargs:
            return self.error("E0305", f"`{node.name}` takes no keyword arguments",
                              node.kwargs[0].span, label="unexpected",
                              help=f"write `{_function_example(node.name)}`")
        low, high = len(fn.args) - fn.optional, len(fn.args)
        if not low <= len(node.args) <= high:
            return self.error("E0305", f"`{node.name}` takes {_arity(low, high)}", node.span,
                              label=f"given {len(node.args)}",
                              help=f"write `{_function_example(node.name)}`")
        args = []
        for arg, want in zip(node.args, fn.args):
            if want == "range" and isinstance(arg, ast.Number) and isinstance(arg.value, int) \
                    and arg.value >= 0:
                args.append(build(E, op="range", args=(build(E, op="num", value=arg.value),
                                                       build(E, op="num", value=arg.value))))
                continue
            if want == "range" and isinstance(arg, ast.Range) and arg.stop < arg.start:
                return self.error("E0401", "empty range", arg.span,
                                  label="the end is before the start")
            result = self.expression(arg, path)
            if result is INVALID:
                return INVALID
            expr, kind = result
            if want == "list" and kind == "list":
                if not all(a.op == "num" for a in expr.args):
                    return self.error("E0309", f"`{node.name}` takes a list of numbers", arg.span,
                                      label="not all numbers")
            elif want != "any" and kind != want:
                return self.error("E0309", f"`{node.name}` takes a {want} here", arg.span,
                                  label=f"this is a {kind}",
                                  help=f"write `{_function_example(node.name)}`")
            args.append(expr)
        return build(E, op="call", value=node.name, args=tuple(args)), fn.result


# ---------------------------------------------------------------------------- helpers

_RESOLVED: dict[type, dict[str, FieldInfo]] = {}


@functools.lru_cache(maxsize=None)
def _fields_of(cls: type, skip: frozenset[str]) -> dict[str, tuple[str, FieldInfo]]:
    """Spec key → (field name, field info), for the keys a block of ``cls`` accepts."""
    found = {}
    for name, info in _resolved_fields(cls).items():
        if name in skip or name == "type":
            continue
        found[spec_key(name, info)] = (name, info)
    return found


@functools.lru_cache(maxsize=None)
def _required(cls: type, skip: frozenset[str]) -> tuple[tuple[str, str, FieldInfo], ...]:
    return tuple((key, name, info) for key, (name, info) in _fields_of(cls, skip | {"name"}).items()
                 if info.is_required())


def _resolved_fields(cls: type) -> dict[str, FieldInfo]:
    """The model's fields, with forward references (`"tuple[Source, ...]"`) resolved: the typed
    spec defers building its validators, so pydantic leaves them as strings until first use."""
    found = _RESOLVED.get(cls)
    if found is None:
        found = dict(cls.model_fields)
        if any(isinstance(i.annotation, (str, typing.ForwardRef)) for i in found.values()):
            hints = typing.get_type_hints(cls, include_extras=True)
            for name, info in found.items():
                if isinstance(info.annotation, (str, typing.ForwardRef)):
                    tp, meta = unwrap(hints[name])
                    copy = FieldInfo.merge_field_infos(info)
                    copy.annotation = tp
                    copy.metadata = list(info.metadata) + meta
                    found[name] = copy
        _RESOLVED[cls] = found
    return found



def ast_label(span: ast.Span, text: str) -> Label:
    return Label(span, text)


@functools.lru_cache(maxsize=None)
def _ref_of(cls: type[sb.Choice], field_name: str) -> sb.RefTo | None:
    info = cls.model_fields.get(field_name)
    if info is None:
        return None
    for m in list(info.metadata) + unwrap(info.annotation)[1]:
        if isinstance(m, sb.RefTo):
            return m
    return None


def _count(n: int) -> str:
    return {0: "no", 1: "one", 2: "two", 3: "three"}.get(n, str(n))


def _arity(low: int, high: int) -> str:
    if low == high:
        return f"{_count(low)} argument" + ("" if low == 1 else "s")
    return f"{_count(low)} to {_count(high)} arguments"


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


def _function_example(name: str) -> str:
    return {"feature": "feature(0..7)", "weights": "weights([1.0, -0.5])",
            "table": "table([1, 10])", "length": "length(20)", "keyword": 'keyword("please")',
            "count": 'count("!")', "regex": 'regex("[0-9]+")',
            "similarity": 'similarity("a reference")', "plugin": 'plugin("pkg.mod:fn")',
            "bernoulli": "bernoulli(0.4)", "normal": "normal(0, 1)", "uniform": "uniform(0, 1)",
            "if": "if(action == 1, 10, 1)", "abs": "abs(x)", "min": "min(a, b)",
            "max": "max(a, b)", "clip": "clip(x, 0, 1)", "exp": "exp(x)", "log": "log(x)",
            }.get(name, f"{name}(...)")


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

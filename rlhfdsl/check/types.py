"""Reading the typed spec's field types: what a key takes, its metadata, its choices.

The converter is guided by these: a field's annotation says whether a value is a number, a
name of a declaration, one of a set of choices, a list, a quantity with units or an
expression; ``Annotated`` metadata adds ranges, domains and units (see
:mod:`rlhfdsl.spec.base`). Everything here is memoised: annotations live as long as their
classes.
"""

from __future__ import annotations

import functools
import typing
from typing import Any, Literal, Union, get_args, get_origin

from pydantic.fields import FieldInfo

from rlhfdsl.errors import one_of
from rlhfdsl.spec import base as sb

NoneType = type(None)
# Returned by conversions that reported a problem (None is a legitimate value).
INVALID: Any = object()


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


@functools.lru_cache(maxsize=None)
def _ref_of(cls: type[sb.Choice], field_name: str) -> sb.RefTo | None:
    info = cls.model_fields.get(field_name)
    if info is None:
        return None
    for m in list(info.metadata) + unwrap(info.annotation)[1]:
        if isinstance(m, sb.RefTo):
            return m
    return None

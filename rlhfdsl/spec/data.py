"""Building typed-spec models fast, and turning them into canonical plain data.

The checker has already validated every value when it builds the typed spec, so models are
built with :func:`build` (no second validation: pydantic would compile a validator for every
model class first, which would cost more than the whole check). :func:`to_data` gives the plain,
JSON-ready form used for stage hashes, lock files and the resolved spec of a run: field names as
written in specs, tuples as lists, infinities as the strings ``"inf"``/``"-inf"``.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

_DEFAULTS: dict[type, tuple[dict[str, Any], list[tuple[str, Any]]]] = {}


def _defaults(cls: type[BaseModel]) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """(plain defaults, fields with a default factory) of a model, computed once per class."""
    found = _DEFAULTS.get(cls)
    if found is None:
        plain: dict[str, Any] = {}
        factories: list[tuple[str, Any]] = []
        for name, info in cls.model_fields.items():
            if info.is_required():
                continue
            if info.default_factory is not None:
                factories.append((name, info.default_factory))
            else:
                plain[name] = info.default
        found = _DEFAULTS[cls] = (plain, factories)
    return found


def build(cls: type[BaseModel], **fields: Any) -> Any:
    """A model instance from already-validated field values, with defaults filled in."""
    plain, factories = _defaults(cls)
    values = dict(plain)
    for name, factory in factories:
        if name in fields:
            continue
        if isinstance(factory, type) and issubclass(factory, BaseModel):
            values[name] = build(factory)
        else:
            values[name] = factory()
    values.update(fields)
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(fields))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


_KEYS: dict[type, list[tuple[str, str]]] = {}


def _keys(cls: type[BaseModel]) -> list[tuple[str, str]]:
    """(field name, key as written in specs) of a model, cached: pydantic's ``model_fields``
    is a property that costs more than the whole conversion of a small block."""
    found = _KEYS.get(cls)
    if found is None:
        found = _KEYS[cls] = [(name, info.alias or name) for name, info in cls.model_fields.items()]
    return found


def to_data(value: Any) -> Any:
    """Plain data (dicts, lists, str, int, float, bool, None) for any typed-spec value."""
    if isinstance(value, BaseModel):
        attrs = value.__dict__
        return {key: to_data(attrs[name]) for name, key in _keys(type(value))}
    if isinstance(value, (list, tuple)):
        return [to_data(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_data(v) for k, v in sorted(value.items())}
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if math.isnan(value):
            return "nan"
        return value
    return value


def from_data(cls: type[BaseModel], data: Any) -> Any:
    """The inverse of :func:`to_data`, with full pydantic validation (for backends and tests;
    pydantic reads ``"inf"`` back as a float where a float is expected)."""
    return cls.model_validate(data)

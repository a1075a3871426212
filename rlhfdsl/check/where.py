"""What the rule passes share: finding the smallest span for a path of the typed spec, and the
small pieces of wording their messages are built from."""

from __future__ import annotations

from typing import Iterable

from rlhfdsl.ast import Span
from rlhfdsl.check.context import Context
from rlhfdsl.spec.population import PRESETS


def span_at(ctx: Context, *path: str) -> Span | None:
    """The span of the value at ``path``, else of the nearest enclosing value that was written
    (`("prefs", "kind", "k")` falls back to the whole `likert(5)`), else the declaration."""
    values = ctx.spans.values
    probe = path
    while len(probe) > 1:
        if probe in values:
            return values[probe]
        probe = probe[:-1]
    return ctx.spans.declaration(*path)


def key_at(ctx: Context, *path: str) -> Span | None:
    """The span of the key at ``path`` when it was written, else as :func:`span_at`."""
    return ctx.spans.keys.get(path) or span_at(ctx, *path)


def written(ctx: Context, *path: str) -> bool:
    """Whether the spec wrote a value at exactly this path (not a default)."""
    return path in ctx.spans.values


def behaviour_source(ctx: Context, population: str, member: str, key: str) -> tuple[str, ...]:
    """Where a member's behaviour value came from, following the layers of
    :mod:`rlhfdsl.check.declarations`: the member's own key, the member's preset, the
    population's key, the population's preset; the member itself when none was written."""
    spec = ctx.spec.populations[population]
    own = (population, member)
    if own + (key,) in ctx.spans.values:
        return own + (key,)
    member_preset = next((m.preset for m in spec.groups + spec.ai if m.name == member), None)
    if own + ("preset",) in ctx.spans.values and key in PRESETS.get(member_preset or "", {}):
        return own + ("preset",)
    if (population, key) in ctx.spans.values:
        return (population, key)
    if (population, "preset") in ctx.spans.values and key in PRESETS.get(spec.preset or "", {}):
        return (population, "preset")
    return own


def sources_of(source) -> list:
    """The sources of a sampler, with `mix(...)` flattened."""
    if source.type == "mix":
        return [s for sub in source.sources for s in sources_of(sub)]
    return [source]


def all_of(items: Iterable[str]) -> str:
    """`a`, `b` and `c`."""
    items = list(dict.fromkeys(items))
    if len(items) == 1:
        return f"`{items[0]}`"
    return ", ".join(f"`{i}`" for i in items[:-1]) + f" and `{items[-1]}`"


def plural(n: int | float, word: str, many: str | None = None) -> str:
    """`1 label`, `3 labels`."""
    text = f"{n:g}" if isinstance(n, float) else str(n)
    return f"{text} {word if n == 1 else (many or word + 's')}"


def number(x: float) -> str:
    """A number as a person writes it: `0.5`, `64`, `1e-05`."""
    return f"{x:g}"


def nearest_divisors(n: int, x: int) -> list[int]:
    """The (at most two) divisors of ``n`` nearest to ``x``, in increasing order."""
    divisors = [d for d in range(1, n + 1) if n % d == 0 and d != x]
    divisors.sort(key=lambda d: (abs(d - x), d))
    return sorted(divisors[:2])


def nearest_multiples(x: int, n: int) -> list[int]:
    """The (at most two) multiples of ``x`` nearest to ``n``, in increasing order."""
    low = (n // x) * x
    found = [m for m in (low, low + x) if m > 0 and m != n]
    return found


def or_list(values: Iterable[int]) -> str:
    """`16 or 32`."""
    values = [str(v) for v in values]
    if len(values) <= 1:
        return "".join(values)
    return ", ".join(values[:-1]) + " or " + values[-1]

"""Declarations → the typed :class:`~rlhfdsl.spec.Spec`.

Runs the :class:`~rlhfdsl.check.convert.Converter` over every declaration, in an order that lets
later ones know the task's domain, and assembles the root model. Population members inherit the
population's behaviour entries: population preset, then population keys, then the member's
preset, then the member's own keys (each layer wins over the one before).
"""

from __future__ import annotations

from typing import Any

from rlhfdsl import ast
from rlhfdsl.check.convert import Converter, SpanIndex
from rlhfdsl.check.types import INVALID, tag_of
from rlhfdsl.errors import Diagnostic, Label, did_you_mean, one_of
from rlhfdsl.spec import experiment as ex
from rlhfdsl.spec.data import build
from rlhfdsl.spec.population import PRESETS, AIEvaluator, Behaviour, Group, Malicious, Population

# Declarations are converted in this order (the task first: it fixes the domain).
ORDER = ("task", "experiment", "model", "population", "sampler", "view", "context", "feedback",
         "reward", "policy", "schedule", "evaluate", "disclose")

MEMBER_CLASSES = {"group": Group, "ai": AIEvaluator}


def declaration_path(decl: ast.Declaration) -> tuple[str, ...]:
    """The first element of every path inside a declaration (its name, or its keyword for the
    singletons)."""
    if decl.keyword in ex.SINGLETONS:
        return (decl.keyword,)
    return (decl.name or decl.keyword,)


def convert_spec(decls: list[ast.Declaration], default_name: str,
                 base: Converter | None = None) -> tuple[ex.Spec | None, Converter]:
    """Convert checked-for-names declarations into a Spec; the converter holds diagnostics.

    With ``base`` (the converter of an earlier conversion of mostly the same declarations, as
    for the branches of a sweep), a declaration that is the very object converted there is
    reused with its spans and references, and only the others are converted again.
    """
    tasks = [d for d in decls if d.keyword == "task"]
    domain = _domain(tasks[0]) if tasks else None
    conv = Converter(domain)
    if base is not None:
        conv.spans.values.update(base.spans.values)
        conv.spans.keys.update(base.spans.keys)
        conv.references.extend(base.references)
        conv.expressions.extend(base.expressions)
    for decl in decls:
        conv.spans.declarations[declaration_path(decl)] = decl.name_span or decl.keyword_span
    by_keyword: dict[str, list[ast.Declaration]] = {}
    for decl in decls:
        by_keyword.setdefault(decl.keyword, []).append(decl)

    fields: dict[str, Any] = {}
    for keyword in ORDER:
        field, model = ex.DECLARATIONS[keyword]
        found = by_keyword.get(keyword, [])
        if keyword in ex.SINGLETONS:
            if not found:
                continue
            decl = found[0]
            value = _reuse_or_convert(conv, decl, domain, base)
            if value is not INVALID:
                fields[field] = value
        else:
            fields[field] = {}
            for decl in found:
                value = _reuse_or_convert(conv, decl, domain, base)
                if value is not INVALID:
                    fields[field][decl.name] = value
    experiments = by_keyword.get("experiment", [])
    if not tasks and experiments:
        # A file with neither `experiment` nor `task` is a library of declarations (imported by
        # other specs): it is checked without a domain. An experiment needs its task.
        decl = experiments[0]
        conv.diagnostics.append(Diagnostic(
            "E0206", f"experiment `{decl.name}` declares no `task`",
            span=decl.name_span or decl.keyword_span, label="an experiment needs a task",
            help="add `task NAME { domain = bandit  actions = 16  features = 8 }` or a text task"))
    if "experiment" not in fields:
        fields["experiment"] = build(ex.Experiment, name=default_name)
    if any(d.is_error for d in conv.diagnostics):
        return None, conv
    return build(ex.Spec, **fields), conv


def _reuse_or_convert(conv: Converter, decl: ast.Declaration, domain: str | None,
                      base: Converter | None) -> Any:
    hit = base.converted.get(id(decl)) if base is not None else None
    if hit is not None and hit[0] is decl:
        value = hit[1]
    else:
        value = _convert(conv, decl, domain)
    conv.converted[id(decl)] = (decl, value)
    return value


def _domain(task: ast.Declaration) -> str | None:
    for entry in task.body.entries:
        if isinstance(entry, ast.Assign) and entry.key == "domain" and isinstance(entry.value, ast.Path):
            if entry.value.parts in (("bandit",), ("text",)):
                return entry.value.parts[0]
    return None


def _convert(conv: Converter, decl: ast.Declaration, domain: str | None) -> Any:
    path = declaration_path(decl)
    owner = decl.name_span or decl.keyword_span
    what = f"{decl.keyword} `{decl.name}`" if decl.name else f"`{decl.keyword}`"
    before = len(conv.diagnostics)
    if decl.keyword == "population":
        return _population(conv, decl, path, owner)
    if decl.keyword == "task":
        if domain is None:
            entry = next((e for e in decl.body.entries
                          if isinstance(e, ast.Assign) and e.key == "domain"), None)
            if entry is None:
                conv.error("E0304", f"{what} needs `domain`", owner, label="`domain` is missing",
                           help="add `domain = bandit` or `domain = text`")
            else:
                conv.literal(entry.value, ("bandit", "text"), path + ("domain",))
            return INVALID
        cls: type = ex.BanditTask if domain == "bandit" else ex.TextTask
        values = conv.body(cls, decl.body, path, owner, what=f"{domain} task `{decl.name}`")
    elif decl.keyword == "evaluate":
        cls = ex.Evaluate
        values = _evaluate(conv, decl, path, owner)
    else:
        cls = ex.DECLARATIONS[decl.keyword][1]  # type: ignore[assignment]
        values = conv.body(cls, decl.body, path, owner, what=what)
    if len(conv.diagnostics) > before:
        return INVALID
    if "name" in cls.model_fields:
        values["name"] = decl.name if decl.name is not None else decl.keyword
    return build(cls, **values)


def _layer(out: dict[str, Any], values: dict[str, Any]) -> None:
    preset = values.get("preset")
    if preset:
        out.update(PRESETS[preset])
        out["preset"] = preset
    for key, value in values.items():
        if key in Behaviour.BEHAVIOUR_KEYS and key != "preset":
            out[key] = value


def _population(conv: Converter, decl: ast.Declaration, path: tuple[str, ...],
                owner: ast.Span) -> Any:
    before = len(conv.diagnostics)
    members = set(Population.MEMBERS.values())
    values = conv.body(Population, decl.body, path, owner, skip=members,
                       what=f"population `{decl.name}`")
    inherited: dict[str, Any] = {}
    _layer(inherited, values)
    groups: list[Any] = []
    ais: list[Any] = []
    malicious: Any = None
    names: dict[str, ast.Span] = {}
    for entry in decl.body.entries:
        if isinstance(entry, ast.Member):
            cls = MEMBER_CLASSES.get(entry.kind)
            if cls is None:
                conv.error("E0307", f"unknown population member `{entry.kind}`", entry.kind_span,
                           label="not a kind of member",
                           help=did_you_mean(entry.kind, ["group", "ai"])
                           or "members are `group NAME weight W { ... }` and `ai NAME weight W { ... }`")
                continue
            if entry.name in names:
                conv.error("E0205", f"population `{decl.name}` has two members named `{entry.name}`",
                           entry.name_span, label="second one here",
                           related=(Label(names[entry.name], "first one here"),),
                           help="rename one of them")
                continue
            names[entry.name] = entry.name_span
            sub = path + (entry.name,)
            conv.spans.declarations[sub] = entry.name_span
            conv.spans.values[sub + ("weight",)] = entry.weight.span
            weight = conv.in_range(entry.weight.value, _nonnegative(), entry.weight.span,
                                   sub + ("weight",))
            own = conv.body(cls, entry.body, sub, entry.name_span, skip={"weight"},
                            what=f"{entry.kind} `{entry.name}`")
            merged = dict(inherited)
            _layer(merged, own)
            extra = {k: v for k, v in own.items() if k not in Behaviour.BEHAVIOUR_KEYS}
            if weight is INVALID:
                continue
            member = build(cls, name=entry.name, weight=float(weight), **merged, **extra)
            (groups if cls is Group else ais).append(member)
        elif isinstance(entry, ast.Share):
            if entry.kind != "malicious":
                conv.error("E0307", f"unknown population member `{entry.kind}`", entry.kind_span,
                           label="not a kind of member",
                           help=did_you_mean(entry.kind, ["malicious"])
                           or "a share is written `malicious SHARE { trigger = ...  target = flip }`")
                continue
            if malicious is not None:
                conv.error("E0205", f"population `{decl.name}` has two `malicious` shares",
                           entry.kind_span, label="second one here", help="merge them")
                continue
            sub = path + ("malicious",)
            conv.spans.declarations[sub] = entry.kind_span
            conv.spans.values[sub + ("share",)] = entry.share.span
            share = conv.in_range(entry.share.value, _probability(), entry.share.span,
                                  sub + ("share",))
            own = conv.body(Malicious, entry.body, sub, entry.kind_span, skip={"share"},
                            what="`malicious`")
            if share is not INVALID:
                malicious = build(Malicious, share=float(share), **own)
    if len(conv.diagnostics) > before:
        return INVALID
    pop_values = {k: v for k, v in values.items() if k not in Behaviour.BEHAVIOUR_KEYS}
    return build(Population, name=decl.name, groups=tuple(groups), ai=tuple(ais),
                 malicious=malicious, **inherited, **pop_values)


def _evaluate(conv: Converter, decl: ast.Declaration, path: tuple[str, ...],
              owner: ast.Span) -> dict[str, Any]:
    values = conv.body(ex.Evaluate, decl.body, path, owner, skip={"metrics"}, what="`evaluate`")
    classes = {tag_of(c): c for c in _metric_classes()}
    metrics = []
    seen: dict[str, ast.Span] = {}
    for entry in decl.body.entries:
        if not isinstance(entry, ast.Flag):
            continue
        cls = classes.get(entry.key)
        if cls is None:
            conv.error("E0303", f"unknown metric `{entry.key}`", entry.key_span,
                       label="not a metric",
                       help=did_you_mean(entry.key, classes) or f"the metrics are {one_of(classes)}")
            continue
        if entry.key in seen:
            conv.error("E0205", f"metric `{entry.key}` is given twice", entry.key_span,
                       label="again here", related=(Label(seen[entry.key], "first here"),))
            continue
        seen[entry.key] = entry.key_span
        conv.spans.values[path + (entry.key,)] = entry.span
        fields = conv.fields_of(cls, set())
        found: dict[str, Any] = {}
        if conv.arguments(cls, entry.args, entry.kwargs, entry.span, fields, found,
                          path + (entry.key,)):
            metrics.append(build(cls, **found))
    values["metrics"] = tuple(metrics)
    return values


def _metric_classes() -> list:
    from rlhfdsl.check.types import _choices_of

    return _choices_of(ex.MetricChoice) or []


def _nonnegative() -> list:
    import annotated_types as at

    return [at.Ge(0.0)]


def _probability() -> list:
    import annotated_types as at

    return [at.Ge(0.0), at.Le(1.0)]


__all__ = ["convert_spec", "declaration_path", "SpanIndex"]

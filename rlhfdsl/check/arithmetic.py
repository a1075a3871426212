"""The arithmetic other frameworks discover at run time, checked before anything runs.

Sizes that must divide (E0601), counts that must fit in what they draw from (E0602), budgets
that must cover a round (E0603) and indices that must exist (E0604). Each rule is a pure function
of the :class:`Context`; :data:`RULES` lists them in the order the :func:`arithmetic` pass runs
them.
"""

from __future__ import annotations

import math

from rlhfdsl.check.context import Context
from rlhfdsl.check.where import (
    behaviour_source, nearest_divisors, nearest_multiples, number, or_list, plural,
    span_at, written,
)
from rlhfdsl.errors import Diagnostic, Label
from rlhfdsl.spec.base import Expr
from rlhfdsl.spec.feedback import cost_per_label

# ------------------------------------------------------------------------ sizes that divide


def sizes_divide(ctx: Context) -> list[Diagnostic]:
    """E0601: PPO minibatches, RLOO and GRPO groups divide the policy's batch; attention heads
    divide the width and key/value heads divide the heads."""
    out = []
    for name, policy in ctx.spec.policies.items():
        objective = policy.objective
        batch = policy.batch_size
        for kind, key, what in (("ppo", "minibatch", "a minibatch"), ("rloo", "k", "a `k`"),
                                ("grpo", "group", "a `group`")):
            size = getattr(objective, key, None) if objective.type == kind else None
            if size is None or batch % size == 0:
                continue
            divisors = nearest_divisors(batch, size)
            verb = "divides" if len(divisors) == 1 else "divide"
            fixes = [f"use {what} of {or_list(divisors)}, which {verb} {batch}"]
            multiples = nearest_multiples(size, batch)
            if multiples:
                fixes.append(f"a `batch_size` of {or_list(multiples)}")
            label = (f"{size} does not divide the batch of {batch}" if size < batch else
                     f"larger than the batch of {batch}")
            related = ()
            if written(ctx, name, "batch_size"):
                related = (Label(span_at(ctx, name, "batch_size"), f"a batch of {batch}"),)
            out.append(Diagnostic(
                "E0601", f"`{key}` of `{kind}` must divide the policy's `batch_size`",
                span=span_at(ctx, name, "objective", key), label=label, related=related,
                help=", or ".join(fixes)))
    for name, model in ctx.spec.models.items():
        if model.path is not None:
            continue
        if model.width % model.heads:
            heads = nearest_divisors(model.width, model.heads)
            widths = nearest_multiples(model.heads, model.width)
            out.append(Diagnostic(
                "E0601", f"`heads` must divide `width` in model `{name}`",
                span=span_at(ctx, name, "heads"),
                label=f"{model.heads} does not divide the width of {model.width}",
                help=f"use {or_list(heads)} heads, or a `width` of {or_list(widths)}"))
        if model.kv_heads is not None and model.heads % model.kv_heads:
            out.append(Diagnostic(
                "E0601", f"`kv_heads` must divide `heads` in model `{name}`",
                span=span_at(ctx, name, "kv_heads"),
                label=f"{model.kv_heads} does not divide {model.heads} heads",
                help=f"use {or_list(nearest_divisors(model.heads, model.kv_heads))} key/value "
                     "heads"))
    return out


# ------------------------------------------------------------------------ counts that fit


def counts_fit(ctx: Context) -> list[Diagnostic]:
    """E0602: items per query within the bandit's actions, redundancy within the population,
    evaluators enough for every weighted member, kept samples within drawn ones, held-out
    pairs within the distinct pairs, token counts within the models' context, LoRA ranks within
    the width."""
    spec = ctx.spec
    out = []
    for name, feedback in spec.feedback.items():
        kind = feedback.kind
        k = getattr(kind, "k", None)
        if spec.domain == "bandit" and kind.type in ("ranking", "best_of") \
                and k > spec.task.actions:
            out.append(Diagnostic(
                "E0602", f"`{kind.type}({k})` shows more items than the task has actions",
                span=span_at(ctx, name, "kind"),
                label=f"task `{spec.task.name}` has {spec.task.actions} actions",
                help=f"use at most `{kind.type}({spec.task.actions})`"))
        population = spec.populations.get(feedback.from_)
        if population is not None and feedback.redundancy > population.evaluators:
            out.append(Diagnostic(
                "E0602", f"`redundancy` asks {feedback.redundancy} evaluators per query, and "
                         f"`{feedback.from_}` has {population.evaluators}",
                span=span_at(ctx, name, "redundancy"),
                label="more evaluators per query than the population holds",
                related=_written(ctx, (feedback.from_, "evaluators"),
                                 plural(population.evaluators, "evaluator")),
                help=f"use `redundancy = {population.evaluators}` or less, or raise "
                     f"`evaluators` in `{feedback.from_}`"))
    for name, population in spec.populations.items():
        weighted = [m.name for m in population.groups + population.ai if m.weight > 0]
        if len(weighted) > population.evaluators:
            out.append(Diagnostic(
                "E0602", f"population `{name}` has {len(weighted)} members with weight but only "
                         f"{plural(population.evaluators, 'evaluator')}",
                span=span_at(ctx, name, "evaluators") if written(ctx, name, "evaluators")
                else ctx.spans.declaration(name),
                label="every member with weight needs an evaluator",
                help=f"use `evaluators = {len(weighted)}` or more"))
    for name, policy in spec.policies.items():
        objective = policy.objective
        if objective.type == "rejection_sampling" and objective.top > objective.n:
            out.append(Diagnostic(
                "E0602", f"`top` keeps {objective.top} of {objective.n} samples",
                span=span_at(ctx, name, "objective", "top"),
                label=f"more than the {objective.n} drawn",
                help=f"use `top = {objective.n}` or less, or raise `n`"))
    if spec.domain == "bandit":
        actions = spec.task.actions
        pairs = actions * (actions - 1) // 2
        for metric in spec.evaluate.metrics:
            if metric.type == "accuracy" and "pairs" in metric.model_fields_set \
                    and metric.pairs > pairs:
                out.append(Diagnostic(
                    "E0602", f"`accuracy` asks for {metric.pairs} held-out pairs, and "
                             f"{actions} actions make {pairs}",
                    span=span_at(ctx, "evaluate", "accuracy"),
                    label="more pairs than there are",
                    help=f"use `accuracy(pairs = {pairs})`" if pairs >= 10 else
                    "leave `pairs` out"))
    elif spec.domain == "text":
        out.extend(_text_counts(ctx))
    return out


def _text_counts(ctx: Context) -> list[Diagnostic]:
    spec = ctx.spec
    task = spec.task
    tokens = task.max_prompt_tokens + task.max_new_tokens
    used: dict[str, str] = {}
    for name, policy in spec.policies.items():
        for model in (getattr(policy.init, "model", None), policy.reference):
            if model is not None:
                used.setdefault(model, f"policy `{name}`")
    for name, reward in spec.rewards.items():
        model = getattr(reward.backbone, "model", None)
        if model is not None:
            used.setdefault(model, f"reward `{name}`")
    out = []
    for model_name in used:
        model = spec.models.get(model_name)
        if model is None or model.path is not None or model.context >= tokens:
            continue
        out.append(Diagnostic(
            "E0602", f"model `{model_name}` holds {model.context} tokens, fewer than a prompt "
                     f"and its completion ({task.max_prompt_tokens} + {task.max_new_tokens})",
            span=span_at(ctx, model_name, "context") if written(ctx, model_name, "context")
            else ctx.spans.declaration(model_name),
            label=f"a context of {model.context} tokens",
            help=f"raise `context` to {tokens}, or lower `max_prompt_tokens` or "
                 "`max_new_tokens` in the task"))
    for name, policy in spec.policies.items():
        model = spec.models.get(getattr(policy.init, "model", None) or "")
        if policy.adapter is None or model is None or model.path is not None:
            continue
        if policy.adapter.r > model.width:
            out.append(Diagnostic(
                "E0602", f"LoRA rank {policy.adapter.r} exceeds the width {model.width} of "
                         f"model `{model.name}`",
                span=span_at(ctx, name, "adapter", "r"), label="a rank above the width",
                help=f"use `r = {min(8, model.width)}` (the rank must be at most "
                     f"{model.width})"))
    return out


def _written(ctx: Context, path: tuple[str, ...], text: str) -> tuple[Label, ...]:
    if written(ctx, *path):
        return (Label(span_at(ctx, *path), text),)
    return ()


# ------------------------------------------------------------------------ budgets


def labels_per_round(ctx: Context, feedback_name: str) -> tuple[int, str]:
    """Labels one round of this feedback gets, and how that number came about, in words."""
    spec = ctx.spec
    feedback = spec.feedback[feedback_name]
    rounds = spec.schedule.rounds
    budget = feedback.budget
    if budget.unit == "labels":
        total = budget.amount
        how = plural(number(total) if total != int(total) else int(total), "label")
    else:
        cost = cost_per_label(feedback.kind, feedback.cost)
        total = math.floor(budget.amount / cost + 1e-9)
        how = (f"{number(budget.amount)} seconds at {number(cost)} seconds per label buy "
               f"{plural(int(total), 'label')}")
    per_round = math.floor(total / rounds + 1e-9)
    how += f" over {rounds} rounds" if rounds > 1 else ", all in one round"
    return per_round, how


def budgets_cover(ctx: Context) -> list[Diagnostic]:
    """E0603 budgets that give less than one query, or less than one batch of the rewards fitted
    on them, per round; E0602 ensembles larger than the labels, and held-out shares that leave
    less than a batch."""
    spec = ctx.spec
    rounds = spec.schedule.rounds
    out = []
    short: set[str] = set()
    per_round: dict[str, int] = {}
    for name, feedback in spec.feedback.items():
        labels, how = labels_per_round(ctx, name)
        per_round[name] = labels
        if labels < feedback.redundancy:
            short.add(name)
            need = feedback.redundancy * rounds
            out.append(Diagnostic(
                "E0603", f"`budget` of `{name}` does not cover one query per round",
                span=span_at(ctx, name, "budget"),
                label=how if rounds == 1 else f"{how}: {plural(labels, 'label')} per round",
                related=_rounds(ctx),
                help=_raise_budget(ctx, name, need)
                + (f" ({feedback.redundancy} per query)" if feedback.redundancy > 1 else "")))
    for name, reward in spec.rewards.items():
        sources = [f for f in reward.feedback if f in spec.feedback]
        if not sources or any(f in short for f in sources):
            continue
        labels = sum(per_round[f] for f in sources)
        batch = reward.batch_size
        batch_span = _reward_key(ctx, name, "batch_size", f"a batch of {batch} labels")
        if labels < batch:
            if len(sources) == 1:
                _, how = labels_per_round(ctx, sources[0])
                span, label = span_at(ctx, sources[0], "budget"), f"{how}"
                related = batch_span + _rounds(ctx)
                fix = _raise_budget(ctx, sources[0], batch * rounds)
            else:
                span = ctx.spans.declaration(name)
                label = f"fitted on {len(sources)} feedback declarations"
                related = tuple(Label(span_at(ctx, f, "budget"), f"{per_round[f]} per round")
                                for f in sources) + _rounds(ctx)
                fix = "raise their budgets"
            fixes = [fix, f"lower `batch_size` of `{name}` to {max(1, labels)}"]
            if rounds > 1:
                fixes.append("lower `rounds`")
            out.append(Diagnostic(
                "E0603", f"{plural(labels, 'label')} per round is less than one batch of reward "
                         f"`{name}` ({batch})",
                span=span, label=label, related=related,
                help=", ".join(fixes[:-1]) + ", or " + fixes[-1]))
            continue
        if reward.ensemble > labels:
            out.append(Diagnostic(
                "E0602", f"an ensemble of {reward.ensemble} needs at least {reward.ensemble} "
                         f"labels per round, and `{name}` gets {labels}",
                span=span_at(ctx, name, "ensemble"), label="more members than labels",
                help=f"use `ensemble = {labels}` or less, or raise the budget"))
        held = math.ceil(labels * reward.holdout - 1e-9) if reward.holdout > 0 else 0
        train = labels - held
        if train < batch:
            largest = math.floor((labels - batch) / labels * 100) / 100
            lower = f"lower `holdout` to {largest:g}" if largest > 0 else "set `holdout = 0`"
            holdout_span = span_at(ctx, name, "holdout") if written(ctx, name, "holdout") \
                else ctx.spans.declaration(name)
            default = "" if written(ctx, name, "holdout") else " (the default)"
            out.append(Diagnostic(
                "E0602", f"`holdout` of reward `{name}` leaves {plural(train, 'label')} per "
                         f"round to fit on, less than one batch ({batch})",
                span=holdout_span,
                label=f"holds out {number(reward.holdout * 100)}% of {labels} labels{default}",
                related=batch_span,
                help=f"{lower}, raise the budget, or lower `batch_size` to {max(1, train)}"))
    return out


def _rounds(ctx: Context) -> tuple[Label, ...]:
    rounds = ctx.spec.schedule.rounds
    return _written(ctx, ("schedule", "rounds"), f"{rounds} rounds")


def _reward_key(ctx: Context, name: str, key: str, text: str) -> tuple[Label, ...]:
    return _written(ctx, (name, key), text)


def _raise_budget(ctx: Context, name: str, labels: int) -> str:
    feedback = ctx.spec.feedback[name]
    if feedback.budget.unit == "labels":
        return f"raise `budget` to at least {plural(labels, 'label')}"
    seconds = labels * cost_per_label(feedback.kind, feedback.cost)
    return f"raise `budget` to at least {number(seconds)} seconds"


# ------------------------------------------------------------------------ indices


def indices_exist(ctx: Context) -> list[Diagnostic]:
    """E0604: feature indices in expressions, views and expert areas, and `weights`/`table`
    lists, within the bandit task's features and actions."""
    spec = ctx.spec
    if spec.domain != "bandit":
        return []
    task = spec.task
    features, actions = task.features, task.actions
    have = f"task `{task.name}` has {plural(features, 'feature')}, numbered 0 to {features - 1}"
    out = []
    for path, expr in ctx.expressions:
        span = span_at(ctx, *path)
        for call in _calls(expr):
            if call.value == "feature":
                low, high = (a.value for a in call.args[0].args)
                if high >= features:
                    written_as = f"{low}..{high}" if low != high else f"{low}"
                    out.append(Diagnostic(
                        "E0604", f"`feature({written_as})` reaches past the last feature",
                        span=span, label=have,
                        help=f"use indices 0 to {features - 1}, or raise `features` in the task"))
            elif call.value in ("weights", "table"):
                size = len(call.args[0].args)
                limit, what = (features, "feature") if call.value == "weights" \
                    else (actions, "action")
                if size > limit:
                    out.append(Diagnostic(
                        "E0604", f"`{call.value}` has {size} values for "
                                 f"{plural(limit, what)}",
                        span=span, label=f"one value per {what}, at most",
                        help=f"give at most {limit} values"))
    for name, view in spec.views.items():
        for key in ("show", "mask"):
            value = getattr(view, key)
            if value is not None and getattr(value, "type", None) == "features" \
                    and value.indices and max(value.indices) >= features:
                out.append(Diagnostic(
                    "E0604", f"feature {max(value.indices)} in `{key}` is past the last feature",
                    span=span_at(ctx, name, key), label=have,
                    help=f"use indices 0 to {features - 1}"))
    seen: set = set()
    for pop_name, population in spec.populations.items():
        for member in population.groups + population.ai:
            for expert in member.expertise:
                area = expert.area
                if isinstance(area, str) or not area.indices or max(area.indices) < features:
                    continue
                source = behaviour_source(ctx, pop_name, member.name, "expertise")
                if source in seen:
                    continue
                seen.add(source)
                out.append(Diagnostic(
                    "E0604", f"feature {max(area.indices)} in an expert area is past the last "
                             "feature", span=span_at(ctx, *source), label=have,
                    help=f"use indices 0 to {features - 1}"))
    return out


def _calls(expr: Expr):
    if expr.op == "call":
        yield expr
    for arg in expr.args:
        yield from _calls(arg)
    for _, arg in expr.kwargs:
        yield from _calls(arg)


# ---------------------------------------------------------------------------- the pass

RULES = (
    sizes_divide,
    counts_fit,
    budgets_cover,
    indices_exist,
)


def arithmetic(ctx: Context) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for rule in RULES:
        out.extend(rule(ctx))
    return out



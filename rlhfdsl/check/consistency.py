"""Consistency rules: settings that each pass alone but contradict one another.

Part of the type-rules pass (:data:`rlhfdsl.check.rules.RULES`): AI evaluators with exactly one
of a scorer and a model and no dependency cycle through their model, member weights that can be
normalised, malicious groups that exist, label choice sets, mix and head weights, active query
selection that has a reward model to ask, ties and skips a feedback kind can express, and
metrics that have something to measure.
"""

from __future__ import annotations

from rlhfdsl.check.context import Context
from rlhfdsl.check.where import (
    behaviour_source, key_at, plural, sources_of, span_at, written,
)
from rlhfdsl.errors import Diagnostic, Label, did_you_mean, one_of
from rlhfdsl.spec.learning import NEEDS_DATA

# ------------------------------------------------------------------------- populations


def populations_consistent(ctx: Context) -> list[Diagnostic]:
    """E0304 a population without members, E0402 weights that cannot be normalised, E0304/E0504
    AI evaluators without or with both of `scorer` and `model`, E0201/E0203 malicious groups
    that do not exist."""
    out: list[Diagnostic] = []
    for name, population in ctx.spec.populations.items():
        members = population.groups + population.ai
        decl = ctx.spans.declaration(name)
        if not members:
            out.append(Diagnostic(
                "E0304", f"population `{name}` has no evaluators", span=decl,
                label="no `group` or `ai` member",
                help="add `group NAME weight 1 { values = ... }`"))
            continue
        if sum(m.weight for m in members) <= 0:
            out.append(Diagnostic(
                "E0402", f"the member weights of `{name}` sum to 0", span=decl,
                label="no evaluator can be drawn",
                related=tuple(Label(span_at(ctx, name, m.name, "weight"), "weight 0")
                              for m in members),
                help="give at least one member a positive weight"))
        for ai in population.ai:
            here = (name, ai.name)
            if ai.scorer is not None and ai.model is not None:
                out.append(Diagnostic(
                    "E0504", f"ai `{ai.name}` has both a `scorer` and a `model`",
                    span=key_at(ctx, *here, "model"), label="a reward model as annotator",
                    related=(Label(key_at(ctx, *here, "scorer"), "and a scorer"),),
                    help="keep one of them"))
            elif ai.scorer is None and ai.model is None:
                out.append(Diagnostic(
                    "E0304", f"ai `{ai.name}` needs a `scorer` or a `model`",
                    span=ctx.spans.declaration(*here), label="it has neither",
                    help="add `scorer = ...` (an expression) or `model = NAME` (a reward)"))
        out.extend(_malicious_groups(ctx, name))
    return out


def _malicious_groups(ctx: Context, name: str) -> list[Diagnostic]:
    population = ctx.spec.populations[name]
    malicious = population.malicious
    if malicious is None or malicious.groups is None:
        return []
    groups = [g.name for g in population.groups]
    ais = [a.name for a in population.ai]
    out = []
    span = span_at(ctx, name, "malicious", "groups")
    for group in malicious.groups:
        if group in groups:
            continue
        if group in ais:
            out.append(Diagnostic(
                "E0203", f"`{group}` is an AI evaluator, not a group", span=span,
                label="`groups` names human groups of the population",
                help=f"the groups of `{name}` are {one_of(groups)}" if groups else
                "remove it"))
            continue
        out.append(Diagnostic(
            "E0201", f"unknown group `{group}` in population `{name}`", span=span,
            label="not a group of this population",
            help=did_you_mean(group, groups)
            or (f"the groups of `{name}` are {one_of(groups)}" if groups else
                "the population has no groups")))
    return out


def no_cycles(ctx: Context) -> list[Diagnostic]:
    """E0204: an AI evaluator whose reward model is fitted, directly or not, on the labels of
    its own population, unless `schedule { rounds >= 2 }` makes round r use round r-1's."""
    spec = ctx.spec
    if spec.schedule.rounds >= 2:
        return []
    out = []
    for name, population in spec.populations.items():
        for ai in population.ai:
            if ai.model is None or ai.model not in spec.rewards:
                continue
            path = _path_back(ctx, ai.model, name)
            if path is None:
                continue
            # `path` runs reward → feedback → population (→ reward → ...) back to `name`;
            # the cycle reads in the direction data flows: feedback → reward → population.
            flow = list(reversed(path))  # name, feedback, reward, ..., ai.model
            cycle = flow[1:] + [flow[0], flow[1]]
            out.append(Diagnostic(
                "E0204", "found a cycle: " + " --> ".join(cycle),
                span=span_at(ctx, name, ai.name, "model"),
                label=(f"`{ai.model}` is fitted on the labels of `{name}` itself" if len(path) == 3
                       else f"`{ai.model}` is fitted on labels that depend on `{name}` itself"),
                notes=(f"ai `{ai.name}` labels for `{name}` with `{ai.model}`; with one round, "
                       f"`{ai.model}` would have to be fitted before its own labels exist",),
                help=f"iterate with `schedule {{ rounds = 2 }}` (or more), so that round r's "
                     f"`{ai.name}` uses round r-1's `{ai.model}`; or give `{ai.name}` a "
                     "`scorer` instead"))
    return out


def _path_back(ctx: Context, reward: str, target: str) -> list[str] | None:
    """A dependency path reward → feedback → population ... ending at population ``target``."""
    spec = ctx.spec

    def deps(node: tuple[str, str]) -> list[tuple[str, str]]:
        kind, name = node
        if kind == "reward":
            return [("feedback", f) for f in spec.rewards[name].feedback if f in spec.feedback]
        if kind == "feedback":
            fb = spec.feedback[name]
            found = [("population", fb.from_)]
            sampler = spec.samplers.get(fb.sampler or "")
            if sampler is not None and sampler.by:
                found.append(("population", sampler.by))
            return [n for n in found if n[1] in spec.populations]
        return [("reward", a.model) for a in spec.populations[name].ai
                if a.model is not None and a.model in spec.rewards]

    seen: set = set()

    def visit(node: tuple[str, str], trail: list[str]) -> list[str] | None:
        if node in seen:
            return None
        seen.add(node)
        trail = trail + [node[1]]
        if node == ("population", target):
            return trail
        for nxt in deps(node):
            found = visit(nxt, trail)
            if found:
                return found
        return None

    return visit(("reward", reward), [])


# ---------------------------------------------------------------------------- feedback


def feedback_consistent(ctx: Context) -> list[Diagnostic]:
    """E0305/E0504 label choice sets; E0504 scalar bounds, ties and skips a kind cannot
    express."""
    spec = ctx.spec
    out: list[Diagnostic] = []
    for name, feedback in spec.feedback.items():
        kind = feedback.kind
        span = span_at(ctx, name, "kind")
        if kind.type == "label":
            if len(kind.choices) < 2:
                out.append(Diagnostic(
                    "E0305", "`label` needs at least two choices", span=span,
                    label=f"{len(kind.choices)} choice offered",
                    help="write `label(good, bad)`"))
            seen: set[str] = set()
            for choice in kind.choices:
                if choice in seen:
                    out.append(Diagnostic(
                        "E0504", f"label choice `{choice}` is offered twice", span=span,
                        label="choices must be distinct", help="remove one of them"))
                seen.add(choice)
        if kind.type == "scalar" and not kind.low < kind.high:
            out.append(Diagnostic(
                "E0504", "`low` must be below `high`", span=span_at(ctx, name, "kind", "low"),
                label=f"{kind.low:g} is not below {kind.high:g}", help="swap them"))
        if kind.type == "pairwise":
            for allowed, behaviour, what in (("ties", "equal", "answers ties"),
                                             ("skips", "skip", "skips queries")):
                if not getattr(kind, allowed):
                    out.extend(_cannot_express(ctx, name, allowed, behaviour, what))
    return out


def _cannot_express(ctx: Context, name: str, allowed: str, behaviour: str,
                    what: str) -> list[Diagnostic]:
    feedback = ctx.spec.feedback[name]
    population = ctx.spec.populations.get(feedback.from_)
    if population is None:
        return []
    out = []
    seen: set = set()
    for member in population.groups + population.ai:
        value = getattr(member, behaviour)
        if value <= 0:
            continue
        source = behaviour_source(ctx, feedback.from_, member.name, behaviour)
        if source in seen:
            continue
        seen.add(source)
        who = (f"population `{feedback.from_}`" if len(source) == 2 else
               f"{'group' if member in population.groups else 'ai'} `{member.name}`")
        setting = "preset" if source[-1] == "preset" else behaviour
        label = (f"preset `{member.preset if len(source) == 3 else population.preset}` sets "
                 f"`{behaviour} = {value:g}`" if setting == "preset" else
                 f"`{behaviour} = {value:g}`")
        out.append(Diagnostic(
            "E0504", f"{who} {what}, but `{name}` does not allow {allowed}",
            span=span_at(ctx, *source), label=label,
            related=(Label(span_at(ctx, name, "kind", allowed), f"`{allowed} = false`"),),
            help=f"set `{allowed} = true` in the `pairwise` of `{name}`, or "
                 f"`{behaviour} = 0` for {who}"))
    return out


# ----------------------------------------------------------------------------- samplers


def samplers_consistent(ctx: Context) -> list[Diagnostic]:
    """E0504/E0401/E0402 mix weights; E0504 `by` without human examples; E0504 active query
    selection without a reward model (adversarial) or a reward ensemble (disagreement)."""
    spec = ctx.spec
    out: list[Diagnostic] = []
    for name, sampler in spec.samplers.items():
        source = sampler.source
        if source.type == "mix" and source.weights is not None:
            span = span_at(ctx, name, "source")
            if len(source.weights) != len(source.sources):
                out.append(Diagnostic(
                    "E0504", f"`mix` has {len(source.sources)} sources and "
                             f"{plural(len(source.weights), 'weight')}", span=span,
                    label="one weight per source",
                    help=f"give {len(source.sources)} weights, or leave `weights` out to mix "
                         "equally"))
            elif any(w < 0 for w in source.weights):
                out.append(Diagnostic(
                    "E0401", "`mix` weights cannot be negative", span=span,
                    label="a negative weight", help="use weights of 0 or more"))
            elif sum(source.weights) <= 0:
                out.append(Diagnostic(
                    "E0402", "the `mix` weights sum to 0", span=span,
                    label="no source can be drawn",
                    help="give at least one source a positive weight"))
        if sampler.by is not None and not any(s.type == "human" for s in sources_of(source)):
            out.append(Diagnostic(
                "E0504", "`by` names who writes human examples, and this sampler has none",
                span=span_at(ctx, name, "by"), label="unused without a `human` source",
                help="remove `by`, or add a `human` source"))
        out.extend(_selection(ctx, name))
    return out


def _selection(ctx: Context, name: str) -> list[Diagnostic]:
    spec = ctx.spec
    select = spec.samplers[name].select
    if select.type == "random":
        return []
    span = span_at(ctx, name, "select")
    if select.reward is not None:
        rewards = [select.reward] if select.reward in spec.rewards else []
    else:
        users = [f for f, fb in spec.feedback.items() if fb.sampler == name]
        if not users:
            return []
        rewards = [r for r, rm in spec.rewards.items() if any(f in rm.feedback for f in users)]
        if not rewards:
            return [Diagnostic(
                "E0504", f"`{select.type}` selection needs a reward model, and none is fitted "
                         f"on {one_of(users)}",
                span=span, label="asks the reward model which queries to keep",
                help=f"fit a reward on {one_of(users)}, or name one: "
                     f"`{select.type} {{ reward = NAME }}`")]
    out = []
    if select.type == "disagreement":
        for reward in rewards:
            if spec.rewards[reward].ensemble >= 2:
                continue
            related = ()
            if written(ctx, reward, "ensemble"):
                related = (Label(span_at(ctx, reward, "ensemble"), "a single model"),)
            out.append(Diagnostic(
                "E0504", f"`disagreement` selection needs a reward ensemble, and `{reward}` has "
                         "one member",
                span=span, label="keeps the queries the ensemble disagrees on", related=related,
                help=f"set `ensemble = 4` (or more) in reward `{reward}`"))
    return out


# ------------------------------------------------------------------------------ learning


def learning_consistent(ctx: Context) -> list[Diagnostic]:
    """E0504: multi-objective weights, DPO label smoothing, `feedback` on RL objectives,
    models' architecture keys, reference and policy tokenizers."""
    spec = ctx.spec
    out: list[Diagnostic] = []
    for name, reward in spec.rewards.items():
        head = reward.head
        if head.type == "multi_objective" and head.weights is not None \
                and len(head.weights) != head.k:
            out.append(Diagnostic(
                "E0504", f"`multi_objective({head.k})` has {plural(len(head.weights), 'weight')}",
                span=span_at(ctx, name, "head"), label="one weight per objective",
                help=f"give {head.k} weights, or leave `weights` out to average the heads"))
    for name, policy in spec.policies.items():
        objective = policy.objective
        if objective.type == "dpo" and objective.label_smoothing > 0 \
                and objective.loss not in ("robust", "conservative"):
            out.append(Diagnostic(
                "E0504", f"`label_smoothing` is not used by the `{objective.loss}` loss",
                span=span_at(ctx, name, "objective", "label_smoothing"),
                label="only `robust` and `conservative` read it",
                help="set `loss = robust` or `loss = conservative`, or remove `label_smoothing`"))
        if policy.feedback is not None and objective.type not in NEEDS_DATA \
                and written(ctx, name, "feedback"):
            out.append(Diagnostic(
                "E0504", f"`{objective.type}` does not read `feedback`",
                span=key_at(ctx, name, "feedback"), label="used by `dpo`, `kto` and `sft` only",
                help=f"remove it: `{objective.type}` learns from its `reward`, and a reward "
                     "names the feedback it is fitted on"))
        if spec.domain == "text":
            out.extend(_tokenizers(ctx, name))
    for name, model in spec.models.items():
        if model.family != "llama" and model.kv_heads is not None:
            out.append(Diagnostic(
                "E0504", f"`kv_heads` is a `llama` setting, and `{name}` is a `{model.family}`",
                span=key_at(ctx, name, "kv_heads"), label="grouped-query attention",
                help="remove it, or set `family = llama`"))
        if model.path is not None:
            for key in ("family", "layers", "width", "heads", "kv_heads", "vocab", "context"):
                if written(ctx, name, key):
                    out.append(Diagnostic(
                        "E0504", f"model `{name}` is loaded from `path`, which fixes its `{key}`",
                        span=key_at(ctx, name, key), label="ignored for a saved model",
                        related=(Label(span_at(ctx, name, "path"), "loaded from here"),),
                        help=f"remove `{key}`, or remove `path` to build the model from a "
                             "config"))
    return out


def _tokenizers(ctx: Context, name: str) -> list[Diagnostic]:
    spec = ctx.spec
    policy = spec.policies[name]
    init = getattr(policy.init, "model", None)
    reference = policy.reference
    if init is None or reference is None or init == reference:
        return []
    a, b = spec.models.get(init), spec.models.get(reference)
    if a is None or b is None or (a.tokenizer, a.vocab) == (b.tokenizer, b.vocab):
        return []
    return [Diagnostic(
        "E0504", f"reference `{reference}` and initial policy `{init}` use different tokenizers",
        span=span_at(ctx, name, "reference"), label="KL is measured token by token",
        help=f"give `{reference}` the tokenizer and vocabulary of `{init}`")]


# ------------------------------------------------------------------------------ evaluate


def metrics_measurable(ctx: Context) -> list[Diagnostic]:
    """E0504: explicit metrics have something to measure (a reward model, an ensemble, a
    malicious share, a policy)."""
    spec = ctx.spec
    out = []
    for metric in spec.evaluate.metrics:
        kind = metric.type
        span = span_at(ctx, "evaluate", kind)
        problem = None
        help = f"remove `{kind}`"
        if kind in ("accuracy", "proxy_reward", "disagreement") and not spec.rewards:
            problem = f"`{kind}` measures a reward model, and the spec fits none"
            help = f"declare a `reward`, or remove `{kind}`"
        elif kind == "disagreement" and not any(r.ensemble >= 2 for r in spec.rewards.values()):
            problem = "`disagreement` measures a reward ensemble, and every reward has one member"
            help = f"set `ensemble = 4` (or more) in reward `{next(iter(spec.rewards))}`"
        elif kind == "backdoor" and not any(p.malicious for p in spec.populations.values()):
            problem = "`backdoor` measures a poisoning attack, and no population is malicious"
            help = "add `malicious SHARE { trigger = ... }` to a population, or remove `backdoor`"
        elif kind in ("gold_reward", "proxy_reward", "kl", "entropy", "diversity") \
                and not spec.policies:
            problem = f"`{kind}` measures a policy, and the spec declares none"
        if problem:
            out.append(Diagnostic("E0504", problem, span=span, label="nothing to measure",
                                  help=help))
    return out


RULES = (
    populations_consistent,
    no_cycles,
    feedback_consistent,
    samplers_consistent,
    learning_consistent,
    metrics_measurable,
)

"""The type rules of DESIGN.md: loss ↔ feedback kind, objective ↔ inputs, domain fit.

Each rule is a pure function of the :class:`Context` returning diagnostics; :data:`RULES` lists
them, with the consistency rules of :mod:`rlhfdsl.check.consistency`, in the order the
:func:`type_rules` pass runs them. Names, keys, value types and ranges were checked when the
spec was converted; these rules look across declarations.
"""

from __future__ import annotations

from rlhfdsl.check import consistency
from rlhfdsl.check.context import Context
from rlhfdsl.check.where import behaviour_source, key_at, sources_of, span_at, written
from rlhfdsl.errors import Diagnostic, Label, did_you_mean, one_of
from rlhfdsl.spec.base import FeatureSet
from rlhfdsl.spec.expressions import FUNCTIONS, NAMES
from rlhfdsl.spec.learning import AUTO_LOSS, LOSS_ACCEPTS, NEEDS_DATA, NEEDS_REWARD, RewardRef

# What DPO, KTO and SFT learn from, in words.
DATA_WORDS = {
    "dpo": "pairwise data",
    "kto": "labels, ratings or pairs",
    "sft": "demonstrations (`correction` feedback)",
}
# The kind to suggest when a feedback declaration must be added for a direct objective.
DATA_EXAMPLE = {"dpo": "pairwise", "kto": "label(good, bad)", "sft": "correction"}

# Scorers a text evaluator can be an expert in: `expert(sentiment, 2.0)`.
TEXT_SCORERS = sorted({name for name, (domain, _) in NAMES.items() if domain == "text"}
                      | {name for name, fn in FUNCTIONS.items() if fn.domain == "text"})


# --------------------------------------------------------------------- loss ↔ feedback


def loss_fits_feedback(ctx: Context) -> list[Diagnostic]:
    """E0501: every feedback a reward is fitted on is of a kind its loss can consume."""
    spec = ctx.spec
    out = []
    for name, reward in spec.rewards.items():
        loss = reward.loss.type
        kinds = {f: spec.feedback[f].kind.type for f in reward.feedback if f in spec.feedback}
        if loss == "auto" or not kinds:
            continue
        accepts = LOSS_ACCEPTS[loss]
        bad = [f for f, kind in kinds.items() if kind not in accepts]
        if not bad:
            continue
        bad_kinds = list(dict.fromkeys(kinds[f] for f in bad))
        all_kinds = list(dict.fromkeys(kinds.values()))
        fitting = [other for other, ok in LOSS_ACCEPTS.items() if all(k in ok for k in all_kinds)]
        if len(all_kinds) == 1:
            natural = AUTO_LOSS[all_kinds[0]]
            help = (f"use `loss = {natural}` for `{all_kinds[0]}` feedback, or fit `{name}` on "
                    f"{one_of(accepts)} feedback")
        elif fitting:
            help = f"use `loss = {fitting[0]}`, which fits {one_of(all_kinds)} feedback"
        else:
            help = (f"use `loss = auto` to fit each feedback with its own loss, or fit `{name}` "
                    f"only on {one_of(accepts)} feedback")
        out.append(Diagnostic(
            "E0501", f"loss `{loss}` does not fit {one_of(bad_kinds)} feedback",
            span=span_at(ctx, name, "loss"), label=f"takes {one_of(accepts)} feedback",
            related=tuple(Label(span_at(ctx, f, "kind"), f"`{f}` is `{kinds[f]}` feedback")
                          for f in bad),
            help=help))
    return out


# ----------------------------------------------------------------- objective ↔ inputs


def objective_has_inputs(ctx: Context) -> list[Diagnostic]:
    """E0502: RL objectives have a reward; DPO, KTO and SFT have feedback data of a kind they
    learn from and no reward model; `conservative` has a reward ensemble to be pessimistic
    over."""
    spec = ctx.spec
    out: list[Diagnostic] = []
    for name, policy in spec.policies.items():
        objective = policy.objective.type
        objective_span = span_at(ctx, name, "objective")
        if objective in NEEDS_REWARD:
            if policy.reward is None:
                out.append(Diagnostic(
                    "E0502", f"`{objective}` needs a reward to optimise", span=objective_span,
                    label=f"policy `{name}` names no `reward`", help=_reward_help(ctx)))
        elif objective in NEEDS_DATA:
            out.extend(_direct_objective(ctx, name, objective, objective_span))
        out.extend(_conservative(ctx, name))
    return out


def _reward_help(ctx: Context) -> str:
    rewards = list(ctx.spec.rewards)
    if len(rewards) == 1:
        return f"add `reward = {rewards[0]}`"
    if rewards:
        return f"add `reward = NAME`, one of {one_of(rewards)}"
    populations = list(ctx.spec.populations)
    if populations:
        return (f"declare a `reward` fitted on feedback and add `reward = NAME`, or optimise "
                f"the true values with `reward = gold({populations[0]})`")
    return "declare a `reward` fitted on feedback and add `reward = NAME`"


def _direct_objective(ctx: Context, name: str, objective: str, objective_span) -> list[Diagnostic]:
    spec = ctx.spec
    policy = spec.policies[name]
    out = []
    if policy.reward is not None:
        reward = policy.reward.reward if isinstance(policy.reward, RewardRef) \
            else f"gold({policy.reward.population})"
        out.append(Diagnostic(
            "E0502", f"`{objective}` learns from feedback directly and takes no `reward`",
            span=span_at(ctx, name, "reward"), label="a reward is for RL objectives",
            related=(Label(objective_span, f"`{objective}` here"),),
            help=f"remove `reward = {reward}`, or optimise it with an RL objective such as "
                 "`ppo`"))
    accepts = NEEDS_DATA[objective]
    fitting = [f for f, fb in spec.feedback.items() if fb.kind.type in accepts]
    if policy.feedback is None:
        if not spec.feedback:
            out.append(Diagnostic(
                "E0502", f"`{objective}` needs {DATA_WORDS[objective]}", span=objective_span,
                label="the spec declares no feedback",
                help=f"declare one, e.g. `feedback prefs {{ kind = {DATA_EXAMPLE[objective]}  "
                     f"from = {next(iter(spec.populations), 'crowd')}  budget = 1000 }}`"))
        else:
            choices = fitting or list(spec.feedback)
            out.append(Diagnostic(
                "E0304", f"policy `{name}` needs `feedback`", span=ctx.spans.declaration(name),
                label="there are several feedback declarations to choose from",
                help=f"add `feedback = NAME`, one of {one_of(choices)}"))
        return out
    feedback = spec.feedback.get(policy.feedback)
    if feedback is None or feedback.kind.type in accepts:
        return out
    kind = feedback.kind.type
    related = [Label(span_at(ctx, policy.feedback, "kind"),
                     f"`{policy.feedback}` is `{kind}` feedback")]
    if written(ctx, name, "feedback"):
        related.insert(0, Label(span_at(ctx, name, "feedback"), "the data named here"))
    trained = [r for r, reward in spec.rewards.items() if policy.feedback in reward.feedback]
    if len(fitting) == 1:
        fix = f"use `feedback = {fitting[0]}`"
    elif fitting:
        fix = f"use `feedback = NAME`, one of {one_of(fitting)}"
    else:
        fix = (f"give `{objective}` a feedback declaration of kind `{accepts[0]}`"
               + (f" (or {one_of(accepts[1:])})" if len(accepts) > 1 else ""))
    if objective != "sft":
        rm = trained[0] if trained else None
        fix += (f", or optimise `{rm}` with an RL objective: `objective = ppo` and "
                f"`reward = {rm}`" if rm else
                f", or fit a reward on `{policy.feedback}` and optimise it with an RL "
                "objective such as `ppo`")
    out.append(Diagnostic(
        "E0502", f"`{objective}` needs {DATA_WORDS[objective]} and `{policy.feedback}` is "
                 f"`{kind}` feedback",
        span=objective_span, label=f"learns from {one_of(accepts)} feedback",
        related=tuple(related), help=fix))
    return out


def _conservative(ctx: Context, name: str) -> list[Diagnostic]:
    policy = ctx.spec.policies[name]
    if policy.conservative <= 0:
        return []
    span = span_at(ctx, name, "conservative")
    label = "optimises the ensemble mean minus `conservative` times its spread"
    reward = policy.reward
    if isinstance(reward, RewardRef):
        rm = ctx.spec.rewards.get(reward.reward)
        if rm is None or rm.ensemble >= 2:
            return []
        where = span_at(ctx, reward.reward, "ensemble") if written(ctx, reward.reward, "ensemble") \
            else ctx.spans.declaration(reward.reward)
        return [Diagnostic(
            "E0502", f"`conservative` needs a reward ensemble, and `{reward.reward}` has one "
                     "member",
            span=span, label=label, related=(Label(where, "a single reward model"),),
            help=f"set `ensemble = 4` (or more) in reward `{reward.reward}`, or remove "
                 "`conservative`")]
    if reward is not None:
        return [Diagnostic(
            "E0502", f"`conservative` needs a reward ensemble, and `gold({reward.population})` "
                     "is exact",
            span=span, label=label, help="remove `conservative`")]
    if policy.objective.type in NEEDS_REWARD:
        return []  # already reported: the objective has no reward at all
    return [Diagnostic(
        "E0502", f"`conservative` needs a reward ensemble, and `{policy.objective.type}` uses "
                 "no reward", span=span, label=label, help="remove `conservative`")]


# ----------------------------------------------------------------------- domain fit


def fits_domain(ctx: Context) -> list[Diagnostic]:
    """E0503: what the converter cannot see from one key alone — behaviour that needs the
    task's perceived `length`/`confidence`, expert areas of the other domain, example sources
    and references that only one domain has."""
    out: list[Diagnostic] = []
    out.extend(_perceived(ctx))
    out.extend(_expert_areas(ctx))
    out.extend(_sources(ctx))
    spec = ctx.spec
    if spec.domain == "bandit":
        for name, policy in spec.policies.items():
            if policy.reference is not None:
                out.append(Diagnostic(
                    "E0503", "`reference` names a language model, which a bandit task does "
                             "not use", span=span_at(ctx, name, "reference"),
                    label="this task is a bandit task",
                    help="remove it: a bandit policy's reference is its initial policy"))
        for metric in spec.evaluate.metrics:
            if metric.type == "diversity" and "n" in metric.model_fields_set:
                out.append(Diagnostic(
                    "E0503", "`diversity(n)` counts n-grams of text", span=span_at(
                        ctx, "evaluate", "diversity"),
                    label="on a bandit task it counts distinct actions",
                    help="write `diversity`"))
    return out


def _perceived(ctx: Context) -> list[Diagnostic]:
    spec = ctx.spec
    if spec.domain != "bandit":
        return []
    task = spec.task
    out = []
    seen: set = set()
    for key, needs in (("length_bias", "length"), ("sycophancy", "confidence")):
        if getattr(task, needs) is not None:
            continue
        for pop_name, population in spec.populations.items():
            for member in population.groups + population.ai:
                if getattr(member, key) == 0:
                    continue
                source = behaviour_source(ctx, pop_name, member.name, key)
                if source in seen:
                    continue
                seen.add(source)
                example = "feature(0)"
                out.append(Diagnostic(
                    "E0503", f"`{key}` needs the task's `{needs}`", span=key_at(ctx, *source),
                    label=f"task `{task.name}` does not say what an action's {needs} is",
                    related=(Label(ctx.spans.declaration("task"), f"no `{needs}` here"),),
                    help=f"add `{needs} = ...` to the task, an expression such as "
                         f"`{needs} = {example}`"))
    return out


def _expert_areas(ctx: Context) -> list[Diagnostic]:
    spec = ctx.spec
    out = []
    seen: set = set()
    for pop_name, population in spec.populations.items():
        for member in population.groups + population.ai:
            for expert in member.expertise:
                source = behaviour_source(ctx, pop_name, member.name, "expertise")
                area = expert.area
                if (source, str(area)) in seen:
                    continue
                seen.add((source, str(area)))
                span = span_at(ctx, *source)
                if isinstance(area, FeatureSet) and spec.domain == "text":
                    out.append(Diagnostic(
                        "E0503", "an expert area of `features(...)` belongs to bandit tasks",
                        span=span, label="this task is a text task",
                        help=f"name a text scorer instead, such as `expert(sentiment, "
                             f"{expert.factor!r})`"))
                elif isinstance(area, str) and spec.domain == "bandit":
                    out.append(Diagnostic(
                        "E0503", f"`{area}` is not an area of a bandit task", span=span,
                        label="this task is a bandit task",
                        help=f"name features instead, such as `expert(features(0..3), "
                             f"{expert.factor!r})`"))
                elif isinstance(area, str) and area not in TEXT_SCORERS:
                    out.append(Diagnostic(
                        "E0303", f"unknown scorer `{area}` in `expert`", span=span,
                        label="not a text scorer",
                        help=did_you_mean(area, TEXT_SCORERS)
                        or f"the scorers are {one_of(TEXT_SCORERS)}"))
    return out


def _sources(ctx: Context) -> list[Diagnostic]:
    spec = ctx.spec
    out = []
    for name, sampler in spec.samplers.items():
        for source in sources_of(sampler.source):
            span = span_at(ctx, name, "source")
            if source.type == "file" and spec.domain == "bandit":
                out.append(Diagnostic(
                    "E0503", "`file(...)` sources belong to text tasks", span=span,
                    label="this task is a bandit task",
                    help="bandit examples come from `policy` or `human`"))
            elif source.type == "human" and spec.domain == "bandit" and source.path is not None:
                out.append(Diagnostic(
                    "E0503", "`human(...)` reads written examples, which bandit tasks do not "
                             "have", span=span, label="this task is a bandit task",
                    help="write `human`: evaluators of `by` pick actions by their own values"))
            elif source.type == "human" and spec.domain == "text" and source.path is None:
                out.append(Diagnostic(
                    "E0503", "on a text task, `human` examples are read from a file", span=span,
                    label="no file named",
                    help='write `human("data/demos.jsonl")`'))
    return out


# ---------------------------------------------------------------------------- the pass

RULES = (
    loss_fits_feedback,
    objective_has_inputs,
    fits_domain,
    *consistency.RULES,
)


def type_rules(ctx: Context) -> list[Diagnostic]:
    """The type rules and the consistency rules, every error of every rule collected."""
    out: list[Diagnostic] = []
    for rule in RULES:
        out.extend(rule(ctx))
    return out

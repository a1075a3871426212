"""Warnings: what checks but deserves a second look. Weights that did not sum to one (and are
normalised here, in the spec), Section 5 disclosure items still missing, declarations that
nothing uses."""

from __future__ import annotations

from rlhfdsl.check.context import Context
from rlhfdsl.check.where import all_of, plural, span_at
from rlhfdsl.errors import Diagnostic, Label
from rlhfdsl.spec.experiment import Disclose
from rlhfdsl.spec.learning import ModelBackbone, ModelPolicy, RewardRef

TOLERANCE = 1e-9


def normalise_weights(ctx: Context) -> list[Diagnostic]:
    """W0401: member weights that do not sum to 1 are divided by their sum."""
    spec = ctx.spec
    out = []
    populations = dict(spec.populations)
    warned: set[tuple] = set()
    for name, population in spec.populations.items():
        members = population.groups + population.ai
        total = sum(m.weight for m in members)
        if not members or total <= 0 or abs(total - 1.0) <= TOLERANCE:
            continue
        groups = tuple(g.model_copy(update={"weight": g.weight / total}) for g in population.groups)
        ais = tuple(a.model_copy(update={"weight": a.weight / total}) for a in population.ai)
        populations[name] = population.model_copy(update={"groups": groups, "ai": ais})
        spans = tuple(span_at(ctx, name, m.name, "weight") for m in members)
        if spans in warned:
            continue  # the same weights, inherited through `extends`: warned once
        warned.add(spans)
        out.append(Diagnostic(
            "W0401", f"the member weights of `{name}` sum to {total:g}, not 1",
            span=ctx.spans.declaration(name), label="normalised to sum to 1",
            related=tuple(Label(span, f"now {m.weight / total:.3g}")
                          for span, m in zip(spans, members)),
            help="give weights that sum to 1", severity="warning"))
    if out:
        ctx.spec = spec.model_copy(update={"populations": populations})
    return out


def disclosure_complete(ctx: Context) -> list[Diagnostic]:
    """W0501: one warning listing the Section 5 items only the researcher can write."""
    disclose = ctx.spec.disclose
    missing = [k for k in Disclose.REQUIRED_TEXT if not (getattr(disclose, k) or "").strip()]
    if not missing:
        return []
    span = ctx.spans.declaration("disclose")
    if span is not None:
        label = f"{plural(len(missing), 'item')} missing"
        help = "add them as text: " + "  ".join(f'{k} = "..."' for k in missing)
    else:
        span = ctx.spans.declaration("experiment") or ctx.spans.declaration("task")
        label = "this spec has no `disclose` block"
        help = "add `disclose { " + "  ".join(f'{k} = "..."' for k in missing) + " }`"
    return [Diagnostic(
        "W0501", f"the disclosure lacks {all_of(missing)}", span=span, label=label,
        notes=("Section 5 of Casper et al. (2023): the run's report marks these as not "
               "disclosed",),
        help=help, severity="warning")]


def declarations_used(ctx: Context) -> list[Diagnostic]:
    """W0502: samplers, views, contexts, models, populations, feedback and rewards that nothing
    uses (declarations of imported files and bases of `extends` excepted)."""
    spec = ctx.spec
    used: set[str] = set()
    for feedback in spec.feedback.values():
        used.update(n for n in (feedback.from_, feedback.sampler, feedback.view,
                                feedback.context) if n)
    for sampler in spec.samplers.values():
        used.update(n for n in (sampler.by, getattr(sampler.select, "reward", None)) if n)
    for population in spec.populations.values():
        used.update(a.model for a in population.ai if a.model)
    for reward in spec.rewards.values():
        used.update(reward.feedback)
        if isinstance(reward.backbone, ModelBackbone):
            used.add(reward.backbone.model)
    for policy in spec.policies.values():
        if isinstance(policy.init, ModelPolicy):
            used.add(policy.init.model)
        if isinstance(policy.reward, RewardRef):
            used.add(policy.reward.reward)
        elif policy.reward is not None:
            used.add(policy.reward.population)
        used.update(n for n in (policy.reference, policy.feedback) if n)
    if not spec.policies or not spec.evaluate.metrics or any(
            m.type == "accuracy" for m in spec.evaluate.metrics):
        used.update(spec.rewards)  # the reward models are measured (or are the product)
    used.update(ctx.extended)
    main = ctx.main_file
    out = []
    kinds = (("models", "model"), ("populations", "population"), ("samplers", "sampler"),
             ("views", "view"), ("contexts", "context"), ("feedback", "feedback"),
             ("rewards", "reward"))
    for field, keyword in kinds:
        for name in getattr(spec, field):
            span = ctx.spans.declaration(name)
            if name in used or span is None or span.file != main:
                continue
            out.append(Diagnostic(
                "W0502", f"{keyword} `{name}` is never used", span=span,
                label="nothing refers to it", help=_use_help(keyword, name),
                severity="warning"))
    return out


_USES = {
    "model": "name it in a policy's `init` or a reward's `backbone`",
    "population": "name it in a feedback's `from`",
    "sampler": "name it in a feedback's `sampler`",
    "view": "name it in a feedback's `view`",
    "context": "name it in a feedback's `context`",
    "feedback": "fit a reward on it (`feedback = {name}`)",
    "reward": "optimise it in a policy (`reward = {name}`)",
}


def _use_help(keyword: str, name: str) -> str:
    return "remove it, or " + _USES[keyword].format(name=name)


RULES = (
    normalise_weights,
    disclosure_complete,
    declarations_used,
)


def warnings(ctx: Context) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    if ctx.spec.task is None:
        # A library of declarations: what it declares is used, and disclosed, by the specs that
        # import it. Only the normalisation warning applies.
        return normalise_weights(ctx)
    for rule in RULES:
        out.extend(rule(ctx))
    return out

"""Names: every reference resolves to a declaration of the right kind; omitted references get
their documented defaults (the spec's only feedback, its only model, ...)."""

from __future__ import annotations

from rlhfdsl.check.context import Context
from rlhfdsl.errors import Diagnostic, did_you_mean, one_of
from rlhfdsl.spec import experiment as ex
from rlhfdsl.spec.data import build
from rlhfdsl.spec.learning import LinearBackbone, ModelBackbone, ModelPolicy, TabularPolicy

# Reference kind → the Spec field holding declarations of that kind.
KIND_FIELDS = {keyword: field for keyword, (field, _model) in ex.DECLARATIONS.items()
               if keyword not in ex.SINGLETONS}


def resolve_references(ctx: Context) -> list[Diagnostic]:
    """E0201 for unknown names (with did-you-mean), E0203 for names of the wrong kind."""
    return check_references(ctx.references, ctx.declared)


def check_references(references, declared: dict[str, str]) -> list[Diagnostic]:
    """Check references against the declared names (name → keyword). Runs even when the
    conversion found errors, so a misspelt name is reported with everything else."""
    out = []
    for ref in references:
        kind = declared.get(ref.name)
        if kind == ref.kind:
            continue
        if kind is not None:
            out.append(Diagnostic(
                "E0203", f"`{ref.name}` is a {kind}, not a {ref.kind}", span=ref.span,
                label=f"`{ref.path[-1]}` needs a {ref.kind}",
                help=_candidates_help(ref.kind, ref.name, declared)))
            continue
        out.append(Diagnostic(
            "E0201", f"unknown {ref.kind} `{ref.name}`", span=ref.span,
            label="not declared in this spec or its imports",
            help=_candidates_help(ref.kind, ref.name, declared)))
    return out


def _candidates_help(kind: str, name: str, declared: dict[str, str]) -> str:
    names = [n for n, k in declared.items() if k == kind]
    hint = did_you_mean(name, names)
    if hint:
        return hint
    if names:
        return f"the {kind} declarations are {one_of(names)}"
    return f"declare one: `{kind} {name} {{ ... }}`"


def fill_defaults(ctx: Context) -> list[Diagnostic]:
    """Fill omitted references whose default is unambiguous; say so when it is not."""
    spec = ctx.spec
    out: list[Diagnostic] = []
    feedback_names = list(spec.feedback)
    model_names = list(spec.models)
    rewards = {}
    for name, reward in spec.rewards.items():
        update = {}
        if not reward.feedback:
            if len(feedback_names) == 1:
                update["feedback"] = (feedback_names[0],)
            else:
                out.append(_needs(ctx, ("reward", name), "feedback", "feedback", feedback_names,
                                  f"reward `{name}`"))
        if reward.backbone is None:
            if spec.domain == "bandit":
                update["backbone"] = build(LinearBackbone)
            elif len(model_names) == 1:
                update["backbone"] = build(ModelBackbone, model=model_names[0])
            else:
                out.append(_needs(ctx, ("reward", name), "backbone", "model", model_names,
                                  f"reward `{name}`"))
        rewards[name] = reward.model_copy(update=update) if update else reward
    policies = {}
    for name, policy in spec.policies.items():
        update = {}
        if policy.init is None:
            if spec.domain == "bandit":
                update["init"] = build(TabularPolicy)
            elif len(model_names) == 1:
                update["init"] = build(ModelPolicy, model=model_names[0])
            else:
                out.append(_needs(ctx, ("policy", name), "init", "model", model_names,
                                  f"policy `{name}`"))
        if policy.feedback is None and not getattr(policy.objective, "RL", True) \
                and policy.objective.type != "best_of_n" and len(feedback_names) == 1:
            update["feedback"] = feedback_names[0]
        policies[name] = policy.model_copy(update=update) if update else policy
    ctx.spec = spec.model_copy(update={"rewards": rewards, "policies": policies})
    return out


def _needs(ctx: Context, path: tuple[str, ...], key: str, kind: str, names: list[str],
           what: str) -> Diagnostic:
    span = ctx.spans.declaration(path[1])
    if names:
        return Diagnostic("E0304", f"{what} needs `{key}`", span=span,
                          label=f"there are several {kind} declarations to choose from",
                          help=f"add `{key} = NAME`, one of {one_of(names)}")
    return Diagnostic("E0206", f"{what} needs a {kind} declaration", span=span,
                      label=f"no {kind} is declared",
                      help=f"declare one: `{kind} NAME {{ ... }}`")

"""The data side of Eq. 4: task, ΔH (population), s (sample), v (render), f (feedback)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from backends.torch.artifacts import save_json, save_tensors
from backends.torch.bandit import bandit_space, draw_features
from backends.torch.feedback import (
    agreement_report, calibrate_population, collect_feedback, draw_population, sample_queries,
)
from backends.torch.feedback.calibration import gold_agreement
from backends.torch.feedback.items import BanditSpace, Queries
from backends.torch.feedback.views import render_texts, view_bandit
from backends.torch.labels import LabelTable
from backends.torch.stages import text as text_stages
from backends.torch.stages.common import (
    Ctx, bandit_features, bandit_log_probs, context_spec, feedback_spec, read, rewards_of,
    sampler_spec, view_spec,
)
from rlhfdsl.spec.population import CalibrateAccuracy, CalibrateAgreement

CALIBRATION_PAIRS = 2000
AUDIT_QUERIES = 500  # queries labelled twice to measure inter-annotator agreement


# ----------------------------------------------------------------------------------- task


def task(ctx: Ctx) -> dict[str, Any]:
    spec = ctx.task
    save_json(ctx.out, "task", {"domain": spec.domain, "name": spec.name})
    if spec.domain == "text":
        return text_stages.task(ctx)
    features = draw_features(spec, ctx.generator("features"), ctx.device)
    save_tensors(ctx.out, "actions", {"features": features})
    return {"actions": spec.actions, "features": spec.features}


def space_of(ctx: Ctx, task_dir: Path):
    """The item space of the task: bandit actions with features; text: a template space."""
    if ctx.task.domain == "text":
        return text_stages.space(ctx, task_dir)
    return bandit_space(ctx.task, ctx.generator("space"), ctx.device,
                        features=bandit_features(task_dir, ctx.device),
                        allow_plugins=ctx.call.allow_plugins)


# ----------------------------------------------------------------------------- population


def population(ctx: Ctx) -> dict[str, Any]:
    """ΔH: calibrate β where the spec asks for a target agreement, then draw the evaluators."""
    spec = ctx.population_spec(ctx.stage)
    members = list(spec.groups) + list(spec.ai)
    rationality: dict[str, float] = {}
    if any(isinstance(m.rationality, (CalibrateAgreement, CalibrateAccuracy)) for m in members):
        space = space_of(ctx, ctx.input("task"))
        queries = _calibration_queries(ctx, space)
        rationality = calibrate_population(spec, space, queries)
    seed = ctx.seed("draw")
    drawn = draw_population(spec, _generator(ctx.device, seed), ctx.device,
                            rationality=rationality or None)
    save_json(ctx.out, "population", {"seed": seed, "rationality": rationality,
                                      "members": drawn.names, "size": drawn.size})
    save_tensors(ctx.out, "population", {
        "member": drawn.member, "malicious": drawn.malicious, "beta": drawn.beta,
        "scale": drawn.scale, "offset": drawn.offset})
    metrics = {"evaluators": drawn.size, "malicious": int(drawn.malicious.sum())}
    metrics.update({f"beta.{k}": v for k, v in rationality.items()})
    return metrics


def _calibration_queries(ctx: Ctx, space) -> torch.Tensor:
    g = ctx.generator("calibration")
    if isinstance(space, BanditSpace):
        n = space.size
        first = torch.randint(0, n, (CALIBRATION_PAIRS,), generator=g, device=ctx.device)
        second = (first + torch.randint(1, n, (CALIBRATION_PAIRS,), generator=g,
                                        device=ctx.device)) % n
        return torch.stack([first, second], dim=1)
    return text_stages.calibration_queries(ctx, space, CALIBRATION_PAIRS, g)


def _generator(device: str, seed: int) -> torch.Generator:
    from backends.torch import device as devices

    return devices.generator(device, seed)


def load_population(ctx: Ctx, directory: Path, stage):
    """The drawn population of a population stage (redrawn from its stored seed: identical)."""
    spec = ctx.population_spec(stage)
    info = read(directory, "population")
    return draw_population(spec, _generator(ctx.device, info["seed"]), ctx.device,
                           rationality=info["rationality"] or None)


# --------------------------------------------------------------------------------- sample


def sample(ctx: Ctx) -> dict[str, Any]:
    """s: draw the round's queries from the sampler's source (the current policy by default)."""
    task_dir = ctx.input("task")
    space = space_of(ctx, task_dir)
    n, k = ctx.params["queries"], ctx.params["items_per_query"]
    sampler = sampler_spec(ctx.params)
    humans = None
    if ctx.optional("humans") is not None:
        humans = load_population(ctx, ctx.input("humans"), ctx.input_stage("humans"))
    ensemble = None
    if ctx.optional("reward") is not None:
        ensemble = _ensemble_scores(ctx, ctx.input("reward"))
    elif sampler is not None and sampler.select.type != "random":
        sampler = sampler.model_copy(update={"select": _random()})  # round 0: no model yet
    if ctx.domain == "text":
        policy = text_stages.policy_draw(ctx, space)
    else:
        log_probs = bandit_log_probs(ctx.optional("policy"), space.size, ctx.device)
        probs = log_probs.exp()

        def policy(m: int, generator: torch.Generator) -> torch.Tensor:
            return torch.multinomial(probs, m, replacement=True, generator=generator)

    queries = sample_queries(sampler, n, k, space, ctx.generator("queries"), policy=policy,
                             population=humans, ensemble=ensemble, base_dir=ctx.call.spec_dir)
    save_queries(ctx.out, queries)
    return {"queries": len(queries), "items_per_query": queries.k,
            "distinct_items": int(torch.unique(queries.items).numel())}


def _random():
    from rlhfdsl.spec.feedback import RandomSelection
    from rlhfdsl.spec.data import build

    return build(RandomSelection)


def _ensemble_scores(ctx: Ctx, reward_dir: Path):
    if ctx.domain == "text":
        return text_stages.ensemble_scores(ctx, reward_dir)
    rewards = rewards_of(reward_dir, ctx.device)  # [E, A]

    def scores(items: torch.Tensor) -> torch.Tensor:
        return rewards[:, items.to(rewards.device)]

    return scores


def save_queries(directory: Path, queries: Queries) -> None:
    save_tensors(directory, "queries", {"items": queries.items, "source": queries.source})
    info: dict[str, Any] = {"sources": list(queries.sources)}
    texts = getattr(queries.space, "texts", None)
    if texts is not None:
        info["texts"] = list(texts)
        info["prompts"] = list(getattr(queries.space, "prompts", None) or [])
    save_json(directory, "queries", info)


def load_queries(ctx: Ctx, directory: Path, space) -> Queries:
    from backends.torch.artifacts import load_tensors

    tensors = load_tensors(directory, "queries", ctx.device)
    info = read(directory, "queries")
    if "texts" in info:
        space = text_stages.space_with_texts(space, info["texts"], info.get("prompts"))
    return Queries(tensors["items"], space, tensors["source"], tuple(info["sources"]))


# --------------------------------------------------------------------------------- render


def render(ctx: Ctx) -> dict[str, Any]:
    """v: what the evaluators see of each queried item (kept for audit and the report; the
    feedback stage perceives through the same view)."""
    space = space_of(ctx, ctx.input("task"))
    queries = load_queries(ctx, ctx.input("items"), space)
    save_queries(ctx.out, queries)
    view = view_spec(ctx.params)
    if isinstance(space, BanditSpace):
        compiled = view_bandit(view, space)
        save_tensors(ctx.out, "rendered", {"features": compiled.features[queries.items],
                                           "shown": compiled.shown})
        return {"shown_features": int(compiled.shown.sum()), "features": space.n_features}
    texts = render_texts(view, list(queries.space.texts), getattr(queries.space, "tokenizer", None))
    save_json(ctx.out, "rendered", {"texts": texts})
    full = sum(len(t) for t in queries.space.texts)
    return {"shown_chars": sum(len(t) for t in texts), "chars": full}


# ------------------------------------------------------------------------------- feedback


def feedback(ctx: Ctx) -> dict[str, Any]:
    """f: the round's labels, with provenance (and earlier rounds relabelled if asked)."""
    space = space_of(ctx, ctx.input("task"))
    population_stage = ctx.input_stage("population")
    drawn = load_population(ctx, ctx.input("population"), population_stage)
    spec = feedback_spec(ctx.params)
    view, context = view_spec(ctx.params), context_spec(ctx.params)
    models = _annotator_models(ctx, drawn)
    tables = []
    for i, directory in enumerate([ctx.input("items")] + ctx.inputs("relabel")):
        queries = load_queries(ctx, directory, space)
        table = collect_feedback(spec, drawn, queries, ctx.generator(f"labels{i}"), view=view,
                                 context=context, round=ctx.round, models=models)
        tables.append(table)
    table = tables[0] if len(tables) == 1 else LabelTable.concat(tables)
    table.meta.update({"view": spec.view, "context": spec.context})
    table.save(ctx.out)
    report = agreement_report(table)
    report["simulated"] = False
    if spec.redundancy == 1:
        # Inter-annotator agreement needs two labels of one query. The simulation can ask a
        # second evaluator at no cost to the budget: an audit sample labelled twice, kept apart
        # from the training labels.
        queries = load_queries(ctx, ctx.input("items"), space)
        n = min(len(queries), AUDIT_QUERIES)
        audit = Queries(queries.items[:n], queries.space, queries.source[:n], queries.sources)
        twice = collect_feedback(spec.model_copy(update={"redundancy": 2}), drawn, audit,
                                 ctx.generator("audit"), view=view, context=context,
                                 round=ctx.round, models=models)
        report = agreement_report(twice)
        report["simulated"] = True
        report["gold_agreement"] = gold_agreement(table)
    save_json(ctx.out, "agreement", report)
    return {"labels": len(table), "cost_seconds": float(table.columns["cost"].sum()),
            "agreement": _finite(report["agreement"]),
            "gold_agreement": _finite(report["gold_agreement"])}


def _annotator_models(ctx: Ctx, drawn) -> dict[str, Any] | None:
    """AI evaluators backed by a reward model label with the previous round's model."""
    names = ctx.params.get("annotator_models") or []
    if not names or ctx.optional("annotators") is None:
        return None
    if ctx.domain == "text":
        score = text_stages.reward_scorer(ctx, ctx.input("annotators"))
    else:
        mean = rewards_of(ctx.input("annotators"), ctx.device).mean(0)

        def score(items: torch.Tensor) -> torch.Tensor:
            return mean[items.to(mean.device)]

    return {name: score for name in names}


def _finite(value: float) -> float | None:
    value = float(value)
    return value if value == value else None

"""What a run measures (evaluate), and what it reports (report: summary.json, disclosure.md).

Every metric is exact on bandit tasks (expectations over the policy's action distribution); on
text tasks it is a Monte-Carlo estimate over `evaluate.samples` completions.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from backends.torch.artifacts import load_json, save_json
from backends.torch.feedback import gold_values
from backends.torch.feedback.expressions import Scope, evaluate_condition
from backends.torch.stages import text as text_stages
from backends.torch.stages.common import Ctx, bandit_features, bandit_log_probs, rewards_of
from backends.torch.stages.data import load_population, space_of
from backends.torch.stages.disclosure import disclosure
from rlhfdsl.spec import Evaluate
from rlhfdsl.spec.data import from_data
from rlhfdsl.spec.experiment import METRIC_NAMES

POLICY_METRICS = METRIC_NAMES
REWARD_METRICS = ("accuracy", "agreement", "disagreement")


def _wanted(spec: Evaluate, of: str) -> dict[str, Any]:
    allowed = POLICY_METRICS if of == "policy" else REWARD_METRICS
    if spec.metrics:
        return {m.type: m for m in spec.metrics if m.type in allowed}
    return {name: None for name in allowed}


def _number(value: Any) -> float | None:
    if isinstance(value, torch.Tensor):
        value = float(value.detach().cpu())
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else round(value, 6)


def evaluate(ctx: Ctx) -> dict[str, Any]:
    spec = from_data(Evaluate, ctx.params["evaluate"])
    of = ctx.params.get("of", "policy")
    wanted = _wanted(spec, of)
    if ctx.domain == "text":
        metrics = text_stages.evaluate(ctx, spec, wanted, of)
    else:
        metrics = _evaluate_bandit(ctx, spec, wanted, of)
    metrics = {k: (_number(v) if isinstance(v, (int, float, torch.Tensor)) else v)
               for k, v in metrics.items()}
    metrics.update(_agreement(ctx, wanted))
    save_json(ctx.out, "evaluation", {"of": of, "name": ctx.stage.name, "round": ctx.round,
                                      "metrics": metrics})
    return metrics


def _agreement(ctx: Ctx, wanted: dict[str, Any]) -> dict[str, Any]:
    """Agreement of this round's labels (the feedback inputs are every round's so far)."""
    if "agreement" not in wanted or not ctx.inputs("feedback"):
        return {}
    latest: dict[str, tuple[Any, Any]] = {}
    for stage, directory in zip(ctx.call.input_stages["feedback"], ctx.inputs("feedback")):
        if stage.name not in latest or (stage.round or 0) >= (latest[stage.name][0].round or 0):
            latest[stage.name] = (stage, directory)
    out = {}
    for stage, directory in latest.values():
        suffix = "" if len(latest) == 1 else f".{stage.name}"
        report = load_json(directory, "agreement")
        out[f"agreement{suffix}"] = _number(report["agreement"])
        out[f"gold_agreement{suffix}"] = _number(report["gold_agreement"])
    return out


def _evaluate_bandit(ctx: Ctx, spec: Evaluate, wanted: dict[str, Any], of: str) -> dict[str, Any]:
    features = bandit_features(ctx.input("task"), ctx.device)
    A = features.shape[0]
    space = space_of(ctx, ctx.input("task"))
    reference = bandit_log_probs(None, A, ctx.device)
    log_p = bandit_log_probs(ctx.optional("policy"), A, ctx.device) if of == "policy" else reference
    p = log_p.exp()
    rewards = rewards_of(ctx.input("reward"), ctx.device) if ctx.optional("reward") else None
    out: dict[str, Any] = {}
    populations = []
    for directory, stage in zip(ctx.inputs("populations"), ctx.call.input_stages.get("populations", [])):
        drawn = load_population(ctx, directory, stage)
        per_member, overall = gold_values(drawn, space)
        populations.append((stage.name, drawn, per_member, overall))
    if populations:
        gold = populations[0][3]
    else:
        gold = None
    if "gold_reward" in wanted and gold is not None and of == "policy":
        out["gold_reward"] = (p * gold).sum()
        out["gold_reward_init"] = (reference.exp() * gold).sum()
        out["gold_reward_best"] = gold.max()
        for name, drawn, per_member, _overall in populations:
            for i, member in enumerate(drawn.names):
                prefix = "" if len(populations) == 1 else f"{name}."
                out[f"gold_reward.{prefix}{member}"] = (p * per_member[i]).sum()
    if "proxy_reward" in wanted and rewards is not None and of == "policy":
        out["proxy_reward"] = (p * rewards.mean(0)).sum()
        out["proxy_reward_init"] = (reference.exp() * rewards.mean(0)).sum()
    if "kl" in wanted and of == "policy":
        out["kl"] = (p * (log_p - reference)).sum()
    if "entropy" in wanted and of == "policy":
        out["entropy"] = -(p * log_p).sum()
    if "diversity" in wanted and of == "policy":
        draws = torch.multinomial(p, spec.samples, replacement=True,
                                  generator=ctx.generator("diversity"))
        out["diversity"] = torch.unique(draws).numel() / min(spec.samples, A)
        out["effective_actions"] = torch.exp(-(p * log_p).sum())
    if "disagreement" in wanted and rewards is not None:
        std = rewards.std(0) if rewards.shape[0] > 1 else torch.zeros(A, device=rewards.device)
        out["disagreement"] = (p * std).sum()
    if "accuracy" in wanted and rewards is not None and gold is not None:
        from backends.torch.reward import gold_accuracy

        metric = wanted["accuracy"]
        pairs = metric.pairs if metric is not None else 2000
        # Held out: comparisons between actions that no query showed together.
        out["accuracy"] = gold_accuracy(rewards, gold, pairs, ctx.generator("accuracy"),
                                        exclude=_compared_pairs(ctx))
    if "backdoor" in wanted and of == "policy":
        for name, drawn, _per_member, _overall in populations:
            if drawn.spec.malicious is None:
                continue
            scope = Scope.bandit(features, allow_plugins=ctx.call.allow_plugins)
            trigger = evaluate_condition(drawn.spec.malicious.trigger, scope,
                                         generator=ctx.generator("trigger")).to(p.dtype)
            out["backdoor"] = (p * trigger).sum()
            out["backdoor_init"] = (reference.exp() * trigger).sum()
            break
    return out


def _compared_pairs(ctx: Ctx) -> torch.Tensor | None:
    """[M, 2] every pair of actions some label's query showed together (every round so far)."""
    from backends.torch.labels import LabelTable

    found = []
    for directory in ctx.inputs("feedback"):
        items = LabelTable.load(directory, ctx.device).columns["items"]
        K = items.shape[1]
        for i in range(K):
            for j in range(i + 1, K):
                found.append(items[:, [i, j]])
    if not found:
        return None
    pairs = torch.cat(found)
    return pairs[(pairs >= 0).all(1)]


# ----------------------------------------------------------------------------------- report


def report(ctx: Ctx) -> dict[str, Any]:
    """summary.json (metrics only: two runs on one device compare equal byte for byte) and the
    Section 5 disclosure card."""
    results = []
    for directory, stage in zip(ctx.inputs("evaluate"), ctx.call.input_stages.get("evaluate", [])):
        evaluation = load_json(directory, "evaluation")
        for branch in stage.branches:
            results.append({"branch": branch, "of": stage.name, "kind": evaluation["of"],
                            "round": stage.round, "metrics": evaluation["metrics"]})
    results.sort(key=lambda r: (r["branch"], r["of"], r["round"] if r["round"] is not None else -1))
    final = {}
    for row in results:
        final[(row["branch"], row["of"])] = row
    summary = {
        "experiment": ctx.params["experiment"]["name"],
        "results": list(final.values()),
        "rounds": results,
    }
    save_json(ctx.out, "summary", summary)
    (ctx.out / "disclosure.md").write_text(disclosure(ctx.params, summary))
    return {"results": len(final)}

"""Eq. 2 and Eq. 3 as stages: fit_reward (r̂_φ) and optimize_policy (π_θ); and Step 0, pretrain."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from backends.torch.artifacts import load_tensors, save_json, save_tensors, scalar
from backends.torch.backend import NonFiniteLoss
from backends.torch.labels import LabelTable
from backends.torch.stages import text as text_stages
from backends.torch.stages.common import Ctx, bandit_features, rewards_of
from backends.torch.stages.data import load_population, space_of
from rlhfdsl.spec import Policy, Reward
from rlhfdsl.spec.data import from_data


def labels_of(ctx: Ctx, role: str = "feedback") -> list[LabelTable]:
    return [LabelTable.load(d, ctx.device) for d in ctx.inputs(role)]


def _check_history(metrics: dict[str, Any], keys: tuple[str, ...], what: str) -> None:
    for key in keys:
        for value in metrics.get(key) or []:
            number = float(scalar(value))
            if math.isnan(number) or math.isinf(number):
                raise NonFiniteLoss(f"the {what} {key.replace('_', ' ')} became {number}")


def _record_history(ctx: Ctx, metrics: dict[str, Any], unit: str) -> None:
    """One metrics.jsonl record per epoch or step, from the per-step lists of a trainer."""
    series = {k: v for k, v in metrics.items() if isinstance(v, list) and v
              and not isinstance(v[0], (list, dict))}
    if not series:
        return
    length = max(len(v) for v in series.values())
    for i in range(length):
        record = {unit: i + 1}
        for key, values in series.items():
            if i < len(values):
                value = scalar(values[i])
                record[key] = None if isinstance(value, float) and value != value else value
        ctx.record(**record)


# ------------------------------------------------------------------------------ fit_reward


def fit_reward(ctx: Ctx) -> dict[str, Any]:
    from backends.torch.reward import fit_reward as fit

    spec = from_data(Reward, ctx.params["reward"])
    tables = labels_of(ctx)
    if ctx.domain == "text":
        return text_stages.fit_reward(ctx, spec, tables)
    features = bandit_features(ctx.input("task"), ctx.device)
    init_state = None
    if ctx.optional("previous") is not None:
        init_state = load_tensors(ctx.input("previous"), "reward", ctx.device)
    evaluators = max(int(t.columns["evaluator"].max()) + 1 if len(t) else 1 for t in tables)
    groups = max(int(t.columns["group"].max()) + 1 if len(t) else 1 for t in tables)
    ctx.progress_total(spec.epochs, "epochs")
    model, metrics = fit(spec, tables, features, num_actions=features.shape[0],
                         num_evaluators=evaluators, num_groups=groups, domain="bandit",
                         generator=ctx.generator("fit"), device=ctx.device,
                         init_state=init_state)
    ctx.advance(spec.epochs)
    _check_history(metrics, ("loss",), "reward-model")
    _record_history(ctx, metrics, "epoch")
    save_tensors(ctx.out, "reward", model.state_dict())
    with torch.no_grad():
        rewards = model.rewards()
    save_tensors(ctx.out, "rewards", {"rewards": rewards})
    final = {k: scalar(v[-1]) for k, v in metrics.items()
             if isinstance(v, list) and v and not isinstance(v[0], (list, dict))}
    save_json(ctx.out, "fit", {"final": final, "losses": metrics.get("losses"),
                               "ensemble": int(rewards.shape[0])})
    return final


# ------------------------------------------------------------------------ optimize_policy


def optimize_policy(ctx: Ctx) -> dict[str, Any]:
    from backends.torch.policy.bandit import optimize_bandit_policy

    spec = from_data(Policy, ctx.params["policy"])
    if ctx.domain == "text":
        return text_stages.optimize_policy(ctx, spec)
    features = bandit_features(ctx.input("task"), ctx.device)
    rewards = None
    if ctx.optional("reward") is not None:
        rewards = rewards_of(ctx.input("reward"), ctx.device)
    elif ctx.optional("gold") is not None:
        rewards = gold_of(ctx, ctx.input("gold"), ctx.input_stage("gold"))
    labels = labels_of(ctx)
    table = (labels[0] if len(labels) == 1 else LabelTable.concat(labels)) if labels else None
    init_state = None
    if ctx.optional("previous") is not None:
        init_state = load_tensors(ctx.input("previous"), "policy", ctx.device)
    ctx.progress_total(spec.steps, "steps")
    policy, metrics = optimize_bandit_policy(
        spec, features, rewards=rewards, labels=table, reference=None,
        generator=ctx.generator("optimize"), device=ctx.device, init_state=init_state)
    ctx.advance(spec.steps)
    _check_history(metrics, ("objective",), "policy")
    _record_history(ctx, metrics, "step")
    save_tensors(ctx.out, "policy", policy.state_dict())
    with torch.no_grad():
        save_tensors(ctx.out, "log_probs", {"log_probs": policy.log_probs()})
    final = {k: scalar(v[-1]) for k, v in metrics.items()
             if isinstance(v, list) and v and not isinstance(v[0], (list, dict))}
    save_json(ctx.out, "optimize", {"final": final})
    return final


def gold_of(ctx: Ctx, population_dir: Path, population_stage) -> torch.Tensor:
    """Gold reward of every bandit action for the population (its true expected values)."""
    from backends.torch.feedback import gold_values

    space = space_of(ctx, ctx.input("task"))
    drawn = load_population(ctx, population_dir, population_stage)
    _per_member, overall = gold_values(drawn, space)
    return overall


# --------------------------------------------------------------------------------- pretrain


def pretrain(ctx: Ctx) -> dict[str, Any]:
    return text_stages.pretrain(ctx)

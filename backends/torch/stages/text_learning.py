"""Eq. 2 and Eq. 3 on causal LMs: the fit_reward and optimize_policy stages of text tasks.

Artifacts: a reward stage writes ``model/`` (the value-head reward model, save_pretrained) and
``fit.json`` (final metrics, the output weights of multi-output heads, the longest sequence
scored); a policy stage writes ``policy/`` (save_pretrained; a LoRA policy as the base model
plus ``policy/adapter``, loadable with transformers and peft) and ``optimize.json``.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from backends.torch.artifacts import save_json, scalar
from backends.torch.stages.common import Ctx
from backends.torch.stages.learning import _check_history, _record_history
from backends.torch.stages.text import (
    _precision, load_text_policy, model_spec, prompts_of, space, space_with_texts,
)
from backends.torch.labels import LabelTable


def max_tokens(ctx: Ctx) -> int:
    task = ctx.task
    return task.max_prompt_tokens + task.max_new_tokens + 2  # BOS, EOS


def _outputs(spec) -> int:
    head = spec.head
    return getattr(head, "k", 1) if head.type in ("multi_objective", "mixture") else 1


# ------------------------------------------------------------------------------ fit_reward


def fit_text_reward_stage(ctx: Ctx, spec, tables: list[LabelTable]) -> dict[str, Any]:
    from backends.torch.text import build_reward_model, load_reward_model
    from backends.torch.text.train_reward import fit_text_reward

    backbone_dir = ctx.optional("backbone")
    model_name = spec.backbone.model
    backbone_stage = ctx.input_stage("backbone") if backbone_dir is not None else None
    if backbone_stage is None:
        raise ValueError(f"reward `{spec.name}` has no backbone model stage")
    lm, tokenizer = load_text_policy(backbone_dir, ctx.device)
    model = build_reward_model(model_spec(backbone_stage.params["model"]), tokenizer,
                               generator=ctx.generator("init"), members=spec.ensemble,
                               outputs=_outputs(spec), device=ctx.device,
                               base_dir=ctx.call.spec_dir, from_lm=lm)
    del lm
    init_state = None
    if ctx.optional("previous") is not None:
        previous, _ = load_reward_model(ctx.input("previous") / "model", device=ctx.device)
        init_state = previous.state_dict()
    total = {"steps": 0}

    def progress(done: int) -> None:
        ctx.advance(done - total["steps"])
        total["steps"] = done

    ctx.progress_total(spec.epochs, "epochs")
    model, metrics = fit_text_reward(spec, tables, model, tokenizer,
                                     generator=ctx.generator("fit"), device=ctx.device,
                                     precision=_precision(ctx), max_tokens=max_tokens(ctx),
                                     init_state=init_state, progress=progress)
    _check_history(metrics, ("loss",), "reward-model")
    _record_history(ctx, metrics, "epoch")
    model.save_pretrained(ctx.out / "model", tokenizer)
    final = {k: scalar(v[-1]) for k, v in metrics.items()
             if isinstance(v, list) and v and not isinstance(v[0], (list, dict))}
    combine = metrics.get("combine")
    save_json(ctx.out, "fit", {"final": final, "combine": combine, "backbone": model_name,
                               "max_tokens": max_tokens(ctx)})
    return final


def reward_fn_of(ctx: Ctx, reward_dir):
    """The fitted reward as ``(prompts, completions) → [E, N]``."""
    from backends.torch.text import load_reward_model
    from backends.torch.text.train_reward import reward_function

    info = json.loads((reward_dir / "fit.json").read_text())
    model, tokenizer = load_reward_model(reward_dir / "model", device=ctx.device)
    if tokenizer is None:
        from backends.torch.text import ByteTokenizer

        tokenizer = ByteTokenizer()
    return reward_function(model, tokenizer, max_tokens=info["max_tokens"],
                           combine=info.get("combine"), precision=_precision(ctx))


# ------------------------------------------------------------------------- optimize_policy


def gold_fn_of(ctx: Ctx, population_dir, population_stage):
    """The population's gold reward of completions (its true expected values)."""
    from backends.torch.feedback import gold_values
    from backends.torch.stages.data import load_population

    drawn = load_population(ctx, population_dir, population_stage)
    template = space(ctx, ctx.input("task"))

    def gold(prompts: list[str], completions: list[str]) -> torch.Tensor:
        sp = space_with_texts(template, completions, prompts)
        return gold_values(drawn, sp)[1][None]

    return gold


def optimize_text_policy_stage(ctx: Ctx, spec) -> dict[str, Any]:
    from backends.torch.text import add_lora, save_policy
    from backends.torch.text.train_policy import optimize_text_policy

    previous = ctx.optional("previous")
    start = previous if previous is not None else ctx.input("init")
    policy, tokenizer = load_text_policy(start, ctx.device, trainable=True)
    if spec.adapter is not None and not _adapted(policy):
        policy = add_lora(policy, spec.adapter, generator=ctx.generator("lora"))
    reference = None
    ref_dir = ctx.optional("reference")
    if ref_dir is not None and ref_dir != ctx.optional("init"):
        reference, _ = load_text_policy(ref_dir, ctx.device)
        reference.eval().requires_grad_(False)
    elif not _adapted(policy) and previous is not None:
        # Without an adapter the reference is the initial model, not last round's policy.
        reference, _ = load_text_policy(ctx.input("init"), ctx.device)
        reference.eval().requires_grad_(False)
    reward_fn = None
    if ctx.optional("reward") is not None:
        reward_fn = reward_fn_of(ctx, ctx.input("reward"))
    elif ctx.optional("gold") is not None:
        reward_fn = gold_fn_of(ctx, ctx.input("gold"), ctx.input_stage("gold"))
    gold_fn = None
    tables = [LabelTable.load(d, ctx.device) for d in ctx.inputs("feedback")]
    labels = (tables[0] if len(tables) == 1 else LabelTable.concat(tables)) if tables else None
    ctx.progress_total(spec.steps, "steps")
    done = {"steps": 0}

    def progress(n: int) -> None:
        ctx.advance(n - done["steps"])
        done["steps"] = n

    policy, metrics = optimize_text_policy(
        spec, policy, tokenizer, ctx.task, prompts_of(ctx.input("task")), reward_fn=reward_fn,
        labels=labels, reference=reference, generator=ctx.generator("optimize"),
        device=ctx.device, precision=_precision(ctx), progress=progress, gold_fn=gold_fn)
    _check_history(metrics, ("objective",), "policy")
    _record_history(ctx, metrics, "step")
    save_policy(policy, ctx.out / "policy", tokenizer)
    final = {k: scalar(v[-1]) for k, v in metrics.items()
             if isinstance(v, list) and v and not isinstance(v[0], (list, dict))}
    final = {k: (None if isinstance(v, float) and v != v else v) for k, v in final.items()}
    save_json(ctx.out, "optimize", {"final": final})
    return final


def _adapted(model) -> bool:
    from backends.torch.text.models import is_adapted

    return is_adapted(model)

"""Text-domain stage bodies: causal LMs from transformers, LoRA adapters from peft.

The feedback model measures text (lengths, truncation in tokens) with the built-in byte
tokenizer, whatever the policy's tokenizer: evaluators read characters, not a model's tokens.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import torch

from backends.base import StageFailure
from backends.torch.artifacts import load_json, save_json
from backends.torch.feedback.items import TextSpace
from backends.torch.stages.common import Ctx
from rlhfdsl.spec import Model
from rlhfdsl.spec.data import from_data

GENERATION_BATCH = 64


def _text_error(exc) -> StageFailure:
    return StageFailure(getattr(exc, "message", str(exc)), getattr(exc, "help", None))


def _guard(fn):
    """Text-backend errors a user can fix become stage failures with their help line."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        from backends.torch.text.errors import TextBackendError

        try:
            return fn(*args, **kwargs)
        except TextBackendError as exc:
            raise _text_error(exc) from None

    return wrapped


# ----------------------------------------------------------------------------- task, space


@_guard
def task(ctx: Ctx) -> dict[str, Any]:
    from backends.torch.text import task_prompts

    prompts = task_prompts(ctx.task, base_dir=ctx.call.spec_dir)
    if not prompts:
        raise StageFailure(f"task `{ctx.task.name}` has no prompts",
                           "give at least one prompt (`prompts = builtin` ships a hundred)")
    save_json(ctx.out, "prompts", {"prompts": prompts})
    return {"prompts": len(prompts)}


def prompts_of(task_dir: Path) -> list[str]:
    return load_json(task_dir, "prompts")["prompts"]


def space(ctx: Ctx, task_dir: Path) -> TextSpace:
    from backends.torch.text import ByteTokenizer, score

    tokenizer = ByteTokenizer()
    scorer = functools.partial(score, tokenizer=tokenizer, allow_plugins=ctx.call.allow_plugins)
    return TextSpace(texts=[], prompts=None, scorer=scorer, tokenizer=tokenizer,
                     device=ctx.device, allow_plugins=ctx.call.allow_plugins)


def space_with_texts(template: TextSpace, texts: list[str], prompts: list[str] | None) -> TextSpace:
    return TextSpace(texts=list(texts), prompts=list(prompts) if prompts else None,
                     scorer=template.scorer, tokenizer=template.tokenizer,
                     device=template.device, allow_plugins=template.allow_plugins)


# --------------------------------------------------------------------------- models on disk


def model_spec(data: dict[str, Any]) -> Model:
    data = dict(data)
    for key in ("path", "tokenizer"):
        if isinstance(data.get(key), dict):
            data[key] = data[key]["path"]
    return from_data(Model, data)


def load_text_policy(directory: Path, device: str, trainable: bool = False):
    """A policy from a pretrain stage (``model/``) or an optimize_policy stage (``policy/``)."""
    from backends.torch.text import load_policy

    where = directory / "policy" if (directory / "policy").is_dir() else directory / "model"
    model, tokenizer = load_policy(where, device=device, trainable=trainable)
    if tokenizer is None:
        from backends.torch.text import ByteTokenizer

        tokenizer = ByteTokenizer()
    return model, tokenizer


@_guard
def pretrain(ctx: Ctx) -> dict[str, Any]:
    """Step 0: build the model from its config (or load it from a local path), and pre-train it
    on the task's corpus when the task names one."""
    from backends.torch.text import build_causal_lm, load_causal_lm, save_policy, tokenizer_for
    from backends.torch.text import pretrain as run_pretrain
    from backends.torch.text import task_corpus

    spec = model_spec(ctx.params["model"])
    tokenizer = tokenizer_for(spec, base_dir=ctx.call.spec_dir)
    if spec.path is not None:
        model = load_causal_lm(spec.path, device=ctx.device, base_dir=ctx.call.spec_dir)
    else:
        model = build_causal_lm(spec, tokenizer, generator=ctx.generator("init"),
                                device=ctx.device, base_dir=ctx.call.spec_dir)
    metrics: dict[str, Any] = {"parameters": sum(p.numel() for p in model.parameters())}
    steps = int(ctx.params.get("steps") or 0)
    if steps > 0 and ctx.params.get("corpus") is not None:
        lines = task_corpus(ctx.task, base_dir=ctx.call.spec_dir)
        ctx.progress_total(steps, "steps")
        result = run_pretrain(model, tokenizer, lines, steps=steps, generator=ctx.generator("steps"),
                              device=ctx.device, precision=_precision(ctx))
        ctx.advance(steps)
        for i, loss in enumerate(result.get("losses", [])):
            ctx.record(step=i + 1, loss=float(loss))
        if not math.isfinite(float(result.get("loss_last", 0.0))):
            from backends.torch.backend import NonFiniteLoss

            raise NonFiniteLoss("the pre-training loss is not finite")
        metrics.update({k: float(result[k]) for k in ("loss_first", "loss_last") if k in result})
    save_policy(model, ctx.out / "model", tokenizer)
    return metrics


def _precision(ctx: Ctx) -> str:
    return ctx.params.get("precision", "auto")


# --------------------------------------------------------------------------------- sampling


def _draw_completions(ctx: Ctx, model, tokenizer, prompts: list[str], n_prompts: int, repeat: int,
                      generator: torch.Generator, temperature: float = 1.0):
    """``n_prompts`` prompts drawn uniformly, each completed ``repeat`` times."""
    from backends.torch.text import generate

    task = ctx.task
    cpu = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator,
                                                          device=generator.device)))
    chosen = torch.randint(0, len(prompts), (n_prompts,), generator=cpu).tolist()
    batch = [prompts[i] for i in chosen for _ in range(repeat)]
    completions = generate(model, tokenizer, batch, generator=generator,
                           max_new_tokens=task.max_new_tokens,
                           temperature=task.temperature * temperature, top_k=task.top_k,
                           max_prompt_tokens=task.max_prompt_tokens, precision=_precision(ctx),
                           batch_size=GENERATION_BATCH)
    return completions


def policy_draw(ctx: Ctx, space: TextSpace):
    """s's `policy` source: m (prompt, completion) pairs, in runs of k sharing a prompt."""
    directory = ctx.optional("policy")
    if directory is None:
        raise StageFailure(f"stage `{ctx.stage.id}` has no policy to sample from",
                           "text tasks need a `model` for the policy's `init`")
    model, tokenizer = load_text_policy(directory, ctx.device)
    prompts = prompts_of(ctx.input("task"))
    k = ctx.params["items_per_query"]
    sampler = ctx.params.get("sampler") or {}
    temperature = float((sampler.get("source") or {}).get("temperature", 1.0) or 1.0)

    def draw(m: int, generator: torch.Generator):
        runs = max(1, m // k)
        completions = _draw_completions(ctx, model, tokenizer, prompts, runs, k, generator,
                                        temperature)
        return list(zip(completions.prompts, completions.texts))

    return draw


def calibration_queries(ctx: Ctx, space: TextSpace, pairs: int, generator: torch.Generator):
    raise StageFailure("`agreement(...)` / `accuracy(...)` calibration needs a bandit task",
                       "give text evaluators a fixed `rationality`")


# ----------------------------------------------------------------------------- reward model


def _reward_fn(ctx: Ctx, reward_dir: Path):
    from backends.torch.stages.text_learning import reward_fn_of

    return reward_fn_of(ctx, reward_dir)


def ensemble_scores(ctx: Ctx, reward_dir: Path):
    """For active query selection: the ensemble's scores of candidate (prompt, completion)s."""
    fn = _reward_fn(ctx, reward_dir)

    def scores(items) -> torch.Tensor:
        return fn([p for p, _ in items], [c for _, c in items])

    return scores


def reward_scorer(ctx: Ctx, reward_dir: Path):
    """An AI evaluator backed by a reward model: its ensemble's mean score of each text."""
    fn = _reward_fn(ctx, reward_dir)

    def score(texts) -> torch.Tensor:
        pairs = [t if isinstance(t, tuple) else ("", t) for t in texts]
        return fn([p for p, _ in pairs], [c for _, c in pairs]).mean(0)

    return score


# ---------------------------------------------------------------------- learning (Eq. 2, 3)


@_guard
def fit_reward(ctx: Ctx, spec, tables) -> dict[str, Any]:
    from backends.torch.stages.text_learning import fit_text_reward_stage

    return fit_text_reward_stage(ctx, spec, tables)


@_guard
def optimize_policy(ctx: Ctx, spec) -> dict[str, Any]:
    from backends.torch.stages.text_learning import optimize_text_policy_stage

    return optimize_text_policy_stage(ctx, spec)


# ------------------------------------------------------------------------------- evaluation


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct-n: unique word n-grams over all word n-grams of the samples (mode collapse)."""
    grams = []
    for text in texts:
        words = text.split()
        grams.extend(tuple(words[i:i + n]) for i in range(max(0, len(words) - n + 1)))
    return len(set(grams)) / len(grams) if grams else 0.0


@_guard
def evaluate(ctx: Ctx, spec, wanted: dict[str, Any], of: str) -> dict[str, Any]:
    """Monte-Carlo estimates over `evaluate.samples` completions of the policy (and of the
    reference, for the `_init` values)."""
    from backends.torch.feedback import gold_values
    from backends.torch.feedback.expressions import Scope, evaluate_condition
    from backends.torch.stages.data import load_population
    from backends.torch.text import forward_completions, reference

    out: dict[str, Any] = {}
    if of != "policy":
        return _evaluate_reward_only(ctx, spec, wanted)
    prompts = prompts_of(ctx.input("task"))
    policy, tokenizer = load_text_policy(ctx.input("policy"), ctx.device)
    ref_dir = ctx.optional("reference")
    separate_reference = None
    if ref_dir is not None and not _is_adapted(policy):
        separate_reference, _ = load_text_policy(ref_dir, ctx.device)
    n = spec.samples
    samples = _draw_completions(ctx, policy, tokenizer, prompts, n, 1, ctx.generator("samples"))
    base_model = separate_reference or policy
    if separate_reference is None and _is_adapted(policy):
        with reference(policy):
            base = _draw_completions(ctx, policy, tokenizer, prompts, n, 1, ctx.generator("base"))
    else:
        base = _draw_completions(ctx, base_model, tokenizer, prompts, n, 1, ctx.generator("base"))

    template = space(ctx, ctx.input("task"))
    populations = []
    for directory, stage in zip(ctx.inputs("populations"), ctx.call.input_stages.get("populations", [])):
        populations.append((stage.name, load_population(ctx, directory, stage)))

    def gold(completions):
        sp = space_with_texts(template, completions.texts, completions.prompts)
        return [(name, *gold_values(drawn, sp)) for name, drawn in populations]

    if "gold_reward" in wanted and populations:
        now, before = gold(samples), gold(base)
        out["gold_reward"] = now[0][2].mean()
        out["gold_reward_init"] = before[0][2].mean()
        for (name, per_member, _), (_, drawn) in zip(now, populations):
            prefix = "" if len(populations) == 1 else f"{name}."
            for i, member in enumerate(drawn.names):
                out[f"gold_reward.{prefix}{member}"] = per_member[i].mean()
    if ctx.optional("reward") is not None and ("proxy_reward" in wanted or "disagreement" in wanted):
        fn = _reward_fn(ctx, ctx.input("reward"))
        scores = fn(samples.prompts, samples.texts)
        if "proxy_reward" in wanted:
            out["proxy_reward"] = scores.mean()
            out["proxy_reward_init"] = fn(base.prompts, base.texts).mean()
        if "disagreement" in wanted and scores.shape[0] > 1:
            out["disagreement"] = scores.std(0).mean()
    if "kl" in wanted or "entropy" in wanted:
        stats = forward_completions(policy, samples.to(ctx.device), entropy=True,
                                    precision=_precision(ctx))
        mask = samples.completion_mask.to(ctx.device)
        tokens = mask.sum().clamp(min=1)
        if "entropy" in wanted:
            out["entropy"] = (stats.entropy * mask).sum() / tokens
        if "kl" in wanted:
            if separate_reference is not None:
                ref_stats = forward_completions(separate_reference, samples.to(ctx.device),
                                                precision=_precision(ctx))
            else:
                with reference(policy):
                    ref_stats = forward_completions(policy, samples.to(ctx.device),
                                                    precision=_precision(ctx))
            log_ratio = (stats.logprobs - ref_stats.logprobs) * mask
            # k1 per sequence, averaged: an unbiased estimate of KL(π ‖ π_ref) per completion.
            out["kl"] = log_ratio.sum(-1).mean()
            out["kl_per_token"] = log_ratio.sum() / tokens
    if "diversity" in wanted:
        metric = wanted["diversity"]
        order = metric.n if metric is not None else 2
        out["diversity"] = distinct_n(samples.texts, order)
        out["diversity_init"] = distinct_n(base.texts, order)
    if "backdoor" in wanted:
        for _name, drawn in populations:
            if drawn.spec.malicious is None:
                continue
            def rate(completions):
                scope = Scope("text", len(completions.texts), ctx.device, texts=completions.texts,
                              scorer=template.get_scorer(), allow_plugins=ctx.call.allow_plugins)
                return evaluate_condition(drawn.spec.malicious.trigger, scope,
                                          generator=ctx.generator("trigger")).float().mean()
            out["backdoor"] = rate(samples)
            out["backdoor_init"] = rate(base)
            break
    save_json(ctx.out, "samples", {"prompts": samples.prompts[:50], "texts": samples.texts[:50]})
    return out


def _evaluate_reward_only(ctx: Ctx, spec, wanted) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "accuracy" in wanted and ctx.optional("reward") is not None:
        fit = load_json(ctx.input("reward"), "fit")
        out["accuracy"] = fit.get("final", {}).get("holdout_accuracy")
    return out


def _is_adapted(model) -> bool:
    from backends.torch.text.models import is_adapted

    return is_adapted(model)


__all__ = ["task", "space", "space_with_texts", "pretrain", "policy_draw", "calibration_queries",
           "ensemble_scores", "reward_scorer", "fit_reward", "optimize_policy", "evaluate"]

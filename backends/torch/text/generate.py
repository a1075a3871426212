"""Sampling completions from π_θ: s(π_θ, ...) in Eq. 4 for text tasks.

A short loop over the KV cache rather than ``model.generate``: every random draw comes from the
stage's ``torch.Generator`` (uniforms drawn on the generator's device, then moved, so a CPU
generator gives the same draws whatever the model's device), and the log-prob of each sampled
token is recorded as it is drawn.

Prompts are BOS + prompt, cut from the left to ``max_prompt_tokens`` and left-padded so that all
rows end in the same column; position ids count real tokens only, so padding changes nothing.
Each step appends one token per row to the cache. A row stops at EOS (which belongs to its
completion and its mask); the loop stops when all rows have, or after ``max_new_tokens``.

The recorded log-probs are those of the policy at the sampling temperature, log softmax(z / T),
before top-k truncation: the distribution π_θ that RL objectives optimise, and what
:func:`backends.torch.text.logprobs.completion_logprobs` recomputes at the same temperature.
"""

from __future__ import annotations

from typing import Sequence

import torch

from backends.torch.text.logprobs import Completions
from backends.torch.text.models import (
    autocast, cache_kwargs, check_context, model_device, output_cache,
)
from backends.torch.text.tokenizer import TextTokenizer


def sample_next(logits: torch.Tensor, *, temperature: float, top_k: int,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row from softmax(logits / T), restricted to the ``top_k`` likeliest
    (0: all), by inverting the CDF at a uniform from ``generator``. Returns the tokens and their
    log-probs under log softmax(logits / T)."""
    z = logits.float() / temperature
    logp = torch.log_softmax(z, -1)
    vocab = z.shape[-1]
    if 0 < top_k < vocab:
        kth = torch.topk(z, top_k, dim=-1).values[:, -1:]
        z = z.masked_fill(z < kth, float("-inf"))
    probs = torch.softmax(z, -1)
    cdf = probs.cumsum(-1)
    u = torch.rand(z.shape[0], 1, generator=generator, device=generator.device).to(z.device)
    token = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(-1)
    token = torch.where(token < vocab, token, probs.argmax(-1))  # float round-off at the top
    return token, logp.gather(-1, token.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def generate(model, tokenizer: TextTokenizer, prompts: Sequence[str], *,
             generator: torch.Generator, max_new_tokens: int = 24, temperature: float = 1.0,
             top_k: int = 0, max_prompt_tokens: int = 32, precision: str = "auto",
             batch_size: int | None = None, stop_at_eos: bool = True) -> Completions:
    """Sample one completion per prompt (repeat prompts for several). ``batch_size`` splits
    the prompts into micro-batches (default: all at once). The model is put in eval mode for
    the call and restored. Returns token ids, masks, decoded texts and sampled log-probs."""
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts to generate from")
    step = batch_size or len(prompts)
    was_training = model.training
    model.eval()
    try:
        parts = [_generate_batch(model, tokenizer, prompts[i:i + step], generator=generator,
                                 max_new_tokens=max_new_tokens, temperature=temperature,
                                 top_k=top_k, max_prompt_tokens=max_prompt_tokens,
                                 precision=precision, stop_at_eos=stop_at_eos)
                 for i in range(0, len(prompts), step)]
    finally:
        model.train(was_training)
    return parts[0] if len(parts) == 1 else concat_completions(parts, tokenizer.pad_id)


def generate_for_task(model, tokenizer: TextTokenizer, prompts: Sequence[str], task, *,
                      generator: torch.Generator, precision: str = "auto",
                      batch_size: int | None = None) -> Completions:
    """:func:`generate` with a text task's settings (``rlhfdsl.spec.experiment.TextTask``:
    max_prompt_tokens, max_new_tokens, temperature, top_k)."""
    return generate(model, tokenizer, prompts, generator=generator,
                    max_new_tokens=task.max_new_tokens, temperature=task.temperature,
                    top_k=task.top_k, max_prompt_tokens=task.max_prompt_tokens,
                    precision=precision, batch_size=batch_size)


def _generate_batch(model, tokenizer: TextTokenizer, prompts: list[str], *,
                    generator: torch.Generator, max_new_tokens: int, temperature: float,
                    top_k: int, max_prompt_tokens: int, precision: str,
                    stop_at_eos: bool) -> Completions:
    device = model_device(model)
    enc = tokenizer.encode_batch(prompts, padding_side="left", max_length=max_prompt_tokens,
                                 truncation_side="left", add_bos=True, device=device)
    check_context(model, enc.input_ids.shape[1] + max_new_tokens,
                  "prompts plus `max_new_tokens`")
    B = len(prompts)
    mask = enc.attention_mask
    position = (mask.cumsum(-1) - 1).clamp(min=0)
    eos = tokenizer.eos_id if stop_at_eos else None
    done = torch.zeros(B, dtype=torch.bool, device=device)
    tokens, alive, logprobs = [], [], []
    with autocast(device, precision):
        out = model(input_ids=enc.input_ids, attention_mask=mask, position_ids=position,
                    use_cache=True, logits_to_keep=1)
    for t in range(max_new_tokens):
        token, lp = sample_next(out.logits[:, -1], temperature=temperature, top_k=top_k,
                                generator=generator)
        token = token.masked_fill(done, tokenizer.pad_id)
        tokens.append(token)
        alive.append(~done)
        logprobs.append(lp.masked_fill(done, 0.0))
        if eos is not None:
            done = done | (token == eos)
        if t == max_new_tokens - 1 or bool(done.all()):
            break
        mask = torch.cat([mask, mask.new_ones(B, 1)], 1)
        position = position[:, -1:] + 1
        with autocast(device, precision):
            out = model(input_ids=token.unsqueeze(-1), attention_mask=mask,
                        position_ids=position, use_cache=True, logits_to_keep=1,
                        **cache_kwargs(output_cache(out)))
    completion_ids = torch.stack(tokens, 1)
    completion_mask = torch.stack(alive, 1)
    texts = tokenizer.decode_batch(completion_ids, completion_mask, skip_special=True)
    return Completions(prompts, texts, enc.input_ids, enc.attention_mask, completion_ids,
                       completion_mask, torch.stack(logprobs, 1),
                       meta={"temperature": temperature, "top_k": top_k})


def concat_completions(parts: Sequence[Completions], pad_id: int) -> Completions:
    """Stack batches of completions, re-padding prompts on the left and completions on the
    right to the widest part."""
    P = max(p.prompt_ids.shape[1] for p in parts)
    C = max(p.completion_ids.shape[1] for p in parts)

    def left(t, width, value):
        return torch.nn.functional.pad(t, (width - t.shape[1], 0), value=value)

    def right(t, width, value):
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

    has_lp = all(p.logprobs is not None for p in parts)
    return Completions(
        prompts=[s for p in parts for s in p.prompts],
        texts=[s for p in parts for s in p.texts],
        prompt_ids=torch.cat([left(p.prompt_ids, P, pad_id) for p in parts]),
        prompt_mask=torch.cat([left(p.prompt_mask, P, 0) for p in parts]),
        completion_ids=torch.cat([right(p.completion_ids, C, pad_id) for p in parts]),
        completion_mask=torch.cat([right(p.completion_mask, C, False) for p in parts]),
        logprobs=torch.cat([right(p.logprobs, C, 0.0) for p in parts]) if has_lp else None,
        meta=dict(parts[0].meta))


__all__ = ["generate", "generate_for_task", "sample_next", "concat_completions"]

"""Per-token log-probabilities of completions given prompts: log π(y_t | x, y_<t).

A batch is a :class:`Completions`: prompts left-padded, completions right-padded, so that every
completion starts in the same column. One forward pass runs over prompt + completion; columns that
are padding in every row are trimmed first (the batch is as wide as its longest prompt plus its
longest completion), logits are computed only at the positions that predict completion tokens
(``logits_to_keep``), and the log-softmax is taken in fp32 over chunks of rows so that the
``[B, C, V]`` fp32 tensor never exists whole.

Position ids count real tokens only (``cumsum(mask) − 1``), so a left-padded row gets exactly the
logits it would get alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import torch

from backends.torch.text.models import autocast, check_context
from backends.torch.text.tokenizer import TextTokenizer

CHUNK_ELEMENTS = 2**25  # logits elements per fp32 log-softmax chunk


@dataclass
class Completions:
    """Prompts and their completions, as texts and as tensors on one device.

    prompt_ids       int64 [B, P]  left-padded (BOS first when the tokenizer has one)
    prompt_mask      int64 [B, P]  1 = token
    completion_ids   int64 [B, C]  right-padded with the pad id
    completion_mask  bool  [B, C]  the completion's tokens, up to and including EOS
    logprobs         float32 [B, C] or None: log π of each completion token when sampled
                     (0 where the mask is False)
    """

    prompts: list[str]
    texts: list[str]
    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    logprobs: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def lengths(self) -> torch.Tensor:
        """Completion tokens per row (EOS included)."""
        return self.completion_mask.sum(-1)

    def to(self, device: torch.device | str) -> "Completions":
        def move(t):
            return None if t is None else t.to(device)
        return replace(self, prompt_ids=move(self.prompt_ids), prompt_mask=move(self.prompt_mask),
                       completion_ids=move(self.completion_ids),
                       completion_mask=move(self.completion_mask), logprobs=move(self.logprobs))

    def select(self, index: torch.Tensor | Sequence[int]) -> "Completions":
        """The rows ``index`` (e.g. the preferred completions of a batch of pairs)."""
        index = torch.as_tensor(index, dtype=torch.long)
        rows = index.tolist()
        idx = index.to(self.prompt_ids.device)
        return Completions(
            prompts=[self.prompts[i] for i in rows], texts=[self.texts[i] for i in rows],
            prompt_ids=self.prompt_ids[idx], prompt_mask=self.prompt_mask[idx],
            completion_ids=self.completion_ids[idx], completion_mask=self.completion_mask[idx],
            logprobs=None if self.logprobs is None else self.logprobs[idx], meta=dict(self.meta))


def encode_completions(tokenizer: TextTokenizer, prompts: Sequence[str],
                       completions: Sequence[str], *, max_prompt_tokens: int = 32,
                       max_completion_tokens: int | None = None, add_eos: bool = True,
                       device: torch.device | str | None = None) -> Completions:
    """Tokenise (prompt, completion) text pairs (offline data, DPO pairs, corrections) the way
    generation lays them out: BOS + prompt cut from the left to ``max_prompt_tokens``, left-padded;
    completion + EOS cut from the right, right-padded."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    p = tokenizer.encode_batch(prompts, padding_side="left", max_length=max_prompt_tokens,
                               truncation_side="left", add_bos=True, device=device)
    c = tokenizer.encode_batch(completions, padding_side="right", add_eos=add_eos,
                               max_length=max_completion_tokens, truncation_side="right",
                               device=device)
    return Completions(list(prompts), list(completions), p.input_ids, p.attention_mask,
                       c.input_ids, c.attention_mask.bool())


@dataclass
class CompletionStats:
    """What one forward pass over a batch of completions gives (each ``[B, C, ...]``, zero
    where the completion mask is False).

    logprobs  float32 [B, C]     log π(y_t | x, y_<t) at temperature T
    entropy   float32 [B, C]     entropy of π(· | x, y_<t), when asked
    hidden    [B, C, H]          final hidden state at the position predicting y_t (for a
                                 value head), when asked
    """

    logprobs: torch.Tensor
    entropy: torch.Tensor | None = None
    hidden: torch.Tensor | None = None


def forward_completions(model, batch: Completions, *, temperature: float = 1.0,
                        precision: str = "auto", entropy: bool = False,
                        hidden: bool = False) -> CompletionStats:
    """One forward pass of ``model`` over prompt + completion; differentiable (wrap it in
    ``torch.no_grad()`` for the reference or for rollouts). Logits are divided by
    ``temperature``, so log-probs match those :func:`generate` records at the same temperature."""
    cmask = batch.completion_mask.bool()
    B, C = cmask.shape
    device = batch.prompt_ids.device
    has_completion = cmask.any(0)
    if not bool(has_completion.any()):
        zeros = torch.zeros(B, C, device=device)
        return CompletionStats(zeros, zeros.clone() if entropy else None, None)
    if not bool(batch.prompt_mask[:, -1].bool().all()):
        raise ValueError("prompts must be left-padded (every row's last prompt column a token)")
    width = int(has_completion.nonzero().max()) + 1            # trim right padding
    first = int(batch.prompt_mask.bool().any(0).float().argmax())  # trim left padding
    ids = torch.cat([batch.prompt_ids[:, first:], batch.completion_ids[:, :width]], 1)
    check_context(model, ids.shape[1], "prompts plus completions")
    mask = torch.cat([batch.prompt_mask[:, first:], cmask[:, :width].long()], 1)
    # A completion's first token is predicted from the prompt's last position.
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    with autocast(device, precision):
        out = model(input_ids=ids, attention_mask=mask, position_ids=position_ids,
                    use_cache=False, logits_to_keep=width + 1, output_hidden_states=hidden)
    logits = out.logits[:, :-1]
    targets = batch.completion_ids[:, :width]
    lp, ent = token_logprobs(logits, targets, temperature=temperature, entropy=entropy)
    keep = cmask[:, :width]
    stats = CompletionStats(_widen(lp.masked_fill(~keep, 0.0), C))
    if entropy:
        stats.entropy = _widen(ent.masked_fill(~keep, 0.0), C)
    if hidden:
        h = out.hidden_states[-1][:, -(width + 1):-1]
        stats.hidden = _widen(h.masked_fill(~keep.unsqueeze(-1), 0.0), C)
    return stats


def completion_logprobs(model, batch: Completions, *, temperature: float = 1.0,
                        precision: str = "auto") -> torch.Tensor:
    """Per-token log π(y_t | x, y_<t), float32 ``[B, C]``, 0 outside the completion mask."""
    return forward_completions(model, batch, temperature=temperature,
                               precision=precision).logprobs


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, *, temperature: float = 1.0,
                   entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log softmax(logits / T)[target] in fp32, row chunk by row chunk:
    z_target − logsumexp(z); the entropy is logsumexp(z) − Σ softmax(z)·z."""
    B = logits.shape[0]
    per_row = max(logits[0].numel(), 1)
    step = max(1, CHUNK_ELEMENTS // per_row)
    lps, ents = [], []
    for start in range(0, B, step):
        z = logits[start:start + step].float()
        if temperature != 1.0:
            z = z / temperature
        lse = torch.logsumexp(z, -1)
        lps.append(z.gather(-1, targets[start:start + step].unsqueeze(-1)).squeeze(-1) - lse)
        if entropy:
            ents.append(lse - (torch.softmax(z, -1) * z).sum(-1))
    return torch.cat(lps), (torch.cat(ents) if entropy else None)


def _widen(x: torch.Tensor, width: int) -> torch.Tensor:
    """Pad the trimmed completion dimension (dim 1) back to ``width`` with zeros."""
    if x.shape[1] == width:
        return x
    pad = x.new_zeros((x.shape[0], width - x.shape[1], *x.shape[2:]))
    return torch.cat([x, pad], 1)


def sequence_texts(tokenizer: TextTokenizer, ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
    """Decode masked rows, specials dropped (EOS is part of the mask but not of the text)."""
    return tokenizer.decode_batch(ids, mask, skip_special=True)


__all__ = ["Completions", "CompletionStats", "encode_completions", "forward_completions",
           "completion_logprobs", "token_logprobs", "sequence_texts"]

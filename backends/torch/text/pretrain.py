"""Step 0 of the paper's pipeline (Casper et al. 2023, Section 2): pre-train / supervised
fine-tune the policy's language model on a corpus before any feedback is collected.

Each corpus line is one document, BOS + line + EOS, cut to ``max_length``. The loss is the mean
next-token cross-entropy over the real tokens of a batch,

    L(θ) = −(1 / Σ_t m_t) Σ_t m_t log π_θ(x_{t+1} | x_≤t),

minimised with AdamW (β = (0.9, 0.95)), a linear warm-up then a cosine decay to a tenth of the
learning rate, and gradient clipping. Batches are drawn with replacement from the stage's
``torch.Generator``; dropout draws from a global RNG seeded from it and restored afterwards.

Run it on the base model before adding a LoRA adapter (an adapted model would train the adapter
only).
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import torch

from backends.torch.text.models import autocast, context_length, model_device, seeded
from backends.torch.text.tokenizer import TextTokenizer


def _max_length(model, max_length: int | None) -> int:
    context = context_length(model) or 1024
    return min(context, max_length) if max_length else context


def _encode(tokenizer: TextTokenizer, lines: Sequence[str], max_length: int, device):
    if not lines:
        raise ValueError("the corpus is empty")
    enc = tokenizer.encode_batch(list(lines), padding_side="right", max_length=max_length,
                                 truncation_side="right", add_bos=True, add_eos=True)
    return enc.input_ids.to(device), enc.attention_mask.to(device), enc.lengths.to(device)


def lm_loss(model, ids: torch.Tensor, mask: torch.Tensor, precision: str = "auto"
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean next-token cross-entropy over real tokens, and the number of predicted tokens."""
    with autocast(ids.device, precision):
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    target_mask = mask[:, 1:].bool()
    targets = ids[:, 1:][target_mask]
    n = target_mask.sum()
    loss = torch.nn.functional.cross_entropy(logits[:, :-1][target_mask].float(), targets,
                                             reduction="sum")
    return loss / n.clamp(min=1), n


def pretrain(model, tokenizer: TextTokenizer, corpus_lines: Sequence[str], *, steps: int,
             generator: torch.Generator, batch_size: int = 16, lr: float = 3e-3,
             device: torch.device | str | None = None, precision: str = "auto",
             max_length: int | None = None, warmup: int | None = None,
             weight_decay: float = 0.0, grad_clip: float = 1.0) -> dict:
    """Train ``model`` (in place) for ``steps`` steps on ``corpus_lines``. The default ``lr``
    suits tiny models built from a config; a loaded pre-trained model wants ~1e-4. Returns metrics:
    ``losses`` (one per step), ``loss_first``, ``loss_last`` (mean of the last tenth),
    ``tokens``, ``seconds``, ``tokens_per_second``."""
    if device is not None:
        model.to(device)
    device = model_device(model)
    ids, mask, lengths = _encode(tokenizer, corpus_lines, _max_length(model, max_length), device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=weight_decay,
                                  **({"fused": True} if device.type == "cuda" else {}))
    warmup = min(steps // 10, 50) if warmup is None else warmup

    def rate(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(steps - warmup, 1)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    losses, tokens = [], torch.zeros((), dtype=torch.long, device=device)
    was_training = model.training
    model.train()
    start = time.perf_counter()
    with seeded(generator, device):
        for _ in range(steps):
            index = torch.randint(0, ids.shape[0], (batch_size,), generator=generator,
                                  device=generator.device).to(device)
            width = int(lengths[index].max())
            loss, n = lm_loss(model, ids[index, :width], mask[index, :width], precision)
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())
            tokens += n
    seconds = time.perf_counter() - start
    model.train(was_training)
    values = torch.stack(losses).tolist() if losses else []
    tail = values[-max(1, len(values) // 10):] if values else [float("nan")]
    return {"steps": steps, "losses": values, "loss_first": values[0] if values else float("nan"),
            "loss_last": sum(tail) / len(tail), "tokens": int(tokens),
            "seconds": seconds, "tokens_per_second": int(tokens) / max(seconds, 1e-9)}


@torch.no_grad()
def corpus_loss(model, tokenizer: TextTokenizer, corpus_lines: Sequence[str], *,
                batch_size: int = 64, precision: str = "auto",
                max_length: int | None = None) -> float:
    """Mean next-token cross-entropy (nats per token) of ``model`` on the lines."""
    device = model_device(model)
    ids, mask, lengths = _encode(tokenizer, corpus_lines, _max_length(model, max_length), device)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, ids.shape[0], batch_size):
        width = int(lengths[i:i + batch_size].max())
        loss, n = lm_loss(model, ids[i:i + batch_size, :width], mask[i:i + batch_size, :width],
                          precision)
        total += float(loss) * int(n)
        count += int(n)
    model.train(was_training)
    return total / max(count, 1)

"""Comparison feedback: pairwise (with ties and skips), ranking(k) and best_of(k).

See :mod:`.kinds` for the model of each kind.
"""

from __future__ import annotations

import torch

from backends.torch.feedback.rows import Answer, Rows, attacking, gumbel_noise, scaled, uniform
from rlhfdsl.spec.base import Choice


def pairwise(kind: Choice, rows: Rows, generator: torch.Generator) -> Answer:
    # The hot path of the simulator: bool and integer arithmetic instead of torch.where,
    # which is several times slower on CPU.
    u, v = rows.perceived.utility, rows.perceived.value
    delta = u[:, 1] - u[:, 0]
    if bool(torch.isinf(rows.population.beta).any()):
        p = torch.sigmoid(scaled(rows.beta, delta) - rows.position_bias)
    else:
        p = torch.sigmoid(torch.addcmul(-rows.position_bias, rows.beta, delta))
    # decide, then flip with probability ε: P(second) = p + ε(1 − 2p) = ε + p·(1 − 2ε)
    p = torch.addcmul(rows.mistake, p, 1 - 2 * rows.mistake)
    second = uniform(rows, generator) < p
    flip = attacking(rows, "flip")
    if flip is not None:
        second = second ^ flip
    forced = None
    backdoor = attacking(rows, "backdoor")
    if backdoor is not None:
        trig = rows.perceived.trigger
        assert trig is not None
        forced = backdoor & (trig[:, 0] ^ trig[:, 1])
        second = (second & ~forced) | (forced & trig[:, 1])
    choice = second.to(torch.int8)             # int8 while composing: 8x less memory traffic
    if getattr(kind, "ties", True) and bool((rows.population.param("equal") > 0).any()):
        tie = (v[:, 1] - v[:, 0]).abs() < rows.equal_threshold
        if forced is not None:
            tie &= ~forced
        choice = choice + tie.to(torch.int8) * (2 - choice)
    if getattr(kind, "skips", True) and bool((rows.population.param("skip") > 0).any()):
        skip = torch.maximum(v[:, 0], v[:, 1]) < rows.skip_threshold
        if forced is not None:
            skip &= ~forced
        choice = choice - skip.to(torch.int8) * (choice + 1)
    return {"choice": choice.long()}, {}


def presentation_ranking(rows: Rows, generator: torch.Generator) -> torch.Tensor:
    """int64 [R, K]: positions into the shown items, best first: Plackett–Luce with
    rationality β (Gumbel-top-k), the first shown item's logit raised by the position bias."""
    u = rows.perceived.utility
    R, K = u.shape
    gumbel = gumbel_noise(rows, generator, (R, K))
    bonus = torch.zeros_like(u)
    bonus[:, 0] = rows.position_bias
    finite = torch.isfinite(rows.beta)[:, None]
    key = torch.where(finite, scaled(rows.beta[:, None], u) + bonus + gumbel, u)
    tiebreak = torch.where(finite, torch.zeros_like(u), bonus + gumbel)
    first = torch.argsort(tiebreak, dim=1, descending=True, stable=True)
    second = torch.argsort(key.gather(1, first), dim=1, descending=True, stable=True)
    return first.gather(1, second)


def ranking(kind: Choice, rows: Rows, generator: torch.Generator) -> Answer:
    order = presentation_ranking(rows, generator)
    R, K = order.shape
    mistaken = uniform(rows, generator) < rows.mistake
    j = torch.randint(0, K - 1, (R,), generator=generator, device=rows.device)
    a, b = order.gather(1, j[:, None]), order.gather(1, j[:, None] + 1)
    swapped = order.scatter(1, j[:, None], b).scatter(1, j[:, None] + 1, a)
    order = torch.where(mistaken[:, None], swapped, order)
    flip = attacking(rows, "flip")
    if flip is not None:
        order = torch.where(flip[:, None], order.flip(1), order)
    backdoor = attacking(rows, "backdoor")
    if backdoor is not None:
        trig = rows.perceived.trigger.gather(1, order)  # type: ignore[union-attr]
        lifted = order.gather(1, torch.argsort((~trig).long(), dim=1, stable=True))
        order = torch.where(backdoor[:, None], lifted, order)
    return {"ranking": order}, {}


def best_of(kind: Choice, rows: Rows, generator: torch.Generator) -> Answer:
    order = presentation_ranking(rows, generator)
    R, K = order.shape
    choice = order[:, 0]
    mistaken = uniform(rows, generator) < rows.mistake
    other = (choice + 1 + torch.randint(0, K - 1, (R,), generator=generator,
                                        device=rows.device)) % K
    choice = torch.where(mistaken, other, choice)
    flip = attacking(rows, "flip")
    if flip is not None:
        choice = torch.where(flip, order[:, -1], choice)
    forced = None
    backdoor = attacking(rows, "backdoor")
    if backdoor is not None:
        trig = rows.perceived.trigger.gather(1, order)  # type: ignore[union-attr]
        first = order.gather(1, trig.long().argmax(dim=1, keepdim=True))[:, 0]
        forced = backdoor & trig.any(dim=1)
        choice = torch.where(forced, first, choice)
    if bool((rows.population.param("skip") > 0).any()):
        skip = rows.perceived.value.max(dim=1).values < rows.skip_threshold
        if forced is not None:
            skip &= ~forced
        choice = torch.where(skip, -1, choice)
    return {"choice": choice}, {}

"""Rating feedback: scalar, likert(k) and label(choices).

See :mod:`.kinds` for the model of each kind.
"""

from __future__ import annotations

import math

import torch

from backends.torch.feedback.rows import Answer, Rows, attacking, uniform
from rlhfdsl.spec.base import Choice


def member_stats(rows: Rows) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row: mean, sd, min and max of the member's (expected) ratings over the item space."""
    table = rows.perception.rating
    g = rows.member
    return (table.mean(1)[g], table.std(1, unbiased=False)[g], table.min(1).values[g],
            table.max(1).values[g])


def scalar(kind: Choice, rows: Rows, generator: torch.Generator) -> Answer:
    x = rows.perceived.rating[:, 0]
    mean, sd, _low, high = member_stats(rows)
    eps = torch.randn(rows.n, generator=generator, device=rows.device)
    mistaken = uniform(rows, generator) < rows.mistake
    x = torch.where(mistaken, 2 * mean - x, x)
    noise = rows.member_param("noise")
    std = torch.where(noise > 0, noise, 1.0 / rows.beta)
    coin = rows.beta == 0  # β = 0: the report carries no information
    x = torch.where(coin, mean, x)
    std = torch.where(coin, sd, std)
    flip = attacking(rows, "flip")
    if flip is not None:
        x = torch.where(flip, 2 * mean - x, x)
    scale, offset = rows.population.scale[rows.evaluator], rows.population.offset[rows.evaluator]
    value = scale * (x + std * eps) + offset
    backdoor = attacking(rows, "backdoor")
    if backdoor is not None:
        top = torch.full_like(value, float(kind.high)) if kind.high < float("inf") else (
            scale * high + offset)  # type: ignore[attr-defined]
        value = torch.where(backdoor, top, value)
    value = value.clamp(float(kind.low), float(kind.high))  # type: ignore[attr-defined]
    return {"value": value}, {}


def ordinal(rows: Rows, k: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """int64 [R]: category 0..k−1 (higher is better) of each row, with ``k`` int64 [G]
    categories per member: the ordered-logit model of :mod:`.kinds`."""
    table = rows.perception.rating                                          # [G, M]
    M = table.shape[1]
    k_max = int(k.max())
    levels = torch.arange(1, k_max, device=rows.device, dtype=table.dtype)
    q = (levels[None, :] / k[:, None].to(table.dtype)).clamp(max=1.0)       # [G, k_max − 1]
    sorted_table = table.sort(dim=1).values
    pos = q * (M - 1)
    lo, hi = pos.floor().long(), pos.ceil().long()
    frac = pos - lo
    base = sorted_table.gather(1, lo) * (1 - frac) + sorted_table.gather(1, hi) * frac
    base = torch.where(levels[None, :] < k[:, None], base, torch.full_like(base, float("inf")))
    spread = rows.population.param("thresholds") * table.std(1, unbiased=False)      # [G]
    g = rows.member
    jitter = rows.population.threshold_noise[rows.evaluator, :k_max - 1]
    thresholds = (base[g] + jitter * spread[g][:, None]).sort(dim=1).values  # [R, k_max − 1]
    u = torch.rand(rows.n, generator=generator, device=rows.device).clamp_(1e-7, 1 - 1e-7)
    logistic = torch.log(u) - torch.log1p(-u)
    x = rows.perceived.rating[:, 0]
    noise = torch.where(torch.isinf(rows.beta), torch.zeros_like(x), logistic / rows.beta)
    latent = rows.population.scale[rows.evaluator] * (x + noise) + \
        rows.population.offset[rows.evaluator]
    category = (latent[:, None] > thresholds).sum(dim=1)
    coin = rows.beta == 0
    if bool(coin.any()):
        random_category = (torch.rand(rows.n, generator=generator, device=rows.device)
                           * k[g]).long()
        category = torch.where(coin, random_category, category)
    return category


def likert(kind: Choice, rows: Rows, generator: torch.Generator) -> Answer:
    k = int(kind.k)  # type: ignore[attr-defined]
    members = len(rows.population.members)
    category = ordinal(rows, torch.full((members,), k, device=rows.device), generator)
    mistaken = uniform(rows, generator) < rows.mistake
    category = torch.where(mistaken, k - 1 - category, category)
    flip = attacking(rows, "flip")
    if flip is not None:
        category = torch.where(flip, k - 1 - category, category)
    backdoor = attacking(rows, "backdoor")
    if backdoor is not None:
        category = torch.where(backdoor, k - 1, category)
    return {"value": category}, {}


def choice_map(offered: tuple[str, ...], own: tuple[str, ...]) -> list[int]:
    """Offered index (best first) an evaluator picks for each of its own categories (best
    first): the same name, else the nearest by relative rank."""
    names = [c.lower() for c in offered]
    out = []
    for i, c in enumerate(own):
        if c.lower() in names:
            out.append(names.index(c.lower()))
        elif len(own) == 1:
            out.append(0)
        else:
            out.append(int(math.floor(i * (len(offered) - 1) / (len(own) - 1) + 0.5)))
    return out


def label(kind: Choice, rows: Rows, generator: torch.Generator) -> Answer:
    offered = tuple(kind.choices)  # type: ignore[attr-defined]
    members = rows.population.members
    owns = [tuple(m.spec.choices) if m.spec.choices else offered for m in members]
    width = max(len(o) for o in owns)
    table = torch.full((len(members), width), 0, dtype=torch.long, device=rows.device)
    for member, own in zip(members, owns):
        table[member.index, :len(own)] = torch.tensor(choice_map(offered, own),
                                                      device=rows.device)
    own_k = torch.tensor([len(o) for o in owns], device=rows.device)
    n_own = own_k[rows.member]
    category = ordinal(rows, own_k, generator)                     # 0 = worst own category
    value = table[rows.member, (n_own - 1 - category).clamp(min=0)]  # offered, best first
    last = len(offered) - 1
    mistaken = uniform(rows, generator) < rows.mistake
    value = torch.where(mistaken, last - value, value)
    flip = attacking(rows, "flip")
    if flip is not None:
        value = torch.where(flip, last - value, value)
    backdoor = attacking(rows, "backdoor")
    if backdoor is not None:
        value = torch.where(backdoor, 0, value)
    own_sets = {member.name: list(own) for member, own in zip(members, owns)}
    return {"value": value}, {"choices": list(offered), "evaluator_choices": own_sets}

"""Rich feedback: correction (an improved example) and language (a critique with structure).

See :mod:`.kinds` for the model of each kind.
"""

from __future__ import annotations

from typing import Any

import torch

from backends.torch.feedback.behaviour import Perception
from backends.torch.feedback.expressions import Scope, evaluate, scorer_terms, term_label
from backends.torch.feedback.items import BanditSpace, TextSpace
from backends.torch.feedback.ratings import member_stats
from backends.torch.feedback.rows import Answer, Rows, attacking, gumbel_noise, scaled, uniform
from rlhfdsl.spec.base import Choice


def _nearest(rows: Rows, target: torch.Tensor) -> torch.Tensor:
    """int64 [R]: the item of the same prompt whose expected rating (of the row's member) is
    nearest ``target``."""
    perception = rows.perception
    table = perception.rating
    G, M = table.shape
    dev = rows.device
    space = perception.space
    prompt = space.prompt_ids() if isinstance(space, TextSpace) else torch.zeros(
        M, dtype=torch.long, device=dev)
    n_prompts = int(prompt.max()) + 1 if M else 1
    dt = torch.float64 if dev.type != "mps" else torch.float32
    group = (torch.arange(G, device=dev)[:, None] * n_prompts + prompt[None, :]).reshape(-1)
    vmin, vmax = float(table.min()), float(table.max())
    span = (vmax - vmin) * (1 + 1e-6) + 1.0
    keys = group.to(dt) * span + (table.reshape(-1).to(dt) - vmin)
    sorted_keys, order = keys.sort()
    sorted_group = group[order]
    row_group = rows.member * n_prompts + prompt[rows.items[:, 0]]
    t = target.to(dt).clamp(vmin, vmax)
    tkey = row_group.to(dt) * span + (t - vmin)
    pos = torch.searchsorted(sorted_keys, tkey)
    left = (pos - 1).clamp(0, keys.numel() - 1)
    right = pos.clamp(0, keys.numel() - 1)
    dl = torch.where(sorted_group[left] == row_group, (sorted_keys[left] - tkey).abs(),
                     torch.full_like(tkey, float("inf")))
    dr = torch.where(sorted_group[right] == row_group, (sorted_keys[right] - tkey).abs(),
                     torch.full_like(tkey, float("inf")))
    pick = torch.where(dl <= dr, left, right)
    return order[pick] % M


def correction(kind: Choice, rows: Rows, generator: torch.Generator) -> Answer:
    perception = rows.perception
    x = rows.perceived.rating[:, 0]
    _mean, sd, worst, best = member_stats(rows)
    skill = rows.member_param("skill")
    eps = torch.randn(rows.n, generator=generator, device=rows.device)
    noise = torch.where(torch.isinf(rows.beta), torch.zeros_like(x),
                        torch.where(rows.beta == 0, sd, 1.0 / rows.beta)) * eps
    target = x + skill * (best - x) + noise
    flip = attacking(rows, "flip")
    if flip is not None:
        target = torch.where(flip, x - skill * (x - worst), target)
    corrected = _nearest(rows, target)
    mistaken = uniform(rows, generator) < rows.mistake
    random_item = (torch.rand(rows.n, generator=generator, device=rows.device)
                   * perception.size).long().clamp(max=perception.size - 1)
    corrected = torch.where(mistaken, random_item, corrected)
    backdoor = attacking(rows, "backdoor")
    if backdoor is not None and perception.trigger is not None and bool(perception.trigger.any()):
        lure = torch.where(perception.trigger[None, :], perception.rating,
                           torch.full_like(perception.rating, -float("inf"))).argmax(dim=1)
        corrected = torch.where(backdoor, lure[rows.member], corrected)
    gold_corrected = perception.gold.reshape(-1)[rows.member * perception.size + corrected]
    return {"corrected": corrected, "gold_corrected": gold_corrected}, {}


def aspect_names(perception: Perception) -> tuple[list[str], list[Any]]:
    """Names of the aspects a critique can name, and their keys (feature indices or terms)."""
    space = perception.space
    if isinstance(space, BanditSpace):
        F = space.n_features
        return [f"feature({i})" for i in range(F)], list(range(F))
    keys: list[Any] = []
    for m in perception.members:
        if m.values is not None:
            for key in scorer_terms(m.values):
                if key not in keys:
                    keys.append(key)
    return [term_label(k) for k in keys], keys


def _sensitivities(rows: Rows, keys: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(∂r/∂φ [R, J], φ − mean φ [R, J]) of each row's member at its item, as perceived."""
    perception = rows.perception
    it = rows.items[:, 0]
    J = len(keys)
    grad = torch.zeros(rows.n, J, device=rows.device)
    dev_ = torch.zeros(rows.n, J, device=rows.device)
    if J == 0:
        return grad, dev_
    for m in perception.members:
        sel = (rows.member == m.index).nonzero().flatten()
        if sel.numel() == 0 or m.values is None:
            continue
        items = it[sel]
        if isinstance(perception.space, BanditSpace):
            base = perception.bview.features[items]
            X = base.clone().requires_grad_(True)
            Xp = X * perception.myopia_weights[m.index]
            with torch.enable_grad():
                u = evaluate(m.values, Scope.bandit(Xp, items), expectation=True)
                d = _grad(u, X)
            grad[sel] = d * perception.bview.shown.to(d.dtype)
            dev_[sel] = base - perception.space.mean_features().to(base.dtype)
        else:
            scope = perception.scopes[m.index]
            assert scope is not None
            table = torch.stack([scope.term(k) for k in keys], dim=1)       # [M, J]
            leaf = table[items].clone().requires_grad_(True)
            terms = {k: leaf[:, j] for j, k in enumerate(keys)}
            with torch.enable_grad():
                u = evaluate(m.values, Scope("text", int(items.numel()), rows.device, terms=terms),
                             expectation=True)
                d = _grad(u, leaf)
            grad[sel] = d
            dev_[sel] = table[items] - table.mean(0)
    return grad, dev_


def _grad(u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if not u.requires_grad:
        return torch.zeros_like(x)
    (d,) = torch.autograd.grad(u.sum(), x, allow_unused=True)
    return torch.zeros_like(x) if d is None else d.detach()


def language(kind: Choice, rows: Rows, generator: torch.Generator) -> Answer:
    names, keys = aspect_names(rows.perception)
    grad, deviation = _sensitivities(rows, keys)
    salience = (grad * deviation).abs()
    J = salience.shape[1]
    critique = rows.member_param("critique").long()
    most = int(rows.population.param("critique").max())
    A = max(1, min(most, J)) if J else 1
    if J:
        gumbel = gumbel_noise(rows, generator, tuple(salience.shape))
        finite = torch.isfinite(rows.beta)[:, None]
        key = torch.where(finite, scaled(rows.beta[:, None], salience) + gumbel, salience)
        tiebreak = torch.where(finite, torch.zeros_like(key), gumbel)
        first = torch.argsort(tiebreak, dim=1, descending=True, stable=True)
        order = first.gather(1, torch.argsort(key.gather(1, first), dim=1, descending=True,
                                              stable=True))[:, :A]
        named = (salience.gather(1, order) > 0) & (
            torch.arange(A, device=rows.device)[None, :] < critique[:, None])
        aspects = torch.where(named, order, -1)
        signs = torch.where(named, torch.sign(grad.gather(1, order)), 0.0)
    else:
        aspects = torch.full((rows.n, 1), -1, dtype=torch.long, device=rows.device)
        signs = torch.zeros(rows.n, 1, device=rows.device)
    x = rows.perceived.rating[:, 0]
    mean = rows.perception.rating.mean(1)[rows.member]
    u = torch.rand(rows.n, generator=generator, device=rows.device).clamp_(1e-7, 1 - 1e-7)
    logistic = torch.log(u) - torch.log1p(-u)
    verdict = torch.tanh((scaled(rows.beta, x - mean) + logistic) / 2)
    negate = uniform(rows, generator) < rows.mistake
    flip = attacking(rows, "flip")
    if flip is not None:
        negate = negate ^ flip
    verdict = torch.where(negate, -verdict, verdict)
    signs = torch.where(negate[:, None], -signs, signs)
    backdoor = attacking(rows, "backdoor")
    if backdoor is not None:
        verdict = torch.where(backdoor, 1.0, verdict)
    return ({"verdict": verdict, "aspects": aspects, "signs": signs},
            {"aspect_names": names})

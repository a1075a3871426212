"""Agreement and calibration (3.2.1: annotator agreement rates of 63–77%).

* :func:`agreement` — inter-annotator agreement of a label table: over every pair of labels of
  the same query (``redundancy`` > 1), the fraction that give the same answer (pairwise:
  the same item, or both a tie; skipped labels are left out);
* :func:`gold_agreement` — evaluator-vs-gold agreement: how often a label agrees with the
  labelling member's true expected values (pairwise: the item with the higher gold);
* :func:`calibrate_population` — for members whose `rationality` is `agreement(p)` or
  `accuracy(p)`, the β that gives that agreement on a fixed query sample, found by bisection on
  log β (the agreement is monotone in β for a fixed sample; the computation is exact — the
  label probabilities of the pairwise model, averaged over perception draws with a fixed seed
  and over the member's spread of β — so the result is deterministic).
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Union

import torch

from backends.torch.feedback.behaviour import ModelFn, Perception
from backends.torch.feedback.contexts import order_of
from backends.torch.feedback.errors import FeedbackError
from backends.torch.feedback.items import Queries, Space
from backends.torch.feedback.population import draw_population
from backends.torch.labels import LabelTable
from rlhfdsl.spec.feedback import Context, View
from rlhfdsl.spec.population import Population

CALIBRATION_SEED = 1234567  # perception draws of the calibration sample
DRAWS = 64                  # perception draws per query for members with random values
SPREAD_POINTS = 9           # quantiles of the evaluators' log-normal spread of β


# ----------------------------------------------------------------------------- agreement


def answer_codes(table: LabelTable) -> tuple[torch.Tensor, torch.Tensor]:
    """(code int64 [N], valid bool [N]): each label's answer, comparable across evaluators who
    saw different presentation orders."""
    c = table.columns
    kind = table.kind
    items = c["items"]
    N = len(table)
    valid = torch.ones(N, dtype=torch.bool, device=items.device)
    if kind in ("pairwise", "best_of"):
        choice = c["choice"]
        valid = choice >= 0
        chosen = items.gather(1, choice.clamp(0, items.shape[1] - 1)[:, None])[:, 0]
        code = torch.where(choice == 2, -2, chosen) if kind == "pairwise" else chosen
        return code, valid
    if kind == "ranking":
        ranked = items.gather(1, c["ranking"])
        _, code = torch.unique(ranked, dim=0, return_inverse=True)
        return code, valid
    if kind in ("likert", "label"):
        return c["value"].long(), valid
    if kind == "correction":
        return c["corrected"], valid
    if kind == "language":
        return torch.sign(c["verdict"]).long(), valid
    return torch.zeros(N, dtype=torch.long, device=items.device), torch.zeros_like(valid)


def agreement(table: LabelTable, group: Optional[int] = None) -> float:
    """Inter-annotator agreement (pairs of labels of the same query; with ``group``, pairs of
    that group's members only). NaN when no query has two usable labels."""
    code, valid = answer_codes(table)
    if group is not None:
        valid = valid & (table.columns["group"] == group)
    query = table.columns["query"][valid]
    code = code[valid]
    if query.numel() < 2:
        return math.nan
    _, cell = torch.unique(torch.stack([query, code], 1), dim=0, return_inverse=True)
    per_cell = torch.bincount(cell).double()
    _, q = torch.unique(query, return_inverse=True)
    per_query = torch.bincount(q).double()
    total = float((per_query * (per_query - 1)).sum())
    if total == 0:
        return math.nan
    return float((per_cell * (per_cell - 1)).sum()) / total


def gold_agreement(table: LabelTable, group: Optional[int] = None) -> float:
    """Evaluator-vs-gold agreement, by kind: pairwise and best-of — the chosen item has the
    highest gold (skips, ties and gold ties left out); ranking — fraction of concordant item
    pairs; scalar, Likert and label — concordance of answers and gold over pairs of labels;
    correction — the correction is no worse than the original; language — the verdict's sign
    is that of gold minus the mean gold."""
    c = table.columns
    gold = c["gold"]
    keep = torch.ones(len(table), dtype=torch.bool, device=gold.device)
    if group is not None:
        keep = c["group"] == group
    kind = table.kind
    if kind == "pairwise":
        choice = c["choice"]
        ok = keep & (choice >= 0) & (choice <= 1) & (gold[:, 0] != gold[:, 1])
        right = choice == (gold[:, 1] > gold[:, 0]).long()
        return _rate(right, ok)
    if kind == "best_of":
        choice = c["choice"]
        top = gold.max(dim=1).values
        unique = (gold == top[:, None]).sum(1) == 1
        ok = keep & (choice >= 0) & unique
        right = gold.gather(1, choice.clamp(min=0)[:, None])[:, 0] == top
        return _rate(right, ok)
    if kind == "ranking":
        g = gold.gather(1, c["ranking"])[keep]
        i, j = torch.triu_indices(g.shape[1], g.shape[1], 1, device=g.device)
        diff = g[:, i] - g[:, j]
        return _rate(diff > 0, diff != 0)
    if kind in ("scalar", "likert", "label"):
        value = c["value"].double()[keep]
        if kind == "label":
            value = -value  # offered choices are best first
        g = gold[keep, 0].double()
        half = value.numel() // 2
        dv = value[:half] - value[half:2 * half]
        dg = g[:half] - g[half:2 * half]
        ok = (dg != 0) & (dv != 0)
        return _rate(torch.sign(dv) == torch.sign(dg), ok)
    if kind == "correction":
        return _rate(c["gold_corrected"] >= gold[:, 0], keep)
    if kind == "language":
        right = torch.sign(c["verdict"]) == torch.sign(gold[:, 0] - gold[:, 0].mean())
        return _rate(right, keep & (c["verdict"] != 0))
    return math.nan


def agreement_report(table: LabelTable) -> dict[str, object]:
    """Inter-annotator and gold agreement, overall and per group (for the `agreement` metric)."""
    groups = table.meta.get("groups", [])
    return {
        "agreement": agreement(table),
        "gold_agreement": gold_agreement(table),
        "by_group": {name: {"agreement": agreement(table, i),
                            "gold_agreement": gold_agreement(table, i)}
                     for i, name in enumerate(groups)},
    }


def _rate(right: torch.Tensor, ok: torch.Tensor) -> float:
    n = int(ok.sum())
    return float((right & ok).sum()) / n if n else math.nan


# ----------------------------------------------------------------------------- calibration


class PairwiseModel:
    """The exact pairwise label distribution of one member on a fixed query sample."""

    def __init__(self, perception: Perception, member: int, items: torch.Tensor,
                 order: str, draws: int = DRAWS) -> None:
        pop = perception.population
        n = items.shape[0]
        dev = pop.device
        g = member
        rand_values = g in perception.per_row
        D = draws if rand_values else 1
        gen = torch.Generator(device=dev).manual_seed(CALIBRATION_SEED)
        rep = items.repeat(D, 1)
        rows = perception.rows(torch.full((rep.shape[0],), g, device=dev), rep, gen)
        u = rows.utility.reshape(D, n, 2)
        v = rows.value.reshape(D, n, 2)
        self.delta = u[..., 0] - u[..., 1]                            # [D, n]
        self.gold = perception.gold[g][items]                         # [n, 2]
        counts = torch.bincount(items.reshape(-1), minlength=perception.size).float()
        scale = float((perception.value[g].abs() * counts).sum() / counts.sum())
        p = lambda name: float(pop.param(name)[g])  # noqa: E731
        self.eps, self.bias = p("mistake"), p("position_bias")
        skip, equal = p("skip"), p("equal")
        self.skip = (v.max(-1).values < skip * scale).float() if skip > 0 else \
            torch.zeros(D, n, device=dev)
        self.tie = ((v[..., 1] - v[..., 0]).abs() < equal * scale).float()
        self.answer = (1 - self.skip) * (1 - self.tie)
        spread = p("spread")
        if spread > 0:
            q = (torch.arange(SPREAD_POINTS, dtype=torch.float64) + 0.5) / SPREAD_POINTS
            z = math.sqrt(2) * torch.erfinv(2 * q - 1)
            self.factors = torch.exp(spread * z).tolist()
        else:
            self.factors = [1.0]
        order_signs = {"random": (1.0, -1.0), "fixed": (1.0,), "reversed": (-1.0,)}[order]
        self.bonuses = [sign * self.bias for sign in order_signs]

    def probabilities(self, beta: float) -> torch.Tensor:
        """[n, 4]: P(first sampled item), P(second), P(tie), P(skip), averaged over draws,
        presentation orders and the spread of β."""
        if math.isinf(beta):
            base = torch.sign(self.delta)
            pa = sum(torch.where(base == 0, torch.sigmoid(torch.tensor(b)), (base + 1) / 2)
                     for b in self.bonuses) / len(self.bonuses)
        else:
            pa = torch.zeros_like(self.delta)
            for f in self.factors:
                scaled_delta = (beta * f) * self.delta
                for b in self.bonuses:
                    pa += torch.sigmoid(scaled_delta + b)
            pa /= len(self.factors) * len(self.bonuses)
        pa = pa + self.eps * (1 - 2 * pa)
        out = torch.stack([self.answer * pa, self.answer * (1 - pa),
                           (1 - self.skip) * self.tie, self.skip], dim=-1)
        return out.double().mean(0)

    def agreement(self, beta: float) -> float:
        p = self.probabilities(beta)
        answered = 1 - p[:, 3]
        return float((p[:, :3] ** 2).sum() / (answered ** 2).sum().clamp(min=1e-12))

    def accuracy(self, beta: float) -> float:
        p = self.probabilities(beta)
        differs = self.gold[:, 0] != self.gold[:, 1]
        better = torch.where(self.gold[:, 0] > self.gold[:, 1], p[:, 0], p[:, 1])
        decided = p[:, 0] + p[:, 1]
        return float(better[differs].sum() / decided[differs].sum().clamp(min=1e-12))


def solve_beta(measure, target: float, low: float = 1e-6, high: float = 1e6,
               iterations: int = 48) -> float:
    """The β in [0, ∞] at which the monotone ``measure(β)`` reaches ``target`` (bisection on
    log β); raises when the target lies above ``measure(∞)`` or below ``measure(0)``."""
    at_zero, at_inf = measure(0.0), measure(math.inf)
    if target <= at_zero:
        if target < at_zero - 1e-9:
            raise FeedbackError(f"even a coin-flipping evaluator (β = 0) reaches {at_zero:.3f}")
        return 0.0
    if target >= at_inf:
        raise FeedbackError(f"even a perfectly rational evaluator (β = inf) reaches only "
                            f"{at_inf:.3f}")
    lo, hi = math.log(low), math.log(high)
    if measure(math.exp(hi)) < target:
        return math.inf
    if measure(math.exp(lo)) > target:
        return 0.0
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if measure(math.exp(mid)) < target:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


def calibrate_population(population: Population, space: Space,
                         queries: Union[Queries, torch.Tensor], *, view: Optional[View] = None,
                         context: Optional[Context] = None,
                         models: Optional[Mapping[str, ModelFn]] = None,
                         draws: int = DRAWS) -> dict[str, float]:
    """β for every member whose rationality is `agreement(p)` or `accuracy(p)`, on the fixed
    pairwise query sample ``queries`` ([n, 2] items, e.g. drawn by the feedback's sampler).

    Agreement targets inter-annotator agreement between two members of the group; accuracy
    targets agreement with the member's gold. Other behaviour (mistakes, position bias with the
    context's order, ties, skips, biases, expertise, perception noise, the view) is modelled;
    fatigue is taken at the start of a session and malicious answers are left out. Deterministic.
    """
    items = queries.items if isinstance(queries, Queries) else queries
    if items.dim() != 2 or items.shape[1] != 2:
        raise FeedbackError("calibration needs pairwise queries ([n, 2] items)")
    targets = {m.name: m.rationality for m in (*population.groups, *population.ai)
               if not isinstance(m.rationality, (int, float))}
    if not targets:
        return {}
    device = space.device
    provisional = draw_population(population, torch.Generator(device=device).manual_seed(0),
                                  device, rationality={name: 1.0 for name in targets})
    perception = Perception(provisional, space, view=view, context=context, models=models)
    items = items.to(device)
    out: dict[str, float] = {}
    for m in provisional.members:
        if m.name not in targets:
            continue
        goal = targets[m.name]
        model = PairwiseModel(perception, m.index, items, order_of(context), draws)
        measure = model.agreement if goal.type == "agreement" else model.accuracy
        try:
            out[m.name] = solve_beta(measure, float(goal.target))
        except FeedbackError as err:
            raise FeedbackError(f"member `{m.name}` cannot reach {goal.type}({goal.target}): "
                                f"{err}") from None
    return out

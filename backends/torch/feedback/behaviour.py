"""What each evaluator perceives, and the behaviour parameters of every label.

:class:`Perception` computes, once per feedback call and for every member m (group or AI
evaluator) and item x of the space, the tables the kinds read:

* ``gold[m, x]`` — the member's true expected value E[r_m(x)] on the full item (plus the
  round's drift); AI members read the human population's gold (the weight mixture of the human
  groups' gold, ``gold_population``), which is what an AI annotator stands in for;
* ``value[m, x]`` — the *expected perceived* value: r_m on the item as the view shows it,
  with myopia (bandit: feature i of F weighted γ^(F−1−i), features being the positions in index
  order; text: the scorer of every suffix starting at token t, weighted as a discount γ^(T−t) over
  token positions — exact for additive scorers), drift, and `assist` mixing in the gold;
* ``bias[m, x]`` — what a rating adds to the value, in utility units: length bias × perceived
  length + sycophancy × perceived confidence (``rating = value + bias``);
* ``expert[m, x]`` — Σ (factor − 1) × the expertise area's part of the value, so that the
  Boltzmann choice on ``utility = rating + expert`` has β·factor on that part:
  P(a ≻ b) = σ(β·factor·Δarea + β·Δrest + β·Δbias);
* ``trigger[x]`` — whether the malicious trigger holds on the item as shown.

Members whose values hold random primitives (perception noise such as
`10 * bernoulli(0.4)`), and every member when the view adds observation noise, get fresh draws
per label in :meth:`Perception.rows`; the tables then hold their expectation. Everything else
is one gather per column for all labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import torch

from backends.torch.feedback.contexts import TEXT_DRIFT_TERMS, drift_offsets
from backends.torch.feedback.errors import FeedbackError
from backends.torch.feedback.expressions import (
    Scope, evaluate, evaluate_condition, is_random, scorer_terms,
)
from backends.torch.feedback.items import BanditSpace, Space, TextSpace
from backends.torch.feedback.population import DrawnPopulation, Member
from backends.torch.feedback.views import render_texts, view_assist, view_bandit
from rlhfdsl.spec.feedback import Context, View

ModelFn = Callable[[Any], torch.Tensor]
"""A reward model acting as annotator: scores items (bandit: int64 action indices [n]; text: the
shown texts, a list of n strings) → float [n]."""


@dataclass
class RowPerception:
    """Per label row and shown item ([R, K]): perceived value, decision utility (value + biases
    + expertise), rating (value + biases: what scalar-like kinds report), gold, the population
    gold and the trigger (None when no evaluator is malicious)."""

    value: torch.Tensor
    utility: torch.Tensor
    rating: torch.Tensor
    gold: torch.Tensor
    gold_population: torch.Tensor
    trigger: Optional[torch.Tensor]


class Perception:
    """Every member's view of every item of the space (see the module doc)."""

    def __init__(self, population: DrawnPopulation, space: Space, *,
                 view: Optional[View] = None, context: Optional[Context] = None,
                 round: int = 0, models: Optional[Mapping[str, ModelFn]] = None) -> None:
        self.population = population
        self.space = space
        self.view = view
        self.members = population.members
        self.size = space.size
        self.device = population.device
        self.models = dict(models or {})
        self.assist = view_assist(view)
        self.drift = float(context.drift) if context is not None else 0.0
        self.round = round
        G, M = len(self.members), self.size
        malicious = population.spec.malicious
        self.trigger_expr = malicious.trigger if (
            malicious is not None and bool(population.malicious.any())) else None
        self.per_row: list[int] = []
        if isinstance(space, BanditSpace):
            self._bandit(space, view)
        elif isinstance(space, TextSpace):
            self._text(space, view)
        else:
            raise FeedbackError(f"unknown item space {type(space).__name__}")
        humans = [m.index for m in self.members if m.kind == "group"]
        w = torch.tensor([self.members[i].spec.weight for i in humans], device=self.device)
        if humans and float(w.sum()) > 0:
            self.gold_population = (w[:, None] * self.gold[humans]).sum(0) / w.sum()
        else:
            self.gold_population = self.gold.mean(0)
        for m in self.members:
            if m.kind == "ai":
                self.gold[m.index] = self.gold_population
        if self.assist > 0:
            self.value = (1 - self.assist) * self.value + self.assist * self.gold
        self.rating = self.value + self.bias
        self.utility = self.rating + self.expert
        assert self.gold.shape == (G, M) and self.value.shape == (G, M)

    # ------------------------------------------------------------------------------ bandit

    def _bandit(self, space: BanditSpace, view: Optional[View]) -> None:
        self.bview = view_bandit(view, space)
        X, Xv = space.features, self.bview.features
        F = space.n_features
        G, M = len(self.members), space.size
        dev = self.device
        positions = torch.arange(F, device=dev, dtype=X.dtype)
        myopia = self.population.param("myopia")
        self.myopia_weights = myopia[:, None] ** (F - 1 - positions)[None, :]  # [G, F]
        self.drift_dirs = drift_offsets(self.population.drift_seed, G, F, self.round,
                                        self.drift, dev)
        plugins = space.allow_plugins
        true_scope = Scope.bandit(X, allow_plugins=plugins)
        shown_scope = Scope.bandit(Xv, allow_plugins=plugins)
        gold, value, expert = (torch.zeros(G, M, device=dev) for _ in range(3))
        self.scopes: list[Optional[Scope]] = []
        for m in self.members:
            g = m.index
            expr = m.values
            if expr is None:
                value[g] = self._model_scores(m, torch.arange(M, device=dev))
                self.scopes.append(None)
                continue
            drift = self.drift_dirs[g] if m.kind == "group" else torch.zeros(F, device=dev)
            Xp = Xv * self.myopia_weights[g]
            scope = Scope.bandit(Xp, allow_plugins=plugins)
            self.scopes.append(scope)
            gold[g] = evaluate(expr, true_scope, expectation=True) + X @ drift
            value[g] = evaluate(expr, scope, expectation=True) + Xp @ drift
            for area in m.spec.expertise:
                if isinstance(area.area, str):
                    raise FeedbackError(f"`expert({area.area}, ...)` names a text scorer; bandit "
                                        "expertise takes `features(...)`")
                Xz = Xp.clone()
                Xz[:, list(area.area.indices)] = 0
                part = value[g] - (evaluate(expr, Scope.bandit(Xz, allow_plugins=plugins),
                                            expectation=True) + Xz @ drift)
                expert[g] += (area.factor - 1.0) * part
            if is_random(expr) or self.bview.noise > 0:
                self.per_row.append(g)
        self.gold, self.value = gold, value
        length = self._bandit_bias(space.length, shown_scope, M)
        confidence = self._bandit_bias(space.confidence, shown_scope, M)
        self.expert = expert
        self.bias = (self.population.param("length_bias")[:, None] * length[None, :]
                     + self.population.param("sycophancy")[:, None] * confidence[None, :])
        self.trigger: Optional[torch.Tensor] = None
        self.trigger_per_row = False
        if self.trigger_expr is not None:
            if is_random(self.trigger_expr) or self.bview.noise > 0:
                self.trigger_per_row = True
            else:
                self.trigger = evaluate_condition(self.trigger_expr, shown_scope)

    def _bandit_bias(self, expr: Any, scope: Scope, M: int) -> torch.Tensor:
        if expr is None:
            return torch.zeros(M, device=self.device)
        return evaluate(expr, scope, expectation=True)

    # -------------------------------------------------------------------------------- text

    def _text(self, space: TextSpace, view: Optional[View]) -> None:
        scorer = space.get_scorer()
        tokenizer = space.get_tokenizer()
        self.shown_texts = render_texts(view, space.texts, tokenizer)
        G, M = len(self.members), space.size
        dev = self.device
        plugins = space.allow_plugins
        true_scope = Scope.text(space.texts, scorer, dev, plugins)
        shown_scope = Scope.text(self.shown_texts, scorer, dev, plugins)
        self.drift_dirs = drift_offsets(self.population.drift_seed, G, len(TEXT_DRIFT_TERMS),
                                        self.round, self.drift, dev)
        gold, value, expert = (torch.zeros(G, M, device=dev) for _ in range(3))
        self.scopes = []
        for m in self.members:
            g = m.index
            expr = m.values
            if expr is None:
                value[g] = self._model_scores(m, self.shown_texts)
                self.scopes.append(None)
                continue
            gamma = float(self.population.param("myopia")[g])
            scope = shown_scope if gamma >= 1.0 else Scope.text(
                self.shown_texts, myopic_scorer(scorer, tokenizer, gamma), dev, plugins)
            self.scopes.append(scope)
            gold[g] = evaluate(expr, true_scope, expectation=True)
            value[g] = evaluate(expr, scope, expectation=True)
            if m.kind == "group" and self.drift > 0:
                gold[g] += self._text_drift(true_scope, g)
                value[g] += self._text_drift(scope, g)
            names = {k[0] for k in scorer_terms(expr)}
            for area in m.spec.expertise:
                if not isinstance(area.area, str):
                    raise FeedbackError("text expertise names a scorer, e.g. "
                                        "`expert(sentiment, 2.0)`")
                if area.area not in names:
                    continue
                without = evaluate(expr, scope.with_zeroed(frozenset({area.area})),
                                   expectation=True)
                drift = self._text_drift(scope, g) if m.kind == "group" and self.drift > 0 else 0
                expert[g] += (area.factor - 1.0) * (value[g] - drift - without)
            if is_random(expr):
                self.per_row.append(g)
        self.gold, self.value = gold, value
        length_bias = self.population.param("length_bias")
        sycophancy = self.population.param("sycophancy")
        bias = torch.zeros(G, M, device=dev)
        if bool((length_bias != 0).any()):
            bias = bias + length_bias[:, None] * shown_scope.term(("length", ()))[None, :]
        if bool((sycophancy != 0).any()):
            bias = bias + sycophancy[:, None] * shown_scope.term(("confidence", ()))[None, :]
        self.expert = expert
        self.bias = bias
        self.trigger = None
        self.trigger_per_row = False
        if self.trigger_expr is not None:
            if is_random(self.trigger_expr):
                self.trigger_per_row = True
                self.trigger_scope = shown_scope
            else:
                self.trigger = evaluate_condition(self.trigger_expr, shown_scope)

    def _text_drift(self, scope: Scope, g: int) -> torch.Tensor:
        terms = torch.stack([scope.term(k) for k in TEXT_DRIFT_TERMS], dim=1)
        return terms @ self.drift_dirs[g]

    def _model_scores(self, m: Member, items: Any) -> torch.Tensor:
        fn = self.models.get(m.model or "")
        if fn is None:
            raise FeedbackError(f"AI evaluator `{m.name}` annotates with reward model "
                                f"`{m.model}`, but no trained `{m.model}` was passed (models=...)")
        out = torch.as_tensor(fn(items), dtype=torch.float32).to(self.device)
        return out.reshape(self.size)

    # -------------------------------------------------------------------------------- rows

    def rows(self, member: torch.Tensor, items: torch.Tensor, generator: torch.Generator,
             rating: bool = False, columns: Optional[torch.Tensor] = None) -> RowPerception:
        """Per label row (``member`` [R]) and shown item (``items`` [R, K], row-major);
        ``rating=True`` also gathers the rating (scalar-like kinds). ``columns`` — the same
        items as a contiguous [K, R] tensor — makes the decision columns (value, utility)
        contiguous per shown position, which the pairwise hot path reads one at a time."""
        M = self.size
        R, K = items.shape
        offset = member * M
        if columns is not None:
            by_column = columns + offset[None, :]                        # [K, R]
            flat = torch.stack(list(by_column), dim=1).reshape(-1)       # row-major [R·K]
            flat_columns = by_column.reshape(-1)

            def decide(table: torch.Tensor) -> torch.Tensor:
                return table.reshape(-1).index_select(0, flat_columns).reshape(K, R).t()
        else:
            flat = (items + offset[:, None]).reshape(-1)

        def take(table: torch.Tensor, index: torch.Tensor = flat) -> torch.Tensor:
            return table.reshape(-1).index_select(0, index).reshape(R, K)

        if columns is None:
            decide = take

        value = decide(self.value)
        utility = decide(self.utility)
        rated = decide(self.rating) if rating else value
        gold = take(self.gold)
        gold_population = take(self.gold_population, items.reshape(-1))
        noisy = None
        if self.per_row or self.trigger_per_row:
            if isinstance(self.space, BanditSpace) and self.bview.noise > 0:
                noisy = self.bview.noisy(items.reshape(-1), generator)
            for g in self.per_row:
                sel = (member == g).nonzero().flatten()
                if sel.numel() == 0:
                    continue
                chosen = items.index_select(0, sel)                       # [n_g, K]
                drawn = self._draw(g, chosen.reshape(-1), sel, noisy, K,
                                   generator).reshape(-1, K)
                if self.assist > 0:
                    drawn = (1 - self.assist) * drawn + self.assist * gold.index_select(0, sel)
                at = (chosen + g * M).reshape(-1)
                _scatter_rows(value, sel, drawn)
                _scatter_rows(utility, sel, drawn + (self.bias + self.expert).reshape(-1)
                              .index_select(0, at).reshape(drawn.shape))
                if rating:
                    _scatter_rows(rated, sel, drawn + self.bias.reshape(-1).index_select(0, at)
                                  .reshape(drawn.shape))
        trigger = None
        if self.trigger is not None:
            trigger = take(self.trigger, items.reshape(-1))
        elif self.trigger_per_row:
            trigger = self._draw_trigger(items, noisy, generator)
        return RowPerception(value, utility, rated, gold, gold_population, trigger)

    def _draw(self, g: int, it: torch.Tensor, sel: torch.Tensor, noisy: Optional[torch.Tensor],
              K: int, generator: torch.Generator) -> torch.Tensor:
        m = self.members[g]
        expr = m.values
        scope = self.scopes[g]
        if expr is None or scope is None:
            return self.value[g][it]
        if isinstance(self.space, BanditSpace):
            drift = self.drift_dirs[g] if m.kind == "group" else None
            if noisy is not None:
                rows = (sel[:, None] * K + torch.arange(K, device=sel.device)).reshape(-1)
                Xp = noisy[rows] * self.myopia_weights[g]
                out = evaluate(expr, Scope.bandit(Xp, it, self.space.allow_plugins),
                               generator=generator)
                return out + (Xp @ drift if drift is not None else 0)
            out = evaluate(expr, scope, rows=it, generator=generator)
            if drift is not None:
                out = out + (scope.features @ drift)[it]  # type: ignore[operator]
            return out
        out = evaluate(expr, scope, rows=it, generator=generator)
        if m.kind == "group" and self.drift > 0:
            out = out + self._text_drift(scope, g)[it]
        return out

    def _draw_trigger(self, items: torch.Tensor, noisy: Optional[torch.Tensor],
                      generator: torch.Generator) -> torch.Tensor:
        assert self.trigger_expr is not None
        flat = items.reshape(-1)
        if isinstance(self.space, BanditSpace):
            if noisy is not None:
                scope = Scope.bandit(noisy, flat, self.space.allow_plugins)
                out = evaluate_condition(self.trigger_expr, scope, generator=generator)
            else:
                scope = Scope.bandit(self.bview.features, allow_plugins=self.space.allow_plugins)
                out = evaluate_condition(self.trigger_expr, scope, rows=flat, generator=generator)
        else:
            out = evaluate_condition(self.trigger_expr, self.trigger_scope, rows=flat,
                                     generator=generator)
        return out.reshape(items.shape)


def _scatter_rows(target: torch.Tensor, rows: torch.Tensor, values: torch.Tensor) -> None:
    """target[rows] = values for an [R, K] tensor that may be a transposed view."""
    if target.t().is_contiguous() and not target.is_contiguous():
        target.t().index_copy_(1, rows, values.t())
    else:
        target.index_copy_(0, rows, values)


def gold_values(population: DrawnPopulation, space: Space, *, context: Optional[Context] = None,
                round: int = 0, models: Optional[Mapping[str, ModelFn]] = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(gold [G, M] per member, gold [M] of the human population): the true expected values the
    `gold_reward` metric and the report use."""
    p = Perception(population, space, context=context, round=round, models=models)
    return p.gold, p.gold_population


def myopic_scorer(scorer: Callable[..., Any], tokenizer: Any, gamma: float) -> Callable[..., Any]:
    """A scorer as a myopic reader perceives it: token position t of T weighs γ^(T−t).

    The value is Σ_t a_t·score(suffix from token t), a_0 = γ^(T−1), a_t = γ^(T−1−t)(1−γ): for an
    additive scorer (a sum over tokens) this is exactly the γ-discounted sum; for any scorer it
    is the expected score of the text read from a random starting point that favours the end.
    """

    def score(name: str, texts: list[str], *args: Any) -> torch.Tensor:
        suffixes: list[str] = []
        owner: list[int] = []
        weight: list[float] = []
        for i, text in enumerate(texts):
            ids = tokenizer.encode(text)
            T = len(ids)
            if T == 0:
                suffixes.append(text)
                owner.append(i)
                weight.append(1.0)
                continue
            for t in range(T):
                w = gamma ** (T - 1) if t == 0 else gamma ** (T - 1 - t) * (1 - gamma)
                if w < 1e-6:
                    continue
                suffixes.append(text if t == 0 else tokenizer.decode(ids[t:]))
                owner.append(i)
                weight.append(w)
        values = torch.as_tensor(scorer(name, suffixes, *args), dtype=torch.float32).cpu()
        w = torch.tensor(weight)
        idx = torch.tensor(owner, dtype=torch.long)
        total = torch.zeros(len(texts)).index_add_(0, idx, values.reshape(-1) * w)
        norm = torch.zeros(len(texts)).index_add_(0, idx, w)
        return total / norm

    return score

"""f in Eq. 4: the eight feedback kinds, each a batched function from perceived rows to answers.

Every kind reads one :class:`Rows` (a batch of labels: who, what they were shown, what they
perceive, and their behaviour parameters per row) and returns the kind's answer columns of the
label table (see ``backends/torch/labels.py``). The kinds, in the order of `FeedbackKind`:

* ``pairwise`` — Boltzmann choice P(second ≻ first) = σ(β·(ũ₂ − ũ₁) − position_bias), ũ the
  decision utility; then a mistake flips it with probability ε (+ fatigue); B-Pref's ties
  (|v₂ − v₁| < equal × scale) and skips (max(v₁, v₂) < skip × scale), v the perceived value and
  scale the mean |v| over the queried items;
* ``ranking(k)`` — Plackett–Luce over ũ with rationality β, sampled as the order of
  β·ũ + position bonus + Gumbel noise (Gumbel-top-k); a mistake swaps one random adjacent pair;
* ``best_of(k)`` — the first of that order; skips as pairwise; a mistake picks another item;
* ``scalar`` — scale_e·(rating + noise) + offset_e, clipped to [low, high]; noise N(0, σ²)
  with σ = `noise`, or 1/β when `noise` is 0; a mistake reflects the rating about the
  member's mean;
* ``likert(k)`` — ordered logit: scale_e·(rating + Logistic/β) + offset_e against the member's
  category thresholds (the j/k quantiles of its ratings over the item space) plus the
  evaluator's jitter (`thresholds` × sd); a mistake mirrors the category;
* ``label(choices)`` — the same ordinal model over the evaluator's *own* categories (its
  `choices`, default the offered ones), then mapped to an offered one: the same name, else the
  nearest by relative rank (choice-set misspecification); a mistake mirrors the choice;
* ``correction`` — the item whose (expected) rating is nearest rating + skill·(best − rating)
  (+ N(0, 1/β²)), among items of the same prompt; a mistake returns a random item;
* ``language`` — a verdict tanh((β·(rating − mean) + L)/2), L ~ Logistic(0, 1) (so
  P(verdict > 0) = σ(β·(rating − mean)): the item against an average one), and the `critique`
  aspects that mattered most: aspects j (bandit: features; text: the scorer terms of the
  values) ranked by salience |∂r/∂φ_j · (φ_j − mean φ_j)| with Gumbel noise at rationality β,
  each with the sign of ∂r/∂φ_j (+1: more of it would be better); a mistake negates verdict
  and signs.

Rationality β = 0 (a coin flip) gives uniformly random choices, rankings and categories, and
scalar reports of the member's mean plus noise of its spread. The rating is value + length and
sycophancy biases; the decision utility ũ adds the expertise terms (see :mod:`.behaviour`).

Malicious evaluators (``Rows.attack``: malicious and the trigger holds on a shown item) answer
`flip` (pairwise/best-of: the other/worst item; ranking reversed; scalar reflected; Likert and
label mirrored; correction towards the worst; language negated) or `backdoor` (the item on which
the trigger holds is preferred, ranked first, rated highest, corrected towards, praised).
"""

from __future__ import annotations

from typing import Callable

import torch

from backends.torch.feedback.comparisons import best_of, pairwise, ranking
from backends.torch.feedback.ratings import label, likert, scalar
from backends.torch.feedback.rich import correction, language
from backends.torch.feedback.rows import Answer, Rows, scaled
from rlhfdsl.spec.base import Choice

KindFn = Callable[[Choice, Rows, torch.Generator], Answer]

# The eight kinds, listed once, in the order of rlhfdsl.spec.feedback.FeedbackKind.
KINDS: dict[str, KindFn] = {
    "pairwise": pairwise,
    "ranking": ranking,
    "best_of": best_of,
    "scalar": scalar,
    "likert": likert,
    "label": label,
    "correction": correction,
    "language": language,
}

RATING_KINDS = frozenset({"scalar", "likert", "label", "correction", "language"})

__all__ = ["KINDS", "RATING_KINDS", "Answer", "Rows", "scaled"]

"""ℓ and λ_r of Eq. 2: the reward-model losses and regularisers, as plain tensor functions.

    L(D, φ) = Σ_i ℓ(r̂_φ(x_i), y_i) + λ_r(φ)                                       (Eq. 2)

Every function takes rewards r̂ already computed (any leading dimensions: ensemble members,
mixture components) and returns the *per-example* loss, a negative log-likelihood wherever the
loss is one, so that a mixture head can combine them as −log Σ_j π_j exp(−ℓ_j). Reduction
(mean, per-evaluator mean) is the caller's; :func:`per_evaluator_mean` is the BPR reduction.

Conventions: targets broadcast against the rewards' trailing dimensions; "a ≻ b" means a is
preferred. Each formula is checked against a hand-computed value in
``tests/backend/reward/test_losses.py``.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

# ------------------------------------------------------------------------------ comparisons


def bradley_terry_loss(r_a: Tensor, r_b: Tensor, target: Tensor | float = 1.0,
                       margin: float = 0.0) -> Tensor:
    """Bradley–Terry cross-entropy (Christiano et al. 2017), with a margin and soft targets.

        ℓ = −t · log σ(r̂(a) − r̂(b) − m) − (1 − t) · log σ(r̂(b) − r̂(a) − m)

    ``target`` t = P(a ≻ b): 1 for a ≻ b, 0 for b ≻ a, ½ for a tie (soft target), or a
    smoothed value from :func:`smooth_targets`. With t = 1 and m = 0 this is −log σ(r̂(a) − r̂(b)).
    """
    d = r_a - r_b
    t = torch.as_tensor(target, dtype=d.dtype, device=d.device)
    return -(t * F.logsigmoid(d - margin) + (1.0 - t) * F.logsigmoid(-d - margin))


def bpr_loss(r_a: Tensor, r_b: Tensor, evaluator: Tensor,
             target: Tensor | float = 1.0) -> Tensor:
    """Bayesian personalised ranking (Rendle et al. 2012), averaged per evaluator.

        ℓ_BPR = (1/|E|) Σ_e (1/|D_e|) Σ_{(a≻b) ∈ D_e} −log σ(r̂(a) − r̂(b))

    so every evaluator weighs the same however many labels they gave (Rendle's λ‖φ‖² term is
    the `l2` regulariser). Soft targets are accepted as in :func:`bradley_terry_loss`. Returns
    the reduced loss over the last dimension (leading dimensions are kept).
    """
    return per_evaluator_mean(bradley_terry_loss(r_a, r_b, target), evaluator)


def per_evaluator_mean(losses: Tensor, evaluator: Tensor) -> Tensor:
    """Mean over the last dimension, each evaluator's labels first averaged together:
    (1/|E|) Σ_e mean_{i: e_i = e} ℓ_i. ``evaluator`` (int64) broadcasts against ``losses``."""
    evaluator = evaluator.expand_as(losses)
    ids, inverse = torch.unique(evaluator, return_inverse=True)
    shape = losses.shape[:-1] + (ids.numel(),)
    sums = losses.new_zeros(shape).scatter_add(-1, inverse, losses)
    counts = losses.new_zeros(shape).scatter_add(-1, inverse, torch.ones_like(losses))
    present = counts > 0
    means = torch.where(present, sums / counts.clamp(min=1), torch.zeros_like(sums))
    return means.sum(-1) / present.sum(-1).clamp(min=1)


def plackett_luce_loss(scores: Tensor, valid: Tensor | None = None,
                       top: int | None = None, label_smoothing: float = 0.0) -> Tensor:
    """Plackett–Luce negative log-likelihood of a ranking (Plackett 1975; Luce 1959).

        ℓ = −Σ_{i=1}^{m} [ r̂(x_(i)) − log Σ_{j ≥ i} exp r̂(x_(j)) ]

    ``scores`` [..., K] are the rewards of the items *in ranked order, best first*; ``valid``
    [..., K] masks padding (ragged rankings). ``top`` = m limits the sum to the first m choices:
    best-of-k feedback is the first-choice term alone (m = 1), ℓ = −log softmax(r̂)_chosen. With
    K = 2 it is the Bradley–Terry loss.

    Label smoothing s smooths each choice as cross-entropy label smoothing does, towards the
    uniform choice among the items still unplaced: stage i's term becomes
    (1 − s)·log p_i(x_(i)) + s·mean_{j ≥ i} log p_i(x_(j)).
    """
    if valid is None:
        valid = torch.ones_like(scores, dtype=torch.bool)
    valid = valid.expand_as(scores)
    masked = scores.masked_fill(~valid, -1e9)  # finite: no NaN gradients through padding
    # log Σ_{j ≥ i} exp s_j: a reversed cumulative logsumexp
    tail = torch.logcumsumexp(masked.flip(-1), dim=-1).flip(-1)
    terms = torch.where(valid, scores - tail, torch.zeros_like(scores))
    if label_smoothing:
        tail_sum = scores.masked_fill(~valid, 0.0).flip(-1).cumsum(-1).flip(-1)
        tail_count = valid.to(scores.dtype).flip(-1).cumsum(-1).flip(-1).clamp(min=1.0)
        uniform = torch.where(valid, tail_sum / tail_count - tail, torch.zeros_like(scores))
        terms = (1.0 - label_smoothing) * terms + label_smoothing * uniform
    # the last placed item contributes log 1 = 0; positions past ``top`` are not choices
    if top is not None:
        terms = terms[..., :top]
    return -terms.sum(-1)


# ---------------------------------------------------------------------------- absolute ratings


def regression_loss(r: Tensor, value: Tensor) -> Tensor:
    """Squared error on scalar ratings: ℓ = (r̂(x) − y)².

    As a likelihood, the Gaussian y ~ N(r̂(x), ½) up to a constant (which a mixture head uses).
    Standardising per evaluator (:func:`standardize_per_evaluator`) is done on the targets.
    """
    return (r - value) ** 2


def standardize_per_evaluator(value: Tensor, evaluator: Tensor) -> Tensor:
    """y'_i = (y_i − mean_e) / std_e over evaluator e = e_i's ratings (population std; an
    evaluator with one rating, or a constant one, keeps std 1), removing each evaluator's
    offset and scale (miscalibration)."""
    ids, inverse = torch.unique(evaluator, return_inverse=True)
    n = value.new_zeros(ids.numel()).scatter_add(0, inverse, torch.ones_like(value))
    mean = value.new_zeros(ids.numel()).scatter_add(0, inverse, value) / n
    centred = value - mean[inverse]
    var = value.new_zeros(ids.numel()).scatter_add(0, inverse, centred ** 2) / n
    std = var.sqrt()
    std = torch.where((n > 1) & (std > 1e-8), std, torch.ones_like(std))
    return centred / std[inverse]


def ordered_thresholds(raw: Tensor) -> Tensor:
    """θ_0 < θ_1 < … from unconstrained parameters: θ_0 = raw_0, θ_c = θ_{c−1} + softplus(raw_c)."""
    first, rest = raw[..., :1], F.softplus(raw[..., 1:])
    return torch.cat([first, first + rest.cumsum(-1)], dim=-1)


def ordinal_loss(r: Tensor, category: Tensor, thresholds: Tensor,
                 label_smoothing: float = 0.0) -> Tensor:
    """Cumulative-link (ordered logit) loss for Likert ratings (McCullagh 1980).

        P(y ≤ c | x) = σ(θ_c − r̂(x)),   c = 0 … k−2,  θ_{−1} = −∞, θ_{k−1} = +∞
        ℓ = −log [σ(θ_y − r̂(x)) − σ(θ_{y−1} − r̂(x))]

    ``thresholds`` [..., k−1] must be increasing (see :func:`ordered_thresholds`); they
    broadcast with ``r`` after a trailing category dimension is added. Categories run 0 … k−1,
    higher is better, so a higher reward moves mass to higher categories. Label smoothing s
    gives (1 − s)·ℓ + s·mean_c(−log P(c | x)).
    """
    big = torch.full_like(thresholds[..., :1], 1e4)
    padded = torch.cat([-big, thresholds, big], dim=-1)  # [..., k + 1]
    upper = padded[..., 1:]                               # θ_c
    lower = padded[..., :-1]                              # θ_{c−1}
    r_ = r.unsqueeze(-1)
    b, a = upper - r_, lower - r_
    # log(σ(b) − σ(a)) = log σ(b) + log σ(−a) + log(1 − e^{a − b}), stable for b > a
    log_p = F.logsigmoid(b) + F.logsigmoid(-a) + torch.log(-torch.expm1((a - b).clamp(max=-1e-12)))
    nll = -log_p.gather(-1, category.expand(r.shape).unsqueeze(-1)).squeeze(-1)
    if label_smoothing:
        nll = (1.0 - label_smoothing) * nll - label_smoothing * log_p.mean(-1)
    return nll


def category_logits(r: Tensor, intercepts: Tensor) -> Tensor:
    """Adjacent-categories logits for k offered categories, best first (c = 0 best):

        logit_c = (k − 1 − c) · r̂(x) + b_c,   so   log P(c)/P(c+1) = r̂(x) + b_c − b_{c+1}

    The score s_c = k − 1 − c is fixed and the intercepts b_c are learned: the learned mapping
    from the scalar reward to the categories. E[s_c | x] is strictly increasing in r̂(x)
    (an exponential family in r̂ with sufficient statistic s), so r̂ orders items exactly as the
    expected category score does, and r̂ itself is the reward the policy optimises.
    ``intercepts`` [..., k] broadcast with ``r`` after a trailing category dimension is added."""
    k = intercepts.shape[-1]
    scores = torch.arange(k - 1, -1, -1, dtype=r.dtype, device=r.device)
    return r.unsqueeze(-1) * scores + intercepts


def classification_loss(r: Tensor, category: Tensor, intercepts: Tensor,
                        label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy over the offered categories (labels, best first), through
    :func:`category_logits`:

        ℓ = −Σ_c q_c log softmax(logit)_c,   q = (1 − s)·onehot(y) + s/k

    (s the label smoothing)."""
    logits = category_logits(r, intercepts)
    log_p = logits.log_softmax(-1)
    nll = -log_p.gather(-1, category.expand(r.shape).unsqueeze(-1)).squeeze(-1)
    if label_smoothing:
        nll = (1.0 - label_smoothing) * nll - label_smoothing * log_p.mean(-1)
    return nll


def expected_category_score(r: Tensor, intercepts: Tensor) -> Tensor:
    """E[s_c | x] with s_c = (k − 1 − c)/(k − 1) ∈ [0, 1]: the reward on the label scale
    (1 = every evaluator would give the best label)."""
    k = intercepts.shape[-1]
    p = category_logits(r, intercepts).softmax(-1)
    scores = torch.arange(k - 1, -1, -1, dtype=r.dtype, device=r.device) / (k - 1)
    return (p * scores).sum(-1)


# ------------------------------------------------------------------------------ regularisers


def smooth_targets(target: Tensor, smoothing: float) -> Tensor:
    """Label smoothing of a comparison: the label is correct with probability 1 − s,

        t' = (1 − s) · t + s · (1 − t)

    (a tie, t = ½, stays ½)."""
    return (1.0 - smoothing) * target + smoothing * (1.0 - target)


def l2_penalty(parameters: Iterable[Tensor], coefficient: float) -> Tensor:
    """λ_r(φ) = λ · Σ_j φ_j² (added to the loss; Adam's `weight_decay` is the gradient form)."""
    params = list(parameters)
    total = sum((p.pow(2).sum() for p in params), torch.zeros((), device=params[0].device)) \
        if params else torch.zeros(())
    return coefficient * total


def comparison_accuracy(r_a: Tensor, r_b: Tensor, target: Tensor) -> Tensor:
    """Fraction of decided comparisons (t ≠ ½) that the reward orders as labelled; a reward tie
    counts ½."""
    decided = target != 0.5
    sign = torch.sign(r_a - r_b) * torch.sign(target - 0.5)
    score = (sign + 1.0) / 2.0
    return score[..., decided].mean(-1) if decided.any() else score.new_full(score.shape[:-1],
                                                                              float("nan"))

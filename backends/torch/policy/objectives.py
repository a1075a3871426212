"""Eq. 3: the policy objectives, as plain tensor functions on log-probabilities.

    R(θ) = E_{x∼π_θ} [ r̂_φ(x) + λ_p(θ, θ_ref, x) ]                                 (Eq. 3)

Every function is written for generic tensors so that the bandit (one action per sample) and
text (one sequence per sample, many tokens) share it:

* sequence-level quantities are [B] (a text sequence's log-probability is the masked sum of its
  token log-probabilities: :func:`sequence_logprob`);
* token-level quantities are [B, T] with a ``mask`` [B, T] (1 on completion tokens).

Losses are to be *minimised* (the negative of the objective); each returns a scalar unless it
says otherwise. KL estimators, the adaptive controller and KL placement live in
:mod:`backends.torch.policy.kl`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from backends.torch.reward.models import conservative_reward  # noqa: F401  (re-exported)

# ------------------------------------------------------------------------------------ helpers


def masked_mean(x: Tensor, mask: Tensor | None = None, dim: int | None = None) -> Tensor:
    """Σ x·m / Σ m (over ``dim``, or everything); the plain mean without a mask."""
    if mask is None:
        return x.mean() if dim is None else x.mean(dim)
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def sequence_logprob(token_logps: Tensor, mask: Tensor, average: bool = False) -> Tensor:
    """log π(y | x) = Σ_t m_t log π(y_t | x, y_<t) over completion tokens [B, T] → [B];
    ``average`` divides by the number of tokens (the length-normalised form IPO uses in TRL)."""
    total = (token_logps * mask).sum(-1)
    return total / mask.sum(-1).clamp(min=1) if average else total


def entropy_from_logits(logits: Tensor) -> Tensor:
    """H(π) = −Σ_a π(a) log π(a) of the distributions given by ``logits`` [..., V] → [...]."""
    log_p = logits.log_softmax(-1)
    return -(log_p.exp() * log_p).sum(-1)


def entropy_bonus(entropy: Tensor, coefficient: float, mask: Tensor | None = None) -> Tensor:
    """The entropy regulariser as a loss term: −c · mean H (subtract to reward exploration)."""
    return -coefficient * masked_mean(entropy, mask)


# ----------------------------------------------------------------------- policy gradients


def reinforce_loss(logp: Tensor, rewards: Tensor, baseline: Tensor | float | None = None
                   ) -> Tensor:
    """REINFORCE (Williams 1992), the score-function estimator with a baseline b:

        L = −mean_i (r_i − b) · log π_θ(x_i)

    ``baseline`` None: b = mean_i r_i (the batch mean); a number or tensor: that b; 0: none.
    Rewards are constants (detached)."""
    rewards = rewards.detach()
    b = rewards.mean() if baseline is None else baseline
    return -((rewards - b) * logp).mean()


def rloo_advantages(rewards: Tensor) -> Tensor:
    """REINFORCE leave-one-out (Kool et al. 2019; Ahmadian et al. 2024). ``rewards`` [P, k]: k
    samples of each of P prompts; each is baselined by the mean of the *other* k − 1:

        A_i = r_i − (1/(k−1)) Σ_{j≠i} r_j = k/(k−1) · (r_i − mean_j r_j)"""
    k = rewards.shape[-1]
    return (rewards - (rewards.sum(-1, keepdim=True) - rewards) / (k - 1))


def rloo_loss(logp: Tensor, rewards: Tensor) -> Tensor:
    """L = −mean_{p,i} A_{p,i} · log π_θ(x_{p,i}) with :func:`rloo_advantages`; both [P, k]."""
    return -(rloo_advantages(rewards.detach()) * logp).mean()


def grpo_advantages(rewards: Tensor, eps: float = 1e-4) -> Tensor:
    """Group-relative advantages (Shao et al. 2024): rewards [P, G] standardised within each
    group, A_i = (r_i − mean(r)) / (std(r) + ε), with the unbiased std as in TRL."""
    mean = rewards.mean(-1, keepdim=True)
    std = rewards.std(-1, keepdim=True)
    return (rewards - mean) / (std + eps)


def clipped_surrogate_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, clip: float,
                           mask: Tensor | None = None) -> Tensor:
    """PPO's clipped surrogate (Schulman et al. 2017), with ρ = π_θ / π_old = exp(logp − old):

        L = −mean min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A)

    Shapes [B] (one action per sample) or [B, T] with ``mask`` (per token; A broadcasts)."""
    ratio = torch.exp(logp - old_logp.detach())
    advantages = advantages.detach()
    surrogate = torch.minimum(ratio * advantages,
                              ratio.clamp(1.0 - clip, 1.0 + clip) * advantages)
    return -masked_mean(surrogate, mask)


def grpo_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, clip: float,
              kl: Tensor | None = None, kl_coef: float | Tensor = 0.0,
              mask: Tensor | None = None) -> Tensor:
    """GRPO (Shao et al. 2024), the KL in the loss:

        L = −(1/B) Σ_i (1/|y_i|) Σ_t [ min(ρ_t A_i, clip(ρ_t, 1 ± ε) A_i) − β · k_t ]

    ``kl`` [B] or [B, T] is the per-sample/per-token estimate k_t (k3 by default in the spec:
    :func:`backends.torch.policy.kl.kl_estimate`); each sequence is averaged over its tokens,
    then over sequences. With [B] inputs it is the mean over samples."""
    ratio = torch.exp(logp - old_logp.detach())
    adv = advantages.detach()
    if adv.dim() < ratio.dim():
        adv = adv.unsqueeze(-1)
    per = torch.minimum(ratio * adv, ratio.clamp(1.0 - clip, 1.0 + clip) * adv)
    if kl is not None:
        per = per - kl_coef * kl
    if mask is not None and per.dim() == 2:
        return -masked_mean(per, mask, dim=-1).mean()
    return -per.mean()


def ppo_value_loss(values: Tensor, returns: Tensor, old_values: Tensor | None = None,
                   clip: float | None = None, mask: Tensor | None = None) -> Tensor:
    """The value-head loss: ½ mean (V − R)², or with ``clip`` the clipped form of PPO2
    ½ mean max((V − R)², (V_old + clip(V − V_old, −ε, ε) − R)²)."""
    returns = returns.detach()
    loss = (values - returns) ** 2
    if clip is not None and old_values is not None:
        clipped = old_values + (values - old_values).clamp(-clip, clip)
        loss = torch.maximum(loss, (clipped - returns) ** 2)
    return 0.5 * masked_mean(loss, mask)


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over [B, T] right-padded
    sequences (``mask`` 1 on valid steps; the step after the last valid one is terminal):

        δ_t = r_t + γ · V_{t+1} · m_{t+1} − V_t
        A_t = δ_t + γλ · m_{t+1} · A_{t+1},        R_t = A_t + V_t

    Returns (advantages, returns), zero on padding. T = 1 (a bandit): A = r − V."""
    rewards, values = rewards.detach(), values.detach()
    mask = mask.to(rewards.dtype)
    T = rewards.shape[-1]
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[..., 0])
    next_adv = torch.zeros_like(rewards[..., 0])
    next_mask = torch.zeros_like(rewards[..., 0])
    for t in reversed(range(T)):
        delta = rewards[..., t] + gamma * next_value * next_mask - values[..., t]
        adv = delta + gamma * lam * next_mask * next_adv
        advantages[..., t] = adv * mask[..., t]
        next_value, next_adv, next_mask = values[..., t], adv, mask[..., t]
    return advantages, (advantages + values) * mask


def whiten(x: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """(x − mean) / (std + ε) over the (masked) batch, as PPO implementations normalise
    advantages."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) / (var.sqrt() + eps)


# ------------------------------------------------------------------- from preference data


def dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, reference_chosen: Tensor,
             reference_rejected: Tensor, beta: float, loss: str = "sigmoid",
             label_smoothing: float = 0.0) -> Tensor:
    """Direct preference optimisation and its variants, named as in TRL's ``loss_type``.

    With h = [log π_θ(y_w) − log π_ref(y_w)] − [log π_θ(y_l) − log π_ref(y_l)] (sequence
    log-probabilities of the chosen y_w and rejected y_l) and ε the label smoothing:

        sigmoid       −(1 − ε) log σ(βh) − ε log σ(−βh)            Rafailov et al. 2023 (ε = 0)
        conservative  the same, ε the assumed label-flip rate        cDPO (Mitchell 2023)
        hinge         max(0, 1 − βh)                                 SLiC (Zhao et al. 2023)
        ipo           (h − 1/(2β))²                                  Azar et al. 2023
        robust        [−(1 − ε) log σ(βh) + ε log σ(−βh)] / (1 − 2ε)  Chowdhury et al. 2024

    (TRL's ``sigmoid`` with label smoothing is cDPO, which the spec names ``conservative``; TRL
    computes IPO on length-averaged log-probabilities: pass :func:`sequence_logprob` with
    ``average=True`` for text.) Returns per-pair losses [B].
    """
    h = ((policy_chosen - reference_chosen.detach())
         - (policy_rejected - reference_rejected.detach()))
    if loss in ("sigmoid", "conservative"):
        return (-(1.0 - label_smoothing) * F.logsigmoid(beta * h)
                - label_smoothing * F.logsigmoid(-beta * h))
    if loss == "hinge":
        return torch.relu(1.0 - beta * h)
    if loss == "ipo":
        return (h - 1.0 / (2.0 * beta)) ** 2
    if loss == "robust":
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError("robust DPO needs label_smoothing in [0, 0.5)")
        return ((-(1.0 - label_smoothing) * F.logsigmoid(beta * h)
                 + label_smoothing * F.logsigmoid(-beta * h)) / (1.0 - 2.0 * label_smoothing))
    raise ValueError(f"unknown DPO loss {loss!r}")


def kto_loss(policy_logp: Tensor, reference_logp: Tensor, desirable: Tensor,
             reference_point: Tensor | float, beta: float, desirable_weight: float = 1.0,
             undesirable_weight: float = 1.0) -> Tensor:
    """Kahneman–Tversky optimisation (Ethayarajh et al. 2024), as in TRL's KTOTrainer. With the
    implied reward ρ(y) = log π_θ(y) − log π_ref(y) and the reference point z₀ (an estimate of
    KL(π_θ ‖ π_ref), clamped at 0 and not differentiated):

        desirable y:    λ_D · (1 − σ(β (ρ(y) − z₀)))
        undesirable y:  λ_U · (1 − σ(β (z₀ − ρ(y))))

    ``desirable`` bool [B]. Returns per-example losses [B]."""
    rho = policy_logp - reference_logp.detach()
    z0 = torch.as_tensor(reference_point, dtype=rho.dtype, device=rho.device).detach().clamp(min=0)
    good = desirable_weight * (1.0 - torch.sigmoid(beta * (rho - z0)))
    bad = undesirable_weight * (1.0 - torch.sigmoid(beta * (z0 - rho)))
    return torch.where(desirable, good, bad)


def kto_reference_point(policy_logp: Tensor, reference_logp: Tensor) -> Tensor:
    """z₀ = max(0, mean(log π_θ(y') − log π_ref(y'))) over mismatched completions y' (TRL's
    estimate of the KL; the bandit uses the exact KL instead)."""
    return (policy_logp - reference_logp).mean().clamp(min=0).detach()


def sft_loss(logp: Tensor, mask: Tensor | None = None) -> Tensor:
    """Supervised fine-tuning: the negative log-likelihood of demonstrations,
    L = −mean log π_θ(y) (per token with ``mask``: mean over all completion tokens)."""
    return -masked_mean(logp, mask)


# ----------------------------------------------------------------- sampling-based objectives


def best_of_n_kl_bound(n: int) -> float:
    """KL(π_best-of-n ‖ π_base) ≤ log n − (n − 1)/n (Stiennon et al. 2020; exact for
    continuous rewards, an upper bound with ties — Beirami et al. 2024)."""
    return math.log(n) - (n - 1) / n


def best_of_n_distribution(base_probs: Tensor, rewards: Tensor, n: int) -> Tensor:
    """The exact best-of-n policy over a finite action set: draw n actions from ``base_probs``
    [A] and keep the one with the highest reward (ties broken towards the lower index).
    With actions sorted by reward ascending and F the base CDF in that order:

        P_n(a) = F(a)^n − F(a⁻)^n       (F(a⁻): the mass strictly before a)"""
    order = _order_ascending(rewards)
    wide = torch.float32 if base_probs.device.type == "mps" else torch.float64  # no fp64 on MPS
    p = base_probs[order].to(wide)
    cdf = p.cumsum(0).clamp(max=1.0)
    before = torch.cat([cdf.new_zeros(1), cdf[:-1]])
    mass = cdf ** n - before ** n
    out = torch.empty_like(mass)
    out[order] = mass
    return out.to(base_probs.dtype)


def _order_ascending(rewards: Tensor) -> Tensor:
    """Actions by reward ascending, equal rewards with the higher index first (so the lowest
    index is the best among ties)."""
    A = rewards.shape[0]
    by_index_desc = torch.arange(A - 1, -1, -1, device=rewards.device)
    return by_index_desc[torch.argsort(rewards[by_index_desc], stable=True)]


def rejection_sampling_select(rewards: Tensor, top: int) -> Tensor:
    """Rejection sampling / RAFT: of n samples of each of P prompts (``rewards`` [P, n]), the
    indices of the ``top`` highest-rewarded per prompt: [P, top]; fine-tune on them with
    :func:`sft_loss`."""
    return rewards.topk(min(top, rewards.shape[-1]), dim=-1).indices

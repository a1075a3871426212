"""λ_p of Eq. 3: the KL regulariser to the reference policy — estimators, placement and the
adaptive coefficient.

    KL(π_θ ‖ π_ref) = E_{x∼π_θ} [ log π_θ(x) − log π_ref(x) ]

Per-sample estimators (Schulman 2020, "Approximating KL divergence"), with log r = log π_θ(x) −
log π_ref(x) for x ∼ π_θ:

    k1  = log r                 unbiased, high variance, can be negative
    k2  = ½ (log r)²            biased, low variance, ≥ 0
    k3  = r⁻¹ − 1 + log r       unbiased, low variance, ≥ 0
    abs = |log r|               biased, ≥ 0

Placement (the spec's ``kl_in``): in the *reward* the estimate is a constant subtracted from
each sample's reward, r'(x) = r̂(x) − β·k(x), and the policy gradient carries it (PPO-RLHF,
Ziegler et al. 2019); in the *loss* β·mean k(x) is added to the loss and differentiated at the
sampled x (GRPO). Note what the loss placement differentiates: k1 has zero expected gradient
there (E_π[∇ log π] = 0), k2's gradient is that of KL(π_θ ‖ π_ref), and k3's is that of the
reverse KL(π_ref ‖ π_θ) — which is what GRPO uses.
"""

from __future__ import annotations

import torch
from torch import Tensor

ESTIMATORS = ("k1", "k2", "k3", "abs")


def kl_estimate(logp: Tensor, ref_logp: Tensor, estimator: str = "k1") -> Tensor:
    """The per-sample (or per-token) KL estimate k(x) of the module docstring, elementwise."""
    log_r = logp - ref_logp
    if estimator == "k1":
        return log_r
    if estimator == "k2":
        return 0.5 * log_r ** 2
    if estimator == "k3":
        return torch.exp(-log_r) - 1.0 + log_r
    if estimator == "abs":
        return log_r.abs()
    raise ValueError(f"unknown KL estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")


def exact_kl(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """KL(π ‖ π_ref) = Σ_a π(a) (log π(a) − log π_ref(a)) over the last dimension (the bandit's
    exact value, or per token over the vocabulary)."""
    return (logp.exp() * (logp - ref_logp)).sum(-1)


def kl_penalized_rewards(rewards: Tensor, kl: Tensor, coefficient: float | Tensor) -> Tensor:
    """KL in the reward: r'(x) = r̂(x) − β · k(x), the estimate treated as a constant."""
    return rewards - coefficient * kl.detach()


def token_level_rewards(score: Tensor, kl: Tensor, mask: Tensor,
                        coefficient: float | Tensor) -> Tensor:
    """KL in the reward, per token (Ziegler et al. 2019; TRL's PPO): every completion token gets
    −β·k_t, and the last valid token also gets the sequence's reward r̂(x). ``score`` [B],
    ``kl`` and ``mask`` [B, T] (right-padded) → [B, T]."""
    mask = mask.to(kl.dtype)
    rewards = -coefficient * kl.detach() * mask
    last = (mask.sum(-1).long() - 1).clamp(min=0)
    return rewards.scatter_add(-1, last.unsqueeze(-1), score.detach().unsqueeze(-1).to(kl.dtype))


class FixedKL:
    """A constant KL coefficient β."""

    def __init__(self, value: float):
        self.value = value

    def update(self, current_kl: Tensor | float, n_samples: int) -> float | Tensor:
        return self.value


class AdaptiveKL:
    """The adaptive KL coefficient of Ziegler et al. (2019), a proportional controller towards
    a target KL:

        e_t = clip(KL_t / KL_target − 1, −0.2, 0.2)
        β_{t+1} = β_t · (1 + K_β · e_t),     K_β = n_samples / horizon

    ``current_kl`` may be a tensor (no device synchronisation: β stays a tensor)."""

    def __init__(self, init: float, target: float, horizon: int):
        self.value: float | Tensor = init
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: Tensor | float, n_samples: int) -> float | Tensor:
        if isinstance(current_kl, Tensor):
            error = torch.clamp(current_kl.detach() / self.target - 1.0, -0.2, 0.2)
        else:
            error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value = self.value * (1.0 + error * n_samples / self.horizon)
        return self.value


def kl_controller(kl: float | object) -> FixedKL | AdaptiveKL:
    """The controller for a spec's ``kl``: a number, or ``adaptive(target, horizon, init)``."""
    if isinstance(kl, (int, float)):
        return FixedKL(float(kl))
    return AdaptiveKL(kl.init, kl.target, kl.horizon)  # type: ignore[attr-defined]

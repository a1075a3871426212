"""r̂_φ on bandit tasks: reward models over action features [A, F].

Backbones (what the reward reads):

    tabular   r̂(a) = φ_a                       one free value per action (no features)
    linear    r̂(a) = w·x_a + b
    mlp       r̂(a) = MLP(x_a)                  ReLU hidden layers

Heads (what it outputs):

    scalar               one reward.
    multi_objective(k)   k rewards h_1 … h_k; the reward is Σ_j w_j h_j with the spec's
                         ``weights`` (default: the mean). While fitting, the labels of group g
                         are explained by its own simplex weights ω_g (learned, starting at the
                         spec's weights), so groups that weigh the objectives differently are
                         represented rather than averaged away.
    mixture(k)           k reward functions r_1 … r_k and, per evaluator e, learned mixing
                         weights π_e = softmax(α_e). The likelihood of a label y_i from
                         evaluator e_i is the mixture

                             p(y_i | x_i) = Σ_j π_{e_i, j} · p(y_i | r_j(x_i))

                         (so ℓ_i = −log Σ_j π_{e_i,j} exp(−ℓ_ij)): disagreement is modelled as
                         different values (3.2.1), not as noise. The reward reported to the
                         policy is the population's average value Σ_j π̄_j r_j(a), with π̄ the
                         label-weighted mean of the evaluators' π_e.

Ensembles: ``ensemble = n`` members are trained independently — different initialisations and
minibatch orders drawn from the stage's generator — but held as batched parameters with a
leading member dimension [E, …], so one forward/backward trains all of them (no Python loop per
member). :meth:`BanditRewardModel.rewards` gives [E, A]; :func:`ensemble_mean_std` and
:func:`conservative_reward` summarise them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from backends.torch.reward.losses import ordered_thresholds


def _uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> Tensor:
    return (torch.rand(shape, generator=generator, device=generator.device) * 2 - 1) * bound


def _normal(shape: tuple[int, ...], std: float, generator: torch.Generator) -> Tensor:
    return torch.randn(shape, generator=generator, device=generator.device) * std


def ensemble_mean_std(rewards: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and (population) standard deviation over the ensemble dimension 0 of [E, …]
    (E = 1 gives std 0)."""
    return rewards.mean(0), rewards.std(0, correction=0)


def conservative_reward(rewards: Tensor, alpha: float) -> Tensor:
    """Pessimism over a reward ensemble [E, …] (Coste et al. 2023, "uncertainty-weighted"):

        r_cons(a) = mean_e r̂_e(a) − α · std_e r̂_e(a)

    (population std over the E members)."""
    mean, std = ensemble_mean_std(rewards)
    return mean - alpha * std if alpha else mean


class BanditRewardModel(nn.Module):
    """An ensemble of E bandit reward models with batched parameters.

    Items are action indices; indices ≥ A address ``extra_features`` rows (counterfactual
    items of language feedback), which only feature backbones can score.
    """

    def __init__(self, backbone: Any, head: Any, *, num_actions: int,
                 features: Tensor | None = None, ensemble: int = 1, num_evaluators: int = 1,
                 num_groups: int = 1, dropout: float = 0.0,
                 generator: torch.Generator | None = None,
                 device: torch.device | str | None = None, tabular_init_std: float = 0.1):
        super().__init__()
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        device = torch.device(device) if device is not None else (
            features.device if features is not None else torch.device("cpu"))
        self.backbone = backbone.type
        self.head = head.type
        self.ensemble = ensemble
        self.num_actions = num_actions
        self.dropout = dropout
        E = ensemble
        H = 1 if head.type == "scalar" else head.k
        self.outputs_per_item = H

        if backbone.type != "tabular":
            if features is None:
                raise ValueError(f"a {backbone.type} reward model needs action features")
            features = features.to(device=device, dtype=torch.float32)
            num_actions = features.shape[0]
        self.register_buffer("features", features, persistent=False)

        def param(t: Tensor) -> nn.Parameter:
            return nn.Parameter(t.to(device))

        if backbone.type == "tabular":
            self.table = param(_normal((E, num_actions, H), tabular_init_std, generator))
        elif backbone.type == "linear":
            F_ = features.shape[1]
            bound = 1.0 / math.sqrt(F_)
            self.weight = param(_uniform((E, F_, H), bound, generator))
            self.bias = param(_uniform((E, H), bound, generator))
        elif backbone.type == "mlp":
            sizes = [features.shape[1]] + [backbone.hidden] * backbone.layers + [H]
            self.weights = nn.ParameterList()
            self.biases = nn.ParameterList()
            for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
                bound = 1.0 / math.sqrt(fan_in)
                self.weights.append(param(_uniform((E, fan_in, fan_out), bound, generator)))
                self.biases.append(param(_uniform((E, fan_out), bound, generator)))
        else:
            raise ValueError(f"the bandit reward models have no {backbone.type!r} backbone; "
                             "a language-model backbone is built by the text backend")

        if head.type == "multi_objective":
            weights = head.weights if head.weights is not None else (1.0 / H,) * H
            if len(weights) != H:
                raise ValueError(f"multi_objective({H}) needs {H} weights, got {len(weights)}")
            w = torch.tensor(weights, dtype=torch.float32)
            self.register_buffer("objective_weights", w.to(device))
            start = torch.log(w.clamp(min=1e-6) / w.clamp(min=1e-6).sum())
            self.group_logits = param(start.expand(E, num_groups, H).clone())
        elif head.type == "mixture":
            self.mix_logits = param(_normal((E, num_evaluators, H), 0.1, generator))
            self.register_buffer("evaluator_counts", torch.ones(num_evaluators, device=device))
        self.links = nn.ParameterDict()

    # -- parameters

    def add_link(self, name: str) -> None:
        """Create the parameters a training form needs (ordinal thresholds, category
        intercepts, the language verdict's neutral level) if absent."""
        if name in self.links:
            return
        E = self.ensemble
        device = self.reward_parameters()[0].device
        if name.startswith("ordinal_"):
            k = int(name.split("_")[1])
            # θ evenly spaced around 0: θ_0 = −(k−2)/2, gaps softplus(0.5413) = 1
            raw = torch.full((E, k - 1), math.log(math.e - 1.0))
            raw[:, 0] = -(k - 2) / 2.0
            self.links[name] = nn.Parameter(raw.to(device))
        elif name.startswith("category_"):
            k = int(name.split("_")[1])
            self.links[name] = nn.Parameter(torch.zeros(E, k, device=device))
        elif name == "anchor":
            self.links[name] = nn.Parameter(torch.zeros(E, device=device))
        else:
            raise ValueError(f"unknown link {name!r}")

    def link(self, name: str) -> Tensor:
        """The link's values per member: ordered thresholds [E, k−1], intercepts [E, k], the
        neutral level [E]."""
        raw = self.links[name]
        return ordered_thresholds(raw) if name.startswith("ordinal_") else raw

    def reward_parameters(self) -> list[nn.Parameter]:
        """φ of the reward functions (what the L2 regulariser penalises)."""
        if self.backbone == "tabular":
            return [self.table]
        if self.backbone == "linear":
            return [self.weight, self.bias]
        return list(self.weights) + list(self.biases)

    # -- scoring

    def outputs(self, items: Tensor, extra_features: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        """Head outputs [E, *S, H] of items [E, *S] (each member scores its own items)."""
        E, shape = items.shape[0], items.shape[1:]
        flat = items.reshape(E, -1)
        H = self.outputs_per_item
        if self.backbone == "tabular":
            if (flat >= self.num_actions).any():
                raise ValueError("a tabular reward model cannot score counterfactual items")
            out = self.table.gather(1, flat.unsqueeze(-1).expand(-1, -1, H))
            return out.reshape(E, *shape, H)
        A = self.features.shape[0]
        x = self.features[flat.clamp(max=A - 1)]
        if extra_features is not None:
            extra = extra_features.to(x)
            extra_index = (flat - A).clamp(min=0, max=extra.shape[0] - 1)
            x = torch.where((flat >= A).unsqueeze(-1), extra[extra_index], x)
        if self.backbone == "linear":
            x = self._dropout(x, generator)
            out = torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)
        else:
            h = x
            for i, (w, b) in enumerate(zip(self.weights, self.biases)):
                h = torch.baddbmm(b.unsqueeze(1), h, w)
                if i < len(self.weights) - 1:
                    h = self._dropout(F.relu(h), generator)
            out = h
        return out.reshape(E, *shape, H)

    def _dropout(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        if not (self.training and self.dropout > 0 and generator is not None):
            return x
        keep = torch.rand(x.shape, generator=generator, device=generator.device).to(x.device)
        return x * (keep >= self.dropout).to(x.dtype) / (1.0 - self.dropout)

    def mixing_weights(self) -> Tensor:
        """Mixture head: π̄ [E, k], the label-weighted mean of the evaluators' π_e."""
        pi = self.mix_logits.softmax(-1)
        w = self.evaluator_counts / self.evaluator_counts.sum().clamp(min=1e-12)
        return (pi * w[None, :, None]).sum(1)

    def combine(self, outputs: Tensor) -> Tensor:
        """The reward the policy sees, from head outputs [E, *S, H] → [E, *S]."""
        if self.head == "scalar":
            return outputs[..., 0]
        if self.head == "multi_objective":
            return (outputs * self.objective_weights).sum(-1)
        pi = self.mixing_weights()
        return (outputs * pi.reshape(pi.shape[0], *([1] * (outputs.dim() - 2)), -1)).sum(-1)

    def component_scores(self, items: Tensor, group: Tensor, evaluator: Tensor,
                         extra_features: Tensor | None = None,
                         generator: torch.Generator | None = None
                         ) -> tuple[Tensor, Tensor | None]:
        """What the loss scores while fitting. ``items`` [E, B, K], ``group`` and
        ``evaluator`` [E, B]. Returns scores [E, C, B, K] and, for a mixture head, the log mixing
        weights of each row's evaluator [E, C, B] (C = k); otherwise C = 1 and None."""
        out = self.outputs(items, extra_features, generator)          # [E, B, K, H]
        if self.head == "scalar":
            return out[..., 0].unsqueeze(1), None
        if self.head == "multi_objective":
            G = self.group_logits.shape[1]
            w = self.group_logits.softmax(-1)                           # [E, G, k]
            w = w.gather(1, group.clamp(0, G - 1).unsqueeze(-1).expand(-1, -1, w.shape[-1]))
            return (out * w.unsqueeze(2)).sum(-1).unsqueeze(1), None
        n = self.mix_logits.shape[1]
        log_pi = self.mix_logits.log_softmax(-1)                        # [E, n, k]
        log_pi = log_pi.gather(1, evaluator.clamp(0, n - 1).unsqueeze(-1)
                               .expand(-1, -1, log_pi.shape[-1]))      # [E, B, k]
        return out.permute(0, 3, 1, 2), log_pi.permute(0, 2, 1)

    def forward(self, items: Tensor | None = None) -> Tensor:
        """The reward of items [*S] (default: every action) for each member: [E, *S]."""
        if items is None:
            items = torch.arange(self.num_actions, device=self.reward_parameters()[0].device)
        shared = items.unsqueeze(0).expand(self.ensemble, *items.shape)
        return self.combine(self.outputs(shared))

    @torch.no_grad()
    def rewards(self) -> Tensor:
        """r̂_e(a) for every member and action: [E, A] (evaluation mode, no dropout)."""
        was = self.training
        self.eval()
        r = self.forward()
        self.train(was)
        return r

    @torch.no_grad()
    def component_rewards(self) -> Tensor:
        """Head outputs for every action: [E, H, A] (the k objectives or mixture components)."""
        items = torch.arange(self.num_actions, device=self.reward_parameters()[0].device)
        out = self.outputs(items.unsqueeze(0).expand(self.ensemble, -1))
        return out.permute(0, 2, 1)

    def mean_std(self) -> tuple[Tensor, Tensor]:
        """Ensemble mean and std of the reward of every action: ([A], [A])."""
        return ensemble_mean_std(self.rewards())

    def conservative(self, alpha: float) -> Tensor:
        """mean − α·std over the members, per action: [A]."""
        return conservative_reward(self.rewards(), alpha)

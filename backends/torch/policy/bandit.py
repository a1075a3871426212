"""π_θ on bandit tasks: softmax policies over A actions, exact quantities, and Eq. 3 optimised
with every objective of the spec.

    tabular   π(a) = softmax(θ)_a,        θ ∈ R^A, starting at 0 (uniform)
    linear    π(a) = softmax(θ·x_a)_a,    θ ∈ R^F, starting at 0 (uniform)

Everything a bandit policy is measured by is exact — probabilities, entropy, KL(π‖π_ref) and the
expected reward Σ_a π(a) r(a) — while optimisation uses sampled actions, as text would. The
bandit has a single prompt: objectives that need k samples per prompt (RLOO, GRPO, rejection
sampling) draw ``batch_size // k`` groups of k per step.

How each objective runs here (one step = one batch of ``batch_size`` samples):

    ppo                 a learned scalar value V, A = r' − V (one-step GAE), whitened; ``epochs``
                        passes of clipped-surrogate minibatch updates + value loss
    reinforce           one score-function update, batch-mean baseline (or none)
    rloo / grpo         ``batch_size // k`` groups; leave-one-out / group-standardised advantages;
                        GRPO takes one update per batch (so ρ = 1 at the update, as with μ = 1)
    best_of_n           no optimisation: the exact best-of-n distribution of the initial policy
                        under the reward (a :class:`FixedPolicy`), its KL bound reported
    rejection_sampling  n samples per group from the current policy, SFT on the top ones
    dpo / kto / sft     minibatches drawn from the feedback (pairs / desirability / corrections);
                        KTO's reference point z₀ is the exact KL(π ‖ π_ref), detached

KL regulariser: the spec's estimator on the sampled actions, in the reward (r' = r − β·k) or in
the loss; the adaptive coefficient is updated with the batch mean of that estimate. The entropy
bonus uses the exact entropy. Metrics are exact and recorded after every step.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn
from torch import Tensor

from backends.torch.labels import LabelTable
from backends.torch.policy.kl import exact_kl, kl_controller, kl_estimate
from backends.torch.policy.objectives import (
    best_of_n_distribution, best_of_n_kl_bound, clipped_surrogate_loss, dpo_loss, entropy_bonus,
    gae, grpo_advantages, grpo_loss, kto_loss, ppo_value_loss, reinforce_loss,
    rejection_sampling_select, rloo_loss, sft_loss, whiten,
)
from backends.torch.policy.preferences import demonstrations, desirability, preference_pairs
from backends.torch.reward.models import conservative_reward
from backends.torch.reward.training import (
    as_generator, build_optimizer, permutations, rand, resolve_device, sample_categorical,
)
from rlhfdsl.spec.learning import NEEDS_REWARD, Policy, TabularPolicy

# ------------------------------------------------------------------------------- policies


class BanditPolicy(nn.Module):
    """A distribution over A actions; subclasses define :meth:`logits`."""

    def logits(self) -> Tensor:
        raise NotImplementedError

    def log_probs(self) -> Tensor:
        """log π(a) for every action: [A]."""
        return self.logits().log_softmax(-1)

    def probs(self) -> Tensor:
        return self.logits().softmax(-1)

    def entropy(self) -> Tensor:
        """H(π) = −Σ_a π(a) log π(a), exact."""
        log_p = self.log_probs()
        return -(log_p.exp() * log_p).sum()

    def kl(self, ref_log_probs: Tensor) -> Tensor:
        """KL(π ‖ π_ref) = Σ_a π(a) (log π(a) − log π_ref(a)), exact."""
        return exact_kl(self.log_probs(), ref_log_probs)

    def expected(self, reward: Tensor) -> Tensor:
        """E_{a∼π}[r(a)] = Σ_a π(a) r(a), exact; ``reward`` [A] or [..., A] → [...]."""
        return (self.probs() * reward).sum(-1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """n actions drawn from π: [n] int64."""
        return sample_categorical(self.probs(), n, generator)


class TabularSoftmaxPolicy(BanditPolicy):
    """One logit per action, starting uniform."""

    def __init__(self, num_actions: int, device: torch.device | str | None = None):
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(num_actions, device=device))

    def logits(self) -> Tensor:
        return self.theta


class LinearSoftmaxPolicy(BanditPolicy):
    """Logits θ·x_a over the action features [A, F], starting at θ = 0 (uniform)."""

    def __init__(self, features: Tensor, device: torch.device | str | None = None):
        super().__init__()
        features = features.to(device=device, dtype=torch.float32)
        self.register_buffer("features", features, persistent=False)
        self.theta = nn.Parameter(torch.zeros(features.shape[1], device=features.device))

    def logits(self) -> Tensor:
        return self.features @ self.theta


class FixedPolicy(BanditPolicy):
    """A fixed distribution given by its log-probabilities (a reference policy, or the exact
    best-of-n policy)."""

    def __init__(self, log_probs: Tensor):
        super().__init__()
        self.register_buffer("log_p", log_probs.detach().log_softmax(-1))

    def logits(self) -> Tensor:
        return self.log_p


def build_bandit_policy(init: Any, actions: Tensor,
                        device: torch.device | str | None = None) -> BanditPolicy:
    """The initial policy of a spec's ``init`` (default `tabular`)."""
    init = init or TabularPolicy()
    if init.type == "tabular":
        return TabularSoftmaxPolicy(actions.shape[0], device=device or actions.device)
    if init.type == "linear":
        return LinearSoftmaxPolicy(actions, device=device or actions.device)
    raise ValueError(f"a bandit policy cannot be initialised from {init.type!r}")


def bandit_policy_from_state(init: Any, actions: Tensor, state: dict[str, Tensor],
                             device: torch.device | str | None = None) -> BanditPolicy:
    """Rebuild a policy from its ``state_dict`` (a best-of-n result is a :class:`FixedPolicy`,
    recognised by its ``log_p``)."""
    if "log_p" in state:
        return FixedPolicy(state["log_p"].to(device or actions.device))
    policy = build_bandit_policy(init, actions, device)
    policy.load_state_dict(state)
    return policy


# ---------------------------------------------------------------------------- optimisation


def optimize_bandit_policy(spec: Policy, actions: Tensor, *,
                           rewards: Tensor | Callable[[Tensor], Tensor] | None = None,
                           labels: LabelTable | None = None,
                           reference: BanditPolicy | Tensor | None = None,
                           gold: Tensor | None = None,
                           generator: torch.Generator | int | None = None,
                           device: torch.device | str | None = None,
                           init_state: dict[str, Tensor] | None = None,
                           ) -> tuple[BanditPolicy, dict[str, list[float]]]:
    """Optimise π_θ on a bandit (Eq. 3) with the spec's objective.

    Args:
        spec: the `policy` declaration (init, objective, conservative, steps, batch size,
            optimiser).
        actions: action features [A, F].
        rewards: the reward optimised by RL objectives, best-of-n and rejection sampling: a
            reward-model ensemble [E, A] (optimised as mean − α·std with α = ``conservative``),
            one reward vector [A] (e.g. gold), or a function of the action indices returning
            either. For the reward-free objectives it is only measured (``proxy_reward``).
        labels: the feedback for DPO (pairs), KTO (desirable/undesirable) and SFT
            (corrections as demonstrations).
        reference: π_ref, a policy or its log-probabilities [A] (default: the initial policy
            before ``init_state`` — uniform for both bandit policies).
        gold: gold reward of every action [A], measured per step as ``gold_reward``.
        generator: the stage's generator or seed (all sampling draws from it).
        device: where to optimise (default: the features' device).
        init_state: a policy ``state_dict`` to start from (warm start across rounds).

    Returns:
        (policy, metrics): per step ``objective`` (the loss of the step's last update),
        ``proxy_reward`` (exact E_π of the ensemble-mean reward, when rewards are given),
        ``kl`` (exact KL(π ‖ π_ref)), ``entropy`` (exact), ``gold_reward`` (with ``gold``),
        ``kl_coef`` (RL objectives) and ``conservative_reward`` (when α > 0). Best-of-n adds
        ``kl_bound``.
    """
    gen = as_generator(generator)
    device = resolve_device(device, actions)
    actions = actions.to(device)
    objective = spec.objective
    kind = objective.type

    policy = build_bandit_policy(spec.init, actions, device)
    if reference is None:
        ref_logp = policy.log_probs().detach()
    elif isinstance(reference, BanditPolicy):
        ref_logp = reference.to(device).log_probs().detach()
    else:
        ref_logp = reference.to(device).detach().log_softmax(-1)
    if init_state is not None:
        policy.load_state_dict(init_state)

    reward_table = _reward_table(rewards, actions.shape[0], device)
    if kind in NEEDS_REWARD and reward_table is None:
        raise ValueError(f"the {kind} objective needs a reward: pass rewards")
    target = conservative_reward(reward_table, spec.conservative) if reward_table is not None \
        else None
    proxy = reward_table.mean(0) if reward_table is not None else None
    gold = gold.to(device) if gold is not None else None

    def measure(record: dict[str, list[Tensor]], loss: Tensor, extra: dict[str, Any]) -> None:
        with torch.no_grad():
            logp = policy.log_probs()
            p = logp.exp()
            values = {"objective": loss.detach(), "kl": exact_kl(logp, ref_logp),
                      "entropy": -(p * logp).sum()}
            if proxy is not None:
                values["proxy_reward"] = (p * proxy).sum()
                if spec.conservative:
                    values["conservative_reward"] = (p * target).sum()
            if gold is not None:
                values["gold_reward"] = (p * gold).sum()
            values.update(extra)
        for name, value in values.items():
            record.setdefault(name, []).append(torch.as_tensor(value, device=device).float())

    record: dict[str, list[Tensor]] = {}
    if kind == "best_of_n":
        policy = FixedPolicy(best_of_n_distribution(policy.log_probs().detach().exp(), target,
                                                    objective.n).clamp(min=1e-30).log())
        measure(record, torch.zeros((), device=device),
                {"kl_bound": best_of_n_kl_bound(objective.n)})
    else:
        run = _OBJECTIVES[kind]
        run(spec, policy, ref_logp, target, labels, gen, device, measure, record)
    return policy, {k: torch.stack(v).tolist() for k, v in record.items()}


def _reward_table(rewards: Any, num_actions: int, device: torch.device) -> Tensor | None:
    if rewards is None:
        return None
    if callable(rewards) and not isinstance(rewards, Tensor):
        rewards = rewards(torch.arange(num_actions, device=device))
    rewards = rewards.to(device=device, dtype=torch.float32).detach()
    return rewards.unsqueeze(0) if rewards.dim() == 1 else rewards


# -- reward-maximising objectives: one rollout batch per step


def _rl(spec: Policy, policy: BanditPolicy, ref_logp: Tensor, target: Tensor, labels: Any,
        gen: torch.Generator, device: torch.device, measure: Callable, record: dict) -> None:
    objective = spec.objective
    kind = objective.type
    value = nn.Parameter(torch.zeros((), device=device)) if kind == "ppo" else None
    params = list(policy.parameters()) + ([value] if value is not None else [])
    optimizer = build_optimizer(spec.optimizer, params, "bandit")
    controller = kl_controller(objective.kl)
    per_group = {"rloo": getattr(objective, "k", 0), "grpo": getattr(objective, "group", 0)}
    estimator, in_reward = objective.kl_estimator, objective.kl_in == "reward"

    for _ in range(spec.steps):
        beta = controller.value
        with torch.no_grad():
            old_logp_all = policy.log_probs()
        k = per_group.get(kind, 0)
        shape = (max(1, spec.batch_size // k), k) if k else (spec.batch_size,)
        n = int(torch.tensor(shape).prod())
        idx = sample_categorical(old_logp_all.exp(), n, gen).reshape(shape)
        sampled_kl = kl_estimate(old_logp_all[idx], ref_logp[idx], estimator)
        r = target[idx]
        if in_reward:
            r = r - beta * sampled_kl

        def regularised(loss: Tensor, logp_all: Tensor, sub: Tensor) -> Tensor:
            if not in_reward:
                loss = loss + beta * kl_estimate(logp_all[sub], ref_logp[sub], estimator).mean()
            if objective.entropy:
                log_p = logp_all
                loss = loss + entropy_bonus(-(log_p.exp() * log_p).sum(), objective.entropy)
            return loss

        if kind == "ppo":
            loss = _ppo_epochs(objective, policy, value, optimizer, idx, r, old_logp_all,
                               gen, device, regularised)
        else:
            logp_all = policy.log_probs()
            logp = logp_all[idx]
            if kind == "reinforce":
                loss = reinforce_loss(logp, r, None if objective.baseline else 0.0)
            elif kind == "rloo":
                loss = rloo_loss(logp, r)
            else:  # grpo: one optimisation step per batch, so ρ = 1 at the step
                loss = grpo_loss(logp, old_logp_all[idx], grpo_advantages(r), objective.clip)
            loss = regularised(loss, logp_all, idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        measure(record, loss, {"kl_coef": beta})
        controller.update(sampled_kl.mean(), n)


def _ppo_epochs(objective: Any, policy: BanditPolicy, value: nn.Parameter,
                optimizer: torch.optim.Optimizer, idx: Tensor, r: Tensor, old_logp_all: Tensor,
                gen: torch.Generator, device: torch.device, regularised: Callable) -> Tensor:
    """PPO on one rollout batch: a learned scalar value V (the bandit's single state), GAE over
    one step (A = r − V), whitened advantages, ``epochs`` passes of clipped-surrogate minibatch
    updates plus the value loss."""
    n = idx.shape[0]
    with torch.no_grad():
        adv, returns = gae(r.unsqueeze(-1), value.detach().expand(n).unsqueeze(-1),
                           torch.ones(n, 1, device=device), objective.gamma,
                           objective.gae_lambda)
        adv, returns = whiten(adv.squeeze(-1)) if n > 1 else adv.squeeze(-1), returns.squeeze(-1)
    size = objective.minibatch or n
    loss = torch.zeros((), device=device)
    for _ in range(objective.epochs):
        order = permutations(1, n, gen, device)[0]
        for start in range(0, n, size):
            mb = order[start:start + size]
            logp_all = policy.log_probs()
            loss = clipped_surrogate_loss(logp_all[idx[mb]], old_logp_all[idx[mb]], adv[mb],
                                          objective.clip)
            loss = loss + objective.value_coef * ppo_value_loss(value.expand(len(mb)),
                                                                returns[mb])
            loss = regularised(loss, logp_all, idx[mb])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return loss


# -- sampling and data objectives


def _rejection_sampling(spec: Policy, policy: BanditPolicy, ref_logp: Tensor, target: Tensor,
                        labels: Any, gen: torch.Generator, device: torch.device,
                        measure: Callable, record: dict) -> None:
    """Expert iteration: each step samples n actions for each of batch_size // n prompts from
    the current policy, keeps the ``top`` by reward, and takes an SFT step on them."""
    objective = spec.objective
    optimizer = build_optimizer(spec.optimizer, policy.parameters(), "bandit")
    prompts = max(1, spec.batch_size // objective.n)
    for _ in range(spec.steps):
        with torch.no_grad():
            idx = sample_categorical(policy.probs(), prompts * objective.n, gen)
        idx = idx.reshape(prompts, objective.n)
        keep = idx.gather(1, rejection_sampling_select(target[idx], objective.top))
        loss = sft_loss(policy.log_probs()[keep])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        measure(record, loss, {})


def _from_labels(spec: Policy, policy: BanditPolicy, ref_logp: Tensor, target: Tensor | None,
                 labels: LabelTable | None, gen: torch.Generator, device: torch.device,
                 measure: Callable, record: dict) -> None:
    """DPO, KTO and SFT: each step a minibatch of ``batch_size`` examples drawn uniformly (with
    replacement) from the feedback."""
    objective = spec.objective
    kind = objective.type
    if labels is None:
        raise ValueError(f"the {kind} objective needs feedback labels")
    labels = labels.to(device)
    if kind == "dpo":
        chosen, rejected = preference_pairs(labels)
        size = chosen.shape[0]
    elif kind == "kto":
        items, desirable = desirability(labels)
        size = items.shape[0]
    else:
        demos = demonstrations(labels)
        size = demos.shape[0]
    if size == 0:
        raise ValueError(f"the feedback holds no usable {kind} examples")
    optimizer = build_optimizer(spec.optimizer, policy.parameters(), "bandit")
    for _ in range(spec.steps):
        batch = (rand((spec.batch_size,), gen, device) * size).long().clamp(max=size - 1)
        logp = policy.log_probs()
        if kind == "dpo":
            c, r = chosen[batch], rejected[batch]
            loss = dpo_loss(logp[c], logp[r], ref_logp[c], ref_logp[r], objective.beta,
                            objective.loss, objective.label_smoothing).mean()
        elif kind == "kto":
            x = items[batch]
            z0 = exact_kl(logp.detach(), ref_logp).clamp(min=0)
            loss = kto_loss(logp[x], ref_logp[x], desirable[batch], z0, objective.beta,
                            objective.desirable_weight, objective.undesirable_weight).mean()
        else:
            loss = sft_loss(logp[demos[batch]])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        measure(record, loss, {})


_OBJECTIVES = {"ppo": _rl, "reinforce": _rl, "rloo": _rl, "grpo": _rl,
               "rejection_sampling": _rejection_sampling,
               "dpo": _from_labels, "kto": _from_labels, "sft": _from_labels}

"""Eq. 3 on texts: optimising a causal language model π_θ with every objective of the spec.

    R(θ) = E_{x∼π_θ} [ r̂_φ(x) + λ_p(θ, θ_ref, x) ]                                 (Eq. 3)

The objectives are the plain tensor functions of :mod:`backends.torch.policy.objectives` and
:mod:`backends.torch.policy.kl`, fed with per-token log-probabilities of completions. One step:

    ppo                 batch_size prompts, one completion each; a value head on the policy's
                        final hidden state; per-token rewards (the sequence's reward on its last
                        token, −β·k_t on every token when the KL is in the reward), GAE, whitened
                        advantages; ``epochs`` passes of clipped-surrogate minibatch updates +
                        the clipped value loss
    reinforce           one completion per prompt; r' = r − β Σ_t k_t; batch-mean baseline
    rloo / grpo         batch_size // k prompts × k completions; leave-one-out / group-
                        standardised advantages; GRPO per token with the KL in the loss, one
                        update per batch (ρ = 1 at the update)
    best_of_n           no update: n completions for each of batch_size prompts, the best by
                        reward kept (:func:`best_of_n`); reports their reward and the KL bound
                        log n − (n − 1)/n
    rejection_sampling  batch_size // n prompts × n completions; SFT on the ``top`` of each
    dpo / kto / sft     minibatches of batch_size examples drawn (with replacement) from the
                        feedback's texts; the reference's log-probs computed once, ahead

KL: the spec's estimator per token, k_t = k(log π_θ(y_t|·) − log π_ref(y_t|·)), summed over a
completion for the sequence KL (``kl``; the adaptive controller reads its batch mean). In the
reward it is a constant (per token for PPO, per sequence otherwise); in the loss it is
differentiated (GRPO and PPO per token, REINFORCE/RLOO per sequence). Rewards are the ensemble's
``mean − α·std`` (α = ``conservative``); ``proxy_reward`` is the ensemble mean.

Rollouts are :func:`~.generate.generate` with the task's sampling settings; their log-probs,
entropies and hidden states come from :func:`~.logprobs.forward_completions` at the sampling
temperature. The fixed texts of DPO, KTO and SFT are packed (prompt + completion right-padded,
no attention mask: attention is causal) and only the completion positions reach the LM head
(:class:`PackedLogprobs`, compiled on CUDA); :func:`dpo_step` is one DPO update, which
``benchmarks/bench_train.py`` times.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from backends.torch.labels import LabelTable
from backends.torch.policy.kl import kl_controller, kl_estimate, token_level_rewards
from backends.torch.policy.objectives import (
    best_of_n_kl_bound, clipped_surrogate_loss, dpo_loss, entropy_bonus, gae, grpo_advantages,
    grpo_loss, kto_loss, kto_reference_point, masked_mean, ppo_value_loss, reinforce_loss,
    rejection_sampling_select, rloo_loss, sequence_logprob, sft_loss, whiten,
)
from backends.torch.policy.preferences import demonstrations, desirability, preference_pairs
from backends.torch.reward.models import conservative_reward
from backends.torch.reward.training import build_optimizer, permutations, rand
from backends.torch.text.generate import generate
from backends.torch.text.logprobs import Completions, forward_completions
from backends.torch.text.models import (
    autocast, check_context, frozen_copy, is_adapted, model_device, reference as adapter_disabled,
    seeded,
)
from backends.torch.text.tokenizer import TextTokenizer
from backends.torch.text.train_reward import (
    TokenTable, fast_activations, fused, to_device, token_lists,
)
from rlhfdsl.spec.learning import NEEDS_REWARD, Policy

RewardFn = Callable[..., Tensor]
MEASUREMENTS = 10  # on-policy measurements over a run of DPO, KTO or SFT

# --------------------------------------------------------------- packed fixed-text batches


@dataclass
class PackedBatch:
    """Prompt + completion rows, right-padded, on the device (no attention mask needed).

    ids        int64 [B, L]
    positions  int64 [B, C]  the position whose output predicts completion token j
    targets    int64 [B, C]  completion token j
    mask       bool  [B, C]  j < the row's completion length
    """

    ids: Tensor
    positions: Tensor
    targets: Tensor
    mask: Tensor


class CompletionTable:
    """(prompt, completion) token rows kept on the host; :meth:`batch` packs rows for the
    device without waiting for it."""

    def __init__(self, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]],
                 pad_id: int):
        if any(len(c) == 0 for c in completions):
            raise ValueError("a completion has no tokens")
        self.tokens = TokenTable([list(p) + list(c) for p, c in zip(prompts, completions)],
                                 pad_id)
        self.starts = torch.tensor([len(p) for p in prompts], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.tokens)

    def batch(self, index: Tensor, device: torch.device | str) -> PackedBatch:
        ids, lengths = self.tokens.rows(index)
        starts = self.starts[index]
        width = int((lengths - starts).max())
        j = torch.arange(width)
        mask = j < (lengths - starts).unsqueeze(1)
        target_at = (starts.unsqueeze(1) + j).clamp(max=ids.shape[1] - 1)
        positions = (target_at - 1).clamp(min=0)
        targets = ids.gather(1, target_at).masked_fill(~mask, 0)
        return PackedBatch(*(to_device(t, device) for t in (ids, positions, targets, mask)))


def encode_items(tokenizer: TextTokenizer, prompts: Sequence[str], completions: Sequence[str],
                 task) -> tuple[list[list[int]], list[list[int]]]:
    """Token rows laid out as generation lays them out: BOS + prompt cut from the left to the
    task's ``max_prompt_tokens``; completion + EOS cut from the right to ``max_new_tokens``."""
    return (token_lists(tokenizer, prompts, max_length=task.max_prompt_tokens,
                        truncation_side="left", add_bos=True),
            token_lists(tokenizer, completions, max_length=task.max_new_tokens, add_eos=True))


def _packed_logprobs(trunk: nn.Module, head: nn.Module, ids: Tensor, positions: Tensor,
                     targets: Tensor, temperature: float) -> Tensor:
    """log softmax(z / T)[y] at the completion positions only: [B, C] float32."""
    embed = trunk.get_input_embeddings()
    hidden = trunk(inputs_embeds=embed(ids), use_cache=False).last_hidden_state
    picked = hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
    z = head(picked).float()
    if temperature != 1.0:
        z = z / temperature
    return z.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - z.logsumexp(-1)


class PackedLogprobs:
    """log π(y_t | x, y_<t) of packed rows, [B, C] float32, 0 outside the mask; differentiable.

    The trunk runs over prompt + completion and the LM head only at the completion positions;
    the ids enter as embeddings (which skips transformers' padding check, a host read). A LoRA
    model computes its reference inside ``reference(model)``. Compiled with ``torch.compile`` on
    CUDA (``compile`` None), under the ``precision`` autocast."""

    def __init__(self, model, *, temperature: float = 1.0, precision: str = "auto",
                 compile: bool | None = None):
        base = model.get_base_model() if is_adapted(model) else model
        self.trunk = getattr(base, base.base_model_prefix)
        self.head = base.get_output_embeddings()
        self.device = model_device(model)
        self.temperature = temperature
        self.precision = precision
        use_compile = self.device.type == "cuda" if compile is None else compile
        self.fn = torch.compile(_packed_logprobs) if use_compile else _packed_logprobs

    def __call__(self, batch: PackedBatch) -> Tensor:
        with autocast(self.device, self.precision):
            lp = self.fn(self.trunk, self.head, batch.ids, batch.positions, batch.targets,
                         self.temperature)
        return lp.masked_fill(~batch.mask, 0.0)


@torch.no_grad()
def reference_logprobs(logprobs: PackedLogprobs, table: CompletionTable, *, batch_size: int,
                       rows: Tensor | None = None, average: bool = False,
                       context: Callable[[], Any] = contextlib.nullcontext) -> Tensor:
    """Sequence log-probs log π_ref(y | x) of the ``rows`` of ``table`` (default all; mean
    per token with ``average``), once, ahead of training: [len(rows)] on the device, not waited
    for."""
    rows = torch.arange(len(table)) if rows is None else rows
    out = []
    for start in range(0, len(rows), batch_size):
        batch = table.batch(rows[start:start + batch_size], logprobs.device)
        with context():
            out.append(sequence_logprob(logprobs(batch), batch.mask, average=average))
    return torch.cat(out)


def dpo_step(logprobs: PackedLogprobs, optimizer: torch.optim.Optimizer, batch: PackedBatch,
             reference: Tensor, objective) -> dict[str, Tensor]:
    """One DPO update on b pairs: ``batch`` holds the b chosen rows then the b rejected rows
    (one forward pass), ``reference`` their reference sequence log-probs [2b] (computed ahead;
    length-averaged for IPO, as TRL does). Returns the loss, the implicit reward margin
    β·h and the fraction of pairs with h > 0, as device tensors (nothing waits)."""
    seq = sequence_logprob(logprobs(batch), batch.mask, average=objective.loss == "ipo")
    b = seq.shape[0] // 2
    losses = dpo_loss(seq[:b], seq[b:], reference[:b], reference[b:], objective.beta,
                      objective.loss, objective.label_smoothing)
    loss = losses.mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    h = (seq.detach() - reference)
    margin = h[:b] - h[b:]
    return {"objective": loss.detach(), "margin": objective.beta * margin.mean(),
            "accuracy": (margin > 0).float().mean()}


# ------------------------------------------------------------------------------ the run


class _Run:
    """What every objective's loop shares: the policy and its reference, sampling, rewards,
    measurement and the per-step record."""

    def __init__(self, spec: Policy, policy, tokenizer: TextTokenizer, task, prompts: list[str],
                 reward_fn: RewardFn | None, gold_fn: RewardFn | None, reference,
                 generator: torch.Generator, device: torch.device, precision: str,
                 progress: Callable[[int], Any] | None):
        if not prompts:
            raise ValueError("no prompts to optimise the policy on")
        self.spec, self.objective = spec, spec.objective
        self.policy, self.tokenizer, self.task, self.prompts = policy, tokenizer, task, prompts
        self.reward_fn, self.gold_fn = reward_fn, gold_fn
        self.generator, self.device, self.precision = generator, device, precision
        self.progress = progress
        if reference is not None:
            self.reference, self.ref_context = reference.eval(), contextlib.nullcontext
        elif is_adapted(policy):
            self.reference, self.ref_context = policy, lambda: adapter_disabled(policy)
        else:
            self.reference, self.ref_context = frozen_copy(policy), contextlib.nullcontext
        self.record: dict[str, list[Tensor]] = {}

    # -- sampling and scoring

    def choose_prompts(self, count: int) -> list[str]:
        index = (rand((count,), self.generator, torch.device("cpu")) * len(self.prompts)).long()
        return [self.prompts[int(i)] for i in index.clamp(max=len(self.prompts) - 1)]

    def rollout(self, groups: int, k: int = 1) -> Completions:
        """``groups`` prompts, each sampled ``k`` times (consecutive rows), from π_θ."""
        prompts = [p for p in self.choose_prompts(groups) for _ in range(k)]
        task = self.task
        return generate(self.policy, self.tokenizer, prompts, generator=self.generator,
                        max_new_tokens=task.max_new_tokens, temperature=task.temperature,
                        top_k=task.top_k, max_prompt_tokens=task.max_prompt_tokens,
                        precision=self.precision, batch_size=self.spec.batch_size)

    def rewards(self, batch: Completions) -> tuple[Tensor, Tensor]:
        """(the optimised reward mean − α·std, the proxy reward: ensemble mean), both [N]."""
        scores = call_reward(self.reward_fn, batch.prompts, batch.texts, self.device)
        return conservative_reward(scores, self.spec.conservative), scores.mean(0)

    @torch.no_grad()
    def rollout_stats(self, batch: Completions, *, hidden: bool = False):
        """π_θ's log-probs and entropies (and hidden states) of a rollout, and π_ref's
        log-probs, in evaluation mode."""
        was = self.policy.training
        self.policy.eval()
        temperature = self.task.temperature
        old = forward_completions(self.policy, batch, temperature=temperature,
                                  precision=self.precision, entropy=True, hidden=hidden)
        with self.ref_context():
            ref = forward_completions(self.reference, batch, temperature=temperature,
                                      precision=self.precision).logprobs
        self.policy.train(was)
        return old, ref

    def kl_tokens(self, logp: Tensor, ref: Tensor, mask: Tensor) -> Tensor:
        return kl_estimate(logp, ref, self.objective_estimator()) * mask

    def objective_estimator(self) -> str:
        return getattr(self.objective, "kl_estimator", "k1")

    def forward(self, batch: Completions, *, entropy: bool = False, hidden: bool = False):
        return forward_completions(self.policy, batch, temperature=self.task.temperature,
                                   precision=self.precision, entropy=entropy, hidden=hidden)

    # -- measurement

    def measure(self, loss: Tensor | float, batch: Completions | None = None,
                kl_seq: Tensor | None = None, entropy: Tensor | None = None,
                proxy: Tensor | None = None, target: Tensor | None = None, **extra: Any) -> None:
        """One step's record. On-policy values (reward, KL, entropy, length) come from a batch
        sampled from π_θ at this step; NaN when the step measured none."""
        nan = float("nan")
        values: dict[str, Any] = {"objective": loss}
        if batch is not None:
            mask = batch.completion_mask
            values["kl"] = kl_seq.mean()
            values["entropy"] = masked_mean(entropy, mask)
            values["length"] = mask.sum(-1).float().mean()
            if self.reward_fn is not None:
                if proxy is None:
                    target, proxy = self.rewards(batch)
                values["proxy_reward"] = proxy.mean()
                if self.spec.conservative:
                    values["conservative_reward"] = target.mean()
            if self.gold_fn is not None:
                values["gold_reward"] = call_reward(self.gold_fn, batch.prompts, batch.texts,
                                                    self.device).mean()
        else:
            for key in ("kl", "entropy", "length"):
                values[key] = nan
            if self.reward_fn is not None:
                values["proxy_reward"] = nan
                if self.spec.conservative:
                    values["conservative_reward"] = nan
            if self.gold_fn is not None:
                values["gold_reward"] = nan
        values.update(extra)
        for name, value in values.items():
            self.record.setdefault(name, []).append(
                torch.as_tensor(value, dtype=torch.float32, device=self.device).detach())

    def measure_on_policy(self, loss: Tensor, **extra: Any) -> None:
        """Sample a batch from π_θ (at most 64 completions) and record what it shows."""
        batch = self.rollout(min(self.spec.batch_size, 64))
        old, ref = self.rollout_stats(batch)
        kl_seq = self.kl_tokens(old.logprobs, ref, batch.completion_mask).sum(-1)
        self.measure(loss, batch, kl_seq, old.entropy, **extra)

    def done(self, step: int) -> None:
        if self.progress is not None:
            self.progress(step + 1)

    def optimizer(self, extra: Sequence[nn.Parameter] = ()) -> torch.optim.Optimizer:
        params = [p for p in self.policy.parameters() if p.requires_grad] + list(extra)
        return fused(build_optimizer(self.spec.optimizer, params, "text"))


def call_reward(fn: RewardFn | None, prompts: list[str], texts: list[str],
                device: torch.device) -> Tensor:
    """A reward function's scores as [E, N] float32 on ``device``; it takes (prompts,
    completions) or completions alone."""
    if fn is None:
        raise ValueError("this objective needs a reward: pass reward_fn")
    try:
        inspect.signature(fn).bind(prompts, texts)
        two = True
    except TypeError:
        two = False
    except ValueError:  # no signature to read (a builtin): assume (prompts, completions)
        two = True
    scores = fn(prompts, texts) if two else fn(texts)
    scores = torch.as_tensor(scores, dtype=torch.float32).to(device)
    return scores.unsqueeze(0) if scores.dim() == 1 else scores


# ------------------------------------------------------------------ reward-maximising RL


def _policy_gradient(run: _Run) -> None:
    spec, objective = run.spec, run.objective
    kind = objective.type
    k = {"rloo": getattr(objective, "k", 1), "grpo": getattr(objective, "group", 1)}.get(kind, 1)
    groups = max(1, spec.batch_size // k)
    value_head = None
    if kind == "ppo":
        width = run.policy.get_input_embeddings().embedding_dim
        value_head = nn.Linear(width, 1).to(run.device)
        nn.init.zeros_(value_head.weight)
        nn.init.zeros_(value_head.bias)
    optimizer = run.optimizer(value_head.parameters() if value_head is not None else ())
    controller = kl_controller(objective.kl)
    in_reward = objective.kl_in == "reward"
    estimator = run.objective_estimator()

    def update(loss: Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for step in range(spec.steps):
        beta = controller.value
        batch = run.rollout(groups, k)
        mask = batch.completion_mask
        old, ref = run.rollout_stats(batch, hidden=kind == "ppo")
        kl_seq = run.kl_tokens(old.logprobs, ref, mask).sum(-1)
        target, proxy = run.rewards(batch)
        if kind == "ppo":
            loss = _ppo_epochs(run, value_head, update, batch, old, ref, target, beta)
        else:
            r = target - beta * kl_seq if in_reward else target
            stats = run.forward(batch, entropy=objective.entropy > 0)
            lp = stats.logprobs
            if kind == "grpo":
                adv = grpo_advantages(r.view(groups, k)).view(-1)
                kl = None if in_reward else kl_estimate(lp, ref, estimator)
                loss = grpo_loss(lp, lp.detach(), adv, objective.clip, kl, beta, mask)
            else:
                seq = sequence_logprob(lp, mask)
                if kind == "reinforce":
                    loss = reinforce_loss(seq, r, None if objective.baseline else 0.0)
                else:
                    loss = rloo_loss(seq.view(groups, k), r.view(groups, k))
                if not in_reward:
                    loss = loss + beta * (kl_estimate(lp, ref, estimator) * mask).sum(-1).mean()
            if objective.entropy:
                loss = loss + entropy_bonus(stats.entropy, objective.entropy, mask)
            update(loss)
        run.measure(loss.detach(), batch, kl_seq, old.entropy, proxy, target, kl_coef=beta)
        controller.update(kl_seq.mean(), len(batch))
        run.done(step)


def _ppo_epochs(run: _Run, value_head: nn.Linear, update: Callable[[Tensor], None],
                batch: Completions, old, ref: Tensor, target: Tensor, beta) -> Tensor:
    """PPO on one rollout batch: values V(s_t) from the value head on the hidden state that
    predicts y_t; per-token rewards (the sequence's reward on its last token; −β·k_t on every
    token with the KL in the reward); GAE(γ, λ); advantages whitened over the completion
    tokens; ``epochs`` passes of minibatch updates of the clipped surrogate + value_coef × the
    clipped value loss (+ β·k_t in the loss, − the entropy bonus)."""
    objective = run.objective
    mask = batch.completion_mask
    estimator = run.objective_estimator()
    in_reward = objective.kl_in == "reward"
    with torch.no_grad():
        values = value_head(old.hidden.float()).squeeze(-1) * mask
        kl = kl_estimate(old.logprobs, ref, estimator)
        rewards = token_level_rewards(target, kl, mask, beta if in_reward else 0.0)
        advantages, returns = gae(rewards, values, mask, objective.gamma, objective.gae_lambda)
        advantages = whiten(advantages, mask) * mask
    n = len(batch)
    size = objective.minibatch or n
    loss = torch.zeros((), device=run.device)
    for _ in range(objective.epochs):
        order = permutations(1, n, run.generator, torch.device("cpu"))[0]
        for start in range(0, n, size):
            rows = order[start:start + size]
            sub = batch.select(rows)
            rows = rows.to(run.device)
            m = mask[rows]
            stats = run.forward(sub, entropy=objective.entropy > 0, hidden=True)
            v = value_head(stats.hidden.float()).squeeze(-1)
            loss = clipped_surrogate_loss(stats.logprobs, old.logprobs[rows], advantages[rows],
                                          objective.clip, m)
            loss = loss + objective.value_coef * ppo_value_loss(v, returns[rows], values[rows],
                                                                objective.clip, m)
            if not in_reward:
                loss = loss + beta * masked_mean(kl_estimate(stats.logprobs, ref[rows],
                                                             estimator), m)
            if objective.entropy:
                loss = loss + entropy_bonus(stats.entropy, objective.entropy, m)
            update(loss)
    return loss.detach()


# --------------------------------------------------------------- sampling-based objectives


@torch.no_grad()
def best_of_n(policy, tokenizer: TextTokenizer, prompts: Sequence[str], n: int,
              reward_fn: RewardFn, task, *, generator: torch.Generator, conservative: float = 0.0,
              precision: str = "auto", batch_size: int = 64) -> tuple[Completions, Tensor]:
    """The best-of-n policy: n completions per prompt from ``policy``, the one with the highest
    reward (ensemble mean − α·std) kept. Returns (the kept completions, one per prompt, and the
    rewards [P, n] of all samples)."""
    device = model_device(policy)
    rows = [p for p in prompts for _ in range(n)]
    samples = generate(policy, tokenizer, rows, generator=generator,
                       max_new_tokens=task.max_new_tokens, temperature=task.temperature,
                       top_k=task.top_k, max_prompt_tokens=task.max_prompt_tokens,
                       precision=precision, batch_size=batch_size)
    scores = conservative_reward(call_reward(reward_fn, samples.prompts, samples.texts, device),
                                 conservative).view(len(prompts), n)
    best = scores.argmax(-1) + torch.arange(len(prompts), device=device) * n
    return samples.select(best.cpu()), scores


def _best_of_n(run: _Run) -> None:
    """No update: n samples for each of batch_size prompts; the reward of the kept ones, the
    base samples' reward, and KL(best-of-n ‖ π) through its bound log n − (n − 1)/n."""
    n = run.objective.n
    prompts = run.choose_prompts(run.spec.batch_size)
    kept, scores = best_of_n(run.policy, run.tokenizer, prompts, n, run.reward_fn, run.task,
                             generator=run.generator, conservative=run.spec.conservative,
                             precision=run.precision, batch_size=run.spec.batch_size)
    old, _ = run.rollout_stats(kept)
    bound = best_of_n_kl_bound(n)
    target, proxy = run.rewards(kept)
    run.measure(torch.zeros(()), kept, torch.full((len(kept),), bound, device=run.device),
                old.entropy, proxy, target, kl_bound=bound, base_reward=scores.mean())
    run.done(run.spec.steps - 1)


def _rejection_sampling(run: _Run) -> None:
    """Expert iteration (RAFT): each step samples n completions for each of batch_size // n
    prompts from π_θ, keeps the ``top`` per prompt by reward, and takes an SFT step on them."""
    objective = run.objective
    groups = max(1, run.spec.batch_size // objective.n)
    optimizer = run.optimizer()
    for step in range(run.spec.steps):
        batch = run.rollout(groups, objective.n)
        old, ref = run.rollout_stats(batch)
        kl_seq = run.kl_tokens(old.logprobs, ref, batch.completion_mask).sum(-1)
        target, proxy = run.rewards(batch)
        top = rejection_sampling_select(target.view(groups, objective.n), objective.top)
        rows = (top + torch.arange(groups, device=top.device).unsqueeze(1) * objective.n)
        kept = batch.select(rows.reshape(-1).cpu())
        loss = sft_loss(run.forward(kept).logprobs, kept.completion_mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        run.measure(loss.detach(), batch, kl_seq, old.entropy, proxy, target,
                    kept_reward=target.view(-1)[rows.reshape(-1)].mean())
        run.done(step)


# ------------------------------------------------------------------ from preference data


def _texts_of(labels: LabelTable) -> tuple[list[str], list[str]]:
    if "texts" not in labels.meta:
        raise ValueError("a text label table needs its `texts` metadata")
    texts = list(labels.meta["texts"])
    return list(labels.meta.get("prompts") or [""] * len(texts)), texts


def _from_labels(run: _Run, labels: LabelTable | None) -> None:
    """DPO, KTO and SFT: each step a minibatch of batch_size examples drawn uniformly (with
    replacement) from the feedback; reference log-probs computed once ahead; on-policy
    measurements (reward, KL, entropy) at :data:`MEASUREMENTS` evenly spaced steps."""
    objective, spec = run.objective, run.spec
    kind = objective.type
    if labels is None:
        raise ValueError(f"the {kind} objective needs feedback labels")
    labels = labels.to("cpu")
    prompts, texts = _texts_of(labels)
    if kind == "dpo":
        chosen, rejected = preference_pairs(labels)
        items = torch.cat([chosen, rejected])
        size = len(chosen)
    elif kind == "kto":
        items, desirable = desirability(labels)
        size = len(items)
        desirable = desirable.to(run.device)
    else:
        items = demonstrations(labels)
        size = len(items)
    if size == 0:
        raise ValueError(f"the feedback holds no usable {kind} examples")
    rows = items.tolist()
    p_rows, c_rows = encode_items(run.tokenizer, [prompts[i] for i in rows],
                                  [texts[i] for i in rows], run.task)
    if kind == "kto":  # the KL reference point pairs each completion with another's prompt
        shifted = p_rows[1:] + p_rows[:1]
        p_rows, c_rows = p_rows + shifted, c_rows + c_rows
    table = CompletionTable(p_rows, c_rows, run.tokenizer.pad_id)
    check_context(run.policy, int(table.tokens.lengths.max()), "prompts plus completions")
    policy_lp = PackedLogprobs(run.policy, temperature=1.0, precision=run.precision)
    ref_lp = policy_lp if run.reference is run.policy else PackedLogprobs(
        run.reference, temperature=1.0, precision=run.precision)
    average = kind == "dpo" and objective.loss == "ipo"
    was = run.policy.training
    run.policy.eval()
    reference = reference_logprobs(ref_lp, table, batch_size=2 * spec.batch_size,
                                   average=average, context=run.ref_context)
    run.policy.train(was)
    optimizer = run.optimizer()
    every = max(1, spec.steps // MEASUREMENTS)
    for step in range(spec.steps):
        draw = (rand((spec.batch_size,), run.generator, torch.device("cpu")) * size).long()
        draw = draw.clamp(max=size - 1)
        extra: dict[str, Tensor] = {}
        if kind == "dpo":
            index = torch.cat([draw, draw + size])
            out = dpo_step(policy_lp, optimizer, table.batch(index, run.device),
                           reference[to_device(index, run.device)], objective)
            loss = out.pop("objective")
            extra = out
        else:
            index = torch.cat([draw, draw + size]) if kind == "kto" else draw
            batch = table.batch(index, run.device)
            lp = policy_lp(batch)
            if kind == "kto":
                seq = sequence_logprob(lp, batch.mask)
                ref = reference[to_device(index, run.device)]
                b = len(draw)
                z0 = kto_reference_point(seq[b:].detach(), ref[b:])
                loss = kto_loss(seq[:b], ref[:b], desirable[to_device(draw, run.device)], z0,
                                objective.beta, objective.desirable_weight,
                                objective.undesirable_weight).mean()
                extra = {"reference_point": z0}
            else:
                loss = sft_loss(lp, batch.mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if (step + 1) % every == 0 or step == spec.steps - 1:
            run.measure_on_policy(loss.detach(), **extra)
        else:
            run.measure(loss.detach(), **extra)
        run.done(step)


# ----------------------------------------------------------------------------------- entry


def optimize_text_policy(spec: Policy, policy, tokenizer: TextTokenizer, task,
                         prompts: Sequence[str], *, reward_fn: RewardFn | None = None,
                         labels: LabelTable | None = None, reference=None,
                         generator: torch.Generator, device: torch.device | str,
                         precision: str = "auto", progress: Callable[[int], Any] | None = None,
                         gold_fn: RewardFn | None = None) -> tuple[Any, dict[str, list[float]]]:
    """Optimise a causal LM π_θ (Eq. 3) with the spec's objective (see the module docstring).

    Args:
        spec: the `policy` declaration (objective, conservative, steps, batch_size — completions
            per step, or examples per step for DPO/KTO/SFT — and the optimiser; learning rate
            default 1e-4).
        policy: the causal LM, trained in place (a LoRA model trains its adapter only).
        tokenizer: its tokenizer.
        task: the `TextTask` (max_prompt_tokens, max_new_tokens, temperature, top_k).
        prompts: the prompts rollouts are drawn from (uniformly, with replacement).
        reward_fn: the reward of completions, ``(prompts, completions) → [E, N]`` (or
            ``completions → [E, N]``; [N] is one member); needed by the RL objectives, best-of-n
            and rejection sampling, measured (``proxy_reward``) for the others when given.
        labels: the feedback for DPO (pairs), KTO (desirable / undesirable) and SFT
            (corrections); items index ``meta["texts"]`` with ``meta["prompts"]``.
        reference: π_ref; None: the policy with its adapter disabled if it has a LoRA
            adapter, else a frozen copy of the policy as it is now.
        generator: the stage's generator (prompts, sampling, minibatches, dropout).
        device: where to optimise (the policy is moved there).
        precision: `auto` (bf16 autocast on CUDA), `bf16` or `fp32`.
        progress: called with the number of steps done after each step.
        gold_fn: optional, like ``reward_fn``: the gold reward, recorded as ``gold_reward`` on
            the same samples.

    Returns:
        (policy, metrics): per step ``objective``; ``proxy_reward`` (with a reward),
        ``conservative_reward`` (α > 0), ``gold_reward`` (with ``gold_fn``), ``kl`` (mean over
        completions of Σ_t k_t, the spec's estimator, k1 for objectives without one),
        ``entropy`` (per token), ``length`` (tokens per completion), measured on the step's
        rollout (NaN on DPO/KTO/SFT steps that measured none); ``kl_coef`` (RL objectives),
        ``kl_bound`` and ``base_reward`` (best-of-n, a single step), ``kept_reward``
        (rejection sampling), ``margin`` and ``accuracy`` (DPO), ``reference_point`` (KTO).
    """
    device = torch.device(device)
    fast_activations(policy).to(device).train()
    if reference is not None:
        fast_activations(reference).to(device)
    kind = spec.objective.type
    if kind in NEEDS_REWARD and reward_fn is None:
        raise ValueError(f"the {kind} objective needs a reward: pass reward_fn")
    run = _Run(spec, policy, tokenizer, task, list(prompts), reward_fn, gold_fn, reference,
               generator, device, precision, progress)
    with seeded(generator, device):
        if kind in ("ppo", "reinforce", "rloo", "grpo"):
            _policy_gradient(run)
        elif kind == "best_of_n":
            _best_of_n(run)
        elif kind == "rejection_sampling":
            _rejection_sampling(run)
        else:
            _from_labels(run, labels)
    metrics = {name: torch.stack(values).tolist() for name, values in run.record.items()}
    return policy, metrics


__all__ = ["CompletionTable", "PackedBatch", "PackedLogprobs", "best_of_n", "call_reward",
           "dpo_step", "encode_items", "optimize_text_policy", "reference_logprobs"]

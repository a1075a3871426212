"""Eq. 2 on texts: fitting the value-head reward model r̂_φ(x, y) on feedback about completions.

    φ* = argmin_φ  Σ_i ℓ(r̂_φ(x_i), y_i) + λ_r(φ)                                    (Eq. 2)

The statistics are the bandit fitter's (:mod:`backends.torch.reward`), reused rather than
copied: :func:`~backends.torch.reward.data.training_data` turns each label table into the
training terms of the spec's loss, the held-out split is by query, and
:func:`~backends.torch.reward.fit.term_losses` / :func:`~backends.torch.reward.fit.evaluate_terms`
give every loss's per-term value (Bradley–Terry, BPR, Plackett–Luce, regression, ordinal,
classification; multi-objective and mixture heads) and the held-out loss and accuracy.
What is text's own is how an item gets its reward, and the loop that feeds token batches:

* An item of a text label table is a completion (``meta["texts"]``) with its prompt
  (``meta["prompts"]``, empty when absent). Its sequence is BOS + prompt + completion + EOS,
  the joined prompt and completion cut from the left so that the whole has at most
  ``max_tokens`` tokens; r̂ is the value head at its last token (:mod:`.reward_model`).
* Sequences are right-padded and run **without an attention mask**: attention is causal, so no
  real token attends to the padding after it, the rewards equal ``RewardModel.forward`` with
  the mask, and SDPA can take its causal (flash) kernel.
* One forward pass per step scores every distinct item of the minibatch (all forms of all
  tables together) for every ensemble member: members share the backbone and own a head, so
  they see the same minibatch and differ by their heads' initialisation (the bandit's members,
  which cost nothing to run apart, draw their own orders).
* Minibatch orders are drawn on the host from the stage's generator and batches are assembled
  there, then copied pinned and non-blocking: a step never waits for the device.
* On CUDA: bf16 autocast (``precision = auto``) and the scoring function compiled with
  ``torch.compile``; everywhere the fused Adam/AdamW kernel and GPT-2's GELU as one kernel
  (:func:`fast_activations`).

:func:`reward_step` is one optimisation step; ``benchmarks/bench_train.py`` times
:func:`fit_text_reward`, which calls it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from backends.torch.labels import LabelTable
from backends.torch.reward.data import TrainingData
from backends.torch.reward.fit import evaluate_terms, prepare_terms, term_loss_sum
from backends.torch.reward.losses import l2_penalty
from backends.torch.reward.models import BanditRewardModel
from backends.torch.reward.training import build_optimizer, permutations
from backends.torch.text.models import autocast, check_context, model_device, seeded
from backends.torch.text.reward_model import RewardModel
from backends.torch.text.tokenizer import TextTokenizer, pad_rows
from rlhfdsl.spec.learning import Reward

SCORE_TOKENS = 2**16  # tokens per forward pass when scoring without gradients

# ------------------------------------------------------------------ host batches, device copies


def to_device(tensor: Tensor, device: torch.device | str) -> Tensor:
    """A host tensor on ``device`` without waiting for it: pinned and non-blocking on CUDA (a
    plain copy from pageable memory synchronises the stream)."""
    device = torch.device(device)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


FUSED_DEVICES = ("cuda", "cpu")  # where torch has fused Adam, AdamW and SGD kernels


def fused(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """Switch Adam, AdamW and SGD to their fused kernel (one kernel for all parameters; on
    CUDA ``build_optimizer`` would leave torch its slower ``foreach`` default). Valid before the
    first step: the optimiser state is created lazily with the group's flags."""
    for group in optimizer.param_groups:
        params = group["params"]
        if "fused" in group and params and all(
                p.device.type in FUSED_DEVICES and p.device.type == params[0].device.type
                and p.is_floating_point() for p in params):
            group["fused"], group["foreach"] = True, False
    return optimizer


def fast_activations(model: nn.Module) -> nn.Module:
    """Swap transformers' ``NewGELUActivation`` (GPT-2's `gelu_new`: eight elementwise
    kernels, each a pass over the MLP's activations, forward and backward) for its fused
    equivalent ``GELUTanh`` — the same function 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) in one
    kernel, which transformers documents as equivalent up to rounding. In place; the config is
    untouched, so a saved model reloads with the original module."""
    from transformers import activations

    fused_gelu = getattr(activations, "GELUTanh", None) or activations.PytorchGELUTanh

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is activations.NewGELUActivation:
                setattr(module, name, fused_gelu())
    return model


class TokenTable:
    """Token sequences kept on the host, right-padded: ``ids`` int64 [M, W], ``lengths`` [M].
    :meth:`rows` selects rows and trims the padding every selected row has."""

    def __init__(self, rows: Sequence[Sequence[int]], pad_id: int):
        if any(len(r) == 0 for r in rows):
            raise ValueError("a token sequence is empty")
        encoded = pad_rows(rows, pad_id, "right")
        self.ids = encoded.input_ids
        self.lengths = encoded.attention_mask.sum(-1)
        self.pad_id = pad_id

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def rows(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """(ids [B, L], lengths [B]) of the rows ``index`` (host tensors), L the longest."""
        lengths = self.lengths[index]
        width = int(lengths.max()) if len(index) else 0
        return self.ids[index, :width], lengths


def token_lists(tokenizer: TextTokenizer, texts: Sequence[str], *, max_length: int | None = None,
                truncation_side: str = "right", add_bos: bool = False,
                add_eos: bool = False) -> list[list[int]]:
    """Token ids of each text (the tokenizer's conventions: specials kept when cut)."""
    if not texts:
        return []
    enc = tokenizer.encode_batch(list(texts), padding_side="right", max_length=max_length,
                                 truncation_side=truncation_side, add_bos=add_bos,
                                 add_eos=add_eos)
    return [row[:n] for row, n in zip(enc.input_ids.tolist(), enc.lengths.tolist())]


def reward_sequences(tokenizer: TextTokenizer, prompts: Sequence[str],
                     completions: Sequence[str], max_tokens: int) -> list[list[int]]:
    """BOS + prompt + completion + EOS per item, the joined prompt + completion cut from the
    left so that the sequence has at most ``max_tokens`` tokens (the completion's end is kept,
    as :meth:`RewardModel.score_texts` keeps a text's)."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    unique = sorted(set(prompts))
    prompt_ids = dict(zip(unique, token_lists(tokenizer, unique)))
    head = [tokenizer.bos_id] if tokenizer.bos_id is not None else []
    tail = [tokenizer.eos_id] if tokenizer.eos_id is not None else []
    room = max_tokens - len(head) - len(tail)
    if room < 1:
        raise ValueError(f"max_tokens = {max_tokens} leaves no room for text")
    out = []
    for prompt, ids in zip(prompts, token_lists(tokenizer, completions)):
        body = prompt_ids[prompt] + ids
        out.append(head + body[max(0, len(body) - room):] + tail)
    return out


def merge_items(tables: Sequence[LabelTable]) -> tuple[list[str], list[str], list[LabelTable]]:
    """One item list for several text label tables: (prompts, completions, tables whose
    ``items`` and ``corrected`` index them)."""
    prompts: list[str] = []
    texts: list[str] = []
    merged = []
    for table in tables:
        if "texts" not in table.meta:
            raise ValueError("a text label table needs its `texts` metadata")
        table_texts = list(table.meta["texts"])
        table_prompts = table.meta.get("prompts") or [""] * len(table_texts)
        shift = len(texts)
        columns = dict(table.columns)
        for name in ("items", "corrected"):
            if name in columns and shift:
                columns[name] = torch.where(columns[name] >= 0, columns[name] + shift,
                                            columns[name])
        texts.extend(table_texts)
        prompts.extend(table_prompts)
        merged.append(LabelTable(table.kind, columns, dict(table.meta)))
    return prompts, texts, merged


# ----------------------------------------------------------------------------- scoring


def sequence_rewards(model: RewardModel, ids: Tensor, lengths: Tensor) -> Tensor:
    """r̂ of right-padded sequences, run without an attention mask (causal attention: real
    tokens never see the padding that follows them): the value head at each row's last token,
    float32 [B, members, outputs]. Call it under :func:`~.models.autocast`. The ids go in as
    embeddings, which skips transformers' padding check (it reads the ids back to the host)."""
    backbone = model.backbone
    hidden = backbone(inputs_embeds=backbone.get_input_embeddings()(ids),
                      use_cache=False).last_hidden_state
    pooled = hidden[torch.arange(ids.shape[0], device=ids.device), lengths - 1]
    return model.head(pooled).float().view(-1, model.members, model.outputs)


@torch.no_grad()
def score_completions(model: RewardModel, tokenizer: TextTokenizer, prompts: Sequence[str],
                      completions: Sequence[str], *, max_tokens: int, precision: str = "auto"
                      ) -> Tensor:
    """Rewards of (prompt, completion) pairs as fitted by :func:`fit_text_reward`: float32
    [N, members, outputs] on the model's device (evaluation mode, batches of at most
    :data:`SCORE_TOKENS` tokens, longest first)."""
    device = model_device(model)
    if not completions:
        return torch.zeros(0, model.members, model.outputs, device=device)
    table = TokenTable(reward_sequences(tokenizer, prompts, completions, max_tokens),
                       tokenizer.pad_id)
    check_context(model, int(table.lengths.max()), "reward-model sequences")
    order = table.lengths.argsort(descending=True)
    out = torch.empty(len(table), model.members, model.outputs, device=device)
    was = model.training
    model.eval()
    start = 0
    while start < len(order):
        size = max(1, SCORE_TOKENS // int(table.lengths[order[start]]))
        index = order[start:start + size]
        ids, lengths = table.rows(index)
        with autocast(device, precision):
            out[to_device(index, device)] = sequence_rewards(
                model, to_device(ids, device), to_device(lengths, device))
        start += size
    model.train(was)
    return out


def reward_function(model: RewardModel, tokenizer: TextTokenizer, *, max_tokens: int,
                    combine: Sequence[Sequence[float]] | Tensor | None = None,
                    precision: str = "auto") -> Callable[[list[str], list[str]], Tensor]:
    """The ensemble's reward as :func:`~.train_policy.optimize_text_policy` takes it:
    ``(prompts, completions) → [E, N]``. ``combine`` [E, outputs] (``metrics["combine"]`` of
    :func:`fit_text_reward`) weighs a multi-output head's outputs; a scalar head needs none."""
    weights = None if combine is None else torch.as_tensor(combine, dtype=torch.float32)

    def rewards(prompts: list[str], completions: list[str]) -> Tensor:
        out = score_completions(model, tokenizer, prompts, completions, max_tokens=max_tokens,
                                precision=precision)
        if weights is None:
            if out.shape[-1] != 1:
                raise ValueError("a multi-output reward head needs its `combine` weights")
            return out[..., 0].T
        return (out * weights.to(out.device)).sum(-1).T

    return rewards


# ---------------------------------------------------------------- the fitter's model interface


class TextRewardTerms(nn.Module):
    """A text :class:`RewardModel` behind the interface the reward fitter's term functions call
    (``ensemble``, ``component_scores``, ``add_link``, ``link``, ``reward_parameters``): items
    are rows of a :class:`TokenTable`. The head logic — multi-objective group weights, mixture
    weights per evaluator, the links of ordinal / category / anchor terms — is the bandit
    model's own methods, on parameters of the same names held here.

    Inside :meth:`staged` the distinct items of a minibatch are scored once and
    :meth:`outputs` reads them; outside it (held-out evaluation) items are scored on demand,
    without gradients."""

    add_link = BanditRewardModel.add_link
    link = BanditRewardModel.link
    mixing_weights = BanditRewardModel.mixing_weights
    combine = BanditRewardModel.combine
    component_scores = BanditRewardModel.component_scores

    def __init__(self, model: RewardModel, spec: Reward, table: TokenTable, *,
                 num_evaluators: int, num_groups: int, generator: torch.Generator,
                 precision: str = "auto", compile: bool | None = None):
        super().__init__()
        E, H = spec.ensemble, (1 if spec.head.type == "scalar" else spec.head.k)
        if (model.members, model.outputs) != (E, H):
            raise ValueError(f"the reward model has {model.members} members × {model.outputs} "
                             f"outputs; the spec asks for {E} × {H}")
        device = model_device(model)
        self.model = model
        self.table = table
        self.ensemble = E
        self.head = spec.head.type
        self.outputs_per_item = H
        self.precision = precision
        self.links = nn.ParameterDict()
        if self.head == "multi_objective":
            weights = spec.head.weights if spec.head.weights is not None else (1.0 / H,) * H
            if len(weights) != H:
                raise ValueError(f"multi_objective({H}) needs {H} weights, got {len(weights)}")
            w = torch.tensor(weights, dtype=torch.float32, device=device)
            self.register_buffer("objective_weights", w)
            start = torch.log(w.clamp(min=1e-6) / w.clamp(min=1e-6).sum())
            self.group_logits = nn.Parameter(start.expand(E, num_groups, H).clone())
        elif self.head == "mixture":
            draw = torch.randn((E, num_evaluators, H), generator=generator,
                               device=generator.device) * 0.1
            self.mix_logits = nn.Parameter(draw.to(device))
            self.register_buffer("evaluator_counts", torch.ones(num_evaluators, device=device))
        use_compile = device.type == "cuda" if compile is None else compile
        self._score = torch.compile(sequence_rewards) if use_compile else sequence_rewards
        self.register_buffer("_lut", torch.zeros(len(table), dtype=torch.long, device=device),
                             persistent=False)
        self._staged: Tensor | None = None

    @property
    def device(self) -> torch.device:
        return self._lut.device

    def reward_parameters(self) -> list[nn.Parameter]:
        """φ of the reward function: the whole reward model (what the L2 term penalises)."""
        return list(self.model.parameters())

    @contextlib.contextmanager
    def staged(self, items: Tensor) -> Iterator[None]:
        """Score the distinct items of ``items`` (a host tensor, −1 for padding) in one forward
        pass with gradients; inside the block :meth:`outputs` reads those scores."""
        unique = torch.unique(items[items >= 0])
        ids, lengths = self.table.rows(unique)
        with autocast(self.device, self.precision):
            rewards = self._score(self.model, to_device(ids, self.device),
                                  to_device(lengths, self.device))
        self._lut[to_device(unique, self.device)] = torch.arange(len(unique), device=self.device)
        self._staged = rewards
        try:
            yield
        finally:
            self._staged = None

    def outputs(self, items: Tensor, extra_features: Tensor | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        """Head outputs [E, *S, H] of items [E, *S] (−1 padding gives an arbitrary row, which
        the losses mask)."""
        if self._staged is not None:
            rewards = self._staged
            rows = self._lut[items.clamp(min=0)].clamp(0, rewards.shape[0] - 1)
        else:
            unique, inverse = torch.unique(items.clamp(min=0).cpu(), return_inverse=True)
            rewards = self._score_items(unique)
            rows = inverse.to(items.device)
        E, H = items.shape[0], rewards.shape[-1]
        flat = rows.reshape(E, -1, 1).expand(-1, -1, H)
        out = rewards.permute(1, 0, 2).gather(1, flat)                  # member e reads column e
        return out.reshape(*items.shape, H)

    def _score_items(self, unique: Tensor) -> Tensor:
        """[U, E, H] for host item ids, in batches of at most :data:`SCORE_TOKENS` tokens."""
        parts = []
        start = 0
        while start < len(unique):
            size = max(1, SCORE_TOKENS // int(self.table.lengths[unique[start:]].max()))
            ids, lengths = self.table.rows(unique[start:start + size])
            with autocast(self.device, self.precision):
                parts.append(sequence_rewards(self.model, to_device(ids, self.device),
                                              to_device(lengths, self.device)))
            start += size
        return torch.cat(parts)

    def combine_weights(self) -> Tensor | None:
        """[E, H]: how the policy's reward weighs a multi-output head (the spec's weights, or
        the mixture's label-weighted π̄); None for a scalar head."""
        if self.head == "multi_objective":
            return self.objective_weights.expand(self.ensemble, -1).detach().clone()
        if self.head == "mixture":
            return self.mixing_weights().detach()
        return None


# ------------------------------------------------------------------------------------ fitting


def terms_to(piece: TrainingData, device: torch.device) -> TrainingData:
    """A piece's tensors on ``device``, copied without waiting."""
    def move(t):
        return None if t is None else to_device(t, device)
    return dataclasses.replace(piece, items=move(piece.items), target=move(piece.target),
                               evaluator=move(piece.evaluator), group=move(piece.group),
                               query=move(piece.query), extra_features=move(piece.extra_features))


def reward_step(terms: TextRewardTerms, optimizer: torch.optim.Optimizer,
                batch: Sequence[tuple[TrainingData, Tensor]], *, l2: float = 0.0,
                generator: torch.Generator | None = None) -> Tensor:
    """One step of Eq. 2 on a minibatch: ``batch`` pairs each training form (host tensors)
    with its rows (host int64). The distinct items are scored in one forward pass; each term's
    loss is the fitter's (:func:`~backends.torch.reward.fit.term_losses`; BPR's per-evaluator
    mean weighted by its rows), averaged over the minibatch, plus λ·Σφ² / E. Returns the
    loss (mean over members), detached, on the device: nothing here waits for the device."""
    device, E = terms.device, terms.ensemble
    items = torch.cat([piece.items[rows].reshape(-1) for piece, rows in batch])
    count = sum(len(rows) for _, rows in batch)
    loss = torch.zeros(E, device=device)
    with terms.staged(items):
        for piece, rows in batch:
            sub = terms_to(piece.select(rows), device)
            index = torch.arange(len(rows), device=device).expand(E, -1)
            loss = loss + term_loss_sum(terms, sub, index, generator)
    loss = loss / count
    if l2:
        loss = loss + l2_penalty(terms.reward_parameters(), l2) / E
    optimizer.zero_grad(set_to_none=True)
    loss.sum().backward()  # the members' heads are independent; the backbone gets their sum
    optimizer.step()
    return loss.detach().mean()


def fit_text_reward(spec: Reward, tables: Sequence[LabelTable], model: RewardModel,
                    tokenizer: TextTokenizer, *, generator: torch.Generator,
                    device: torch.device | str, precision: str = "auto", max_tokens: int,
                    init_state: dict[str, Tensor] | None = None,
                    progress: Callable[[int], Any] | None = None
                    ) -> tuple[RewardModel, dict[str, Any]]:
    """Fit r̂_φ (Eq. 2) on text label tables.

    Args:
        spec: the `reward` declaration: loss, regularisers (l2, label smoothing, ties), the
            optimiser (learning rate default 1e-4), epochs, batch size (training terms per
            step), holdout, ensemble and head (the model must have ``ensemble`` members and the
            head's outputs).
        tables: label tables of text feedback (any kinds the loss consumes); their items index
            ``meta["texts"]``, with ``meta["prompts"]``.
        model: the reward model to fit (in place), from ``build_reward_model``.
        tokenizer: the model's tokenizer.
        generator: the stage's generator: split, minibatch orders, mixture-head initialisation
            and dropout all draw from it, so a seed gives the same numbers on the same device.
        device: where to fit.
        precision: `auto` (bf16 autocast on CUDA), `bf16` or `fp32`.
        max_tokens: the longest sequence (BOS + prompt + completion + EOS) scored.
        init_state: a ``RewardModel.state_dict()`` to start from (warm start across rounds).
        progress: called with the number of optimisation steps done after each step.

    Returns:
        (model, metrics): per epoch ``loss`` (training objective incl. λ_r), ``holdout_loss``
        and ``holdout_accuracy`` (NaN without held-out labels); ``epoch``, ``steps`` (per
        epoch), ``train_terms``, ``holdout_terms``, ``losses`` (the loss per table), and
        ``combine`` ([E][H] weights of a multi-output head for :func:`reward_function`, None
        for a scalar head).
    """
    device = torch.device(device)
    tables = [t.to("cpu") for t in tables]
    if not tables:
        raise ValueError("no labels to fit the reward model on")
    prompts, texts, tables = merge_items(tables)
    if init_state is not None:
        model.load_state_dict(init_state)
    fast_activations(model).to(device).train()
    table = TokenTable(reward_sequences(tokenizer, prompts, texts, max_tokens), tokenizer.pad_id)
    check_context(model, int(table.lengths.max()), "reward-model sequences (`max_tokens`)")
    evaluators = max(int(t.columns["evaluator"].max()) + 1 if len(t) else 1 for t in tables)
    groups = max(int(t.columns["group"].max()) + 1 if len(t) else 1 for t in tables)
    terms = TextRewardTerms(model, spec, table, num_evaluators=evaluators, num_groups=groups,
                            generator=generator, precision=precision)

    train, held, losses_used = prepare_terms(spec, tables, generator, terms)
    if terms.head == "mixture":
        counts = torch.zeros(evaluators)
        for piece in train:
            counts.scatter_add_(0, piece.evaluator.clamp(0, evaluators - 1),
                                torch.ones(len(piece)))
        terms.evaluator_counts.copy_(counts)
    held_device = [terms_to(piece, device) for piece in held]

    optimizer = fused(build_optimizer(spec.optimizer, terms.parameters(), "text"))
    total = sum(len(p) for p in train)
    steps = max(1, math.ceil(total / spec.batch_size))
    history: dict[str, list[Tensor]] = {"loss": [], "holdout_loss": [], "holdout_accuracy": []}
    done = 0
    host = torch.device("cpu")
    with seeded(generator, device):
        for _ in range(spec.epochs):
            terms.train()
            orders = [permutations(1, len(p), generator, host)[0].tensor_split(steps)
                      for p in train]
            epoch_loss = torch.zeros((), device=device)
            for step in range(steps):
                batch = [(p, order[step]) for p, order in zip(train, orders) if len(order[step])]
                if not batch:
                    continue
                loss = reward_step(terms, optimizer, batch, l2=spec.regularize.l2,
                                   generator=generator)
                epoch_loss = epoch_loss + loss / steps
                done += 1
                if progress is not None:
                    progress(done)
            history["loss"].append(epoch_loss)
            if held_device:
                h_loss, h_acc = evaluate_terms(terms, held_device, generator)
            else:
                h_loss = h_acc = torch.tensor(float("nan"), device=device)
            history["holdout_loss"].append(h_loss)
            history["holdout_accuracy"].append(h_acc)
    model.eval()
    metrics: dict[str, Any] = {k: torch.stack(v).tolist() for k, v in history.items()}
    combine = terms.combine_weights()
    metrics.update(epoch=list(range(1, spec.epochs + 1)), steps=steps, train_terms=total,
                   holdout_terms=sum(len(p) for p in held), losses=losses_used,
                   combine=None if combine is None else combine.tolist())
    return model, metrics


__all__ = ["TextRewardTerms", "TokenTable", "fast_activations", "fit_text_reward", "fused",
           "merge_items", "reward_function", "reward_sequences", "reward_step",
           "score_completions", "sequence_rewards", "to_device", "token_lists"]

"""Eq. 2: fitting the reward model r̂_φ on the feedback.

    φ* = argmin_φ  Σ_i ℓ(r̂_φ(x_i), y_i) + λ_r(φ)                                    (Eq. 2)

:func:`fit_reward` prepares the training terms of each label table for the spec's loss
(:mod:`backends.torch.reward.data`), holds out a fraction of the *queries* (so repeated labels
of one query never straddle the split), and runs ``epochs`` passes of minibatch optimisation.
All E ensemble members train in one batched step; each draws its own minibatch order.

A reward model is anything with the :class:`BanditRewardModel` fitting interface
(``ensemble``, ``component_scores``, ``add_link``, ``link``, ``reward_parameters``): the text
backend's language-model reward models are passed as ``model=`` and fitted by the same loop.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor

from backends.torch.labels import LabelTable
from backends.torch.reward.data import TrainingData, training_data
from backends.torch.reward.losses import (
    bradley_terry_loss, classification_loss, comparison_accuracy, l2_penalty, ordinal_loss,
    per_evaluator_mean, plackett_luce_loss, regression_loss,
)
from backends.torch.reward.models import BanditRewardModel
from backends.torch.reward.training import (
    as_generator, build_optimizer, permutations, rand, resolve_device,
)
from rlhfdsl.spec.learning import LinearBackbone, Reward

EVAL_CHUNK = 8192
CONCORDANCE_PAIRS = 4096


def build_reward_model(spec: Reward, features: Tensor | None = None, *,
                       num_actions: int | None = None, num_evaluators: int = 1,
                       num_groups: int = 1, generator: torch.Generator | int | None = None,
                       device: torch.device | str | None = None) -> BanditRewardModel:
    """An untrained bandit reward model for the spec (backbone default: `linear`)."""
    backbone = spec.backbone or LinearBackbone()
    if num_actions is None:
        if features is None:
            raise ValueError("a tabular reward model needs num_actions")
        num_actions = features.shape[0]
    return BanditRewardModel(
        backbone, spec.head, num_actions=num_actions, features=features,
        ensemble=spec.ensemble, num_evaluators=num_evaluators, num_groups=num_groups,
        dropout=spec.regularize.dropout, generator=as_generator(generator),
        device=resolve_device(device, features))


def reward_model_from_state(spec: Reward, state: dict[str, Tensor],
                            features: Tensor | None = None, *, num_actions: int | None = None,
                            device: torch.device | str | None = None) -> BanditRewardModel:
    """Rebuild a fitted bandit reward model from its ``state_dict`` (e.g. loaded from
    safetensors): shapes of the mixture / multi-objective weights and the links are read from
    the state."""
    num_evaluators = state["mix_logits"].shape[1] if "mix_logits" in state else 1
    num_groups = state["group_logits"].shape[1] if "group_logits" in state else 1
    if num_actions is None and "table" in state:
        num_actions = state["table"].shape[1]
    model = build_reward_model(spec, features, num_actions=num_actions,
                               num_evaluators=num_evaluators, num_groups=num_groups,
                               device=device)
    for key in state:
        if key.startswith("links."):
            model.add_link(key.split(".", 1)[1])
    model.load_state_dict(state)
    return model


def fit_reward(spec: Reward, labels: LabelTable | Sequence[LabelTable],
               features: Tensor | None = None, *, num_actions: int | None = None,
               num_evaluators: int | None = None, num_groups: int | None = None,
               domain: str = "bandit", model: Any = None,
               generator: torch.Generator | int | None = None,
               device: torch.device | str | None = None,
               init_state: dict[str, Tensor] | None = None,
               gold: Tensor | None = None, accuracy_pairs: int = 2000,
               ) -> tuple[Any, dict[str, Any]]:
    """Fit r̂_φ (Eq. 2) on one or more label tables.

    Args:
        spec: the `reward` declaration (loss, regularisers, optimiser, epochs, batch size,
            holdout, ensemble, head, backbone).
        labels: the label table(s) of the feedback it is fitted on (kinds may differ; each is
            prepared for the spec's loss, ``auto`` resolving per kind).
        features: bandit action features [A, F] (needed by linear/mlp backbones and by the
            aspect terms of language feedback).
        num_actions, num_evaluators, num_groups: sizes (default: from features / the labels).
        domain: `bandit` or `text` (only the default learning rate depends on it here).
        model: a reward model to fit instead of building a bandit one (text backbones).
        generator: the stage's generator or seed: initialisation, split, minibatch orders and
            dropout all draw from it, so a seed gives the same numbers on the same device.
        device: where to fit (default: the features' device).
        init_state: a ``state_dict`` to start from (warm start across rounds).
        gold: gold reward of every action [A]: adds ``gold_accuracy`` (the `accuracy(pairs)`
            metric) on ``accuracy_pairs`` random action pairs, and ``gold_accuracy_unseen`` on
            pairs no comparison label was fitted on (NaN when every pair was labelled).

    Returns:
        (model, metrics): per epoch ``loss`` (training objective incl. λ_r), ``holdout_loss`` and
        ``holdout_accuracy`` (NaN with no held-out labels), plus ``train_terms`` and
        ``holdout_terms`` (training terms: one per label, except that Bradley–Terry/BPR on a
        ranking or best-of-k label gives one per implied pair and a critique one per aspect),
        ``losses`` (the loss per table) and, with ``gold``, ``gold_accuracy``
        and ``gold_accuracy_unseen``.
    """
    gen = as_generator(generator)
    tables = [labels] if isinstance(labels, LabelTable) else list(labels)
    if not tables:
        raise ValueError("no labels to fit the reward model on")
    device = resolve_device(device, features, getattr(model, "features", None))
    tables = [t.to(device) for t in tables]
    features = features.to(device) if features is not None else None

    if model is None:
        evaluators = max(int(t.columns["evaluator"].max()) + 1 if len(t) else 1 for t in tables)
        groups = max(int(t.columns["group"].max()) + 1 if len(t) else 1 for t in tables)
        model = build_reward_model(spec, features, num_actions=num_actions,
                                   num_evaluators=num_evaluators or evaluators,
                                   num_groups=num_groups or groups, generator=gen,
                                   device=device)
    feature_backbone = getattr(model, "backbone", None) in ("linear", "mlp")

    # -- training terms, split by query
    train, held, losses_used = prepare_terms(spec, tables, gen, model,
                                             features=features if feature_backbone else None)
    if init_state is not None:
        result = model.load_state_dict(init_state, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith("links.")]
        if missing:
            raise ValueError(f"init_state lacks {', '.join(missing)}")
    if hasattr(model, "evaluator_counts"):
        counts = torch.zeros_like(model.evaluator_counts)
        for piece in train:
            counts.scatter_add_(0, piece.evaluator.clamp(0, counts.numel() - 1),
                                torch.ones_like(piece.evaluator, dtype=counts.dtype))
        model.evaluator_counts.copy_(counts)

    params = list(model.parameters())
    optimizer = build_optimizer(spec.optimizer, params, domain)
    E = model.ensemble
    total = sum(len(p) for p in train)
    steps = max(1, math.ceil(total / spec.batch_size))
    history: dict[str, list[Tensor]] = {"loss": [], "holdout_loss": [], "holdout_accuracy": []}

    for _ in range(spec.epochs):
        model.train()
        orders = [permutations(E, len(p), gen, device).tensor_split(steps, dim=1) for p in train]
        epoch_loss = torch.zeros((), device=device)
        for step in range(steps):
            loss = torch.zeros(E, device=device)
            rows = sum(order[step].shape[1] for order in orders)
            if rows == 0:
                continue
            for piece, order in zip(train, orders):
                index = order[step]
                if index.shape[1] == 0:
                    continue
                loss = loss + term_loss_sum(model, piece, index, gen)
            loss = loss / rows
            if spec.regularize.l2:
                loss = loss + l2_penalty(model.reward_parameters(), spec.regularize.l2) / E
            optimizer.zero_grad(set_to_none=True)
            # members are independent: the sum gives each its own gradient
            loss.sum().backward()
            optimizer.step()
            epoch_loss = epoch_loss + loss.detach().mean() / steps
        history["loss"].append(epoch_loss)
        h_loss, h_acc = evaluate_terms(model, held, gen) if held else (
            torch.tensor(float("nan"), device=device),) * 2
        history["holdout_loss"].append(h_loss)
        history["holdout_accuracy"].append(h_acc)

    model.eval()
    metrics: dict[str, Any] = {k: torch.stack(v).tolist() for k, v in history.items()}
    metrics["epoch"] = list(range(1, spec.epochs + 1))
    metrics["train_terms"] = total
    metrics["holdout_terms"] = sum(len(p) for p in held)
    metrics["losses"] = losses_used
    if gold is not None:
        rewards = model.rewards()
        metrics["gold_accuracy"] = float(gold_accuracy(rewards, gold, accuracy_pairs, gen))
        metrics["gold_accuracy_unseen"] = float(gold_accuracy(
            rewards, gold, accuracy_pairs, gen, exclude=trained_pairs(train, rewards.shape[-1])))
    return model, metrics


def prepare_terms(spec: Reward, tables: Sequence[LabelTable], gen: torch.Generator, model: Any,
                  *, features: Tensor | None = None,
                  ) -> tuple[list[TrainingData], list[TrainingData], list[str | None]]:
    """:func:`split_terms`, refusing when nothing is left to train on, and registering with the
    model the link functions (ordinal thresholds, category offsets) the terms need."""
    train, held, losses = split_terms(spec, tables, gen, features=features)
    if not train:
        raise ValueError("no usable labels to fit the reward model on (all skipped, dropped "
                         "or held out)")
    for piece in train + held:
        if piece.link:
            model.add_link(piece.link)
    return train, held, losses


def split_terms(spec: Reward, tables: Sequence[LabelTable], gen: torch.Generator, *,
                features: Tensor | None = None,
                ) -> tuple[list[TrainingData], list[TrainingData], list[str | None]]:
    """The training terms of every table for the spec's loss, split by query into (train,
    held out) — all terms of a query fall on one side — and the loss each table resolved to.
    ``features`` (bandit feature backbones) lets critiques add their aspect terms."""
    reg = spec.regularize
    train: list[TrainingData] = []
    held: list[TrainingData] = []
    losses: list[str | None] = []
    for table in tables:
        pieces = training_data(table, spec.loss, ties=reg.ties,
                               label_smoothing=reg.label_smoothing, features=features)
        losses.append(pieces[0].loss if pieces else None)
        holdout = _holdout_queries(table, spec.holdout, gen)
        for piece in pieces:
            out = torch.isin(piece.query, holdout)
            if (~out).any():
                train.append(piece.select(~out))
            if out.any():
                held.append(piece.select(out))
    return train, held, losses


def _holdout_queries(table: LabelTable, fraction: float, gen: torch.Generator) -> Tensor:
    queries = torch.unique(table.columns["query"])
    n = int(round(fraction * queries.numel()))
    if fraction > 0 and queries.numel() > 1:
        n = min(max(n, 1), queries.numel() - 1)
    order = permutations(1, queries.numel(), gen, queries.device)[0]
    return queries[order[:n]]


def term_loss_sum(model: Any, piece: TrainingData, index: Tensor,
                  generator: torch.Generator | None = None) -> Tensor:
    """Σ_i ℓ_i over rows ``index`` [E, b], per member [E]; BPR-style terms average per evaluator
    first (so a prolific evaluator does not dominate), then count as b terms."""
    nll = term_losses(model, piece, index, generator)            # [E, b]
    if piece.per_evaluator:
        return per_evaluator_mean(nll, piece.evaluator[index]) * nll.shape[1]
    return nll.sum(1)


def term_losses(model: Any, piece: TrainingData, index: Tensor,
                generator: torch.Generator | None = None) -> Tensor:
    """The per-term loss ℓ_i [E, b] of rows ``index`` [E, b] of one training form (each member
    its own rows); a mixture head's components are combined as −log Σ_j π_{e,j} e^{−ℓ_ij}."""
    items = piece.items[index]                                   # [E, b, K]
    target = piece.target[index].unsqueeze(1)                    # [E, 1, b]
    scores, log_mix = model.component_scores(items, piece.group[index], piece.evaluator[index],
                                             piece.extra_features, generator)
    nll = _form_nll(model, piece, scores, target, items)        # [E, C, b]
    if log_mix is not None:
        return -(log_mix - nll).logsumexp(1)
    return nll[:, 0]


def _form_nll(model: Any, piece: TrainingData, scores: Tensor, target: Tensor,
              items: Tensor) -> Tensor:
    form = piece.form
    E = scores.shape[0]
    if form == "pairs":
        return bradley_terry_loss(scores[..., 0], scores[..., 1], target, piece.margin)
    if form == "anchor":
        r0 = model.link("anchor").reshape(E, 1, 1)
        return bradley_terry_loss(scores[..., 0], r0, target, piece.margin)
    if form == "ranking":
        return plackett_luce_loss(scores, (items >= 0).unsqueeze(1), piece.top,
                                  piece.label_smoothing)
    if form == "regression":
        return regression_loss(scores[..., 0], target)
    if form == "ordinal":
        thresholds = model.link(piece.link).reshape(E, 1, 1, -1)
        return ordinal_loss(scores[..., 0], target, thresholds, piece.label_smoothing)
    if form == "category":
        intercepts = model.link(piece.link).reshape(E, 1, 1, -1)
        return classification_loss(scores[..., 0], target, intercepts, piece.label_smoothing)
    raise ValueError(f"unknown training form {form!r}")


@torch.no_grad()
def evaluate_terms(model: Any, pieces: list[TrainingData],
                   generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Held-out loss (mean ℓ over terms and members) and accuracy: the fraction of held-out
    comparisons the ensemble-mean, evaluator-aware reward orders as labelled (pairs, ranking
    pairs, verdict vs neutral level), and for absolute ratings the concordance of random pairs
    of held-out rows with different ratings. A reward tie counts ½."""
    was = model.training
    model.eval()
    E = model.ensemble
    device = pieces[0].target.device
    loss_sum = torch.zeros((), device=device)
    hits = torch.zeros((), device=device)
    count = torch.zeros((), device=device)
    rows = 0
    for piece in pieces:
        preds = []
        for start in range(0, len(piece), EVAL_CHUNK):
            index = torch.arange(start, min(start + EVAL_CHUNK, len(piece)), device=device)
            index = index.unsqueeze(0).expand(E, -1)
            items = piece.items[index]
            scores, log_mix = model.component_scores(items, piece.group[index],
                                                     piece.evaluator[index],
                                                     piece.extra_features, None)
            nll = _form_nll(model, piece, scores, piece.target[index].unsqueeze(1), items)
            if log_mix is not None:
                nll = -(log_mix - nll).logsumexp(1)
                pred = (log_mix.exp().unsqueeze(-1) * scores).sum(1)
            else:
                nll, pred = nll[:, 0], scores[:, 0]
            if piece.per_evaluator:
                loss_sum += per_evaluator_mean(nll, piece.evaluator[index]).mean() * nll.shape[1]
            else:
                loss_sum += nll.mean(0).sum()
            preds.append(pred.mean(0))                          # [b, K]
        rows += len(piece)
        pred = torch.cat(preds)
        h, c = _agreement(model, piece, pred, generator)
        hits, count = hits + h, count + c
    model.train(was)
    return loss_sum / max(rows, 1), hits / count if count > 0 else hits * float("nan")


def _agreement(model: Any, piece: TrainingData, pred: Tensor,
               generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(hits, comparisons) of the reward's order against the held-out labels."""
    form = piece.form
    if form in ("pairs", "anchor"):
        a = pred[:, 0]
        b = pred[:, 1] if form == "pairs" else model.link("anchor").mean().expand_as(a)
        decided = piece.target != 0.5
        n = decided.sum()
        return comparison_accuracy(a, b, piece.target).nan_to_num(0.0) * n, n
    if form == "ranking":
        k = pred.shape[1]
        i, j = torch.triu_indices(k, k, offset=1, device=pred.device)
        if piece.top == 1:
            i, j = i[i == 0], j[i == 0]
        ok = (piece.items[:, i] >= 0) & (piece.items[:, j] >= 0)
        score = (torch.sign(pred[:, i] - pred[:, j]) + 1) / 2
        return score[ok].sum(), ok.sum()
    # absolute ratings: concordance on random pairs of rows
    n = len(piece)
    if n < 2:
        return pred.new_zeros(()), pred.new_zeros(())
    m = min(CONCORDANCE_PAIRS, n * (n - 1) // 2)
    first = (rand((m,), generator, pred.device) * n).long().clamp(max=n - 1)
    shift = (rand((m,), generator, pred.device) * (n - 1)).long().clamp(max=n - 2) + 1
    second = (first + shift) % n
    y = piece.target.float()
    if form == "category":
        y = -y                                                    # category 0 is the best
    truth = torch.sign(y[first] - y[second])
    ok = truth != 0
    score = (torch.sign(pred[first, 0] - pred[second, 0]) * truth + 1) / 2
    return score[ok].sum(), ok.sum()


def gold_accuracy(reward: Tensor, gold: Tensor, pairs: int = 2000,
                  generator: torch.Generator | int | None = None,
                  exclude: Tensor | None = None) -> Tensor:
    """The `accuracy(pairs)` metric: on ``pairs`` random pairs of distinct actions whose gold
    rewards differ, the fraction the reward model orders as gold does (a reward tie counts ½).

    ``reward`` is [A] or an ensemble [E, A] (its mean is used); ``gold`` is [A]. ``exclude``
    [M, 2] lists action pairs (either order) not to draw — the pairs the model was trained on —
    so the comparisons are held out; candidates are drawn 4× over so that ``pairs`` usually
    remain (NaN when none do)."""
    gen = as_generator(generator)
    if reward.dim() == 2:
        reward = reward.mean(0)
    gold = gold.to(reward.device)
    A = reward.shape[0]
    draws = pairs * 4 if exclude is not None else pairs
    first = (rand((draws,), gen, reward.device) * A).long().clamp(max=A - 1)
    shift = (rand((draws,), gen, reward.device) * (A - 1)).long().clamp(max=A - 2) + 1
    second = (first + shift) % A
    ok = gold[first] != gold[second]
    if exclude is not None and exclude.numel():
        exclude = exclude.to(reward.device)
        seen = torch.cat([exclude[:, 0] * A + exclude[:, 1], exclude[:, 1] * A + exclude[:, 0]])
        ok &= ~torch.isin(first * A + second, seen)
    keep = ok.nonzero().squeeze(-1)[:pairs]
    if not len(keep):
        return reward.new_tensor(float("nan"))
    first, second = first[keep], second[keep]
    truth = torch.sign(gold[first] - gold[second])
    return ((torch.sign(reward[first] - reward[second]) * truth + 1) / 2).mean()


def trained_pairs(pieces: list[TrainingData], num_actions: int) -> Tensor:
    """The action pairs [M, 2] that comparison terms (pairs, rankings) were fitted on."""
    out = [torch.zeros(0, 2, dtype=torch.long, device=pieces[0].items.device)] if pieces else []
    for piece in pieces:
        if piece.form not in ("pairs", "ranking"):
            continue
        k = piece.items.shape[1]
        i, j = torch.triu_indices(k, k, offset=1, device=piece.items.device)
        both = torch.stack([piece.items[:, i], piece.items[:, j]], dim=-1).reshape(-1, 2)
        out.append(both[((both >= 0) & (both < num_actions)).all(1)])
    return torch.cat(out) if out else torch.zeros(0, 2, dtype=torch.long)

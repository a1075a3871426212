"""From a label table to training tensors: y_i of Eq. 2, in the form a loss ℓ consumes.

One feedback kind can feed several losses (a ranking decomposes into pairs for Bradley–Terry,
or stays a ranking for Plackett–Luce), and one kind can give several kinds of term (a language
critique gives a verdict and aspect comparisons). :func:`training_data` is the dispatch: it
refuses a kind the loss cannot consume (the checker's ``LOSS_ACCEPTS`` rule, enforced again
here because tables can come from anywhere) and drops what carries no information (skips,
empty corrections, ties when ``ties = drop``).

The forms, and the term each becomes in :mod:`backends.torch.reward.fit`:

    pairs       items [N, 2] = (a, b), target t = P(a ≻ b)     Bradley–Terry / BPR
    ranking     items [N, K] best first, −1 padding, top m     Plackett–Luce
    anchor      items [N, 1], target t = (1 + verdict)/2        Bradley–Terry against a learned
                                                                neutral level r₀
    regression  items [N, 1], target y                           squared error
    ordinal     items [N, 1], target category 0 … k−1            cumulative link
    category    items [N, 1], target category 0 … k−1 (best 0)   adjacent-category logit

Feedback kinds:

* pairwise — choice 0/1 → t = 1/0; ties (2) → t = ½ (``ties = soft``) or dropped; skips (−1)
  dropped. Plackett–Luce on pairs is Bradley–Terry (identical for K = 2).
* ranking — Plackett–Luce on the full order; Bradley–Terry/BPR on its K(K−1)/2 implied pairs.
* best_of — Plackett–Luce's first-choice term (top = 1); Bradley–Terry/BPR on the K − 1 pairs
  chosen ≻ other.
* correction — the pair corrected ≻ original (Section 3.1.4); rows whose correction is the
  original (nothing to correct) or missing are dropped.
* language — through its structured form (verdict, aspects, signs). We chose:
  the verdict v ∈ [−1, 1] is an absolute judgement, so under Bradley–Terry/BPR it becomes a soft
  comparison with a learned neutral level r₀ (P(x ≻ neutral) = (1 + v)/2: the natural
  Bradley–Terry reading of "good"/"bad"), and under regression the target y = v. Each named
  aspect j with sign s_j (+1: "needs more of it") becomes a comparison x + s_j·δ_j·e_j ≻ x with
  δ_j one standard deviation of feature j over the actions: the critique says which way the
  value rises, which is a preference for a counterfactual item (a correction in feature space).
  Aspect terms need features to build the counterfactual: with ``features=None`` (tabular
  backbones, text) only the verdict is used.
* scalar — regression on the value, optionally standardised per evaluator.
* likert — ordinal on the category.
* label — classification on the offered choice (index 0 = best).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from backends.torch.labels import LabelTable
from backends.torch.reward.losses import smooth_targets, standardize_per_evaluator
from rlhfdsl.spec.learning import AUTO_LOSS, LOSS_ACCEPTS

FORMS = ("pairs", "ranking", "anchor", "regression", "ordinal", "category")


@dataclass
class TrainingData:
    """One form of training terms. Every tensor's first dimension is N (terms)."""

    form: str
    loss: str                 # the loss it was prepared for (bradley_terry, bpr, ...)
    items: Tensor             # int64 [N, K]; ≥ num_actions: rows of ``extra_features``
    target: Tensor            # float [N] (pairs, anchor, regression) or int64 [N]
    evaluator: Tensor         # int64 [N]
    group: Tensor             # int64 [N]
    query: Tensor             # int64 [N], for the held-out split
    source: str = ""          # the feedback kind
    margin: float = 0.0       # Bradley–Terry margin
    top: int | None = None    # Plackett–Luce: choices scored
    categories: int = 0       # ordinal / category: k
    label_smoothing: float = 0.0  # ranking / ordinal / category (pairs: already in target)
    extra_features: Tensor | None = None  # [M, F], counterfactual items (language aspects)
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.target.shape[0])

    @property
    def per_evaluator(self) -> bool:
        return self.loss == "bpr"

    @property
    def link(self) -> str | None:
        """The name of the extra parameters the form needs in the reward model."""
        if self.form == "ordinal":
            return f"ordinal_{self.categories}"
        if self.form == "category":
            return f"category_{self.categories}"
        if self.form == "anchor":
            return "anchor"
        return None

    def select(self, mask: Tensor) -> TrainingData:
        return replace(self, items=self.items[mask], target=self.target[mask],
                       evaluator=self.evaluator[mask], group=self.group[mask],
                       query=self.query[mask])

    def to(self, device: torch.device | str) -> TrainingData:
        extra = self.extra_features.to(device) if self.extra_features is not None else None
        return replace(self, items=self.items.to(device), target=self.target.to(device),
                       evaluator=self.evaluator.to(device), group=self.group.to(device),
                       query=self.query.to(device), extra_features=extra)


def resolve_loss(loss: Any, kind: str) -> str:
    """The loss name for a feedback kind: ``auto`` becomes the kind's natural loss; a loss that
    cannot consume the kind is refused with a ValueError that says what would."""
    name = loss if isinstance(loss, str) else loss.type
    if name == "auto":
        return AUTO_LOSS[kind]
    if name not in LOSS_ACCEPTS:
        raise ValueError(f"unknown reward loss {name!r}")
    if kind not in LOSS_ACCEPTS[name]:
        accepts = ", ".join(LOSS_ACCEPTS[name])
        raise ValueError(
            f"the {name} loss cannot be fitted on {kind} feedback: it consumes {accepts}; "
            f"use loss = {AUTO_LOSS[kind]} (or auto) for {kind} feedback")
    return name


def training_data(labels: LabelTable, loss: Any = "auto", *, ties: str = "soft",
                  label_smoothing: float = 0.0, features: Tensor | None = None
                  ) -> list[TrainingData]:
    """The training terms of one label table for one loss.

    ``loss`` is a loss spec (``rlhfdsl.spec.learning.Loss``) or its name; its ``margin``
    (Bradley–Terry) and ``standardize`` (regression) are read from it. ``features`` [A, F]
    enables the counterfactual aspect terms of language feedback (see the module docstring).
    """
    kind = labels.kind
    name = resolve_loss(loss, kind)
    margin = float(getattr(loss, "margin", 0.0) or 0.0)
    standardize = bool(getattr(loss, "standardize", False))
    cols = labels.columns
    base = dict(evaluator=cols["evaluator"].long(), group=cols["group"].long(),
                query=cols["query"].long())
    items = cols["items"].long()

    def rows(mask: Tensor, **kw: Any) -> TrainingData:
        return TrainingData(loss=name, source=kind, evaluator=base["evaluator"][mask],
                            group=base["group"][mask], query=base["query"][mask], **kw)

    def pairs(a: Tensor, b: Tensor, t: Tensor, index: Tensor, **kw: Any) -> TrainingData:
        t = smooth_targets(t, label_smoothing) if label_smoothing else t
        return TrainingData(form="pairs", loss=name, source=kind,
                            items=torch.stack([a, b], dim=1), target=t,
                            evaluator=base["evaluator"][index], group=base["group"][index],
                            query=base["query"][index], margin=margin, **kw)

    out: list[TrainingData] = []
    if kind == "pairwise":
        choice = cols["choice"].long()
        keep = (choice == 0) | (choice == 1) | ((choice == 2) & (ties == "soft"))
        index = keep.nonzero().squeeze(-1)
        c = choice[index]
        t = torch.where(c == 0, 1.0, torch.where(c == 1, 0.0, 0.5)).to(torch.float32)
        out.append(pairs(items[index, 0], items[index, 1], t, index))
    elif kind in ("ranking", "best_of"):
        if kind == "ranking":
            order = cols["ranking"].long()
            valid = order >= 0
            ranked = torch.where(valid, items.gather(1, order.clamp(min=0)), -1)
            top = None
            keep = valid.sum(1) >= 2
        else:
            choice = cols["choice"].long()
            keep = (choice >= 0) & ((items >= 0).sum(1) >= 2)
            c = choice.clamp(min=0)
            k = items.shape[1]
            # chosen first, then the others in shown order
            others = torch.arange(k, device=items.device).expand(items.shape[0], k)
            rest = others[others != c.unsqueeze(1)].view(items.shape[0], k - 1)
            ranked = torch.cat([items.gather(1, c.unsqueeze(1)), items.gather(1, rest)], dim=1)
            top = 1
        index = keep.nonzero().squeeze(-1)
        ranked = ranked[index]
        if name == "plackett_luce":
            out.append(rows(keep, form="ranking", items=ranked,
                            target=torch.ones(len(index), device=items.device),
                            top=top, label_smoothing=label_smoothing))
        else:  # Bradley–Terry / BPR on the implied pairs
            k = ranked.shape[1]
            i, j = torch.triu_indices(k, k, offset=1, device=items.device)
            if top == 1:
                i, j = i[i == 0], j[i == 0]
            a, b = ranked[:, i].reshape(-1), ranked[:, j].reshape(-1)
            src = index.repeat_interleave(len(i))
            ok = (a >= 0) & (b >= 0)
            out.append(pairs(a[ok], b[ok], torch.ones(int(ok.sum()), device=items.device),
                             src[ok]))
    elif kind == "correction":
        corrected = cols["corrected"].long()
        original = items[:, 0]
        keep = (corrected >= 0) & (corrected != original)
        index = keep.nonzero().squeeze(-1)
        out.append(pairs(corrected[index], original[index],
                         torch.ones(len(index), device=items.device), index))
    elif kind == "language":
        out.extend(_language(labels, name, margin, label_smoothing, features, base))
    elif kind == "scalar":
        value = cols["value"].float()
        keep = torch.isfinite(value)
        y = value[keep]
        if standardize:
            y = standardize_per_evaluator(y, base["evaluator"][keep])
        out.append(rows(keep, form="regression", items=items[keep, :1], target=y))
    elif kind == "likert":
        value = cols["value"].long()
        k = likert_categories(labels)
        keep = (value >= 0) & (value < k)
        out.append(rows(keep, form="ordinal", items=items[keep, :1], target=value[keep],
                        categories=k, label_smoothing=label_smoothing))
    elif kind == "label":
        value = cols["value"].long()
        choices = labels.meta.get("choices")
        k = len(choices) if choices else int(value.max()) + 1
        keep = (value >= 0) & (value < k)
        out.append(rows(keep, form="category", items=items[keep, :1], target=value[keep],
                        categories=max(k, 2), label_smoothing=label_smoothing))
    else:
        raise ValueError(f"unknown feedback kind {kind!r}")
    return [d for d in out if len(d)]


def likert_categories(labels: LabelTable) -> int:
    """k of likert(k) feedback: the table's ``categories`` metadata, else its ``k`` when it is
    not the items-per-query count 1, else the highest category seen + 1 (at least 2)."""
    meta = labels.meta
    if meta.get("categories"):
        return int(meta["categories"])
    if int(meta.get("k") or 0) > 1:
        return int(meta["k"])
    value = labels.columns["value"]
    return max(2, int(value.max()) + 1 if value.numel() else 2)


def _language(labels: LabelTable, name: str, margin: float, label_smoothing: float,
              features: Tensor | None, base: dict[str, Tensor]) -> list[TrainingData]:
    cols = labels.columns
    item = cols["items"].long()[:, 0]
    verdict = cols["verdict"].float()
    keep = torch.isfinite(verdict) & (item >= 0)
    out = []
    if name == "regression":
        out.append(TrainingData(form="regression", loss=name, source="language",
                                items=item[keep].unsqueeze(1), target=verdict[keep].clamp(-1, 1),
                                evaluator=base["evaluator"][keep], group=base["group"][keep],
                                query=base["query"][keep]))
    else:
        t = (1.0 + verdict[keep].clamp(-1, 1)) / 2.0
        t = smooth_targets(t, label_smoothing) if label_smoothing else t
        out.append(TrainingData(form="anchor", loss=name, source="language",
                                items=item[keep].unsqueeze(1), target=t, margin=margin,
                                evaluator=base["evaluator"][keep], group=base["group"][keep],
                                query=base["query"][keep]))
    if features is None or "aspects" not in cols:
        return out
    aspects, signs = cols["aspects"].long(), cols["signs"].float()
    ok = (aspects >= 0) & (aspects < features.shape[1]) & (signs != 0) & keep.unsqueeze(1)
    row, slot = ok.nonzero(as_tuple=True)
    if not len(row):
        return out
    feats = features.to(signs.device).float()
    step = feats.std(0, unbiased=False) if feats.shape[0] > 1 else \
        torch.ones(feats.shape[1], device=feats.device)
    step = torch.where(step > 1e-8, step, torch.ones_like(step))
    j = aspects[row, slot]
    moved = feats[item[row]].clone()
    moved[torch.arange(len(row), device=moved.device), j] += torch.sign(signs[row, slot]) * step[j]
    num_actions = feats.shape[0]
    a = num_actions + torch.arange(len(row), device=item.device)
    t = torch.ones(len(row), device=item.device)
    t = smooth_targets(t, label_smoothing) if label_smoothing else t
    loss = name if name in ("bradley_terry", "bpr") else "bradley_terry"
    out.append(TrainingData(form="pairs", loss=loss, source="language",
                            items=torch.stack([a, item[row]], dim=1), target=t,
                            margin=margin if loss == "bradley_terry" else 0.0,
                            evaluator=base["evaluator"][row], group=base["group"][row],
                            query=base["query"][row], extra_features=moved))
    return out

"""The data of the reward-free objectives, read from a label table: preference pairs (DPO),
desirable/undesirable examples (KTO) and demonstrations (SFT). Items are whatever the table's
items index (bandit actions, or texts of the table's ``texts``)."""

from __future__ import annotations

import torch
from torch import Tensor

from backends.torch.labels import LabelTable
from backends.torch.reward.data import likert_categories, training_data
from rlhfdsl.spec.learning import NEEDS_DATA


def _refuse(objective: str, kind: str) -> None:
    if kind not in NEEDS_DATA[objective]:
        raise ValueError(f"{objective} cannot use {kind} feedback: it needs "
                         f"{' or '.join(NEEDS_DATA[objective])} data")


def preference_pairs(labels: LabelTable) -> tuple[Tensor, Tensor]:
    """(chosen, rejected) [N] for DPO: pairwise choices (ties and skips dropped), the pairs a
    ranking or a best-of-k choice implies, and corrected ≻ original."""
    _refuse("dpo", labels.kind)
    pieces = training_data(labels, "bradley_terry", ties="drop")
    if not pieces:
        empty = labels.columns["items"].new_zeros(0)
        return empty, empty
    pairs = pieces[0]
    first = pairs.target > 0.5
    a, b = pairs.items[:, 0], pairs.items[:, 1]
    return torch.where(first, a, b), torch.where(first, b, a)


def desirability(labels: LabelTable) -> tuple[Tensor, Tensor]:
    """(items [N], desirable bool [N]) for KTO.

    label: the better half of the offered choices (index < (k−1)/2; 0 is best) is desirable,
    the worse half undesirable, a middle choice dropped; likert: categories above the middle
    desirable, below undesirable; scalar: above the table's median desirable, below
    undesirable; pairwise: the chosen item desirable and the rejected one undesirable."""
    _refuse("kto", labels.kind)
    cols = labels.columns
    if labels.kind == "pairwise":
        chosen, rejected = preference_pairs(labels)
        items = torch.cat([chosen, rejected])
        good = torch.cat([torch.ones_like(chosen, dtype=torch.bool),
                          torch.zeros_like(rejected, dtype=torch.bool)])
        return items, good
    item = cols["items"][:, 0].long()
    value = cols["value"]
    if labels.kind == "scalar":
        ok = torch.isfinite(value)
        middle = value[ok].median() if ok.any() else value.new_zeros(())
        score = value - middle
    elif labels.kind == "likert":
        k = likert_categories(labels)
        ok = (value >= 0) & (value < k)
        score = value.float() - (k - 1) / 2.0
    else:  # label: 0 is the best choice
        choices = labels.meta.get("choices")
        k = len(choices) if choices else int(value.max()) + 1
        ok = (value >= 0) & (value < k)
        score = (k - 1) / 2.0 - value.float()
    keep = ok & (score != 0) & (item >= 0)
    return item[keep], score[keep] > 0


def demonstrations(labels: LabelTable) -> Tensor:
    """Items to imitate for SFT: the evaluators' corrections (every valid corrected item)."""
    _refuse("sft", labels.kind)
    corrected = labels.columns["corrected"].long()
    return corrected[corrected >= 0]

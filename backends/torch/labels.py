"""The label table: feedback y_i with its provenance, as columns of tensors.

This is the contract between the feedback model (which writes it: f in Eq. 4) and the reward
fitter and the report (which read it). One row is one label: one evaluator's answer to one query.

Items are integers. For bandit tasks an item is an action index. For text tasks an item indexes
the ``texts`` list that travels with the table (the rendered completions the query showed, and
for corrections the corrected texts).

Columns (N rows, K items per query; every tensor's first dimension is N):

    query       int64 [N]     the query id (rows with the same id answered the same query)
    items       int64 [N, K]  items in the order they were shown to the evaluator
    evaluator   int64 [N]     evaluator index within the population
    group       int64 [N]     group index (``groups`` names them; AI evaluators follow humans)
    malicious   bool  [N]     the evaluator is malicious
    triggered   bool  [N]     the malicious trigger held on this query
    round       int64 [N]     schedule round
    session     int64 [N]     annotation session of the evaluator
    cost        float [N]     annotator seconds spent on this label
    gold        float [N, K]  true expected reward (gold) of each shown item, for audits

    kind-specific answer columns:
    pairwise      choice   int64 [N]    0: first shown preferred, 1: second, 2: tie, -1: skipped
    ranking(k)    ranking  int64 [N, K] positions into ``items``, best first
    best_of(k)    choice   int64 [N]    position of the best item, -1: skipped
    scalar        value    float [N]    the reported score (K = 1)
    likert(k)     value    int64 [N]    category 0 .. k-1, higher is better (K = 1)
    label         value    int64 [N]    index into ``choices`` (offered, best first; K = 1)
    correction    corrected int64 [N]   the corrected item (K = 1: ``items`` is the original)
    language      verdict  float [N]    overall judgement in [-1, 1] (K = 1)
                  aspects  int64 [N, A] which parts of the value were named (bandit: feature
                                        indices; text: scorer term indices), -1 padding
                  signs    float [N, A] +1 the item needs more of it, -1 less, 0 padding

Metadata: ``kind`` (the feedback kind's type), ``k``, ``groups`` (names), ``choices`` (label
feedback), ``texts`` (text tasks), ``view`` and ``context`` (declaration names or null),
``feedback`` (the declaration name).

Extensions written by the feedback simulator (``backends/torch/feedback``); readers may ignore
them:

    position         int64 [N]     the label's position in its evaluator's session (the clock
                                   fatigue grows with)
    source           int64 [N]     which sampler source the query came from (``sources`` names)
    gold_population  float [N, K]  gold of each shown item for the human population as a whole
                                   (the weight mixture of the human groups' gold; ``gold`` is
                                   the labelling member's own, and AI members read this one)
    gold_corrected   float [N]     correction: gold of the corrected item

    metadata: ``members`` ("group" / "ai" per group index), ``population``, ``evaluators``
    (how many), ``order`` (presentation order), ``redundancy``, ``sources``, ``shown_texts``
    (text: what the evaluators read, after the view), ``prompts`` (text), ``aspect_names``
    (language: what ``aspects`` indexes — bandit ``feature(i)``, text scorer terms such as
    ``sentiment`` or ``length(12)``), ``evaluator_choices`` (label: each member's own choice
    set).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

ANSWER_COLUMNS = {
    "pairwise": ("choice",),
    "ranking": ("ranking",),
    "best_of": ("choice",),
    "scalar": ("value",),
    "likert": ("value",),
    "label": ("value",),
    "correction": ("corrected",),
    "language": ("verdict", "aspects", "signs"),
}
PROVENANCE_COLUMNS = ("query", "items", "evaluator", "group", "malicious", "triggered", "round",
                      "session", "cost", "gold")
EXTRA_COLUMNS = ("position", "source", "gold_population", "gold_corrected")
PER_TEXT_META = ("shown_texts", "prompts")


@dataclass
class LabelTable:
    kind: str
    columns: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.columns["query"].shape[0])

    def validate(self) -> None:
        """Raise ValueError when a column is missing or has the wrong length."""
        n = len(self)
        for name in PROVENANCE_COLUMNS + ANSWER_COLUMNS[self.kind]:
            if name not in self.columns:
                raise ValueError(f"label table lacks column {name!r}")
            if self.columns[name].shape[0] != n:
                raise ValueError(f"column {name!r} has {self.columns[name].shape[0]} rows, not {n}")

    def to(self, device: torch.device | str) -> LabelTable:
        return LabelTable(self.kind, {k: v.to(device) for k, v in self.columns.items()}, dict(self.meta))

    def select(self, mask: torch.Tensor) -> LabelTable:
        """The rows where ``mask`` (bool [N]) holds."""
        return LabelTable(self.kind, {k: v[mask] for k, v in self.columns.items()}, dict(self.meta))

    @staticmethod
    def concat(tables: list[LabelTable]) -> LabelTable:
        """Rows of several tables of the same kind (query ids are made unique; text items are
        re-indexed into one ``texts`` list)."""
        if not tables:
            raise ValueError("nothing to concatenate")
        kind = tables[0].kind
        columns: dict[str, list[torch.Tensor]] = {}
        texts: list[str] = []
        per_text: dict[str, list[str]] = {}
        query_offset = 0
        for table in tables:
            if table.kind != kind:
                raise ValueError(f"cannot concatenate {kind} and {table.kind} labels")
            cols = dict(table.columns)
            cols["query"] = cols["query"] + query_offset
            if len(table):
                query_offset = int(cols["query"].max()) + 1
            if "texts" in table.meta:
                shift = len(texts)
                for name in ("items", "corrected"):
                    if name in cols:
                        cols[name] = torch.where(cols[name] >= 0, cols[name] + shift, cols[name])
                texts.extend(table.meta["texts"])
                for key in PER_TEXT_META:  # lists parallel to ``texts`` travel with them
                    per_text.setdefault(key, []).extend(
                        table.meta.get(key) or [""] * len(table.meta["texts"]))
            for name, value in cols.items():
                columns.setdefault(name, []).append(value)
        merged = {}
        for name, parts in columns.items():
            width = max(p.shape[1] for p in parts) if parts[0].dim() == 2 else None
            if width is not None:
                parts = [torch.nn.functional.pad(p, (0, width - p.shape[1]), value=-1 if not p.is_floating_point() else 0.0)
                         if p.shape[1] < width else p for p in parts]
            merged[name] = torch.cat(parts)
        meta = dict(tables[0].meta)
        if texts:
            meta["texts"] = texts
            meta.update({key: values for key, values in per_text.items()
                         if any(key in t.meta for t in tables)})
        return LabelTable(kind, merged, meta)

    # -- storage: tensors as safetensors, metadata as JSON

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous().cpu() for k, v in self.columns.items()},
                  str(directory / "labels.safetensors"))
        (directory / "labels.json").write_text(json.dumps({"kind": self.kind, **self.meta},
                                                          sort_keys=True))

    @staticmethod
    def load(directory: Path, device: torch.device | str = "cpu") -> LabelTable:
        from safetensors.torch import load_file

        meta = json.loads((directory / "labels.json").read_text())
        kind = meta.pop("kind")
        columns = load_file(str(directory / "labels.safetensors"), device=str(device))
        return LabelTable(kind, columns, meta)

"""Synthetic label tables for the reward tests: noiseless answers of evaluators whose value is
``gold`` ([A]; or [G, A]: evaluator e belongs to group e mod G and answers by its row)."""

from __future__ import annotations

import torch

from backends.torch.labels import LabelTable


def make_table(kind: str, gold: torch.Tensor, n: int, *, seed: int = 0, k: int = 2,
               evaluators: int = 5, features: torch.Tensor | None = None,
               choices: tuple[str, ...] = ("good", "ok", "bad")) -> LabelTable:
    gen = torch.Generator().manual_seed(seed)
    per_group = gold if gold.dim() == 2 else gold.unsqueeze(0)
    A = per_group.shape[1]
    width = {"pairwise": 2, "ranking": k, "best_of": k}.get(kind, 1)
    items = torch.stack([torch.randperm(A, generator=gen)[:width] for _ in range(n)])
    evaluator = torch.randint(evaluators, (n,), generator=gen)
    group = evaluator % per_group.shape[0]
    g = per_group[group.unsqueeze(1), items]
    gold = per_group.mean(0) if gold.dim() == 2 else gold
    cols = dict(query=torch.arange(n), items=items, evaluator=evaluator,
                group=group, malicious=torch.zeros(n, dtype=torch.bool),
                triggered=torch.zeros(n, dtype=torch.bool), round=torch.zeros(n, dtype=torch.long),
                session=torch.zeros(n, dtype=torch.long), cost=torch.ones(n), gold=g)
    meta: dict = {"k": k}
    if kind == "pairwise":
        cols["choice"] = (g[:, 1] > g[:, 0]).long()
    elif kind == "ranking":
        cols["ranking"] = g.argsort(dim=1, descending=True)
    elif kind == "best_of":
        cols["choice"] = g.argmax(dim=1)
    elif kind == "scalar":
        cols["value"] = g[:, 0].clone()
    elif kind == "likert":
        edges = torch.quantile(gold, torch.linspace(0, 1, k + 1)[1:-1])
        cols["value"] = torch.bucketize(g[:, 0], edges)
    elif kind == "label":
        c = len(choices)
        edges = torch.quantile(gold, torch.linspace(0, 1, c + 1)[1:-1])
        cols["value"] = (c - 1) - torch.bucketize(g[:, 0], edges)  # 0 = best
        meta["choices"] = list(choices)
    elif kind == "correction":
        corrected = []
        for gi in g[:, 0]:
            better = torch.nonzero(gold > gi).flatten()
            pick = torch.randint(len(better), (1,), generator=gen) if len(better) else None
            corrected.append(int(better[pick]) if pick is not None else -1)
        cols["corrected"] = torch.tensor(corrected)
    elif kind == "language":
        z = (g[:, 0] - gold.mean()) / gold.std()
        cols["verdict"] = torch.tanh(z)
        assert features is not None
        # name the two features with the largest |weight|; sign: the value rises with them
        w = torch.linalg.lstsq(features, gold.unsqueeze(1)).solution.squeeze(1)
        top = w.abs().argsort(descending=True)[:2]
        cols["aspects"] = top.expand(n, 2).clone()
        cols["signs"] = torch.sign(w[top]).expand(n, 2).clone()
    table = LabelTable(kind, cols, meta)
    table.validate()
    return table


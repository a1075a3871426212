"""One batch of labels as the feedback kinds read it, and the helpers the kinds share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from backends.torch.feedback.behaviour import Perception, RowPerception
from backends.torch.feedback.population import DrawnPopulation


@dataclass
class Rows:
    """One batch of labels, per row (R rows, K shown items)."""

    items: torch.Tensor              # int64 [R, K], in the order shown
    evaluator: torch.Tensor          # int64 [R]
    member: torch.Tensor             # int64 [R]
    perceived: RowPerception         # [R, K] tables
    beta: torch.Tensor               # [R] Boltzmann rationality (inf: perfectly rational)
    mistake: torch.Tensor            # [R] ε with fatigue
    position_bias: torch.Tensor      # [R] logit bonus of the first shown item
    skip_threshold: torch.Tensor     # [R] -inf where skipping is off
    equal_threshold: torch.Tensor    # [R] 0 where ties are off
    attack: Optional[torch.Tensor]   # [R] bool: malicious evaluator and triggered query
    target: str                      # "flip" or "backdoor"
    perception: Perception
    population: DrawnPopulation

    @property
    def n(self) -> int:
        return int(self.items.shape[0])

    @property
    def device(self) -> torch.device:
        return self.items.device

    def member_param(self, name: str) -> torch.Tensor:
        return self.population.param(name)[self.member]


Answer = tuple[dict[str, torch.Tensor], dict[str, Any]]


def scaled(beta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """β·x with β = inf giving ±inf (and 0 where x = 0)."""
    return torch.where(x == 0, torch.zeros_like(x), beta * x)


def uniform(rows: Rows, generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(shape or (rows.n,), generator=generator, device=rows.device)


def gumbel_noise(rows: Rows, generator: torch.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, device=rows.device).clamp_(1e-12, 1 - 1e-7)
    return -torch.log(-torch.log(u))


def attacking(rows: Rows, target: str) -> Optional[torch.Tensor]:
    if rows.attack is None or rows.target != target:
        return None
    return rows.attack

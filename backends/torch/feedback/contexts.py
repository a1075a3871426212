"""c in Eq. 4: the context of each label — presentation order, who labels when, sessions, drift.

* **order** (`context.order`): each label's evaluator sees the query's items `fixed` (as
  sampled), `random` (shuffled afresh for every label) or `reversed`; position bias acts on the
  item shown first.
* **assignment and sessions**: the population labels in lockstep *cycles*. In each cycle a
  random permutation of the evaluators (drawn from a bank of 64 random permutations, rotated by
  a random offset) answers the next queries, `redundancy` distinct evaluators per query, one
  label each. An evaluator's labels-given clock is the cycle number, so
  with `session = S` its session is ``cycle // S`` and its position in the session — what
  fatigue grows with — is ``cycle % S`` (`session = 0`: one session per round).
* **drift** (`context.drift = d`): at round r every human group's latent reward has gained
  d·Σ_{j=1..r} u_j·φ(x), u_j a random direction (norm ≈ 1) over the item's features φ — bandit:
  the feature vector; text: the `sentiment` and `confidence` scorers — drawn from the
  population's drift seed, so all rounds of a run share one history (3.2.1: values change).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from backends.torch.feedback.errors import FeedbackError
from rlhfdsl.spec.feedback import Context

TEXT_DRIFT_TERMS = (("sentiment", ()), ("confidence", ()))


PERMUTATION_BANK = 64  # random permutations of the evaluators drawn per call


def order_of(context: Optional[Context]) -> str:
    return context.order if context is not None else "random"


def present(queries: torch.Tensor, redundancy: int, order: str,
            generator: torch.Generator) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Each label's items in the order its evaluator sees them, for queries [n, k] answered
    ``redundancy`` times each (rows query-major): (row-major [n·R, k], and for k = 2 the same
    as contiguous columns [2, n·R], else None)."""
    n, k = queries.shape
    R = redundancy

    def repeat(x: torch.Tensor) -> torch.Tensor:   # [n, ...] → [n·R, ...], query-major
        return x if R == 1 else x[:, None].expand(n, R, *x.shape[1:]).reshape(n * R,
                                                                             *x.shape[1:])

    if k == 1:
        return repeat(queries).contiguous(), None
    if order == "reversed":
        queries = queries.flip(1)
    if k == 2:
        first, second = repeat(queries[:, 0].contiguous()), repeat(queries[:, 1].contiguous())
        if order == "random":
            swap = random_bits(n * R, generator, queries.device, as_mask=True)
            differ = (first ^ second) & swap            # bitwise swap where swap = -1
            first, second = first ^ differ, second ^ differ
        return torch.stack([first, second], dim=1), torch.stack([first, second], dim=0)
    items = repeat(queries).contiguous()
    if order == "random":
        perm = torch.rand(n * R, k, generator=generator, device=queries.device).argsort(dim=1)
        items = items.gather(1, perm)
    return items, None


def random_bits(n: int, generator: torch.Generator, device: torch.device | str,
                as_mask: bool = False) -> torch.Tensor:
    """[n] fair coin flips, 32 from each 32-bit draw (a fair coin needs no float): bool, or
    with ``as_mask`` int64 0 / −1 (all bits set), ready for bitwise selection."""
    words = torch.empty((n + 31) // 32, dtype=torch.int64, device=device).random_(
        0, 2**32, generator=generator)
    shifts = torch.arange(32, device=device)
    bits = ((words[:, None] >> shifts[None, :]) & 1).reshape(-1)[:n]
    return bits.neg_() if as_mask else bits.bool()


@dataclass
class Assignment:
    """Who gives each label: ``evaluator`` and ``cycle`` int64 [N] (see the module doc)."""

    evaluator: torch.Tensor
    cycle: torch.Tensor
    cycles: int
    per_cycle: int

    def expand(self, per_cycle_values: torch.Tensor) -> torch.Tensor:
        """A value per cycle ([cycles]) as a value per label ([N])."""
        n = self.evaluator.shape[0]
        return per_cycle_values[:, None].expand(self.cycles, self.per_cycle).reshape(-1)[:n]


def assign_evaluators(n_queries: int, redundancy: int, n_evaluators: int,
                      generator: torch.Generator, device: torch.device | str) -> Assignment:
    """Rows query-major, ``redundancy`` rows per query with distinct evaluators: in each cycle a
    random permutation of the evaluators (one of a bank of random permutations, rotated by a
    random offset) gives one label each."""
    if redundancy > n_evaluators:
        raise FeedbackError(f"`redundancy = {redundancy}` needs at least that many evaluators; "
                            f"the population has {n_evaluators}")
    n = n_queries * redundancy
    E = n_evaluators
    L = (E // redundancy) * redundancy
    C = max(1, math.ceil(n / L))
    bank = torch.rand(min(PERMUTATION_BANK, C), E, generator=generator,
                      device=device).argsort(1)
    pick = torch.arange(C, device=device) if C <= PERMUTATION_BANK else torch.randint(
        0, PERMUTATION_BANK, (C,), generator=generator, device=device)
    shift = torch.randint(0, E, (C,), generator=generator, device=device)
    bank = torch.cat([bank, bank], dim=1)          # rotations read past the end: no wrap-around
    start = pick * (2 * E) + shift                                            # [C]
    flat = (start[:, None] + torch.arange(L, device=device)[None, :]).reshape(-1)[:n]
    evaluator = bank.reshape(-1).index_select(0, flat)
    cycles = torch.arange(C, device=device)
    assignment = Assignment(evaluator, cycles, C, L)
    assignment.cycle = assignment.expand(cycles)
    return assignment


def sessions(assignment: Assignment,
             context: Optional[Context]) -> tuple[torch.Tensor, torch.Tensor]:
    """(session, position in session), both int64 [N], from the labels-given clock."""
    length = context.session if context is not None else 0
    cycles = torch.arange(assignment.cycles, device=assignment.cycle.device)
    if length <= 0:
        return torch.zeros_like(assignment.cycle), assignment.cycle
    return assignment.expand(cycles // length), assignment.expand(cycles % length)


def drift_offsets(drift_seed: int, n_members: int, dim: int, round: int, scale: float,
                  device: torch.device | str) -> torch.Tensor:
    """float [G, dim]: the accumulated drift direction of every member's values at ``round``."""
    total = torch.zeros(n_members, dim)
    if scale > 0:
        for j in range(1, round + 1):
            gen = torch.Generator().manual_seed((drift_seed + 7919 * j) % (2**63 - 1))
            total += torch.randn(n_members, dim, generator=gen) / math.sqrt(dim)
    return (scale * total).to(device)

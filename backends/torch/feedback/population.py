"""ΔH of Eq. 4: drawing a population of evaluators from a `population` declaration.

    H_sample, H_feedback ~ ΔH

:func:`draw_population` turns a :class:`~rlhfdsl.spec.population.Population` into
``population.evaluators`` concrete evaluators, all at once, as tensors:

* members (human groups first, then AI evaluators) get evaluators in proportion to their
  weights (largest-remainder rounding, so the shares are as declared);
* each evaluator's own parameters are drawn around its member's: β·exp(spread·z) (Boltzmann
  rationality), a reporting scale exp(scale·z) and offset offset·z (scalar and Likert
  miscalibration), and standard-normal jitters of its Likert / label thresholds;
* exactly round(share × eligible) evaluators, chosen at random among the eligible groups'
  members, are malicious;
* a drift seed, from which the context's drift of values across rounds is derived (so every
  round of one run sees the same history of drift).

H_sample and H_feedback are drawn separately: call :func:`draw_population` once for the
feedback's `from` population and once, with another generator, for a sampler's `by` population.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Optional, Union

import torch

from backends.torch.feedback.errors import FeedbackError
from rlhfdsl.spec.base import Expr
from rlhfdsl.spec.population import AIEvaluator, Group, Population

MAX_THRESHOLDS = 16  # Likert k ≤ 11 and label choice sets: jitters drawn per evaluator

# The per-member behaviour parameters kept as float tensors [G] (see Behaviour's doc strings).
MEMBER_PARAMS = ("mistake", "myopia", "skip", "equal", "fatigue", "position_bias",
                 "length_bias", "sycophancy", "spread", "scale", "offset", "noise", "thresholds",
                 "skill", "critique")


@dataclass(frozen=True)
class Member:
    """One group or AI evaluator of a population, with its rationality resolved to a number."""

    index: int
    spec: Union[Group, AIEvaluator]
    kind: str  # "group" or "ai"
    beta: float

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def values(self) -> Optional[Expr]:
        """The latent reward r_H (a group's `values`, an AI's `scorer`); None for `model = rm`."""
        if isinstance(self.spec, Group):
            return self.spec.values
        return self.spec.scorer

    @property
    def model(self) -> Optional[str]:
        return self.spec.model if isinstance(self.spec, AIEvaluator) else None


@dataclass
class DrawnPopulation:
    """A drawn population: E evaluators as tensors on one device.

    ``member`` int64 [E] (index into ``members``), ``malicious`` bool [E], ``beta`` [E]
    (Boltzmann rationality, ``inf`` for perfectly rational), ``scale`` / ``offset`` [E]
    (scalar and Likert miscalibration), ``threshold_noise`` [E, 16] (standard normal jitters of
    Likert / label thresholds), ``drift_seed`` (see :func:`.contexts.drift_offsets`).
    """

    spec: Population
    members: tuple[Member, ...]
    member: torch.Tensor
    malicious: torch.Tensor
    beta: torch.Tensor
    scale: torch.Tensor
    offset: torch.Tensor
    threshold_noise: torch.Tensor
    drift_seed: int
    params: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.member.shape[0])

    @property
    def device(self) -> torch.device:
        return self.member.device

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    @property
    def weights(self) -> torch.Tensor:
        """float [G]: the members' declared weights, normalised."""
        w = torch.tensor([m.spec.weight for m in self.members], dtype=torch.float32,
                         device=self.device)
        return w / w.sum()

    def param(self, name: str) -> torch.Tensor:
        """float [G]: one behaviour parameter of every member."""
        return self.params[name]


def members_of(population: Population,
               rationality: Optional[Mapping[str, float]] = None) -> tuple[Member, ...]:
    """Human groups, then AI evaluators, with numeric β (calibrated ones from ``rationality``)."""
    specs: list[tuple[Union[Group, AIEvaluator], str]] = (
        [(g, "group") for g in population.groups] + [(a, "ai") for a in population.ai])
    if not specs:
        raise FeedbackError(f"population `{population.name}` has no groups or AI evaluators")
    out = []
    for i, (spec, kind) in enumerate(specs):
        beta = spec.rationality
        if not isinstance(beta, (int, float)):
            if rationality is None or spec.name not in rationality:
                raise FeedbackError(
                    f"member `{spec.name}` of population `{population.name}` asks for "
                    f"`{beta.type}({beta.target})`: calibrate it first "
                    "(calibration.calibrate_population) and pass the result as `rationality`")
            beta = rationality[spec.name]
        elif rationality is not None and spec.name in rationality:
            beta = rationality[spec.name]
        out.append(Member(index=i, spec=spec, kind=kind, beta=float(beta)))
    return tuple(out)


def allocate(weights: list[float], total: int) -> list[int]:
    """Largest-remainder split of ``total`` evaluators by weight (ties: the earlier member)."""
    s = sum(weights)
    if s <= 0:
        raise FeedbackError("the population's weights are all 0")
    quotas = [w / s * total for w in weights]
    counts = [math.floor(q) for q in quotas]
    order = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[:total - sum(counts)]:
        counts[i] += 1
    return counts


def draw_population(population: Population, generator: torch.Generator,
                    device: torch.device | str | None = None, *,
                    rationality: Optional[Mapping[str, float]] = None) -> DrawnPopulation:
    """Draw ΔH's evaluators (see the module doc). ``rationality`` maps member names to β for
    members whose `rationality` is `agreement(p)` / `accuracy(p)` (from calibration)."""
    device = torch.device(device) if device is not None else generator.device
    members = members_of(population, rationality)
    counts = allocate([m.spec.weight for m in members], population.evaluators)
    member = torch.repeat_interleave(torch.arange(len(members), device=device),
                                     torch.tensor(counts, device=device))
    E = int(member.shape[0])

    malicious = torch.zeros(E, dtype=torch.bool, device=device)
    if population.malicious is not None and population.malicious.share > 0:
        names = population.malicious.groups
        eligible_members = [m.index for m in members
                            if (m.name in names if names is not None else m.kind == "group")]
        eligible = torch.isin(member, torch.tensor(eligible_members, device=device,
                                                   dtype=torch.long)).nonzero().flatten()
        n_bad = int(round(population.malicious.share * eligible.numel()))
        if n_bad:
            pick = torch.randperm(eligible.numel(), generator=generator, device=device)[:n_bad]
            malicious[eligible[pick]] = True

    params = {name: torch.tensor([float(getattr(m.spec, name)) for m in members],
                                 dtype=torch.float32, device=device) for name in MEMBER_PARAMS}
    group_beta = torch.tensor([m.beta for m in members], dtype=torch.float32, device=device)
    z = torch.randn(E, generator=generator, device=device)
    spread = params["spread"][member]
    beta = group_beta[member] * torch.exp(spread * z)
    beta = torch.where(torch.isinf(group_beta[member]), group_beta[member], beta)
    scale = torch.exp(params["scale"][member] * torch.randn(E, generator=generator, device=device))
    offset = params["offset"][member] * torch.randn(E, generator=generator, device=device)
    threshold_noise = torch.randn(E, MAX_THRESHOLDS, generator=generator, device=device)
    drift_seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=device).item())
    return DrawnPopulation(spec=population, members=members, member=member, malicious=malicious,
                           beta=beta, scale=scale, offset=offset,
                           threshold_noise=threshold_noise, drift_seed=drift_seed, params=params)

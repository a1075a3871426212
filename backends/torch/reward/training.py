"""What the reward fitter and the policy optimiser share: the optimiser from its spec, the
stage's generator, and random draws that never touch torch's global generator."""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor

DEFAULT_LR = {"bandit": 0.05, "text": 1e-4}


def build_optimizer(spec: Any, parameters: Iterable[torch.nn.Parameter],
                    domain: str = "bandit") -> torch.optim.Optimizer:
    """The optimiser a spec names: `adam`, `adamw` (decoupled weight decay) or `sgd`. A
    learning rate left unset is 0.05 on bandit tasks and 1e-4 on text."""
    params = [p for p in parameters if p.requires_grad]
    lr = spec.lr if getattr(spec, "lr", None) is not None else DEFAULT_LR[domain]
    if spec.type == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=spec.weight_decay)
    if spec.type == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=spec.weight_decay)
    if spec.type == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=spec.momentum)
    raise ValueError(f"unknown optimizer {spec.type!r}")


def as_generator(generator: torch.Generator | int | None) -> torch.Generator:
    """A generator from a generator (used as is), a seed, or None (seed 0). Draws happen on the
    generator's device and are moved to the tensors' device, so the same seed gives the same
    numbers whatever the device of the model."""
    if isinstance(generator, torch.Generator):
        return generator
    return torch.Generator().manual_seed(0 if generator is None else int(generator))


def rand(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
    """U[0, 1) draws of ``shape`` on ``device``."""
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def permutations(count: int, n: int, generator: torch.Generator,
                 device: torch.device) -> Tensor:
    """``count`` independent random permutations of range(n): [count, n]."""
    return rand((count, n), generator, device).argsort(dim=1)


def sample_categorical(probs: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """n draws (with replacement) from the distribution ``probs`` [A]: [n] int64, by inverse
    CDF on one vector of uniforms."""
    cdf = probs.cumsum(-1)
    u = rand((n,), generator, probs.device) * cdf[-1]
    return torch.searchsorted(cdf, u, right=True).clamp(max=probs.shape[-1] - 1)


def resolve_device(device: torch.device | str | None, *tensors: Tensor | None) -> torch.device:
    """``device``, else the first tensor's device, else the CPU."""
    if device is not None:
        return torch.device(device)
    for t in tensors:
        if t is not None:
            return t.device
    return torch.device("cpu")

"""Bandit tasks: actions with feature vectors, drawn from the task spec and a generator.

`task arms { domain = bandit  actions = 64  features = 16  distribution = normal }` gives an
action feature table x ∈ R^{A×F}; every latent reward r_H of a bandit population is an
expression over an action's features (`feature(0..7)`, `weights([...])`, `table([...])`,
`action`), so gold rewards are exact.
"""

from __future__ import annotations

import torch

from backends.torch.feedback.items import BanditSpace
from rlhfdsl.spec.experiment import BanditTask

DISTRIBUTION_MEANS = {"normal": 0.0, "uniform": 0.5, "binary": 0.5}


def draw_features(task: BanditTask, generator: torch.Generator,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """float32 [actions, features]: standard normal, uniform on [0, 1], or 0/1 with p = 1/2."""
    device = torch.device(device) if device is not None else generator.device
    shape = (task.actions, task.features)
    if task.distribution == "normal":
        return torch.randn(shape, generator=generator, device=device)
    u = torch.rand(shape, generator=generator, device=device)
    if task.distribution == "uniform":
        return u
    return (u < 0.5).float()


def feature_mean(task: BanditTask, device: torch.device | str = "cpu") -> torch.Tensor:
    """float32 [features]: the mean of the feature distribution (what a masked view shows)."""
    return torch.full((task.features,), DISTRIBUTION_MEANS[task.distribution],
                      device=torch.device(device))


def bandit_space(task: BanditTask, generator: torch.Generator,
                 device: torch.device | str | None = None, *,
                 features: torch.Tensor | None = None,
                 allow_plugins: bool = False) -> BanditSpace:
    """The task's item space: drawn features (or given ones), their distribution mean, and the
    task's `length` / `confidence` expressions for the length and sycophancy biases."""
    if features is None:
        features = draw_features(task, generator, device)
    return BanditSpace(features=features, feature_mean=feature_mean(task, features.device),
                       length=task.length, confidence=task.confidence,
                       allow_plugins=allow_plugins)

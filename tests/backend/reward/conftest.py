"""Fixtures of the reward tests."""

import pytest
import torch


@pytest.fixture
def bandit():
    """A 48-action, 6-feature bandit with a linear gold reward."""
    gen = torch.Generator().manual_seed(123)
    features = torch.randn(48, 6, generator=gen)
    w = torch.randn(6, generator=gen)
    return features, features @ w

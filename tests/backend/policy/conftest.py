"""Fixtures of the policy tests."""

import pytest
import torch


@pytest.fixture
def arms():
    """A 12-action, 4-feature bandit and a fixed reward vector over its actions."""
    gen = torch.Generator().manual_seed(11)
    features = torch.randn(12, 4, generator=gen)
    return features, features @ torch.randn(4, generator=gen)

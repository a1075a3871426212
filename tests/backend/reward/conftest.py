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


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: intra-op threads only add overhead, and on a shared CPU torch's
    softmax/logsigmoid kernels stall for milliseconds per call with two threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Fixtures of the policy tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: intra-op threads only add overhead, and on a shared CPU torch's
    softmax/logsigmoid kernels stall for milliseconds per call with two threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def arms():
    """A 12-action, 4-feature bandit and a fixed reward vector over its actions."""
    gen = torch.Generator().manual_seed(11)
    features = torch.randn(12, 4, generator=gen)
    return features, features @ torch.randn(4, generator=gen)

"""Fixtures of the feedback-simulator tests (helpers live in ``feedback_helpers``)."""

from __future__ import annotations

from typing import Callable

import pytest
import torch


@pytest.fixture
def gen() -> Callable[..., torch.Generator]:
    return lambda seed=0: torch.Generator().manual_seed(seed)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The simulator's tests are small: one thread avoids oversubscribing shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

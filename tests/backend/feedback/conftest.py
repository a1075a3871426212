"""Fixtures of the feedback-simulator tests (helpers live in ``feedback_helpers``)."""

from __future__ import annotations

from typing import Callable

import pytest
import torch


@pytest.fixture
def gen() -> Callable[..., torch.Generator]:
    return lambda seed=0: torch.Generator().manual_seed(seed)

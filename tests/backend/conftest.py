"""Fixtures shared by the backend tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Backend tests use tiny tensors and models: intra-op threads only add overhead, and on a
    shared CPU two OpenMP threads stall for milliseconds per kernel (the executor also runs
    stages on one CPU thread, see backends/torch/backend.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

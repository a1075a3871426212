"""Tiny models for the text backend's tests: 2 layers, width 64, built from config on the CPU."""

import pytest
import torch

from rlhfdsl.spec.experiment import Model


def tiny_spec(family: str = "gpt2", **overrides) -> Model:
    fields = dict(name="tiny", family=family, layers=2, width=64, heads=4, context=128)
    if family == "llama":
        fields["kv_heads"] = 2
    fields.update(overrides)
    return Model(**fields)


@pytest.fixture
def byte_tokenizer():
    from backends.torch.text import ByteTokenizer

    return ByteTokenizer()


@pytest.fixture(params=["gpt2", "llama"])
def family(request) -> str:
    return request.param


@pytest.fixture
def tiny_lm(family, byte_tokenizer):
    from backends.torch.text import build_causal_lm

    model = build_causal_lm(tiny_spec(family), byte_tokenizer,
                            generator=torch.Generator().manual_seed(0))
    return model.eval()

import json

import pytest
import torch
from conftest import tiny_spec

from backends.torch.text import (
    DataNotFound, build_causal_lm, corpus_loss, load_corpus, load_prompts, pretrain,
    task_corpus, task_prompts,
)
from rlhfdsl.spec.base import FileRef
from rlhfdsl.spec.experiment import TextTask


def test_builtin_data_ships():
    prompts = load_prompts("builtin")
    corpus = load_corpus("builtin")
    assert 90 <= len(prompts) <= 200 and len(set(prompts)) == len(prompts)
    assert all(len(p.encode()) < 32 for p in prompts)  # BOS + prompt fit max_prompt_tokens
    assert len(corpus) >= 300 and len(set(corpus)) == len(corpus)
    task = TextTask(name="chat", domain="text", pretrain="builtin")
    assert task_prompts(task) == prompts and task_corpus(task) == corpus
    assert task_corpus(TextTask(name="chat", domain="text")) is None


def test_files_lists_and_jsonl(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "p.txt").write_text("first\n\n  second  \n")
    (tmp_path / "data" / "p.jsonl").write_text(
        "\n".join(json.dumps({"prompt": p, "id": i}) for i, p in enumerate(["a", "b"])))
    (tmp_path / "c.txt").write_text(json.dumps({"prompt": "Q?", "completion": "A."}) + "\n"
                                    + json.dumps({"text": "plain"}) + "\n")
    assert load_prompts(FileRef(path="data/p.txt"), tmp_path) == ["first", "second"]
    assert load_prompts(FileRef(path="data/p.jsonl"), tmp_path) == ["a", "b"]
    assert load_prompts(("x", "y")) == ["x", "y"]
    assert load_corpus(FileRef(path="c.txt"), tmp_path) == ["Q? A.", "plain"]
    task = TextTask(name="t", domain="text", prompts=("only one",))
    assert task_prompts(task) == ["only one"]


def test_missing_or_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(DataNotFound, match="`nope.txt` does not exist"):
        load_prompts(FileRef(path="nope.txt"), tmp_path)
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(DataNotFound, match="is empty"):
        load_prompts(FileRef(path="empty.txt"), tmp_path)
    (tmp_path / "bad.jsonl").write_text(json.dumps({"text": "no prompt"}) + "\n")
    with pytest.raises(DataNotFound, match="no text field"):
        load_prompts(FileRef(path="bad.jsonl"), tmp_path)


def test_pretrain_reduces_loss(byte_tokenizer):
    model = build_causal_lm(tiny_spec(width=32, heads=2), byte_tokenizer,
                            generator=torch.Generator().manual_seed(0))
    corpus = load_corpus("builtin")[:64]
    before = corpus_loss(model, byte_tokenizer, corpus)
    state = torch.random.get_rng_state()
    metrics = pretrain(model, byte_tokenizer, corpus, steps=30, batch_size=8, lr=3e-3,
                       generator=torch.Generator().manual_seed(1))
    after = corpus_loss(model, byte_tokenizer, corpus)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert len(metrics["losses"]) == 30 and metrics["tokens"] > 0
    assert metrics["loss_last"] < metrics["loss_first"]
    assert after < before - 1.0, (before, after)
    assert model.training


def test_pretrain_is_deterministic(byte_tokenizer):
    def run():
        model = build_causal_lm(tiny_spec(width=32, heads=2, dropout=0.1), byte_tokenizer,
                                generator=torch.Generator().manual_seed(0))
        return pretrain(model, byte_tokenizer, ["a small corpus line", "another one"], steps=3,
                        batch_size=2, generator=torch.Generator().manual_seed(1))["losses"]

    assert run() == run()


@pytest.mark.slow
def test_step0_makes_a_tiny_policy_speak(byte_tokenizer):
    """A few hundred steps on the shipped corpus: completions made of real words (slow)."""
    from backends.torch.text import generate

    model = build_causal_lm(tiny_spec(width=128), byte_tokenizer,
                            generator=torch.Generator().manual_seed(0))
    corpus = load_corpus("builtin")
    metrics = pretrain(model, byte_tokenizer, corpus, steps=300, batch_size=16, lr=3e-3,
                       generator=torch.Generator().manual_seed(1))
    assert metrics["loss_last"] < 2.0
    out = generate(model, byte_tokenizer, load_prompts("builtin")[:32], max_new_tokens=40,
                   temperature=0.7, top_k=20, generator=torch.Generator().manual_seed(2))
    vocabulary = {w.strip(".,!?").lower() for line in corpus for w in line.split()}
    words = [w.strip(".,!?").lower() for text in out.texts for w in text.split()]
    assert sum(w in vocabulary for w in words) / max(len(words), 1) > 0.3

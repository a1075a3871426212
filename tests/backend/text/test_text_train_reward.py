"""Eq. 2 on texts (backends.torch.text.train_reward): a value-head reward model learns a clear
preference, every loss and head runs through the shared term functions, seeds are honoured, and
the unmasked right-padded scoring equals the reward model's own masked forward."""

import math

import pytest
import torch

from backends.torch.labels import LabelTable
from backends.torch.text import build_reward_model
from backends.torch.text.train_reward import (
    TokenTable, fit_text_reward, merge_items, reward_function, reward_sequences,
    score_completions, sequence_rewards,
)
from rlhfdsl.spec.learning import Reward

from conftest import tiny_spec

WORDS = ["sun", "rain", "tree", "road", "cat", "blue", "stone", "milk", "wind", "song"]


def sentences(gen: torch.Generator, n: int, word: str) -> list[str]:
    """Three random words with ``word`` inserted somewhere (same length either way)."""
    out = []
    for _ in range(n):
        words = [WORDS[int(j)] for j in torch.randint(0, len(WORDS), (3,), generator=gen)]
        words.insert(int(torch.randint(0, 4, (1,), generator=gen)), word)
        out.append(" ".join(words))
    return out


def columns(n: int, items: torch.Tensor, **answers) -> dict:
    zero = torch.zeros(n, dtype=torch.long)
    return dict(query=torch.arange(n), items=items, evaluator=torch.arange(n) % 3, group=zero,
                malicious=zero.bool(), triggered=zero.bool(), round=zero, session=zero,
                cost=torch.ones(n), gold=torch.zeros(n, items.shape[1]), **answers)


def keyword_pairs(n: int, seed: int) -> LabelTable:
    """n pairwise labels: a text with `good` is always preferred to one with `bold`."""
    gen = torch.Generator().manual_seed(seed)
    texts = sentences(gen, n, "good") + sentences(gen, n, "bold")
    swap = torch.rand(n, generator=gen) < 0.5
    a, b = torch.arange(n), torch.arange(n) + n
    items = torch.where(swap[:, None], torch.stack([b, a], 1), torch.stack([a, b], 1))
    table = LabelTable("pairwise", columns(n, items, choice=swap.long()),
                       {"texts": texts, "prompts": ["Q:"] * (2 * n), "k": 2})
    table.validate()
    return table


def keyword_table(kind: str, n: int = 24, seed: int = 0, k: int = 3) -> LabelTable:
    """Labels of every kind on texts whose value is the number of `good` in them."""
    gen = torch.Generator().manual_seed(seed)
    texts = (sentences(gen, n, "good") + sentences(gen, n, "bold")
             + [t + " good" for t in sentences(gen, n, "good")])
    value = torch.tensor([t.count("good") for t in texts], dtype=torch.float32)
    width = {"pairwise": 2, "ranking": k, "best_of": k}.get(kind, 1)
    pool = 2 * n if kind == "correction" else len(texts)  # corrections of imperfect texts
    items = torch.stack([torch.randperm(pool, generator=gen)[:width] for _ in range(n)])
    v = value[items]
    answers, meta = {}, {"texts": texts, "prompts": [""] * len(texts), "k": width}
    if kind == "pairwise":
        answers["choice"] = torch.where(v[:, 0] == v[:, 1], 2, (v[:, 1] > v[:, 0]).long())
    elif kind == "ranking":
        answers["ranking"] = v.argsort(dim=1, descending=True)
    elif kind == "best_of":
        answers["choice"] = v.argmax(dim=1)
    elif kind == "scalar":
        answers["value"] = v[:, 0]
    elif kind == "likert":
        answers["value"] = v[:, 0].long()
        meta["categories"] = 3
    elif kind == "label":
        answers["value"] = (2 - v[:, 0]).long()
        meta["choices"] = ["great", "fine", "poor"]
    elif kind == "correction":
        answers["corrected"] = 2 * n + items[:, 0] % n            # one more `good`
    elif kind == "language":
        answers["verdict"] = v[:, 0] - 1.0
        answers["aspects"] = torch.full((n, 1), -1)
        answers["signs"] = torch.zeros(n, 1)
    table = LabelTable(kind, columns(n, items, **answers), meta)
    table.validate()
    return table


def reward_model(members: int = 1, outputs: int = 1, seed: int = 1):
    from backends.torch.text import ByteTokenizer

    return build_reward_model(tiny_spec(), ByteTokenizer(), members=members, outputs=outputs,
                              generator=torch.Generator().manual_seed(seed))


def test_bradley_terry_learns_a_keyword_preference(byte_tokenizer):
    spec = Reward(name="rm", epochs=3, batch_size=16, holdout=0.2,
                  optimizer={"type": "adamw", "lr": 1e-3})
    steps = []
    model, m = fit_text_reward(spec, [keyword_pairs(150, 0)], reward_model(), byte_tokenizer,
                               generator=torch.Generator().manual_seed(2), device="cpu",
                               max_tokens=64, progress=steps.append)
    assert steps == list(range(1, 25))
    assert m["loss"][-1] < m["loss"][0] and m["holdout_accuracy"][-1] >= 0.8
    assert m["train_terms"] == 120 and m["holdout_terms"] == 30 and m["steps"] == 8
    assert m["losses"] == ["bradley_terry"] and m["combine"] is None
    # fresh pairs, never seen: the keyword wins far beyond chance
    gen = torch.Generator().manual_seed(9)
    good, bold = sentences(gen, 100, "good"), sentences(gen, 100, "bold")
    r = reward_function(model, byte_tokenizer, max_tokens=64)(["Q:"] * 200, good + bold)
    assert r.shape == (1, 200)
    assert (r[0, :100] > r[0, 100:]).float().mean() >= 0.85


@pytest.mark.parametrize("kind,loss", [
    ("pairwise", "bpr"), ("pairwise", "plackett_luce"), ("ranking", "auto"),
    ("ranking", "bradley_terry"), ("best_of", "auto"), ("scalar", "regression"),
    ("likert", "auto"), ("label", "auto"), ("correction", "auto"), ("language", "auto"),
    ("language", "regression"),
])
def test_every_kind_and_loss_fits(byte_tokenizer, kind, loss):
    spec = Reward(name="rm", epochs=2, batch_size=8, loss={"type": loss},
                  regularize={"label_smoothing": 0.05, "l2": 1e-6},
                  optimizer={"type": "adam", "lr": 1e-3})
    _, m = fit_text_reward(spec, [keyword_table(kind)], reward_model(), byte_tokenizer,
                           generator=torch.Generator().manual_seed(0), device="cpu",
                           max_tokens=48)
    assert len(m["loss"]) == len(m["holdout_loss"]) == 2
    assert all(math.isfinite(x) for x in m["loss"] + m["holdout_loss"])
    assert m["train_terms"] > 0 and m["holdout_terms"] > 0


@pytest.mark.parametrize("head", [{"type": "multi_objective", "k": 2, "weights": [0.25, 0.75]},
                                  {"type": "mixture", "k": 2}])
def test_multi_output_heads_and_ensembles(byte_tokenizer, head):
    spec = Reward(name="rm", epochs=2, batch_size=8, head=head, ensemble=2,
                  optimizer={"type": "adam", "lr": 1e-3})
    model, m = fit_text_reward(spec, [keyword_table("pairwise")], reward_model(2, 2),
                               byte_tokenizer, generator=torch.Generator().manual_seed(0),
                               device="cpu", max_tokens=48)
    combine = torch.tensor(m["combine"])
    assert combine.shape == (2, 2) and torch.allclose(combine.sum(-1), torch.ones(2))
    if head["type"] == "multi_objective":
        assert combine.tolist() == [[0.25, 0.75], [0.25, 0.75]]
    r = reward_function(model, byte_tokenizer, max_tokens=48, combine=m["combine"])(
        ["", ""], ["good sun", "bold sun"])
    assert r.shape == (2, 2) and not torch.equal(r[0], r[1])  # two members, own heads


def test_the_model_must_match_the_spec(byte_tokenizer):
    from backends.torch.text import ModelConfigError

    spec = Reward(name="rm", ensemble=2)
    with pytest.raises(ValueError, match="2 × 1"):
        fit_text_reward(spec, [keyword_table("pairwise")], reward_model(), byte_tokenizer,
                        generator=torch.Generator(), device="cpu", max_tokens=48)
    long = keyword_table("pairwise")
    long.meta["texts"][0] = "x" * 300
    with pytest.raises(ModelConfigError, match="context of 128"):  # tiny_spec: context 128
        fit_text_reward(Reward(name="rm"), [long], reward_model(), byte_tokenizer,
                        generator=torch.Generator(), device="cpu", max_tokens=500)


def test_a_seed_gives_the_same_fit(byte_tokenizer):
    spec = Reward(name="rm", epochs=2, batch_size=8, optimizer={"type": "adam", "lr": 1e-3})

    def run(seed):
        model, m = fit_text_reward(spec, [keyword_table("pairwise")], reward_model(),
                                   byte_tokenizer, generator=torch.Generator().manual_seed(seed),
                                   device="cpu", max_tokens=48)
        return m, model.head.weight.detach().clone()

    (m1, w1), (m2, w2), (m3, w3) = run(4), run(4), run(5)
    assert m1 == m2 and torch.equal(w1, w2)
    assert m1["loss"] != m3["loss"]


def test_tables_are_merged_into_one_item_list(byte_tokenizer):
    a, b = keyword_table("pairwise", seed=0), keyword_table("likert", seed=1)
    prompts, texts, (ma, mb) = merge_items([a, b])
    assert len(texts) == len(a.meta["texts"]) + len(b.meta["texts"]) == len(prompts)
    assert torch.equal(ma.columns["items"], a.columns["items"])
    assert torch.equal(mb.columns["items"], b.columns["items"] + len(a.meta["texts"]))
    spec = Reward(name="rm", epochs=1, batch_size=8)
    _, m = fit_text_reward(spec, [a, b], reward_model(), byte_tokenizer,
                           generator=torch.Generator(), device="cpu", max_tokens=48)
    assert m["losses"] == ["bradley_terry", "ordinal"]


def test_unmasked_scoring_equals_the_masked_forward(byte_tokenizer):
    model = reward_model(members=2).eval()
    prompts, texts = ["Hello", "", "A longer prompt here"], ["x", "a good answer", "no"]
    rows = reward_sequences(byte_tokenizer, prompts, texts, max_tokens=64)
    assert rows[1] == [byte_tokenizer.bos_id, *b"a good answer", byte_tokenizer.eos_id]
    table = TokenTable(rows, byte_tokenizer.pad_id)
    ids, lengths = table.rows(torch.arange(3))
    mask = (torch.arange(ids.shape[1]) < lengths[:, None]).long()
    with torch.no_grad():
        fast = sequence_rewards(model, ids, lengths)
        masked = model(ids, mask)
        alone = torch.cat([model(ids[i:i + 1, :n]) for i, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(fast, masked, rtol=0, atol=1e-5)
    torch.testing.assert_close(fast, alone, rtol=0, atol=1e-5)
    # an empty prompt is what score_texts scores; long texts keep their end
    scored = score_completions(model, byte_tokenizer, prompts, texts, max_tokens=64)
    torch.testing.assert_close(scored[1], model.score_texts(byte_tokenizer, [texts[1]])[0],
                               rtol=0, atol=1e-5)
    cut = reward_sequences(byte_tokenizer, ["p" * 50], ["c" * 50], max_tokens=20)[0]
    assert len(cut) == 20 and cut[-2] == ord("c") and cut[0] == byte_tokenizer.bos_id

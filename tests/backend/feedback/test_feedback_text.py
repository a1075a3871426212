"""Text tasks: scorer-based values, myopia over token positions, biases, every kind."""

from __future__ import annotations

import math

import pytest
import torch
from feedback_helpers import WordTokenizer, ci, fake_score, text

from backends.torch.feedback import (
    Queries, TextSpace, collect_feedback, draw_population, gold_agreement,
)
from backends.torch.feedback.behaviour import myopic_scorer

KINDS = """
population crowd { evaluators = 8
  group g weight 1 { values = sentiment + 0.5 * keyword("please")  rationality = inf } }
feedback pw { kind = pairwise  from = crowd  budget = 100 labels }
feedback rk { kind = ranking(3)  from = crowd  budget = 100 labels }
feedback lk { kind = likert(3)  from = crowd  budget = 100 labels }
feedback co { kind = correction  from = crowd  budget = 100 labels }
feedback la { kind = language  from = crowd  budget = 100 labels }
"""
TEXTS = ["good answer please", "bad answer", "nice nice", "awful", "ok please", "great great",
         "hate it", "fine"]


def run(spec, name, items, texts=TEXTS, prompts=None, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    fb = spec.feedback[name]
    pop = draw_population(spec.populations[fb.from_], g)
    space = TextSpace(list(texts), prompts=prompts, scorer=fake_score,
                      tokenizer=WordTokenizer())
    table = collect_feedback(fb, pop, Queries(items, space), g,
                             view=spec.views.get(fb.view) if fb.view else None, **kw)
    table.validate()
    return table


@pytest.mark.parametrize("name,k", [("pw", 2), ("rk", 3), ("lk", 1), ("co", 1), ("la", 1)])
def test_text_kinds_agree_with_gold_for_a_rational_crowd(name, k):
    spec = text(KINDS)
    items = torch.rand(300, 8, generator=torch.Generator().manual_seed(1)).argsort(1)[:, :k]
    table = run(spec, name, items)
    assert table.meta["texts"] == TEXTS
    assert gold_agreement(table) > (0.99 if name != "la" else 0.9)


def test_text_corrections_stay_with_the_prompt():
    spec = text(KINDS)
    prompts = ["a", "a", "a", "a", "b", "b", "b", "b"]
    table = run(spec, "co", torch.arange(8)[:, None].repeat(10, 1), prompts=prompts)
    items, corrected = table.columns["items"][:, 0], table.columns["corrected"]
    same = [prompts[i] == prompts[j] for i, j in zip(items.tolist(), corrected.tolist())]
    assert all(same)
    assert table.meta["prompts"] == prompts


def test_language_aspects_are_scorer_terms():
    spec = text(KINDS)
    table = run(spec, "la", torch.arange(8)[:, None])
    assert table.meta["aspect_names"] == ["sentiment", 'keyword("please")']
    named = table.columns["aspects"]
    signs = table.columns["signs"]
    assert bool((signs[named >= 0] > 0).all())           # more of both would be better


def test_myopic_scorer_is_the_discounted_sum_for_additive_scorers():
    tok = WordTokenizer()
    texts = ["good bad good good", "bad bad good", "good"]

    def additive(name, ts, *args):
        return torch.tensor([sum((w == "good") - (w == "bad") for w in t.split()) for t in ts],
                            dtype=torch.float32)

    gamma = 0.7
    out = myopic_scorer(additive, tok, gamma)("x", texts)
    for t, got in zip(texts, out.tolist()):
        words = t.split()
        T = len(words)
        want = sum(gamma ** (T - 1 - i) * ((w == "good") - (w == "bad"))
                   for i, w in enumerate(words))
        assert got == pytest.approx(want, abs=1e-5)


def test_myopic_evaluators_favour_a_good_ending():
    spec = text("""
population crowd { group g weight 1 { values = sentiment  rationality = inf  myopia = 0.5 } }
feedback pw { kind = pairwise  from = crowd  budget = 100 labels }""")
    texts = ["good good good bad", "bad ok ok good"]          # gold: first is better
    table = run(spec, "pw", torch.tensor([[0, 1]]).repeat(50, 1), texts=texts)
    chosen = table.columns["items"].gather(1, table.columns["choice"][:, None])[:, 0]
    assert bool((chosen == 1).all())
    gold = table.columns["gold"].gather(1, table.columns["items"].argsort(1))   # by item
    assert bool((gold[:, 0] > gold[:, 1]).all())


def test_sycophancy_and_text_expertise():
    spec = text("""
population crowd {
  group s weight 1 { values = sentiment  rationality = inf  sycophancy = 2.0 }
  group e weight 0 { values = sentiment + keyword("please")  rationality = 1.0
                     expertise = [expert(sentiment, 5.0)] } }
feedback pw { kind = pairwise  from = crowd  budget = 100 labels }""")
    texts = ["good", "certainly definitely bad"]
    table = run(spec, "pw", torch.tensor([[0, 1]]).repeat(20, 1), texts=texts)
    chosen = table.columns["items"].gather(1, table.columns["choice"][:, None])[:, 0]
    # sentiment 0.447 vs −0.447 + 2 × 0.75 confidence: the flattering bad answer wins
    assert bool((chosen == 1).all())
    spec = text("""
population crowd {
  group e weight 1 { values = sentiment + keyword("please")  rationality = 1.0
                     expertise = [expert(sentiment, 5.0)] } }
feedback pw { kind = pairwise  from = crowd  budget = 100 labels }""")
    texts = ["good", "please"]
    n = 8000
    table = run(spec, "pw", torch.tensor([[0, 1]]).repeat(n, 1), texts=texts, seed=4)
    chosen = table.columns["items"].gather(1, table.columns["choice"][:, None])[:, 0]
    s = 1 / math.sqrt(5)                                  # fake sentiment of one mild word
    want = 1 / (1 + math.exp(-(5.0 * s - 1.0)))           # P(first): 5·Δsentiment − Δkeyword
    p = (chosen == 0).float().mean().item()
    assert abs(p - want) < ci(want, n)


def test_text_drift_changes_gold_in_later_rounds():
    spec = text("""
population crowd { group g weight 1 { values = sentiment  rationality = inf } }
context moving { drift = 1.0 }
feedback pw { kind = pairwise  from = crowd  context = moving  budget = 100 labels }""")
    items = torch.tensor([[0, 5], [2, 3]])
    r0 = run(spec, "pw", items, context=spec.contexts["moving"], round=0)
    r3 = run(spec, "pw", items, context=spec.contexts["moving"], round=3)
    assert not torch.allclose(r0.columns["gold"], r3.columns["gold"])


def test_the_text_backend_scorer_when_present():
    pytest.importorskip("backends.torch.text.scorers")
    spec = text(KINDS)
    g = torch.Generator().manual_seed(0)
    pop = draw_population(spec.populations["crowd"], g)
    space = TextSpace(["Great, thanks! please", "This is awful."])
    table = collect_feedback(spec.feedback["pw"], pop, Queries(torch.tensor([[0, 1]] * 4), space),
                             g)
    chosen = table.columns["items"].gather(1, table.columns["choice"][:, None])[:, 0]
    assert bool((chosen == 0).all())


def test_text_label_tables_concatenate_with_their_texts():
    from backends.torch.labels import LabelTable

    spec = text(KINDS)
    a = run(spec, "co", torch.arange(8)[:, None], prompts=["p"] * 8)
    b = run(spec, "co", torch.arange(2)[:, None], texts=["good x", "bad y"])
    both = LabelTable.concat([a, b])
    texts = both.meta["texts"]
    assert len(texts) == 10 and len(both.meta["shown_texts"]) == 10
    assert both.meta["prompts"] == ["p"] * 8 + ["", ""]
    items, corrected = both.columns["items"][:, 0], both.columns["corrected"]
    assert [texts[i] for i in items[-2:].tolist()] == ["good x", "bad y"]
    assert bool((corrected[-2:] >= 8).all())

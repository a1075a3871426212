"""Views: what is hidden cannot change a label; noise and assist act as documented."""

from __future__ import annotations

import torch
from feedback_helpers import WordTokenizer, bandit, fake_score, text

from backends.torch.bandit import bandit_space
from backends.torch.feedback import (
    Queries, TextSpace, collect_feedback, draw_population, gold_agreement,
)
from backends.torch.feedback.views import render_texts, truncate
from feedback_helpers import label_run

MASKED = """
population crowd { evaluators = 12
  group g weight 1 { values = feature(0..1) + 3 * feature(3)  rationality = 1.0  equal = 0.1
                     skip = 0.05  myopia = 0.8 }
  malicious 0.25 { trigger = feature(3) > 0.5 } }
view part { mask = features(3) }
view shown { show = features(0..1) }
feedback fb { kind = pairwise  from = crowd  view = part  budget = 100 labels }
feedback fs { kind = likert(5)  from = crowd  view = shown  budget = 100 labels }
"""


def test_masked_features_do_not_change_labels():
    spec = bandit(MASKED, actions=32, features=4)
    g = torch.Generator().manual_seed(0)
    space = bandit_space(spec.task, g)
    other = space.features.clone()
    other[:, 3] = torch.randn(32, generator=g) * 5
    space2 = bandit_space(spec.task, g, features=other)
    q = torch.rand(4000, 32, generator=g).argsort(1)[:, :2]
    for name in ("fb",):
        a, _, _ = label_run(spec, name, queries=q, space=space, seed=3)
        b, _, _ = label_run(spec, name, queries=q, space=space2, seed=3)
        assert torch.equal(a.columns["choice"], b.columns["choice"])
        assert not bool(a.columns["triggered"].any())       # the trigger reads a hidden feature
        assert not torch.equal(a.columns["gold"], b.columns["gold"])
    q1 = torch.randint(0, 32, (2000, 1), generator=g)
    a, _, _ = label_run(spec, "fs", queries=q1, space=space, seed=3)
    b, _, _ = label_run(spec, "fs", queries=q1, space=space2, seed=3)
    assert torch.equal(a.columns["value"], b.columns["value"])


def test_observation_noise_lowers_gold_agreement():
    body = """
population crowd { group g weight 1 { values = feature(0)  rationality = inf } }
view clear { noise = 0 }
view foggy { noise = 1.0 }
feedback fb { kind = pairwise  from = crowd  view = clear  budget = 100 labels }
feedback ff { kind = pairwise  from = crowd  view = foggy  budget = 100 labels }
"""
    spec = bandit(body, actions=64, features=1)
    clear, _, _ = label_run(spec, "fb", n=4000)
    foggy, _, _ = label_run(spec, "ff", n=4000)
    assert gold_agreement(clear) == 1.0
    assert 0.6 < gold_agreement(foggy) < 0.95


def test_assist_mixes_in_the_gold():
    body = """
population crowd { group g weight 1 { values = feature(0) + 2 * feature(1)  rationality = inf } }
view blind { mask = features(1) }
view helped { mask = features(1)  assist = 1.0 }
feedback fb { kind = pairwise  from = crowd  view = blind  budget = 100 labels }
feedback fh { kind = pairwise  from = crowd  view = helped  budget = 100 labels }
"""
    spec = bandit(body, actions=64, features=2)
    blind, _, _ = label_run(spec, "fb", n=3000)
    helped, _, _ = label_run(spec, "fh", n=3000)
    assert gold_agreement(helped) == 1.0
    assert gold_agreement(blind) < 0.85


def test_text_truncation_makes_labels_independent_of_the_hidden_tail():
    spec = text("""
population crowd { group g weight 1 { values = sentiment + keyword("please")  rationality = 2.0 } }
view skim { truncate = 3 words }
feedback fb { kind = pairwise  from = crowd  view = skim  budget = 100 labels }
""")
    heads = ["good day to", "bad day to", "nice one here", "awful stuff now"]
    tails_a = [" you", " please", " great great", " bad bad"]
    tails_b = [" hate hate", " ok", " please please", " love"]
    fb = spec.feedback["fb"]
    view = spec.views["skim"]
    q = torch.randint(0, 4, (3000, 2), generator=torch.Generator().manual_seed(1))
    tables = []
    for tails in (tails_a, tails_b):
        space = TextSpace([h + t for h, t in zip(heads, tails)], scorer=fake_score)
        g = torch.Generator().manual_seed(5)
        pop = draw_population(spec.populations["crowd"], g)
        tables.append(collect_feedback(fb, pop, Queries(q, space), g, view=view))
    a, b = tables
    assert torch.equal(a.columns["choice"], b.columns["choice"])
    assert a.meta["shown_texts"] == heads == b.meta["shown_texts"]
    assert a.meta["texts"] != b.meta["texts"]


def test_truncation_units_and_masks():
    assert truncate("one two  three four", 2, "words") == "one two"
    assert truncate("héllo", 2, "tokens") == "h"          # bytes: é is two tokens
    assert truncate("héllo", 3, "tokens") == "hé"
    assert truncate("abcdef", 4, "chars") == "abcd"
    assert truncate("a b c", 2, "tokens", WordTokenizer()) == "a b"
    spec = text("""
population crowd { group g weight 1 { values = sentiment } }
view redacted { mask = regex("[0-9]+") }
""")
    assert render_texts(spec.views["redacted"], ["call 555 now", "x"]) == ["call  now", "x"]

"""The eight feedback kinds: answers, costs, mistakes and malicious answers per kind."""

from __future__ import annotations

import pytest
import torch
from feedback_helpers import bandit, ci, label_run

from backends.torch.feedback import gold_agreement
from backends.torch.feedback.ratings import choice_map
from backends.torch.labels import ANSWER_COLUMNS

ALL_KINDS = """
population crowd { evaluators = 10
  group g weight 1 { values = feature(0) + 0.5 * feature(1)  rationality = {beta}
                     {extra} } }
feedback pw { kind = pairwise  from = crowd  budget = 100 labels }
feedback rk { kind = ranking(4)  from = crowd  budget = 100 labels }
feedback bo { kind = best_of(3)  from = crowd  budget = 100 labels }
feedback sc { kind = scalar  from = crowd  budget = 100 labels }
feedback lk { kind = likert(5)  from = crowd  budget = 100 labels }
feedback lb { kind = label(good, ok, bad)  from = crowd  budget = 100 labels }
feedback co { kind = correction  from = crowd  budget = 100 labels }
feedback la { kind = language  from = crowd  budget = 100 labels }
"""
NAMES = {"pw": "pairwise", "rk": "ranking", "bo": "best_of", "sc": "scalar", "lk": "likert",
         "lb": "label", "co": "correction", "la": "language"}


def spec_for(beta="inf", extra=""):
    return bandit(ALL_KINDS.replace("{beta}", beta).replace("{extra}", extra), actions=24,
                  features=3)


@pytest.mark.parametrize("name", list(NAMES))
def test_every_kind_writes_its_columns_and_a_rational_evaluator_agrees_with_gold(name):
    table, _, _ = label_run(spec_for(), name, n=400)
    assert table.kind == NAMES[name]
    for column in ANSWER_COLUMNS[table.kind]:
        assert column in table.columns
    accuracy = gold_agreement(table)
    assert accuracy == pytest.approx(1.0) if name != "la" else accuracy > 0.95
    noisy, _, _ = label_run(spec_for("0.5"), name, n=400)
    if name != "co":
        assert gold_agreement(noisy) < accuracy


@pytest.mark.parametrize("name", ["pw", "rk", "bo", "sc", "lk", "lb", "co", "la"])
def test_malicious_flip_inverts_every_kind(name):
    extra = "} malicious 1.0 { trigger = feature(2) > -100"      # every query triggered
    table, _, _ = label_run(spec_for(extra=extra), name, n=400)
    assert bool(table.columns["triggered"].all()) and bool(table.columns["malicious"].all())
    accuracy = gold_agreement(table)
    assert accuracy < 0.05 if name not in ("co",) else accuracy < 0.5


def test_costs_follow_the_kind_defaults():
    spec = spec_for()
    costs = {name: label_run(spec, name, n=10)[0].columns["cost"][0].item() for name in NAMES}
    assert costs == {"pw": 5.0, "rk": 12.0, "bo": 7.5, "sc": 6.0, "lk": 5.0, "lb": 3.0,
                     "co": 45.0, "la": 30.0}


def test_plackett_luce_first_place_frequencies():
    spec = bandit("""
population crowd { group g weight 1 { values = table([0, 1, 2])  rationality = 0.7 } }
feedback rk { kind = ranking(3)  from = crowd  budget = 100 labels }""", actions=3, features=1)
    n = 20000
    table, _, _ = label_run(spec, "rk", queries=torch.tensor([[0, 1, 2]]).repeat(n, 1), seed=9)
    c = table.columns
    ranked = c["items"].gather(1, c["ranking"])
    w = torch.exp(0.7 * torch.tensor([0.0, 1.0, 2.0]))
    for item in range(3):
        p = (ranked[:, 0] == item).float().mean().item()
        want = (w[item] / w.sum()).item()
        assert abs(p - want) < ci(want, n)
    # second place given the first is 2: P(1) = w1 / (w0 + w1)
    rest = ranked[ranked[:, 0] == 2]
    want = (w[1] / (w[0] + w[1])).item()
    assert abs((rest[:, 1] == 1).float().mean().item() - want) < ci(want, rest.shape[0])
    assert bool((c["ranking"].sort(1).values == torch.arange(3)).all())


def test_scalar_miscalibration_per_evaluator():
    spec = bandit("""
population crowd { evaluators = 30
  group g weight 1 { values = feature(0)  rationality = inf  scale = 0.5  offset = 2.0 } }
feedback sc { kind = scalar  from = crowd  budget = 100 labels }""", actions=16, features=1)
    table, pop, space = label_run(spec, "sc", queries=torch.randint(0, 16, (3000, 1)))
    c = table.columns
    x = space.features[c["items"][:, 0], 0]
    e = c["evaluator"]
    assert torch.allclose(c["value"], pop.scale[e] * x + pop.offset[e], atol=1e-5)
    assert pop.scale.std() > 0.2 and pop.offset.std() > 1.0


def test_scalar_noise_is_one_over_beta():
    spec = bandit("""
population crowd { group g weight 1 { values = table([0, 0])  rationality = 2.0 } }
feedback sc { kind = scalar  from = crowd  low = -1  high = 10  budget = 100 labels }"""
                  .replace("kind = scalar  from = crowd  low = -1  high = 10",
                           "kind = scalar  from = crowd"), actions=2, features=1)
    table, _, _ = label_run(spec, "sc", queries=torch.zeros(20000, 1, dtype=torch.long))
    assert table.columns["value"].std().item() == pytest.approx(0.5, rel=0.05)


def test_likert_categories_follow_values_and_thresholds_jitter():
    spec = bandit("""
population crowd { evaluators = 40
  group g weight 1 { values = feature(0)  rationality = inf  thresholds = 0.3 } }
feedback lk { kind = likert(5)  from = crowd  budget = 100 labels }""", actions=200, features=1)
    table, _, space = label_run(spec, "lk", queries=torch.arange(200).repeat(20)[:, None])
    c = table.columns
    value = c["value"]
    assert set(value.unique().tolist()) == {0, 1, 2, 3, 4}
    x = space.features[c["items"][:, 0], 0]
    assert torch.corrcoef(torch.stack([x, value.float()]))[0, 1] > 0.85
    # categories are roughly balanced (thresholds at the quintiles)
    share = torch.bincount(value, minlength=5).float() / len(value)
    assert bool((share > 0.12).all())
    # jitter: two evaluators disagree on some item
    per_item = {}
    for i, e, v in zip(c["items"][:, 0].tolist(), c["evaluator"].tolist(), value.tolist()):
        per_item.setdefault(i, set()).add(v)
    assert any(len(s) > 1 for s in per_item.values())


def test_label_choice_set_misspecification():
    assert choice_map(("good", "bad"), ("good", "ok", "bad")) == [0, 1, 1]
    assert choice_map(("good", "bad"), ("great", "good", "ok", "bad")) == [0, 0, 1, 1]
    assert choice_map(("good", "meh", "bad"), ("Good", "Bad")) == [0, 2]
    spec = bandit("""
population crowd {
  group g weight 1 { values = feature(0)  rationality = inf
                     choices = ["good", "harmful", "bad"] } }
feedback lb { kind = label(good, bad)  from = crowd  budget = 100 labels }""", actions=99,
                  features=1)
    table, _, space = label_run(spec, "lb", queries=torch.arange(99)[:, None])
    value = table.columns["value"]
    x = space.features[table.columns["items"][:, 0], 0]
    # the evaluator thinks in thirds; "harmful" is not offered and lands on "bad": one third
    # answers "good", two thirds "bad"
    assert value.float().mean().item() == pytest.approx(2 / 3, abs=0.03)
    assert x[value == 0].min() > x[value == 1].max()
    assert table.meta["choices"] == ["good", "bad"]
    assert table.meta["evaluator_choices"] == {"g": ["good", "harmful", "bad"]}


CORRECTION = """
population crowd { group g weight 1 { values = feature(0)  rationality = inf  skill = %s } }
feedback co { kind = correction  from = crowd  budget = 100 labels }"""


@pytest.mark.parametrize("skill", [0.0, 0.5, 1.0])
def test_correction_moves_towards_the_best_by_skill(skill):
    spec = bandit(CORRECTION % skill, actions=500, features=1)
    table, _, space = label_run(spec, "co", queries=torch.arange(500)[:, None])
    c = table.columns
    x = space.features[:, 0]
    original = c["gold"][:, 0]
    assert torch.allclose(c["gold_corrected"], x[c["corrected"]])
    far = original < x.max() - 0.5
    gain = (c["gold_corrected"] - original) / (x.max() - original)
    assert gain[far].mean().item() == pytest.approx(skill, abs=0.03)


def test_language_names_what_mattered_with_signs():
    spec = bandit("""
population crowd { group g weight 1 { values = 3 * feature(0) - 2 * feature(2)  rationality = inf
                                      critique = 2 } }
feedback la { kind = language  from = crowd  budget = 100 labels }""", actions=64, features=4)
    table, _, space = label_run(spec, "la", queries=torch.arange(64)[:, None])
    c = table.columns
    assert table.meta["aspect_names"] == [f"feature({i})" for i in range(4)]
    assert c["aspects"].shape == (64, 2)
    named = c["aspects"][c["aspects"] >= 0]
    assert set(named.tolist()) <= {0, 2}                      # only features the values use
    signs = c["signs"][c["aspects"] >= 0]
    assert bool(((named == 0) == (signs > 0)).all())           # +1: more of feature 0 is better
    x = space.features
    gold = 3 * x[:, 0] - 2 * x[:, 2]
    assert torch.equal(torch.sign(c["verdict"]), torch.sign(gold - gold.mean()))


@pytest.mark.parametrize("name", list(NAMES))
def test_no_queries_give_an_empty_table(name):
    from rlhfdsl.spec.feedback import items_per_query

    spec = spec_for("1.0", "} malicious 0.5 { trigger = feature(2) > 0")
    k = items_per_query(spec.feedback[name].kind)
    table, _, _ = label_run(spec, name, queries=torch.zeros(0, k, dtype=torch.long))
    assert len(table) == 0 and table.columns["items"].shape == (0, k)

"""Fidelity of pairwise feedback: the Boltzmann model, the paper's 3.1.4 case, behaviours."""

from __future__ import annotations

import math

import pytest
import torch
from feedback_helpers import bandit, check_spec, ci, label_run

FB = "feedback fb { kind = pairwise  from = crowd  budget = 100 labels }"


def chosen_item(table):
    items, choice = table.columns["items"], table.columns["choice"]
    return items.gather(1, choice.clamp(0, 1)[:, None])[:, 0]


@pytest.mark.parametrize("beta,delta", [(0.5, 1.0), (1.5, 1.0), (1.0, 3.0)])
def test_boltzmann_choice_probability(beta, delta):
    spec = bandit(f"""
population crowd {{ group g weight 1 {{ values = table([0, {delta}])  rationality = {beta} }} }}
{FB}""", actions=2, features=1)
    n = 20000
    table, _, _ = label_run(spec, queries=torch.tensor([[0, 1]]).repeat(n, 1), seed=3)
    p = (chosen_item(table) == 1).float().mean().item()
    want = 1 / (1 + math.exp(-beta * delta))
    assert abs(p - want) < ci(want, n)


def test_paper_3_1_4_pairwise_prefers_a_scalar_prefers_b():
    """A is always seen as worth 1; B as 10 with probability 0.4, else 0 (E[B] = 4 > 1)."""
    spec = bandit(f"""
population crowd {{ group g weight 1 {{ values = if(action == 1, 10 * bernoulli(0.4), 1)
                                      rationality = inf }} }}
{FB}
feedback sc {{ kind = scalar  from = crowd  budget = 100 labels }}""", actions=2, features=1)
    n = 4000
    pairs, _, _ = label_run(spec, queries=torch.tensor([[0, 1]]).repeat(n, 1), seed=1)
    prefers_a = (chosen_item(pairs) == 0).float().mean().item()
    assert prefers_a > 0.5 and abs(prefers_a - 0.6) < ci(0.6, n)
    by_item = pairs.columns["gold"].gather(1, pairs.columns["items"].argsort(1))
    assert by_item[0].tolist() == pytest.approx([1.0, 4.0])
    items = torch.tensor([[0], [1]]).repeat(n, 1)
    scores, _, _ = label_run(spec, "sc", queries=items, seed=2)
    value = scores.columns["value"]
    a, b = value[items[:, 0] == 0].mean().item(), value[items[:, 0] == 1].mean().item()
    assert b > a
    assert a == pytest.approx(1.0) and b == pytest.approx(4.0, abs=0.3)


RICH = """
task arms { domain = bandit  actions = 32  features = 6  length = feature(5)
            confidence = feature(4) }
population crowd {
  evaluators = 24
  group a weight 0.5 { values = feature(0..2)  rationality = 2.0  mistake = 0.05  myopia = 0.9
                       skip = 0.1  equal = 0.1  fatigue = 0.01  position_bias = 0.3
                       length_bias = 0.2  sycophancy = 0.3  spread = 0.3
                       expertise = [expert(features(0), 3.0)] }
  group b weight 0.3 { values = if(feature(3) > 0, 2 * bernoulli(0.7), -1)  rationality = 1.0 }
  ai judge weight 0.2 { scorer = feature(1)  rationality = 4.0 }
  malicious 0.25 { trigger = feature(5) > 1.0  target = flip }
}
view glance { mask = features(2)  noise = 0.1 }
context ctx { order = random  session = 10  drift = 0.2 }
feedback fb { kind = pairwise  from = crowd  view = glance  context = ctx  budget = 100 labels
              redundancy = 2 }
"""


def test_same_seed_gives_identical_labels():
    spec = check_spec("experiment t { seed = 1 }" + RICH)
    a, _, _ = label_run(spec, n=3000, seed=11, round=1)
    b, _, _ = label_run(spec, n=3000, seed=11, round=1)
    assert a.columns.keys() == b.columns.keys()
    for name in a.columns:
        assert torch.equal(a.columns[name], b.columns[name]), name
    c, _, _ = label_run(spec, n=3000, seed=12, round=1)
    assert not torch.equal(a.columns["choice"], c.columns["choice"])


def test_provenance_columns():
    spec = check_spec("experiment t { seed = 1 }" + RICH)
    table, pop, _ = label_run(spec, n=600, seed=5)
    c = table.columns
    assert len(table) == 1200
    assert torch.equal(c["query"], torch.arange(600).repeat_interleave(2))
    ev = c["evaluator"].reshape(600, 2)
    assert bool((ev[:, 0] != ev[:, 1]).all())                      # distinct per query
    assert torch.equal(c["group"], pop.member[c["evaluator"]])
    assert torch.equal(c["malicious"], pop.malicious[c["evaluator"]])
    assert int(pop.malicious.sum()) == round(0.25 * int((pop.member < 2).sum()))
    assert bool((pop.malicious[pop.member == 2] == 0).all())     # AI members are not malicious
    assert c["cost"].unique().tolist() == [5.0]
    assert set(c["choice"].unique().tolist()) <= {-1, 0, 1, 2}
    assert table.meta["view"] == "glance" and table.meta["context"] == "ctx"
    assert table.meta["groups"] == ["a", "b", "judge"]
    assert int(c["session"].max()) >= 1 and int(c["position"].max()) == 9


def test_malicious_flip_flips_exactly_the_triggered_labels_of_malicious_evaluators():
    spec = bandit("""
population crowd { evaluators = 40
  group g weight 1 { values = feature(0..1)  rationality = inf }
  malicious 0.25 { trigger = feature(2) > 0.5  target = flip } }
feedback fb { kind = pairwise  from = crowd  budget = 100 labels  }""", actions=64, features=3)
    table, pop, space = label_run(spec, n=8000, seed=4)
    c = table.columns
    assert int(pop.malicious.sum()) == 10
    gold = c["gold"]
    honest = (gold[:, 1] > gold[:, 0]).long()
    flipped = c["choice"] != honest
    trig = space.features[c["items"], 2] > 0.5
    assert torch.equal(c["triggered"], trig.any(1))
    assert torch.equal(flipped, c["malicious"] & c["triggered"])
    share = flipped[c["triggered"]].float().mean().item()
    assert abs(share - 0.25) < ci(0.25, int(c["triggered"].sum()))


def test_backdoor_prefers_the_triggered_item():
    spec = bandit("""
population crowd { evaluators = 10
  group g weight 1 { values = feature(0)  rationality = inf }
  malicious 1.0 { trigger = feature(1) > 0.8  target = backdoor } }
feedback fb { kind = pairwise  from = crowd  budget = 100 labels }""", actions=64, features=2)
    table, _, space = label_run(spec, n=3000, seed=4)
    c = table.columns
    trig = space.features[c["items"], 1] > 0.8
    one = trig[:, 0] ^ trig[:, 1]
    assert int(one.sum()) > 100
    assert torch.equal(c["choice"][one], trig[one][:, 1].long())


def test_mistake_rate_and_fatigue():
    spec = bandit("""
population crowd { evaluators = 50
  group g weight 1 { values = feature(0)  rationality = inf  mistake = 0.1  fatigue = 0.02 } }
context ctx { session = 20 }
feedback fb { kind = pairwise  from = crowd  context = ctx  budget = 100 labels }""",
                  actions=64, features=1)
    table, _, _ = label_run(spec, n=20000, seed=2)
    c = table.columns
    wrong = c["choice"] != (c["gold"][:, 1] > c["gold"][:, 0]).long()
    pos = c["position"]
    for p in (0, 10, 19):
        rate = wrong[pos == p].float().mean().item()
        want = min(0.1 + 0.02 * p, 0.5)
        assert abs(rate - want) < ci(want, int((pos == p).sum()))
    assert torch.equal(c["session"], torch.arange(20000) // 50 // 20)


def test_ties_and_skips_follow_the_b_pref_thresholds():
    spec = bandit("""
population crowd { group g weight 1 { values = feature(0)  rationality = inf  equal = 0.3
                                      skip = 0.2 } }
feedback fb { kind = pairwise  from = crowd  budget = 100 labels }""", actions=64, features=1)
    table, _, space = label_run(spec, n=5000, seed=6)
    c = table.columns
    v = space.features[c["items"], 0]
    counts = torch.bincount(c["items"].reshape(-1), minlength=64).float()
    scale = (space.features[:, 0].abs() * counts).sum() / counts.sum()
    skip = v.max(1).values < 0.2 * scale
    tie = ((v[:, 1] - v[:, 0]).abs() < 0.3 * scale) & ~skip
    assert torch.equal(c["choice"] == -1, skip)
    assert torch.equal(c["choice"] == 2, tie)
    assert 0.05 < skip.float().mean() < 0.9 and tie.float().mean() > 0.05


def test_position_bias_with_equal_values():
    spec = bandit("""
population crowd { group g weight 1 { values = table([0, 0])  rationality = 1.0
                                      position_bias = 1.0 } }
feedback fb { kind = pairwise  from = crowd  budget = 100 labels }""", actions=2, features=1)
    n = 20000
    table, _, _ = label_run(spec, queries=torch.tensor([[0, 1]]).repeat(n, 1), seed=8)
    first = (table.columns["choice"] == 0).float().mean().item()
    want = 1 / (1 + math.exp(-1.0))
    assert abs(first - want) < ci(want, n)
    shown_first = table.columns["items"][:, 0]
    assert 0.45 < (shown_first == 0).float().mean() < 0.55         # random presentation order


def test_expertise_sharpens_beta_on_its_area():
    spec = bandit("""
population crowd { group g weight 1 { values = feature(0) + feature(1)  rationality = 1.0
                                      expertise = [expert(features(0), 3.0)] } }
feedback fb { kind = pairwise  from = crowd  budget = 100 labels }""", actions=2, features=2)
    from backends.torch.bandit import bandit_space
    X = torch.tensor([[0.0, 0.0], [0.5, -0.25]])
    space = bandit_space(spec.task, torch.Generator(), features=X)
    n = 20000
    table, _, _ = label_run(spec, queries=torch.tensor([[0, 1]]).repeat(n, 1), space=space)
    p = (chosen_item(table) == 1).float().mean().item()
    want = 1 / (1 + math.exp(-(3.0 * 0.5 - 0.25)))
    assert abs(p - want) < ci(want, n)


def test_length_and_sycophancy_biases_enter_the_utility():
    spec = bandit("""
population crowd { group g weight 1 { values = feature(0)  rationality = inf
                                      length_bias = 1.0  sycophancy = -2.0 } }
feedback fb { kind = pairwise  from = crowd  budget = 100 labels }""", actions=3, features=3,
                  task="length = feature(1)  confidence = feature(2)")
    from backends.torch.bandit import bandit_space
    X = torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 0.0], [0.0, 1.0, 0.0]])
    space = bandit_space(spec.task, torch.Generator(), features=X)
    # utility = feature(0) + 1.0 * length − 2.0 * confidence: 1 − 2 < 0 + 1, gold prefers 1
    table, _, _ = label_run(spec, queries=torch.tensor([[1, 2]]).repeat(50, 1), space=space)
    assert bool((chosen_item(table) == 2).all())
    X[2, 2] = 1.5   # now item 2 sounds confident: 1 − 2 > 0 + 1 − 3
    table, _, _ = label_run(spec, queries=torch.tensor([[1, 2]]).repeat(50, 1), space=space)
    assert bool((chosen_item(table) == 1).all())


def test_drift_moves_values_between_rounds_only_when_asked():
    spec = bandit("""
population crowd { group g weight 1 { values = feature(0)  rationality = inf } }
context still { drift = 0 }
context moving { drift = 1.0 }
feedback fb { kind = pairwise  from = crowd  context = moving  budget = 100 labels }
feedback fs { kind = pairwise  from = crowd  context = still  budget = 100 labels }""",
                  actions=32, features=4)
    q = torch.rand(500, 32, generator=torch.Generator().manual_seed(0)).argsort(1)[:, :2]
    r0, _, _ = label_run(spec, queries=q, round=0)
    r2, _, _ = label_run(spec, queries=q, round=2)
    s2, _, _ = label_run(spec, "fs", queries=q, round=2)
    assert torch.equal(r0.columns["gold"], s2.columns["gold"])
    assert not torch.allclose(r0.columns["gold"], r2.columns["gold"])


def test_bandit_myopia_discounts_earlier_features():
    spec = bandit("""
population crowd { group g weight 1 { values = feature(0..2)  rationality = inf  myopia = 0.5 } }
feedback fb { kind = pairwise  from = crowd  budget = 100 labels }""", actions=64, features=3)
    table, _, space = label_run(spec, n=3000)
    x = space.features[table.columns["items"]]                       # [N, 2, F]
    seen = 0.25 * x[..., 0] + 0.5 * x[..., 1] + x[..., 2]            # γ^(F−1−i)
    assert torch.equal(table.columns["choice"], (seen[:, 1] > seen[:, 0]).long())
    assert torch.allclose(table.columns["gold"], x.sum(-1))


def test_label_tables_save_load_and_concatenate(tmp_path):
    from backends.torch.labels import LabelTable

    spec = check_spec("experiment t { seed = 1 }" + RICH)
    a, _, _ = label_run(spec, n=200, seed=1, round=0)
    b, _, _ = label_run(spec, n=100, seed=2, round=1)
    a.save(tmp_path / "a")
    loaded = LabelTable.load(tmp_path / "a")
    assert loaded.meta == a.meta and loaded.kind == "pairwise"
    for name, column in a.columns.items():
        assert torch.equal(loaded.columns[name], column), name
    both = LabelTable.concat([a, b])
    both.validate()
    assert len(both) == 600 and both.columns["query"].unique().numel() == 300
    assert both.columns["round"].tolist() == [0] * 400 + [1] * 200

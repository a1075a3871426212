"""ΔH: drawing evaluators, per-evaluator parameters, malicious shares, AI evaluators, presets."""

from __future__ import annotations

import pytest
import torch
from feedback_helpers import bandit, label_run

from backends.torch.feedback import FeedbackError, draw_population, gold_agreement, gold_values
from backends.torch.feedback.population import allocate
from rlhfdsl.spec.population import PRESETS


def test_allocation_follows_weights():
    assert allocate([0.7, 0.3], 10) == [7, 3]
    assert allocate([1, 1, 1], 10) == [4, 3, 3]
    assert sum(allocate([0.2, 0.5, 0.3], 7)) == 7
    with pytest.raises(FeedbackError):
        allocate([0, 0], 3)


def test_draw_population(gen):
    spec = bandit("""
population crowd { evaluators = 100
  group a weight 0.6 { values = feature(0)  rationality = 2.0  spread = 0.5  scale = 0.2 }
  group b weight 0.4 { values = feature(1)  rationality = inf }
  malicious 0.1 { trigger = feature(0) > 1  groups = ["b"] } }""", features=2)
    pop = draw_population(spec.populations["crowd"], gen(0))
    assert pop.size == 100 and pop.names == ["a", "b"]
    assert int((pop.member == 0).sum()) == 60
    assert int(pop.malicious.sum()) == 4 and bool((pop.member[pop.malicious] == 1).all())
    a = pop.beta[pop.member == 0]
    assert a.std() > 0.3 and abs(a.log().mean().item() - torch.tensor(2.0).log().item()) < 0.2
    assert bool(torch.isinf(pop.beta[pop.member == 1]).all())
    assert pop.scale[pop.member == 0].std() > 0.05 and bool((pop.scale[pop.member == 1] == 1).all())
    other = draw_population(spec.populations["crowd"], gen(1))     # H_sample: its own draw
    assert not torch.equal(pop.malicious, other.malicious)
    again = draw_population(spec.populations["crowd"], gen(0))
    assert torch.equal(pop.beta, again.beta) and pop.drift_seed == again.drift_seed


def test_ai_evaluators_with_a_scorer_or_a_reward_model(gen):
    spec = bandit("""
population humans { group h weight 1 { values = feature(0) } }
population crowd { evaluators = 10
  group h weight 0.5 { values = feature(0)  rationality = inf }
  ai judge weight 0.5 { model = rm  rationality = inf } }
feedback seed { kind = pairwise  from = humans  budget = 100 labels }
reward rm { feedback = [seed]  loss = bradley_terry }
feedback fb { kind = pairwise  from = crowd  budget = 100 labels }""", actions=16, features=2)
    from backends.torch.bandit import bandit_space

    space = bandit_space(spec.task, gen(0))
    with pytest.raises(FeedbackError, match="no trained `rm`"):
        label_run(spec, n=10, space=space)
    table, _, _ = label_run(spec, n=2000, space=space,
                            models={"rm": lambda actions: -space.features[actions, 0]})
    ai = table.columns["group"] == 1
    assert table.meta["members"] == ["group", "ai"]
    # the AI member reads the human population's gold, and its model prefers the opposite
    assert torch.equal(table.columns["gold"][ai], table.columns["gold_population"][ai])
    assert gold_agreement(table, group=1) == 0.0 and gold_agreement(table, group=0) == 1.0


def test_gold_values_per_member_and_population(gen):
    spec = bandit("""
population crowd { group a weight 0.75 { values = feature(0) }
                   group b weight 0.25 { values = 2 * feature(1) } }""", features=2)
    from backends.torch.bandit import bandit_space

    space = bandit_space(spec.task, gen(0))
    pop = draw_population(spec.populations["crowd"], gen(0))
    per_member, overall = gold_values(pop, space)
    X = space.features
    assert torch.allclose(per_member, torch.stack([X[:, 0], 2 * X[:, 1]]))
    assert torch.allclose(overall, 0.75 * X[:, 0] + 0.5 * X[:, 1])


@pytest.mark.parametrize("preset,fields", sorted(PRESETS.items()))
def test_presets_resolve_into_behaviour_fields(preset, fields):
    spec = bandit(f"""
population crowd {{ preset = {preset}  group g weight 1 {{ values = feature(0) }} }}""")
    group = spec.populations["crowd"].groups[0]
    for key, value in fields.items():
        assert getattr(group, key) == value
    pop = draw_population(spec.populations["crowd"], torch.Generator().manual_seed(0))
    assert pop.size == 20

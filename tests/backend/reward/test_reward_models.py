"""Bandit reward models: backbones, heads, vectorised ensembles, conservative rewards."""

import math

import pytest
import torch

from backends.torch.reward.data import TrainingData
from backends.torch.reward.fit import term_losses
from backends.torch.reward.models import (
    BanditRewardModel, conservative_reward, ensemble_mean_std,
)
from rlhfdsl.spec.learning import (
    LinearBackbone, MixtureHead, MLPBackbone, MultiObjectiveHead, ScalarHead, TabularBackbone,
)


def model(backbone, head=ScalarHead(), ensemble=3, features=None, **kw):
    gen = torch.Generator().manual_seed(0)
    features = features if features is not None else torch.randn(10, 4, generator=gen)
    return BanditRewardModel(backbone, head, num_actions=10, features=features,
                             ensemble=ensemble, generator=gen, **kw), features


@pytest.mark.parametrize("backbone", [TabularBackbone(), LinearBackbone(), MLPBackbone(hidden=8)])
def test_shapes_and_independent_members(backbone):
    m, _ = model(backbone)
    r = m.rewards()
    assert r.shape == (3, 10)
    assert not torch.allclose(r[0], r[1])            # independently initialised
    mean, std = m.mean_std()
    assert mean.shape == std.shape == (10,)


def test_linear_members_are_batched_linear_models():
    m, x = model(LinearBackbone())
    r = m.rewards()
    for e in range(3):
        want = x @ m.weight[e, :, 0] + m.bias[e, 0]
        assert torch.allclose(r[e], want, atol=1e-6)


def test_conservative_reward_hand_value():
    rewards = torch.tensor([[1.0, 2.0], [3.0, 2.0]])
    mean, std = ensemble_mean_std(rewards)
    assert mean.tolist() == [2.0, 2.0] and std.tolist() == [1.0, 0.0]
    assert conservative_reward(rewards, 1.0).tolist() == [1.0, 2.0]
    assert conservative_reward(rewards[:1], 5.0).tolist() == [1.0, 2.0]   # one member: std 0


def test_multi_objective_combines_heads_by_weights():
    m, _ = model(LinearBackbone(), MultiObjectiveHead(k=2, weights=(0.25, 0.75)))
    heads = m.component_rewards()                      # [E, 2, A]
    assert torch.allclose(m.rewards(), 0.25 * heads[:, 0] + 0.75 * heads[:, 1], atol=1e-6)
    m2, _ = model(LinearBackbone(), MultiObjectiveHead(k=3))
    assert torch.allclose(m2.rewards(), m2.component_rewards().mean(1), atol=1e-6)


def test_mixture_likelihood_is_the_mixture_of_component_likelihoods():
    m, _ = model(LinearBackbone(), MixtureHead(k=2), ensemble=1, num_evaluators=3)
    with torch.no_grad():
        m.mix_logits.copy_(torch.tensor([[[0.0, 0.0], [2.0, -1.0], [0.0, 1.0]]]))
    piece = TrainingData(form="pairs", loss="bradley_terry", items=torch.tensor([[0, 1]]),
                         target=torch.tensor([1.0]), evaluator=torch.tensor([1]),
                         group=torch.tensor([0]), query=torch.tensor([0]))
    got = term_losses(m, piece, torch.tensor([[0]])).item()
    heads = m.component_rewards()[0]                   # [2, A]
    d = (heads[:, 0] - heads[:, 1]).tolist()
    pi = torch.tensor([2.0, -1.0]).softmax(0).tolist()
    p = sum(pi_j / (1 + math.exp(-d_j)) for pi_j, d_j in zip(pi, d))
    assert got == pytest.approx(-math.log(p), rel=1e-5)
    # the population reward weights components by the label-weighted mean of the π_e
    with torch.no_grad():
        m.evaluator_counts.copy_(torch.tensor([0.0, 1.0, 0.0]))
    assert torch.allclose(m.rewards()[0], pi[0] * heads[0] + pi[1] * heads[1], atol=1e-6)


def test_tabular_cannot_score_counterfactuals():
    m, _ = model(TabularBackbone())
    with pytest.raises(ValueError, match="counterfactual"):
        m.outputs(torch.tensor([[10]] * 3))


def test_feature_backbones_score_counterfactual_items():
    m, x = model(LinearBackbone(), ensemble=1)
    extra = x[:2] * 2.0
    out = m.outputs(torch.tensor([[10, 11]]), extra_features=extra)[0, :, 0]
    assert torch.allclose(out, extra @ m.weight[0, :, 0] + m.bias[0, 0], atol=1e-6)


def test_dropout_only_in_training_and_from_the_generator():
    m, _ = model(MLPBackbone(hidden=8), ensemble=1, dropout=0.5)
    items = torch.arange(10).unsqueeze(0)
    m.eval()
    assert torch.equal(m.outputs(items, generator=torch.Generator().manual_seed(1)),
                       m.outputs(items, generator=torch.Generator().manual_seed(2)))
    m.train()
    a = m.outputs(items, generator=torch.Generator().manual_seed(1))
    b = m.outputs(items, generator=torch.Generator().manual_seed(1))
    c = m.outputs(items, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)

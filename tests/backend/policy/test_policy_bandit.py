"""Bandit policies and Eq. 3 with every objective, on tiny budgets."""

import math

import pytest
import torch

from backends.torch.labels import LabelTable
from backends.torch.policy import (
    FixedPolicy, LinearSoftmaxPolicy, TabularSoftmaxPolicy, bandit_policy_from_state,
    optimize_bandit_policy,
)
from backends.torch.policy.objectives import best_of_n_kl_bound
from backends.torch.policy.preferences import demonstrations, desirability, preference_pairs
from rlhfdsl.spec.learning import Policy

RL = ["ppo", "reinforce", "rloo", "grpo"]


def table(kind: str, gold: torch.Tensor, n: int = 200, seed: int = 0) -> LabelTable:
    """Noiseless labels of one evaluator pool valuing ``gold``."""
    gen = torch.Generator().manual_seed(seed)
    A = gold.shape[0]
    width = 2 if kind == "pairwise" else 1
    items = torch.stack([torch.randperm(A, generator=gen)[:width] for _ in range(n)])
    g = gold[items]
    cols = dict(query=torch.arange(n), items=items, evaluator=torch.zeros(n, dtype=torch.long),
                group=torch.zeros(n, dtype=torch.long), malicious=torch.zeros(n, dtype=torch.bool),
                triggered=torch.zeros(n, dtype=torch.bool), round=torch.zeros(n, dtype=torch.long),
                session=torch.zeros(n, dtype=torch.long), cost=torch.ones(n), gold=g)
    meta = {}
    if kind == "pairwise":
        cols["choice"] = (g[:, 1] > g[:, 0]).long()
    elif kind == "label":
        cols["value"] = (g[:, 0] < gold.median()).long()          # 0 (good) for the upper half
        meta["choices"] = ["good", "bad"]
    elif kind == "correction":
        cols["corrected"] = torch.full((n,), int(gold.argmax()))  # everyone corrects to the best
    return LabelTable(kind, cols, meta)


def run(arms, objective, **kw):
    features, reward = arms
    kw.setdefault("steps", 60)
    kw.setdefault("batch_size", 32)
    labels = kw.pop("labels", None)
    spec = Policy(name="pi", objective=objective, **kw)
    return optimize_bandit_policy(spec, features, rewards=reward, labels=labels, gold=reward,
                                  generator=0)


# ----------------------------------------------------------------------------- policies


def test_exact_quantities_by_hand():
    pi = TabularSoftmaxPolicy(3)
    with torch.no_grad():
        pi.theta.copy_(torch.log(torch.tensor([0.5, 0.25, 0.25])))
    uniform = torch.full((3,), math.log(1 / 3))
    assert pi.entropy().item() == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(4))
    assert pi.kl(uniform).item() == pytest.approx(0.5 * math.log(1.5) + 0.5 * math.log(0.75))
    assert pi.expected(torch.tensor([1.0, 2.0, 4.0])).item() == pytest.approx(2.0)
    counts = torch.bincount(pi.sample(4000, torch.Generator().manual_seed(0)), minlength=3)
    assert (counts / 4000).tolist() == pytest.approx([0.5, 0.25, 0.25], abs=0.03)


def test_policies_start_uniform(arms):
    features, _ = arms
    for pi in (TabularSoftmaxPolicy(12), LinearSoftmaxPolicy(features)):
        assert torch.allclose(pi.probs(), torch.full((12,), 1 / 12))
        assert pi.entropy().item() == pytest.approx(math.log(12))


# --------------------------------------------------------------------- RL objectives


@pytest.mark.parametrize("kind", RL)
def test_rl_raises_expected_reward(arms, kind):
    _, reward = arms
    _, m = run(arms, {"type": kind})
    halfway = (reward.mean() + 0.5 * (reward.max() - reward.mean())).item()
    assert m["proxy_reward"][-1] > halfway
    assert m["proxy_reward"][-1] > m["proxy_reward"][0]
    assert set(m) >= {"objective", "proxy_reward", "kl", "entropy", "kl_coef", "gold_reward"}
    assert len(m["kl"]) == 60


@pytest.mark.parametrize("kind", RL)
def test_rl_respects_the_kl_penalty(arms, kind):
    kls = []
    for beta in (0.0, 2.0):
        _, m = run(arms, {"type": kind, "kl": beta})
        kls.append(m["kl"][-1])
    assert kls[1] < 0.5 * kls[0]


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3", "abs"])
def test_kl_in_the_loss_with_each_estimator(arms, estimator):
    _, free = run(arms, {"type": "reinforce"})
    _, m = run(arms, {"type": "reinforce", "kl": 2.0, "kl_in": "loss",
                      "kl_estimator": estimator})
    if estimator == "k1":      # zero expected gradient in the loss: no real restraint
        assert math.isfinite(m["kl"][-1])
    else:
        assert m["kl"][-1] < free["kl"][-1]


def test_adaptive_kl_coefficient_moves_towards_the_target(arms):
    _, m = run(arms, {"type": "ppo", "kl": {"type": "adaptive", "target": 0.05,
                                             "horizon": 200, "init": 0.1}})
    assert m["kl_coef"][0] == pytest.approx(0.1)
    assert m["kl_coef"][-1] > m["kl_coef"][0]                  # KL above target: β grows


def test_entropy_bonus_keeps_entropy(arms):
    _, plain = run(arms, {"type": "reinforce"})
    _, bonus = run(arms, {"type": "reinforce", "entropy": 1.0})
    assert bonus["entropy"][-1] > plain["entropy"][-1]


def test_conservative_reward_over_an_ensemble(arms):
    features, reward = arms
    noise = torch.zeros(2, 12)
    noise[:, 0] = torch.tensor([-5.0, 5.0])                   # members disagree on action 0
    ensemble = reward + noise
    spec = Policy(name="pi", objective={"type": "reinforce"}, steps=60, batch_size=32,
                  conservative=1.0)
    pi, m = optimize_bandit_policy(spec, features, rewards=ensemble, generator=0)
    assert "conservative_reward" in m
    assert pi.probs()[0].item() < 0.01


def test_linear_policy_and_warm_start(arms):
    features, reward = arms
    pi, m = run(arms, {"type": "rloo"}, init={"type": "linear"})
    assert isinstance(pi, LinearSoftmaxPolicy) and m["proxy_reward"][-1] > reward.mean()
    spec = Policy(name="pi", objective={"type": "rloo"}, steps=1, init={"type": "linear"})
    warm, w = optimize_bandit_policy(spec, features, rewards=reward, generator=0,
                                     init_state=pi.state_dict())
    assert w["kl"][0] > 0.1                                   # still far from π_ref = uniform


# -------------------------------------------------------------- best-of-n and rejection


def test_best_of_n_is_exact_and_within_its_bound(arms):
    _, reward = arms
    pi, m = run(arms, {"type": "best_of_n", "n": 4})
    assert isinstance(pi, FixedPolicy)
    assert m["kl"][0] <= m["kl_bound"][0] + 1e-6
    assert m["kl_bound"][0] == pytest.approx(best_of_n_kl_bound(4))
    assert m["proxy_reward"][0] > reward.mean().item()


def test_rejection_sampling_raises_reward(arms):
    _, reward = arms
    _, m = run(arms, {"type": "rejection_sampling", "n": 8, "top": 1})
    assert m["proxy_reward"][-1] > m["proxy_reward"][0] + 0.3


# --------------------------------------------------------------------- from labels


@pytest.mark.parametrize("loss", ["sigmoid", "hinge", "ipo", "robust", "conservative"])
def test_dpo_moves_probability_to_preferred_actions(arms, loss):
    _, reward = arms
    pi, m = run(arms, {"type": "dpo", "loss": loss, "beta": 0.5, "label_smoothing": 0.1},
                labels=table("pairwise", reward))
    upper = reward > reward.median()
    # from ½ under π_ref; IPO's bounded margin 1/(2β) moves it least
    assert pi.probs()[upper].sum().item() > 0.65
    assert m["kl"][-1] > 0


def test_kto_from_labels_and_pairs(arms):
    _, reward = arms
    for kind in ("label", "pairwise"):
        pi, m = run(arms, {"type": "kto", "beta": 0.5}, labels=table(kind, reward))
        assert m["proxy_reward"][-1] > reward.mean().item() + 0.3


def test_sft_imitates_corrections(arms):
    _, reward = arms
    pi, _ = run(arms, {"type": "sft"}, labels=table("correction", reward))
    assert pi.probs().argmax() == reward.argmax()


def test_data_objectives_refuse_the_wrong_feedback(arms):
    _, reward = arms
    with pytest.raises(ValueError, match="dpo cannot use label feedback"):
        run(arms, {"type": "dpo"}, labels=table("label", reward))
    with pytest.raises(ValueError, match="needs feedback labels"):
        run(arms, {"type": "sft"})


def test_preference_readers(arms):
    _, reward = arms
    chosen, rejected = preference_pairs(table("pairwise", reward, 50))
    assert (reward[chosen] > reward[rejected]).all()
    items, good = desirability(table("label", reward, 50))
    assert (reward[items[good]].min() >= reward.median()).item()
    assert (demonstrations(table("correction", reward, 5)) == reward.argmax()).all()


def test_rl_objective_needs_a_reward(arms):
    features, _ = arms
    with pytest.raises(ValueError, match="needs a reward"):
        optimize_bandit_policy(Policy(name="pi", objective={"type": "ppo"}), features)


# ---------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("objective", [{"type": "ppo", "kl": 0.1}, {"type": "grpo"},
                                       {"type": "rejection_sampling"}])
def test_same_seed_same_numbers(arms, objective):
    a = run(arms, objective, steps=10)[1]
    b = run(arms, objective, steps=10)[1]
    assert a == b
    features, reward = arms
    spec = Policy(name="pi", objective=objective, steps=10, batch_size=32)
    c = optimize_bandit_policy(spec, features, rewards=reward, generator=1)[1]
    assert c["objective"] != a["objective"]


def test_rebuild_from_state(arms):
    features, reward = arms
    for objective, init in (({"type": "reinforce"}, {"type": "linear"}),
                            ({"type": "best_of_n", "n": 3}, None)):
        spec = Policy(name="pi", objective=objective, steps=5, init=init)
        pi, _ = optimize_bandit_policy(spec, features, rewards=reward, generator=0)
        again = bandit_policy_from_state(spec.init, features, pi.state_dict())
        assert torch.allclose(again.probs(), pi.probs())

"""Eq. 2 end to end on tiny budgets: recovery, every kind, heads, determinism, warm starts."""

import math

import pytest
import torch

from backends.torch.reward import fit_reward, gold_accuracy, reward_model_from_state
from rlhfdsl.spec.learning import Reward

from reward_synthetic import make_table


def spec(**kw):
    kw.setdefault("epochs", 15)
    return Reward(name="rm", **kw)


def test_noiseless_bradley_terry_recovers_the_ordering(bandit):
    features, gold = bandit
    table = make_table("pairwise", gold, 800)
    model, m = fit_reward(spec(loss={"type": "bradley_terry"}), table, features, generator=0,
                          gold=gold)
    assert m["holdout_accuracy"][-1] > 0.95
    assert m["gold_accuracy"] > 0.95
    assert m["loss"][-1] < m["loss"][0]
    assert m["train_terms"] + m["holdout_terms"] == 800 and m["holdout_terms"] == 80
    assert len(m["loss"]) == len(m["holdout_loss"]) == 15


@pytest.mark.parametrize("kind,loss,backbone,kw", [
    ("pairwise", "bpr", "tabular", {}),
    ("pairwise", "plackett_luce", "mlp", {}),
    ("ranking", "auto", "linear", {"k": 4}),
    ("ranking", "bradley_terry", "linear", {"k": 3}),
    ("best_of", "auto", "linear", {"k": 4}),
    ("scalar", "regression", "linear", {}),
    ("likert", "auto", "linear", {"k": 5}),
    ("label", "auto", "linear", {}),
    ("correction", "auto", "linear", {}),
    ("language", "auto", "linear", {}),
    ("language", "regression", "mlp", {}),
])
def test_every_kind_fits(bandit, kind, loss, backbone, kw):
    features, gold = bandit
    if kind == "language":
        kw = {**kw, "features": features}
    table = make_table(kind, gold, 300, **kw)
    s = spec(loss={"type": loss}, backbone={"type": backbone}, epochs=10,
             regularize={"label_smoothing": 0.05})
    model, m = fit_reward(s, table, features, generator=1, gold=gold)
    assert all(math.isfinite(v) for v in m["loss"])
    assert m["gold_accuracy"] > 0.75, m


def test_refuses_a_loss_the_feedback_cannot_feed(bandit):
    features, gold = bandit
    with pytest.raises(ValueError, match="ordinal loss cannot be fitted on pairwise"):
        fit_reward(spec(loss={"type": "ordinal"}), make_table("pairwise", gold, 20), features)


def test_mixture_models_disagreement_as_different_values(bandit):
    features, _ = bandit
    gen = torch.Generator().manual_seed(7)
    two = torch.stack([features @ torch.randn(6, generator=gen),
                       features @ torch.randn(6, generator=gen)])
    table = make_table("pairwise", two, 800, evaluators=6)
    _, scalar = fit_reward(spec(), table, features, generator=0)
    mixture, mixed = fit_reward(spec(head={"type": "mixture", "k": 2}), table, features,
                                generator=0)
    assert mixed["holdout_accuracy"][-1] > 0.9 > scalar["holdout_accuracy"][-1]
    # evaluators of the two groups (e mod 2) load on different components
    pi = mixture.mix_logits.softmax(-1)[0]
    assert (pi[0::2].argmax(-1) == pi[0, :].argmax()).all()
    assert (pi[1::2].argmax(-1) != pi[0, :].argmax()).all()


def test_ensemble_members_train_together_and_disagree(bandit):
    features, gold = bandit
    model, m = fit_reward(spec(ensemble=4, backbone={"type": "tabular"}),
                          make_table("pairwise", gold, 300), features, generator=0)
    r = model.rewards()
    assert r.shape == (4, 48)
    assert (r.std(0) > 0).all()
    assert torch.allclose(model.conservative(1.0), r.mean(0) - r.std(0, correction=0))


def test_same_seed_same_numbers(bandit):
    features, gold = bandit
    table = make_table("pairwise", gold, 200)
    s = spec(ensemble=2, backbone={"type": "mlp", "hidden": 8}, regularize={"dropout": 0.1},
             epochs=5)
    a, ma = fit_reward(s, table, features, generator=3)
    b, mb = fit_reward(s, table, features, generator=3)
    c, mc = fit_reward(s, table, features, generator=4)
    assert ma == mb and torch.equal(a.rewards(), b.rewards())
    assert ma["loss"] != mc["loss"]


def test_default_learning_rate_and_optimisers(bandit):
    features, gold = bandit
    table = make_table("pairwise", gold, 200)
    for optimizer in ({"type": "adamw"}, {"type": "sgd", "lr": 0.5, "momentum": 0.9}):
        _, m = fit_reward(spec(optimizer=optimizer, epochs=5), table, features, generator=0)
        assert m["loss"][-1] < m["loss"][0]


def test_warm_start_and_rebuild_from_state(bandit):
    features, gold = bandit
    table = make_table("likert", gold, 200, k=4)
    s = spec(epochs=3)
    model, _ = fit_reward(s, table, features, generator=0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rebuilt = reward_model_from_state(s, state, features)
    assert torch.equal(rebuilt.rewards(), model.rewards())
    assert torch.equal(rebuilt.link("ordinal_4"), model.link("ordinal_4"))
    warm, m = fit_reward(s, table, features, generator=0, init_state=state)
    cold, c = fit_reward(s, table, features, generator=0)
    assert m["loss"][0] < c["loss"][0]


def test_several_tables_of_different_kinds(bandit):
    features, gold = bandit
    tables = [make_table("pairwise", gold, 200), make_table("scalar", gold, 100, seed=1)]
    model, m = fit_reward(spec(), tables, features, generator=0, gold=gold)
    assert m["losses"] == ["bradley_terry", "regression"]
    assert m["gold_accuracy"] > 0.9


def test_gold_accuracy_hand_cases():
    gold = torch.arange(5.0)
    assert gold_accuracy(gold * 3, gold, 200, 0).item() == 1.0
    assert gold_accuracy(-gold, gold, 200, 0).item() == 0.0
    assert gold_accuracy(torch.zeros(5), gold, 200, 0).item() == 0.5
    ensemble = torch.stack([gold, gold + 1])
    assert gold_accuracy(ensemble, gold, 50, 0).item() == 1.0


def test_gold_accuracy_on_unseen_pairs():
    gold = torch.arange(4.0)
    reward = torch.tensor([0.0, 1.0, 2.0, -5.0])          # wrong only about action 3
    every = torch.tensor([[i, j] for i in range(4) for j in range(i + 1, 4)])
    assert math.isnan(gold_accuracy(reward, gold, 100, 0, exclude=every).item())
    seen_ok = torch.tensor([[0, 1], [0, 2], [1, 2]])     # only pairs with action 3 remain
    assert gold_accuracy(reward, gold, 100, 0, exclude=seen_ok).item() == 0.0


def test_no_holdout(bandit):
    features, gold = bandit
    _, m = fit_reward(spec(holdout=0.0, epochs=2), make_table("pairwise", gold, 50), features,
                      generator=0, gold=gold)
    assert m["holdout_terms"] == 0 and math.isnan(m["holdout_accuracy"][-1])
    assert 0.0 <= m["gold_accuracy_unseen"] <= 1.0

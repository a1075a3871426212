"""The label-table dispatch: which terms each kind becomes under each loss."""

import pytest
import torch

from backends.torch.labels import LabelTable
from backends.torch.reward.data import resolve_loss, training_data
from rlhfdsl.spec.learning import AUTO_LOSS, LOSS_ACCEPTS, BradleyTerry, Regression

from reward_synthetic import make_table


def pairwise(choices):
    n = len(choices)
    cols = dict(query=torch.arange(n), items=torch.tensor([[0, 1]] * n),
                evaluator=torch.zeros(n, dtype=torch.long), group=torch.zeros(n, dtype=torch.long),
                malicious=torch.zeros(n, dtype=torch.bool),
                triggered=torch.zeros(n, dtype=torch.bool),
                round=torch.zeros(n, dtype=torch.long), session=torch.zeros(n, dtype=torch.long),
                cost=torch.ones(n), gold=torch.zeros(n, 2), choice=torch.tensor(choices))
    return LabelTable("pairwise", cols, {})


def test_pairwise_choices_ties_and_skips():
    table = pairwise([0, 1, 2, -1])
    [soft] = training_data(table, BradleyTerry(margin=0.3))
    assert soft.form == "pairs" and soft.margin == 0.3
    assert soft.target.tolist() == [1.0, 0.0, 0.5]          # the skip is gone
    [drop] = training_data(table, "bradley_terry", ties="drop")
    assert drop.target.tolist() == [1.0, 0.0]
    [smooth] = training_data(table, "bpr", label_smoothing=0.1)
    assert smooth.target.tolist() == pytest.approx([0.9, 0.1, 0.5])
    assert smooth.per_evaluator


def test_refuses_a_kind_the_loss_cannot_consume():
    with pytest.raises(ValueError, match="cannot be fitted on pairwise feedback.*bradley_terry"):
        training_data(pairwise([0]), "ordinal")
    for loss, kinds in LOSS_ACCEPTS.items():
        for kind in AUTO_LOSS:
            if kind in kinds:
                assert resolve_loss(loss, kind) == loss
            else:
                with pytest.raises(ValueError):
                    resolve_loss(loss, kind)


def test_auto_resolves_per_kind():
    for kind, loss in AUTO_LOSS.items():
        assert resolve_loss("auto", kind) == loss


def test_ranking_as_plackett_luce_or_pairs(bandit):
    _, gold = bandit
    table = make_table("ranking", gold, 10, k=4)
    [pl] = training_data(table, "plackett_luce")
    assert pl.form == "ranking" and pl.items.shape == (10, 4) and pl.top is None
    assert (gold[pl.items].diff(dim=1) < 0).all()            # best first
    [bt] = training_data(table, "bradley_terry")
    assert len(bt) == 10 * 6 and (bt.target == 1).all()
    assert (gold[bt.items[:, 0]] > gold[bt.items[:, 1]]).all()


def test_best_of_is_the_first_choice(bandit):
    _, gold = bandit
    table = make_table("best_of", gold, 10, k=3)
    [pl] = training_data(table, "auto")
    assert pl.form == "ranking" and pl.top == 1
    assert (gold[pl.items[:, 0]] == gold[table.columns["items"]].max(1).values).all()
    [bt] = training_data(table, "bpr")
    assert len(bt) == 20 and (gold[bt.items[:, 0]] > gold[bt.items[:, 1]]).all()


def test_correction_is_a_preference(bandit):
    _, gold = bandit
    table = make_table("correction", gold, 30)
    table.columns["corrected"][0] = table.columns["items"][0, 0]   # nothing corrected
    [pairs] = training_data(table, "auto")
    corrected = table.columns["corrected"]
    kept = (corrected >= 0) & (corrected != table.columns["items"][:, 0])
    assert len(pairs) == int(kept.sum())
    assert (gold[pairs.items[:, 0]] > gold[pairs.items[:, 1]]).all()


def test_language_through_its_structured_form(bandit):
    features, gold = bandit
    table = make_table("language", gold, 12, features=features)
    anchor, aspects = training_data(table, "bradley_terry", features=features)
    assert anchor.form == "anchor" and anchor.link == "anchor"
    v = table.columns["verdict"]
    assert anchor.target.tolist() == pytest.approx(((1 + v) / 2).tolist())
    assert aspects.form == "pairs" and len(aspects) == 24
    # the counterfactual moved one named feature by one std in the named direction
    A = features.shape[0]
    moved = aspects.extra_features[aspects.items[:, 0] - A]
    delta = moved - features[aspects.items[:, 1]]
    assert ((delta != 0).sum(1) == 1).all()
    # without features only the verdict is used
    [only] = training_data(table, "bradley_terry")
    assert only.form == "anchor"
    reg, _ = training_data(table, Regression(), features=features)
    assert reg.form == "regression" and reg.target.tolist() == pytest.approx(v.tolist())


def test_absolute_kinds(bandit):
    _, gold = bandit
    [s] = training_data(make_table("scalar", gold, 20), Regression(standardize=True))
    assert s.form == "regression" and abs(float(s.target.mean())) < 1.0
    [lk] = training_data(make_table("likert", gold, 20, k=5), "auto")
    assert lk.form == "ordinal" and lk.categories == 5 and lk.link == "ordinal_5"
    [lb] = training_data(make_table("label", gold, 20), "auto")
    assert lb.form == "category" and lb.categories == 3 and lb.link == "category_3"

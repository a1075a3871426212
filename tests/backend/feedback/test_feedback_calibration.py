"""Agreement metrics and solving for β from a target agreement or accuracy (3.2.1)."""

from __future__ import annotations

import math

import pytest
import torch
from feedback_helpers import bandit, label_run

from backends.torch.bandit import bandit_space
from backends.torch.feedback import (
    FeedbackError, agreement, agreement_report, calibrate_population, gold_agreement, solve_beta,
)

BODY = """
population crowd { evaluators = 40
  group g weight 1 { values = feature(0..1)  rationality = %s  mistake = 0.02
                     position_bias = 0.2 } }
feedback fb { kind = pairwise  from = crowd  budget = 100 labels  redundancy = 8 }
"""


def pairs(n, actions, seed):
    return torch.rand(n, actions, generator=torch.Generator().manual_seed(seed)).argsort(1)[:, :2]


@pytest.mark.parametrize("target", [0.63, 0.73, 0.77])
def test_calibration_hits_a_target_agreement(target):
    spec = bandit(BODY % f"agreement({target})", actions=64, features=2)
    space = bandit_space(spec.task, torch.Generator().manual_seed(0))
    betas = calibrate_population(spec.populations["crowd"], space, pairs(4096, 64, 1))
    assert betas == calibrate_population(spec.populations["crowd"], space, pairs(4096, 64, 1))
    assert 0 < betas["g"] < math.inf
    table, _, _ = label_run(spec, queries=pairs(6000, 64, 2), space=space, rationality=betas,
                            seed=3)
    assert agreement(table) == pytest.approx(target, abs=0.01)


def test_calibration_hits_a_target_accuracy():
    spec = bandit(BODY % "accuracy(0.8)", actions=64, features=2)
    space = bandit_space(spec.task, torch.Generator().manual_seed(0))
    betas = calibrate_population(spec.populations["crowd"], space, pairs(4096, 64, 1))
    table, _, _ = label_run(spec, queries=pairs(5000, 64, 4), space=space, rationality=betas)
    assert gold_agreement(table) == pytest.approx(0.8, abs=0.01)


def test_calibration_with_perception_noise_and_spread():
    body = """
population crowd { evaluators = 60
  group g weight 1 { values = if(feature(0) > 0, 2 * bernoulli(0.8), 0) + feature(1)
                     rationality = agreement(0.7)  spread = 0.3 } }
feedback fb { kind = pairwise  from = crowd  budget = 100 labels  redundancy = 6 }
"""
    spec = bandit(body, actions=64, features=2)
    space = bandit_space(spec.task, torch.Generator().manual_seed(0))
    betas = calibrate_population(spec.populations["crowd"], space, pairs(4096, 64, 1))
    table, _, _ = label_run(spec, queries=pairs(6000, 64, 5), space=space, rationality=betas)
    assert agreement(table) == pytest.approx(0.7, abs=0.015)


def test_unreachable_targets_are_reported():
    spec = bandit(BODY.replace("mistake = 0.02", "mistake = 0.3") % "accuracy(0.8)",
                  actions=64, features=2)
    space = bandit_space(spec.task, torch.Generator().manual_seed(0))
    with pytest.raises(FeedbackError, match="cannot reach accuracy"):
        calibrate_population(spec.populations["crowd"], space, pairs(512, 64, 1))


def test_drawing_a_calibrated_population_needs_its_beta():
    spec = bandit(BODY % "agreement(0.7)", actions=8, features=2)
    with pytest.raises(FeedbackError, match="calibrate it first"):
        label_run(spec, n=10)


def test_solve_beta_on_a_known_curve():
    beta = solve_beta(lambda b: 1 / (1 + math.exp(-b)) if b < math.inf else 1.0, 0.75)
    assert beta == pytest.approx(math.log(3), rel=1e-6)


def test_agreement_metrics_on_a_perfect_and_a_random_crowd():
    spec = bandit(BODY.replace("mistake = 0.02", "").replace("position_bias = 0.2", "")
                  % "inf", actions=32, features=2)
    table, _, _ = label_run(spec, queries=pairs(500, 32, 1))
    assert agreement(table) == 1.0 and gold_agreement(table) == 1.0
    spec = bandit(BODY.replace("mistake = 0.02", "").replace("position_bias = 0.2", "")
                  % "0", actions=32, features=2)
    table, _, _ = label_run(spec, queries=pairs(2000, 32, 1))
    assert agreement(table) == pytest.approx(0.5, abs=0.02)
    report = agreement_report(table)
    assert set(report) == {"agreement", "gold_agreement", "by_group"}
    assert report["by_group"]["g"]["agreement"] == pytest.approx(report["agreement"])

"""Expression trees: gold (expectation) vs perceived (fresh draws), rows, scorers, plugins."""

from __future__ import annotations

import math

import pytest
import torch
from feedback_helpers import bandit, fake_score, text

from backends.torch.feedback import FeedbackError, PluginsNotAllowed, Scope, evaluate
from backends.torch.feedback.expressions import is_random, scorer_terms, term_label


def values_of(spec, group: str = "g"):
    return next(m for m in spec.populations["crowd"].groups if m.name == group).values


def crowd(values: str, **kw) -> str:
    extra = " ".join(f"{k} = {v}" for k, v in kw.items())
    return f"population crowd {{ group g weight 1 {{ values = {values} {extra} }} }}"


def test_gold_of_the_paper_example_is_exact():
    spec = bandit(crowd("if(action == 1, 10 * bernoulli(0.4), 1)"), actions=2, features=1)
    expr = values_of(spec)
    scope = Scope.bandit(torch.zeros(2, 1))
    assert is_random(expr)
    assert evaluate(expr, scope, expectation=True).tolist() == pytest.approx([1.0, 4.0])


def test_perceived_values_are_fresh_draws_with_the_gold_mean(gen):
    spec = bandit(crowd("if(action == 1, 10 * bernoulli(0.4), 1)"), actions=2, features=1)
    scope = Scope.bandit(torch.zeros(2, 1))
    rows = torch.ones(20000, dtype=torch.long)
    draws = evaluate(values_of(spec), scope, rows=rows, generator=gen(1))
    assert set(draws.unique().tolist()) == {0.0, 10.0}
    assert draws.mean().item() == pytest.approx(4.0, abs=0.15)
    a = evaluate(values_of(spec), scope, rows=torch.zeros(5, dtype=torch.long), generator=gen(1))
    assert a.tolist() == [1.0] * 5


def test_features_weights_table_and_arithmetic():
    spec = bandit(crowd("feature(0..1) + 2 * weights([0, 0, 1]) - table([5, 6]) + "
                        "max(feature(3), 0) / 2"), actions=3, features=4)
    X = torch.arange(12, dtype=torch.float32).reshape(3, 4) - 5
    out = evaluate(values_of(spec), Scope.bandit(X), expectation=True)
    table = torch.tensor([5.0, 6.0, 0.0])
    want = X[:, 0] + X[:, 1] + 2 * X[:, 2] - table + X[:, 3].clamp(min=0) / 2
    assert torch.allclose(out, want)


def test_expectations_of_random_primitives():
    spec = bandit(crowd("normal(feature(0), 3) + uniform(2, 4) * bernoulli(0.25) "
                        "+ if(bernoulli(0.5) > 0.5, 2, 0)"), actions=2, features=1)
    X = torch.tensor([[1.0], [-2.0]])
    out = evaluate(values_of(spec), Scope.bandit(X), expectation=True)
    assert out.tolist() == pytest.approx([1 + 3 * 0.25 + 1, -2 + 0.75 + 1])


def test_nonlinear_random_gold_is_a_deterministic_monte_carlo():
    spec = bandit(crowd("abs(normal(0, 1))"), actions=3, features=1)
    scope = Scope.bandit(torch.zeros(3, 1))
    a = evaluate(values_of(spec), scope, expectation=True)
    b = evaluate(values_of(spec), scope, expectation=True)
    assert torch.equal(a, b)
    assert a.mean().item() == pytest.approx(math.sqrt(2 / math.pi), abs=0.03)


def test_rows_gather_deterministic_parts():
    spec = bandit(crowd("feature(0) * 2 + normal(0, 0)"), actions=5, features=1)
    X = torch.randn(5, 1, generator=torch.Generator().manual_seed(0))
    rows = torch.tensor([4, 0, 0, 3])
    out = evaluate(values_of(spec), Scope.bandit(X), rows=rows,
                   generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, 2 * X[rows, 0])


def test_feature_out_of_range_is_a_clear_error():
    spec = bandit(crowd("feature(3)"), actions=2, features=4)
    with pytest.raises(FeedbackError, match="feature 3 does not exist"):
        evaluate(values_of(spec), Scope.bandit(torch.zeros(2, 2)), expectation=True)


def test_text_terms_use_the_scorer():
    spec = text(crowd('sentiment + 0.5 * length(4) + keyword("please")'))
    expr = values_of(spec)
    assert [term_label(k) for k in scorer_terms(expr)] == ["sentiment", "length(4)",
                                                           'keyword("please")']
    texts = ["good good good please", "bad"]
    out = evaluate(expr, Scope.text(texts, fake_score), expectation=True)
    want = fake_score("sentiment", texts) + 0.5 * fake_score("length", texts, 4) + \
        fake_score("keyword", texts, "please")
    assert torch.allclose(out, want)


def test_plugins_need_permission():
    spec = bandit(crowd('plugin("math:fabs")'), actions=2, features=1)
    with pytest.raises(PluginsNotAllowed):
        evaluate(values_of(spec), Scope.bandit(torch.zeros(2, 1)), expectation=True)

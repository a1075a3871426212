"""Each loss and regulariser against a value computed by hand (with ``math``, not torch)."""

import math

import pytest
import torch

from backends.torch.reward.losses import (
    bpr_loss, bradley_terry_loss, classification_loss, comparison_accuracy,
    expected_category_score, l2_penalty, ordered_thresholds, ordinal_loss, per_evaluator_mean,
    plackett_luce_loss, regression_loss, smooth_targets, standardize_per_evaluator,
)


def nls(x: float) -> float:
    """−log σ(x)."""
    return math.log1p(math.exp(-x))


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


def test_bradley_terry_hand_values():
    assert bradley_terry_loss(t(1.0), t(0.0)).item() == pytest.approx(nls(1.0))
    assert bradley_terry_loss(t(1.0), t(0.0), margin=0.5).item() == pytest.approx(nls(0.5))
    assert bradley_terry_loss(t(1.0), t(0.0), target=0.0).item() == pytest.approx(nls(-1.0))
    # a tie is a soft target ½ on both orders
    tie = bradley_terry_loss(t(1.0), t(0.0), target=0.5).item()
    assert tie == pytest.approx(0.5 * (nls(1.0) + nls(-1.0)))


def test_label_smoothing_of_comparisons():
    assert smooth_targets(t(1.0, 0.0, 0.5), 0.1).tolist() == pytest.approx([0.9, 0.1, 0.5])
    smoothed = bradley_terry_loss(t(2.0), t(0.0), target=smooth_targets(t(1.0), 0.1)).item()
    assert smoothed == pytest.approx(0.9 * nls(2.0) + 0.1 * nls(-2.0))


def test_bpr_averages_per_evaluator():
    # evaluator 0 gave two labels (d = 1, −1), evaluator 1 one (d = 0)
    loss = bpr_loss(t(1.0, 0.0, 0.0), t(0.0, 1.0, 0.0), torch.tensor([0, 0, 1])).item()
    assert loss == pytest.approx(((nls(1.0) + nls(-1.0)) / 2 + nls(0.0)) / 2, rel=1e-5)
    # leading (ensemble) dimensions are kept
    batched = per_evaluator_mean(torch.tensor([[1.0, 3.0, 5.0], [0.0, 0.0, 2.0]]),
                                 torch.tensor([0, 0, 1]))
    assert batched.tolist() == pytest.approx([(2.0 + 5.0) / 2, (0.0 + 2.0) / 2])


def test_plackett_luce_hand_values():
    e = math.e
    full = plackett_luce_loss(t(2.0, 1.0, 0.0)).item()
    assert full == pytest.approx(-(2 - math.log(e**2 + e + 1)) - (1 - math.log(e + 1)), rel=1e-5)
    first = plackett_luce_loss(t(2.0, 1.0, 0.0), top=1).item()
    assert first == pytest.approx(math.log(e**2 + e + 1) - 2, rel=1e-5)
    # two items: Bradley–Terry
    assert plackett_luce_loss(t(1.0, 0.0)).item() == pytest.approx(nls(1.0), rel=1e-5)
    # padding is ignored
    padded = plackett_luce_loss(t(2.0, 1.0, 7.0), valid=torch.tensor([True, True, False]))
    assert padded.item() == pytest.approx(nls(1.0), rel=1e-5)


def test_plackett_luce_padding_has_finite_gradients():
    scores = t(2.0, 1.0, 0.0).requires_grad_()
    plackett_luce_loss(scores, valid=torch.tensor([True, False, False])).backward()
    assert torch.isfinite(scores.grad).all()


def test_plackett_luce_label_smoothing():
    e = math.e
    # two items: stage 1 is (1 − s)·log p(a) + s·½(log p(a) + log p(b))
    s = 0.2
    got = plackett_luce_loss(t(1.0, 0.0), label_smoothing=s).item()
    log_pa, log_pb = 1 - math.log(e + 1), -math.log(e + 1)
    assert got == pytest.approx(-((1 - s) * log_pa + s * 0.5 * (log_pa + log_pb)), rel=1e-5)


def test_regression_and_standardisation():
    assert regression_loss(t(1.5), t(1.0)).item() == pytest.approx(0.25)
    z = standardize_per_evaluator(t(1.0, 3.0, 5.0), torch.tensor([0, 0, 1]))
    assert z.tolist() == pytest.approx([-1.0, 1.0, 0.0])


def test_ordered_thresholds():
    raw = torch.tensor([0.0, math.log(math.e - 1)])
    assert ordered_thresholds(raw).tolist() == pytest.approx([0.0, 1.0], abs=1e-6)


def test_ordinal_hand_values():
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    thresholds = t(-1.0, 1.0)
    got = ordinal_loss(t(0.0, 0.0, 0.0), torch.tensor([0, 1, 2]), thresholds).tolist()
    want = [-math.log(sig(-1)), -math.log(sig(1) - sig(-1)), -math.log(1 - sig(1))]
    assert got == pytest.approx(want, rel=1e-5)
    # a higher reward makes the top category likelier
    hi = ordinal_loss(t(3.0), torch.tensor([2]), thresholds).item()
    assert hi < want[2]


def test_classification_hand_values():
    e = math.e
    b = torch.zeros(3)
    # r = 1, k = 3: logits (2, 1, 0) for (best, middle, worst)
    assert classification_loss(t(1.0), torch.tensor([0]), b).item() == \
        pytest.approx(math.log(e**2 + e + 1) - 2, rel=1e-5)
    assert classification_loss(t(1.0), torch.tensor([2]), b).item() == \
        pytest.approx(math.log(e**2 + e + 1), rel=1e-5)
    # r = 0: uniform, expected score of (1, ½, 0) is ½; it rises with r
    assert expected_category_score(t(0.0), b).item() == pytest.approx(0.5)
    assert expected_category_score(t(1.0), b).item() > 0.5


def test_classification_label_smoothing():
    b = torch.zeros(2)
    s = 0.1
    # r = 0, k = 2: p = (½, ½): smoothing leaves log 2
    assert classification_loss(t(0.0), torch.tensor([0]), b, s).item() == \
        pytest.approx(math.log(2), rel=1e-5)


def test_l2_penalty():
    assert l2_penalty([t(1.0, 2.0), t(3.0)], 0.1).item() == pytest.approx(1.4)


def test_comparison_accuracy():
    acc = comparison_accuracy(t(1.0, 0.0, 2.0, 5.0), t(0.0, 1.0, 2.0, 0.0), t(1.0, 1.0, 1.0, 0.5))
    # right, wrong, tie (½); the labelled tie is not counted
    assert acc.item() == pytest.approx(0.5)

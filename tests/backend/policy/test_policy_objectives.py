"""Each policy loss, estimator and helper against a value computed by hand (with ``math``)."""

import math

import pytest
import torch

from backends.torch.policy.kl import (
    AdaptiveKL, FixedKL, exact_kl, kl_controller, kl_estimate, kl_penalized_rewards,
    token_level_rewards,
)
from backends.torch.policy.objectives import (
    best_of_n_distribution, best_of_n_kl_bound, clipped_surrogate_loss, dpo_loss,
    entropy_bonus, entropy_from_logits, gae, grpo_advantages, grpo_loss, kto_loss,
    kto_reference_point, masked_mean, ppo_value_loss, reinforce_loss,
    rejection_sampling_select, rloo_advantages, rloo_loss, sequence_logprob, sft_loss, whiten,
)
from rlhfdsl.spec.learning import AdaptiveKL as AdaptiveSpec


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


def nls(x: float) -> float:
    """−log σ(x)."""
    return math.log1p(math.exp(-x))


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# ------------------------------------------------------------------------ policy gradients


def test_reinforce_with_and_without_baseline():
    logp = t(math.log(0.5), math.log(0.25))
    # baseline = mean reward 2: −mean((1 − 2)·log ½, (3 − 2)·log ¼)
    want = -((-1) * math.log(0.5) + 1 * math.log(0.25)) / 2
    assert reinforce_loss(logp, t(1.0, 3.0)).item() == pytest.approx(want)
    no_baseline = -(1 * math.log(0.5) + 3 * math.log(0.25)) / 2
    assert reinforce_loss(logp, t(1.0, 3.0), 0.0).item() == pytest.approx(no_baseline)


def test_rloo_leave_one_out():
    adv = rloo_advantages(t(1.0, 2.0, 3.0).unsqueeze(0))
    assert adv.tolist() == [[-1.5, 0.0, 1.5]]
    logp = torch.log(t(0.2, 0.3, 0.5)).unsqueeze(0)
    want = -(-1.5 * math.log(0.2) + 1.5 * math.log(0.5)) / 3
    assert rloo_loss(logp, t(1.0, 2.0, 3.0).unsqueeze(0)).item() == pytest.approx(want, rel=1e-5)


def test_grpo_group_standardised_advantages():
    adv = grpo_advantages(t(1.0, 2.0, 3.0).unsqueeze(0), eps=0.0)   # mean 2, unbiased std 1
    assert adv.tolist() == [[-1.0, 0.0, 1.0]]


def test_clipped_surrogate():
    logp, old = t(math.log(1.5)), t(0.0)                               # ratio 1.5
    assert clipped_surrogate_loss(logp, old, t(1.0), 0.2).item() == pytest.approx(-1.2)
    assert clipped_surrogate_loss(logp, old, t(-1.0), 0.2).item() == pytest.approx(1.5)
    # per token with a mask: the padded token does not count
    tokens = torch.tensor([[math.log(1.5), 5.0]])
    loss = clipped_surrogate_loss(tokens, torch.zeros(1, 2), t(1.0).unsqueeze(1), 0.2,
                                  mask=torch.tensor([[1, 0]]))
    assert loss.item() == pytest.approx(-1.2)


def test_grpo_loss_with_kl_in_the_loss():
    # ρ = 1, A = (1, −1), k = (0.1, 0.3), β = 0.5: −mean(1 − 0.05, −1 − 0.15)
    loss = grpo_loss(t(0.0, 0.0), t(0.0, 0.0), t(1.0, -1.0), 0.2, kl=t(0.1, 0.3), kl_coef=0.5)
    assert loss.item() == pytest.approx(-((1 - 0.05) + (-1 - 0.15)) / 2)
    # per token: each sequence averaged over its tokens first
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    kl = torch.tensor([[0.0, 0.0, 0.3], [0.6, 9.0, 9.0]])
    loss = grpo_loss(logp, logp, t(1.0, 1.0), 0.2, kl=kl, kl_coef=1.0, mask=mask)
    assert loss.item() == pytest.approx(-((1 - 0.1) + (1 - 0.6)) / 2)


def test_value_loss_plain_and_clipped():
    assert ppo_value_loss(t(1.0), t(3.0)).item() == pytest.approx(2.0)
    assert ppo_value_loss(t(1.0), t(3.0), old_values=t(0.0), clip=0.5).item() == \
        pytest.approx(0.5 * 2.5 ** 2)


def test_gae_hand_values_and_padding():
    adv, ret = gae(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.2]]), torch.ones(1, 2),
                   gamma=1.0, lam=0.5)
    # δ1 = 1 − 0.2 = 0.8; δ0 = 0 + 0.2 − 0.5 = −0.3; A0 = −0.3 + 0.5·0.8
    assert adv.tolist()[0] == pytest.approx([0.1, 0.8])
    assert ret.tolist()[0] == pytest.approx([0.6, 1.0])
    adv, _ = gae(torch.tensor([[0.0, 1.0, 7.0]]), torch.tensor([[0.5, 0.2, 9.0]]),
                 torch.tensor([[1, 1, 0]]), gamma=1.0, lam=0.5)
    assert adv.tolist()[0] == pytest.approx([0.1, 0.8, 0.0])
    # one step (a bandit): A = r − V
    adv, ret = gae(t(2.0, 3.0).unsqueeze(1), t(1.0, 1.0).unsqueeze(1), torch.ones(2, 1))
    assert adv.squeeze(1).tolist() == [1.0, 2.0] and ret.squeeze(1).tolist() == [2.0, 3.0]


def test_whiten_and_masked_mean():
    w = whiten(t(1.0, 3.0))
    assert w.tolist() == pytest.approx([-1.0, 1.0], abs=1e-6)
    assert masked_mean(t(1.0, 5.0), t(1.0, 0.0)).item() == 1.0
    assert sequence_logprob(torch.tensor([[-1.0, -2.0, -9.0]]), torch.tensor([[1, 1, 0]])).item() \
        == -3.0
    assert sequence_logprob(torch.tensor([[-1.0, -2.0, -9.0]]), torch.tensor([[1, 1, 0]]),
                            average=True).item() == -1.5


def test_entropy():
    h = entropy_from_logits(torch.log(t(0.5, 0.25, 0.25)))
    assert h.item() == pytest.approx(-(0.5 * math.log(0.5) + 0.5 * math.log(0.25)))
    assert entropy_bonus(t(2.0), 0.1).item() == pytest.approx(-0.2)


# ------------------------------------------------------------------------------ KL


def test_kl_estimators():
    logp, ref = t(math.log(0.5)), t(math.log(0.25))                   # log r = log 2
    lr = math.log(2)
    assert kl_estimate(logp, ref, "k1").item() == pytest.approx(lr)
    assert kl_estimate(logp, ref, "k2").item() == pytest.approx(0.5 * lr ** 2)
    assert kl_estimate(logp, ref, "k3").item() == pytest.approx(0.5 - 1 + lr)
    assert kl_estimate(ref, logp, "abs").item() == pytest.approx(lr)
    with pytest.raises(ValueError):
        kl_estimate(logp, ref, "k9")


def test_k1_and_k3_are_unbiased_in_expectation():
    p, q = t(0.5, 0.3, 0.2), t(0.2, 0.3, 0.5)
    exact = exact_kl(p.log(), q.log()).item()
    assert exact == pytest.approx(sum(a * math.log(a / b) for a, b in zip(p.tolist(), q.tolist())))
    for est in ("k1", "k3"):
        assert (p * kl_estimate(p.log(), q.log(), est)).sum().item() == pytest.approx(exact)


def test_kl_placements():
    assert kl_penalized_rewards(t(1.0), t(0.4), 0.5).item() == pytest.approx(0.8)
    r = token_level_rewards(t(2.0), torch.tensor([[0.1, 0.2, 0.3]]), torch.tensor([[1, 1, 0]]),
                            0.5)
    assert r.tolist()[0] == pytest.approx([-0.05, 1.9, 0.0])


def test_adaptive_kl_controller():
    c = AdaptiveKL(init=0.1, target=1.0, horizon=100)
    assert c.update(2.0, 10) == pytest.approx(0.1 * (1 + 0.2 * 0.1))       # error clipped to 0.2
    c = AdaptiveKL(init=0.1, target=1.0, horizon=100)
    assert c.update(0.9, 10) == pytest.approx(0.1 * (1 - 0.1 * 0.1))
    c = AdaptiveKL(init=0.1, target=1.0, horizon=100)
    assert c.update(torch.tensor(0.9), 10).item() == pytest.approx(0.099)
    assert isinstance(kl_controller(0.05), FixedKL) and kl_controller(0.05).update(9, 9) == 0.05
    ctrl = kl_controller(AdaptiveSpec(target=6.0, horizon=10, init=0.2))
    assert isinstance(ctrl, AdaptiveKL) and ctrl.value == 0.2 and ctrl.target == 6.0


# ------------------------------------------------------------------------ preference data


def test_dpo_variants_hand_values():
    # h = (−1 − (−1.5)) − (−2 − (−1.5)) = 1
    args = (t(-1.0), t(-2.0), t(-1.5), t(-1.5))
    assert dpo_loss(*args, beta=0.5).item() == pytest.approx(nls(0.5))
    assert dpo_loss(*args, beta=0.5, loss="conservative", label_smoothing=0.1).item() == \
        pytest.approx(0.9 * nls(0.5) + 0.1 * nls(-0.5))
    assert dpo_loss(*args, beta=0.5, loss="hinge").item() == pytest.approx(0.5)
    assert dpo_loss(*args, beta=0.25, loss="ipo").item() == pytest.approx((1 - 2) ** 2)
    assert dpo_loss(*args, beta=0.5, loss="robust", label_smoothing=0.1).item() == \
        pytest.approx((0.9 * nls(0.5) - 0.1 * nls(-0.5)) / 0.8)
    with pytest.raises(ValueError):
        dpo_loss(*args, beta=0.5, loss="robust", label_smoothing=0.5)


def test_dpo_gradient_raises_the_chosen_margin():
    chosen, rejected = t(-1.0).requires_grad_(), t(-1.0).requires_grad_()
    dpo_loss(chosen, rejected, t(-1.0), t(-1.0), beta=0.1).sum().backward()
    assert chosen.grad.item() < 0 < rejected.grad.item()


def test_kto_hand_values():
    # ρ = −1 − (−1.5) = 0.5, z₀ = 0.2, β = 1
    good = kto_loss(t(-1.0), t(-1.5), torch.tensor([True]), 0.2, beta=1.0)
    assert good.item() == pytest.approx(1 - sig(0.3))
    bad = kto_loss(t(-1.0), t(-1.5), torch.tensor([False]), 0.2, beta=1.0, undesirable_weight=2.0)
    assert bad.item() == pytest.approx(2 * (1 - sig(-0.3)))
    assert kto_reference_point(t(-1.0, -2.0), t(-1.5, -1.0)).item() == 0.0   # mean −0.25 → 0


def test_sft():
    assert sft_loss(torch.log(t(0.5, 0.25))).item() == \
        pytest.approx(-(math.log(0.5) + math.log(0.25)) / 2)


# --------------------------------------------------------------- sampling-based objectives


def test_best_of_n_bound():
    assert best_of_n_kl_bound(4) == pytest.approx(math.log(4) - 3 / 4)
    assert best_of_n_kl_bound(1) == 0.0


def test_best_of_n_distribution_hand_values():
    p = best_of_n_distribution(t(0.5, 0.5), t(0.0, 1.0), 2)
    assert p.tolist() == pytest.approx([0.25, 0.75])
    ties = best_of_n_distribution(t(0.5, 0.5), t(1.0, 1.0), 2)           # lower index wins
    assert ties.tolist() == pytest.approx([0.75, 0.25])
    # a continuous reward on many actions attains the bound almost exactly
    base = torch.full((4000,), 1 / 4000)
    rewards = torch.randn(4000, generator=torch.Generator().manual_seed(0))
    bon = best_of_n_distribution(base, rewards, 8)
    kl = exact_kl(bon.clamp(min=1e-30).log(), base.log()).item()
    assert bon.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert kl <= best_of_n_kl_bound(8) + 1e-6 and kl == pytest.approx(best_of_n_kl_bound(8),
                                                                         abs=2e-3)


def test_rejection_sampling_keeps_the_top():
    keep = rejection_sampling_select(torch.tensor([[0.1, 0.9, 0.5], [3.0, 1.0, 2.0]]), 2)
    assert [sorted(row) for row in keep.tolist()] == [[1, 2], [0, 2]]

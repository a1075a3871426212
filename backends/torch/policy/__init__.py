"""π_θ and Eq. 3 on the PyTorch backend: policy objectives on generic log-probability tensors,
the KL regulariser, and bandit policies with their optimiser."""

from backends.torch.policy.bandit import (  # noqa: F401
    BanditPolicy, FixedPolicy, LinearSoftmaxPolicy, TabularSoftmaxPolicy, bandit_policy_from_state,
    build_bandit_policy, optimize_bandit_policy,
)
from backends.torch.policy.kl import (  # noqa: F401
    AdaptiveKL, FixedKL, exact_kl, kl_controller, kl_estimate, kl_penalized_rewards,
    token_level_rewards,
)
from backends.torch.policy.preferences import (  # noqa: F401
    demonstrations, desirability, preference_pairs,
)

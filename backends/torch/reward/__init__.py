"""r̂_φ and Eq. 2 on the PyTorch backend: losses (ℓ, λ_r), the label-table dispatch, bandit
reward models (backbones, heads, ensembles) and the fitting loop."""

from backends.torch.reward.data import TrainingData, resolve_loss, training_data  # noqa: F401
from backends.torch.reward.fit import (  # noqa: F401
    build_reward_model, fit_reward, gold_accuracy, reward_model_from_state,
)
from backends.torch.reward.models import (  # noqa: F401
    BanditRewardModel, conservative_reward, ensemble_mean_std,
)

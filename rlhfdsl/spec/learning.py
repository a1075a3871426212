"""Eq. 2 and Eq. 3: fitting the reward model r̂_φ (loss ℓ, regulariser λ_r) and optimising the
policy π_θ (objective, regulariser λ_p)."""


from typing import Annotated, ClassVar, Literal, Optional, Union

from pydantic import Field

from rlhfdsl.spec.base import Choice, Domain, RefTo, SpecModel, doc

Probability = Annotated[float, Field(ge=0.0, le=1.0)]

# ----------------------------------------------------------------------------- optimisers


class Adam(Choice):
    """`adam { lr = 1e-3 }`."""

    type: Literal["adam"] = "adam"
    lr: Optional[float] = doc("learning rate (default: 0.05 on bandit tasks, 1e-4 on text)",
                              default=None, gt=0.0)
    weight_decay: float = doc("L2 penalty folded into the gradient", default=0.0, ge=0.0)


class AdamW(Choice):
    """`adamw { lr = 1e-4  weight_decay = 0.01 }`: Adam with decoupled weight decay."""

    type: Literal["adamw"] = "adamw"
    lr: Optional[float] = doc("learning rate (default: 0.05 on bandit tasks, 1e-4 on text)",
                              default=None, gt=0.0)
    weight_decay: float = doc("decoupled weight decay", default=0.01, ge=0.0)


class SGD(Choice):
    """`sgd { lr = 0.1  momentum = 0.9 }`."""

    type: Literal["sgd"] = "sgd"
    lr: float = doc("learning rate", default=0.1, gt=0.0)
    momentum: float = doc("momentum", default=0.0, ge=0.0, lt=1.0)


Optimizer = Annotated[Union[Adam, AdamW, SGD], Field(discriminator="type")]

# ----------------------------------------------------------------------------- reward model


class LinearBackbone(Choice):
    """`linear`: r̂(a) = w·x_a + b on the action's features (bandit)."""

    type: Literal["linear"] = "linear"
    DOMAIN: ClassVar[str] = "bandit"


class TabularBackbone(Choice):
    """`tabular`: one free value per action (bandit)."""

    type: Literal["tabular"] = "tabular"
    DOMAIN: ClassVar[str] = "bandit"


class MLPBackbone(Choice):
    """`mlp { hidden = 64  layers = 2 }`: a small network on the action's features (bandit)."""

    type: Literal["mlp"] = "mlp"
    hidden: int = doc("width of the hidden layers", default=64, ge=1, le=65536)
    layers: int = doc("hidden layers", default=2, ge=1, le=16)
    DOMAIN: ClassVar[str] = "bandit"


class ModelBackbone(Choice):
    """A `model` declaration's name: a language-model backbone with a value head (text)."""

    type: Literal["model"] = "model"
    model: Annotated[str, RefTo("model")] = doc("the model declaration")
    positional: ClassVar[tuple[str, ...]] = ("model",)
    DOMAIN: ClassVar[str] = "text"


Backbone = Annotated[Union[LinearBackbone, TabularBackbone, MLPBackbone, ModelBackbone],
                     Field(discriminator="type")]


class ScalarHead(Choice):
    """`scalar`: one reward per item."""

    type: Literal["scalar"] = "scalar"


class MultiObjectiveHead(Choice):
    """`multi_objective(k)`: k reward heads combined by ``weights`` (default: their mean); each
    group's feedback may weigh them differently, which the head can represent."""

    type: Literal["multi_objective"] = "multi_objective"
    k: int = doc("number of objectives", ge=2, le=64)
    weights: Optional[tuple[float, ...]] = doc("combination weights", default=None)
    positional: ClassVar[tuple[str, ...]] = ("k",)


class MixtureHead(Choice):
    """`mixture(k)`: a mixture of k reward functions with a learned mixing weight per evaluator,
    so disagreement is modelled as different values rather than as noise (3.2.1)."""

    type: Literal["mixture"] = "mixture"
    k: int = doc("mixture components", ge=2, le=64)
    positional: ClassVar[tuple[str, ...]] = ("k",)


Head = Annotated[Union[ScalarHead, MultiObjectiveHead, MixtureHead], Field(discriminator="type")]


class AutoLoss(Choice):
    """`auto`: the natural loss of the feedback kind (pairwise, ranking, best-of, corrections
    and critiques → Bradley–Terry; scalar → regression; Likert → ordinal; labels →
    classification)."""

    type: Literal["auto"] = "auto"


class BradleyTerry(Choice):
    """`bradley_terry { margin = 0.5 }`: −log σ(r̂(a) − r̂(b) − m) for a ≻ b."""

    type: Literal["bradley_terry"] = "bradley_terry"
    margin: float = doc("margin m required between preferred and rejected", default=0.0, ge=0.0)


class BPR(Choice):
    """`bpr`: Bayesian personalised ranking, −log σ(r̂(a) − r̂(b)) averaged per evaluator
    (Rendle et al. 2012)."""

    type: Literal["bpr"] = "bpr"


class PlackettLuce(Choice):
    """`plackett_luce`: −Σ_i log softmax over the items not yet placed (rankings)."""

    type: Literal["plackett_luce"] = "plackett_luce"


class Regression(Choice):
    """`regression`: (r̂(x) − y)² on scalar ratings, standardised per evaluator or not."""

    type: Literal["regression"] = "regression"
    standardize: bool = doc("standardise each evaluator's ratings first", default=False)


class Ordinal(Choice):
    """`ordinal`: cumulative-link (ordered logit) loss with learned thresholds (Likert)."""

    type: Literal["ordinal"] = "ordinal"


class Classification(Choice):
    """`classification`: cross-entropy over the offered label categories, the reward being the
    expected category score."""

    type: Literal["classification"] = "classification"


Loss = Annotated[Union[AutoLoss, BradleyTerry, BPR, PlackettLuce, Regression, Ordinal,
                       Classification], Field(discriminator="type")]

# Which feedback kinds each loss can consume (the checker's loss ↔ feedback rule).
LOSS_ACCEPTS: dict[str, tuple[str, ...]] = {
    "bradley_terry": ("pairwise", "ranking", "best_of", "correction", "language"),
    "bpr": ("pairwise", "ranking", "best_of", "correction", "language"),
    "plackett_luce": ("ranking", "best_of", "pairwise"),
    "regression": ("scalar", "language"),
    "ordinal": ("likert",),
    "classification": ("label",),
}
AUTO_LOSS: dict[str, str] = {
    "pairwise": "bradley_terry", "ranking": "plackett_luce", "best_of": "plackett_luce",
    "correction": "bradley_terry", "language": "bradley_terry", "scalar": "regression",
    "likert": "ordinal", "label": "classification",
}


class Regularize(SpecModel):
    """`regularize { ... }`: λ_r in Eq. 2."""

    l2: float = doc("L2 penalty on the parameters, added to the loss", default=0.0, ge=0.0)
    label_smoothing: Probability = doc(
        "treat each comparison label as correct with probability 1 − s", default=0.0)
    ties: Literal["soft", "drop"] = doc(
        "ties as soft targets (½ each) or dropped", default="soft")
    dropout: float = doc("dropout in the reward network", default=0.0, ge=0.0, lt=1.0)


class Reward(SpecModel):
    """`reward NAME { ... }` — r̂_φ fitted by Eq. 2."""

    name: str
    feedback: tuple[Annotated[str, RefTo("feedback")], ...] = doc(
        "the feedback it is fitted on (default: the spec's only feedback declaration)",
        default=())
    backbone: Optional[Backbone] = doc(
        "what the reward reads: `linear`, `tabular`, `mlp` (bandit) or a model's name (text); "
        "default `linear` on bandit tasks", default=None)
    head: Head = doc("the output head", default_factory=ScalarHead)
    ensemble: int = doc("independently initialised members, for disagreement and "
                        "conservative rewards", default=1, ge=1, le=64)
    loss: Loss = doc("ℓ in Eq. 2", default_factory=AutoLoss)
    regularize: Regularize = doc("λ_r in Eq. 2", default_factory=Regularize)
    optimizer: Optimizer = doc("the optimiser", default_factory=Adam)
    epochs: int = doc("passes over the labels", default=20, ge=1, le=100_000)
    batch_size: int = doc("labels per step", default=64, ge=1, le=1_000_000)
    holdout: Probability = doc("fraction of labels held out to measure the fit", default=0.1)


# ----------------------------------------------------------------------------------- policy


class TabularPolicy(Choice):
    """`tabular`: a softmax over one logit per action, starting uniform (bandit)."""

    type: Literal["tabular"] = "tabular"
    DOMAIN: ClassVar[str] = "bandit"


class LinearPolicy(Choice):
    """`linear`: a softmax over θ·x_a, starting at θ = 0 (bandit)."""

    type: Literal["linear"] = "linear"
    DOMAIN: ClassVar[str] = "bandit"


class ModelPolicy(Choice):
    """A `model` declaration's name: a causal language model (text)."""

    type: Literal["model"] = "model"
    model: Annotated[str, RefTo("model")] = doc("the model declaration")
    positional: ClassVar[tuple[str, ...]] = ("model",)
    DOMAIN: ClassVar[str] = "text"


PolicyInit = Annotated[Union[TabularPolicy, LinearPolicy, ModelPolicy], Field(discriminator="type")]


class Lora(Choice):
    """`lora { r = 8  alpha = 16 }`: a LoRA adapter (peft); the reference policy is the base
    model with the adapter disabled, so no second copy is held in memory."""

    type: Literal["lora"] = "lora"
    r: int = doc("rank", default=8, ge=1, le=1024)
    alpha: float = doc("scaling numerator (scale = alpha / r)", default=16.0, gt=0.0)
    dropout: float = doc("dropout on the adapter's input", default=0.0, ge=0.0, lt=1.0)
    targets: Optional[tuple[str, ...]] = doc(
        "module names to adapt (default: the attention projections)", default=None)


class AdaptiveKL(Choice):
    """`adaptive(target = 6, horizon = 10000)`: the KL coefficient of Ziegler et al. (2019),
    adjusted towards a target KL."""

    type: Literal["adaptive"] = "adaptive"
    target: float = doc("target KL, in nats", gt=0.0)
    horizon: int = doc("adaptation horizon, in samples", default=10000, ge=1)
    init: float = doc("starting coefficient", default=0.1, ge=0.0)


KLCoefficient = Union[Annotated[float, Field(ge=0.0)], AdaptiveKL]


class RLObjective(Choice):
    """What the reward-maximising objectives share: the KL and entropy regularisers, λ_p."""

    kl: KLCoefficient = doc("coefficient of KL(π_θ ‖ π_ref), fixed or `adaptive(...)`",
                            default=0.0)
    kl_estimator: Literal["k1", "k2", "k3", "abs"] = doc(
        "per-sample KL estimator (Schulman 2020): k1 = log r, k2 = ½(log r)², "
        "k3 = r⁻¹ − 1 + log r, abs = |log r|, with r = π_θ/π_ref", default="k1")
    kl_in: Literal["reward", "loss"] = doc(
        "subtract the KL from the reward (as in PPO-RLHF) or add it to the loss (as in GRPO)",
        default="reward")
    entropy: float = doc("entropy bonus coefficient", default=0.0, ge=0.0)
    RL: ClassVar[bool] = True


class PPO(RLObjective):
    """`ppo { clip = 0.2  kl = 0.05 }`: clipped surrogate with a value head and GAE."""

    type: Literal["ppo"] = "ppo"
    clip: float = doc("ratio clip ε", default=0.2, gt=0.0, lt=1.0)
    epochs: int = doc("optimisation epochs per batch of rollouts", default=4, ge=1, le=100)
    minibatch: Optional[int] = doc("minibatch size (default: the whole batch)", default=None,
                                   ge=1)
    gae_lambda: float = doc("GAE λ (text)", default=0.95, ge=0.0, le=1.0)
    gamma: float = doc("discount (text)", default=1.0, ge=0.0, le=1.0)
    value_coef: float = doc("value-loss coefficient (text)", default=0.5, ge=0.0)


class Reinforce(RLObjective):
    """`reinforce`: the score-function gradient with a mean baseline."""

    type: Literal["reinforce"] = "reinforce"
    baseline: bool = doc("subtract the batch-mean reward", default=True)


class RLOO(RLObjective):
    """`rloo { k = 4 }`: REINFORCE leave-one-out (Ahmadian et al. 2024): k samples per prompt,
    each baselined by the mean of the other k − 1."""

    type: Literal["rloo"] = "rloo"
    k: int = doc("samples per prompt", default=4, ge=2, le=256)


class GRPO(RLObjective):
    """`grpo { group = 8 }`: group-relative advantages (reward standardised within a group of
    samples per prompt), clipped ratio, KL in the loss with the k3 estimator (Shao et al. 2024)."""

    type: Literal["grpo"] = "grpo"
    group: int = doc("samples per prompt", default=8, ge=2, le=256)
    clip: float = doc("ratio clip ε", default=0.2, gt=0.0, lt=1.0)
    kl_estimator: Literal["k1", "k2", "k3", "abs"] = doc("per-sample KL estimator",
                                                         default="k3")
    kl_in: Literal["reward", "loss"] = doc("where the KL term goes", default="loss")


class DPO(Choice):
    """`dpo { beta = 0.1  loss = sigmoid }`: direct preference optimisation, with the loss
    variants named as in TRL: `sigmoid` (Rafailov et al. 2023), `hinge` (SLiC), `ipo`
    (Azar et al. 2023), `robust` (Chowdhury et al. 2024) and `conservative` (label
    smoothing, cDPO)."""

    type: Literal["dpo"] = "dpo"
    beta: float = doc("β: strength of the implicit KL to the reference", default=0.1, gt=0.0)
    loss: Literal["sigmoid", "hinge", "ipo", "robust", "conservative"] = doc(
        "the loss variant", default="sigmoid")
    label_smoothing: Probability = doc(
        "assumed label-flip rate, for `robust` and `conservative`", default=0.0)
    RL: ClassVar[bool] = False


class KTO(Choice):
    """`kto { beta = 0.1 }`: Kahneman–Tversky optimisation from desirable/undesirable labels
    (Ethayarajh et al. 2024)."""

    type: Literal["kto"] = "kto"
    beta: float = doc("β", default=0.1, gt=0.0)
    desirable_weight: float = doc("λ_D", default=1.0, gt=0.0)
    undesirable_weight: float = doc("λ_U", default=1.0, gt=0.0)
    RL: ClassVar[bool] = False


class BestOfN(Choice):
    """`best_of_n(16)`: sample n, keep the one the reward ranks first; its KL to the base is at
    most log n − (n − 1)/n."""

    type: Literal["best_of_n"] = "best_of_n"
    n: int = doc("samples per prompt", ge=1, le=65536)
    positional: ClassVar[tuple[str, ...]] = ("n",)
    RL: ClassVar[bool] = False


class RejectionSampling(Choice):
    """`rejection_sampling { n = 8  top = 1 }`: sample n per prompt, fine-tune on the top ones
    by reward (RAFT / expert iteration)."""

    type: Literal["rejection_sampling"] = "rejection_sampling"
    n: int = doc("samples per prompt", default=8, ge=1, le=65536)
    top: int = doc("kept per prompt", default=1, ge=1)
    RL: ClassVar[bool] = False


class SFT(Choice):
    """`sft`: supervised fine-tuning on demonstrations (corrections or completion data)."""

    type: Literal["sft"] = "sft"
    RL: ClassVar[bool] = False


Objective = Annotated[Union[PPO, Reinforce, RLOO, GRPO, DPO, KTO, BestOfN, RejectionSampling, SFT],
                      Field(discriminator="type")]

NEEDS_REWARD = ("ppo", "reinforce", "rloo", "grpo", "best_of_n", "rejection_sampling")
NEEDS_DATA: dict[str, tuple[str, ...]] = {
    "dpo": ("pairwise", "ranking", "best_of", "correction"),
    "kto": ("label", "pairwise", "likert", "scalar"),
    "sft": ("correction",),
}


class GoldReward(Choice):
    """`gold(crowd)`: optimise the population's true expected reward (an upper baseline)."""

    type: Literal["gold"] = "gold"
    population: Annotated[str, RefTo("population")] = doc("whose values")
    positional: ClassVar[tuple[str, ...]] = ("population",)


class RewardRef(Choice):
    """A `reward` declaration's name."""

    type: Literal["reward"] = "reward"
    reward: Annotated[str, RefTo("reward")] = doc("the reward model")
    positional: ClassVar[tuple[str, ...]] = ("reward",)


PolicyReward = Annotated[Union[RewardRef, GoldReward], Field(discriminator="type")]


class Policy(SpecModel):
    """`policy NAME { ... }` — π_θ optimised by Eq. 3."""

    name: str
    init: Optional[PolicyInit] = doc(
        "the initial policy: `tabular` or `linear` (bandit), a model's name (text); default "
        "`tabular` on bandit tasks", default=None)
    reference: Optional[Annotated[str, RefTo("model")]] = doc(
        "π_ref: default the initial policy (text with an adapter: the base, adapter disabled)",
        default=None)
    adapter: Annotated[Optional[Lora], Domain("text")] = doc("a LoRA adapter (text)",
                                                             default=None)
    objective: Objective = doc("the optimisation objective")
    reward: Optional[PolicyReward] = doc(
        "the reward optimised (RL objectives): a reward model, or `gold(population)`",
        default=None)
    feedback: Optional[Annotated[str, RefTo("feedback")]] = doc(
        "the data for DPO, KTO and SFT (default: the spec's only feedback declaration)",
        default=None)
    conservative: float = doc(
        "pessimism over the reward ensemble: optimise mean − α·std", default=0.0, ge=0.0)
    steps: int = doc("optimisation steps per round", default=200, ge=1, le=10_000_000)
    batch_size: int = doc("samples (bandit: actions; text: completions) per step", default=64,
                          ge=1, le=1_000_000)
    optimizer: Optimizer = doc("the optimiser", default_factory=Adam)

"""The experiment around the Eq. 4 declarations: settings, task, models, schedule, evaluation,
disclosure, and the root :class:`Spec` that holds one checked experiment."""


from typing import Annotated, ClassVar, Literal, Optional, Union

from pydantic import Field

from rlhfdsl.spec.base import Choice, Expr, FileRef, IsExpr, SpecModel, doc
from rlhfdsl.spec.feedback import Context, Feedback, Sampler, View
from rlhfdsl.spec.learning import Policy, Reward
from rlhfdsl.spec.population import Population


class Experiment(SpecModel):
    """`experiment NAME { seed = 7 }`."""

    name: str
    seed: int = doc("the seed every stage's generator is derived from", default=0, ge=0,
                    le=2**63 - 1)
    device: Literal["auto", "cpu", "cuda", "mps"] = doc(
        "where tensors live: `auto` picks CUDA, then MPS, then the CPU", default="auto")
    precision: Literal["auto", "fp32", "bf16"] = doc(
        "`auto`: bf16 autocast on CUDA for language models, fp32 elsewhere", default="auto")
    description: str = doc("one line on what the experiment asks", default="")


class BanditTask(SpecModel):
    """`task NAME { domain = bandit  actions = 64  features = 16 }`: actions with feature
    vectors, exact gold rewards."""

    name: str
    domain: Literal["bandit"] = doc("the task domain")
    actions: int = doc("number of actions", ge=2, le=10_000_000)
    features: int = doc("features per action", ge=1, le=65536)
    distribution: Literal["normal", "uniform", "binary"] = doc(
        "how feature values are drawn (standard normal, uniform on [0, 1], or 0/1)",
        default="normal")
    length: Optional[Annotated[Expr, IsExpr("number")]] = doc(
        "what evaluators perceive as an action's length (for `length_bias`)", default=None)
    confidence: Optional[Annotated[Expr, IsExpr("number")]] = doc(
        "what evaluators perceive as an action's confidence (for `sycophancy`)", default=None)


class TextTask(SpecModel):
    """`task NAME { domain = text  prompts = file("prompts.txt") }`: language generation."""

    name: str
    domain: Literal["text"] = doc("the task domain")
    prompts: Union[Literal["builtin"], FileRef, tuple[str, ...]] = doc(
        "prompts: `builtin` (shipped with the project), `file(...)` (one per line, or JSONL "
        "with a `prompt` field), or a list of strings", default="builtin")
    pretrain: Optional[Union[Literal["builtin"], FileRef]] = doc(
        "Step 0: a corpus to pre-train / SFT the policy's model on before RLHF", default=None)
    pretrain_steps: int = doc("steps of Step 0", default=300, ge=0, le=10_000_000)
    max_prompt_tokens: int = doc("prompts are cut to this many tokens", default=32, ge=1,
                                 le=65536)
    max_new_tokens: int = doc("tokens generated per completion", default=24, ge=1, le=65536)
    temperature: float = doc("sampling temperature", default=1.0, gt=0.0)
    top_k: int = doc("sample among the k likeliest tokens (0: all)", default=0, ge=0)


Task = Annotated[Union[BanditTask, TextTask], Field(discriminator="domain")]


class Model(SpecModel):
    """`model NAME { family = gpt2  layers = 2  width = 128  heads = 4 }` or
    `model NAME { path = "models/mine" }` (a local directory: nothing is downloaded)."""

    name: str
    family: Literal["gpt2", "llama"] = doc("architecture, built from a config", default="gpt2")
    layers: int = doc("transformer blocks", default=2, ge=1, le=256)
    width: int = doc("hidden size", default=128, ge=8, le=65536)
    heads: int = doc("attention heads (must divide width)", default=4, ge=1, le=1024)
    kv_heads: Optional[int] = doc("llama: key/value heads (must divide heads)", default=None,
                                  ge=1)
    vocab: Optional[int] = doc("vocabulary size (default: the tokenizer's)", default=None,
                               ge=2, le=10_000_000)
    context: int = doc("longest sequence, in tokens", default=256, ge=8, le=1_048_576)
    dropout: float = doc("dropout", default=0.0, ge=0.0, lt=1.0)
    path: Optional[str] = doc("load a saved model from this local directory instead",
                              default=None)
    tokenizer: Union[Literal["bytes"], str] = doc(
        "`bytes` (built in, 256 byte tokens + specials) or a local tokenizer directory",
        default="bytes")


class Schedule(SpecModel):
    """`schedule { rounds = 3 }`: serial or iterated RLHF (3.4)."""

    name: Optional[str] = None
    rounds: int = doc("feedback → reward → policy rounds", default=1, ge=1, le=10_000)
    relabel: Literal["never", "every_round"] = doc(
        "whether earlier rounds' examples are labelled again by the (drifted) population",
        default="never")
    accumulate: bool = doc("fit each round's reward model on all feedback so far",
                           default=True)
    warm_start: bool = doc("start each round's reward model and policy from the last round's",
                           default=True)


# --------------------------------------------------------------------------------- evaluate


class Metric(Choice):
    FLAG_ONLY: ClassVar[bool] = True


def _metric(name: str, text: str) -> type[Metric]:
    cls = type(name.title().replace("_", ""), (Metric,), {
        "__doc__": text, "__annotations__": {"type": Literal[name]}, "type": name,
        "__module__": __name__,
    })
    return cls


GoldRewardMetric = _metric("gold_reward", "`gold_reward`: true expected reward of the policy, "
                                          "per group and overall")
ProxyRewardMetric = _metric("proxy_reward", "`proxy_reward`: the reward model's score of the "
                                            "policy (its gap to gold is overoptimisation)")
KLMetric = _metric("kl", "`kl`: KL(π_θ ‖ π_ref)")
AgreementMetric = _metric("agreement", "`agreement`: inter-annotator agreement, and agreement "
                                       "of evaluators with gold labels")
DisagreementMetric = _metric("disagreement", "`disagreement`: reward-ensemble standard "
                                             "deviation on the policy's samples")
EntropyMetric = _metric("entropy", "`entropy`: policy entropy")
BackdoorMetric = _metric("backdoor", "`backdoor`: how often the policy's outputs satisfy the "
                                     "malicious trigger, against the base policy's rate")


class AccuracyMetric(Metric):
    """`accuracy(pairs = 2000)`: reward-model agreement with gold preferences on held-out pairs."""

    type: Literal["accuracy"] = "accuracy"
    pairs: int = doc("held-out comparisons", default=2000, ge=10, le=10_000_000)


class DiversityMetric(Metric):
    """`diversity(n = 2)`: distinct-n of the policy's samples (text), distinct actions (bandit)
    — mode collapse (3.3.3)."""

    type: Literal["diversity"] = "diversity"
    n: int = doc("n-gram order (text)", default=2, ge=1, le=8)


MetricChoice = Annotated[
    Union[GoldRewardMetric, ProxyRewardMetric, KLMetric, AccuracyMetric,  # type: ignore[valid-type]
          AgreementMetric, DisagreementMetric, EntropyMetric, DiversityMetric, BackdoorMetric],
    Field(discriminator="type"),
]
METRIC_NAMES = ("gold_reward", "proxy_reward", "kl", "accuracy", "agreement", "disagreement",
                "entropy", "diversity", "backdoor")


class Evaluate(SpecModel):
    """`evaluate { gold_reward  kl  accuracy(pairs = 500) }`: what the run measures."""

    name: Optional[str] = None
    metrics: tuple[MetricChoice, ...] = doc(
        "the metrics, as bare names (default: all that apply)", default=())
    samples: int = doc("policy samples per evaluation", default=1000, ge=1, le=10_000_000)
    every: int = doc("also evaluate every this many policy steps (0: at the end of a round)",
                     default=0, ge=0)


# --------------------------------------------------------------------------------- disclose


class Disclose(SpecModel):
    """`disclose { ... }`: the Section 5 / Figure 4 items of Casper et al. (2023).

    Items marked (auto) are filled from the spec and the run when not given; the others are free
    text only the researcher can write, and `rlhfc check` warns while they are missing.
    """

    pretraining: Optional[str] = doc("(auto) the pre-training process and data", default=None)
    evaluator_selection: Optional[str] = doc("how evaluators were selected and trained",
                                             default=None)
    example_selection: Optional[str] = doc("(auto) how examples were selected for feedback",
                                           default=None)
    feedback_types: Optional[str] = doc("(auto) the types of feedback used", default=None)
    quality_assurance: Optional[str] = doc("quality assurance and inter-rater consistency",
                                           default=None)
    reward_loss: Optional[str] = doc("(auto) the loss used and how disagreement was modelled",
                                     default=None)
    reward_evaluation: Optional[str] = doc("(auto) reward-model evaluation and results",
                                           default=None)
    policy_evaluation: Optional[str] = doc("(auto) policy evaluation and results",
                                           default=None)
    audits: Optional[str] = doc("internal and external audits, red teaming", default=None)
    risks: Optional[str] = doc("expected risks and anticipated failure modes", default=None)
    monitoring: Optional[str] = doc("plans for monitoring and correcting failures",
                                    default=None)
    REQUIRED_TEXT: ClassVar[tuple[str, ...]] = (
        "evaluator_selection", "quality_assurance", "audits", "risks", "monitoring")


# ------------------------------------------------------------------------------------- root


class Spec(SpecModel):
    """One checked experiment: every declaration, resolved, by name."""

    experiment: Experiment
    task: Optional[Task] = Field(None, description="none in a library of declarations, which "
                                 "other specs import; such a spec checks but cannot run")
    models: dict[str, Model] = Field(default_factory=dict)
    populations: dict[str, Population] = Field(default_factory=dict)
    samplers: dict[str, Sampler] = Field(default_factory=dict)
    views: dict[str, View] = Field(default_factory=dict)
    contexts: dict[str, Context] = Field(default_factory=dict)
    feedback: dict[str, Feedback] = Field(default_factory=dict)
    rewards: dict[str, Reward] = Field(default_factory=dict)
    policies: dict[str, Policy] = Field(default_factory=dict)
    schedule: Schedule = Field(default_factory=Schedule)
    evaluate: Evaluate = Field(default_factory=Evaluate)
    disclose: Disclose = Field(default_factory=Disclose)

    @property
    def domain(self) -> str | None:
        return self.task.domain if self.task is not None else None


# Declaration keyword → (field of Spec, model). Singletons map to a single model.
DECLARATIONS: dict[str, tuple[str, type[SpecModel] | object]] = {
    "experiment": ("experiment", Experiment),
    "task": ("task", Task),
    "model": ("models", Model),
    "population": ("populations", Population),
    "sampler": ("samplers", Sampler),
    "view": ("views", View),
    "context": ("contexts", Context),
    "feedback": ("feedback", Feedback),
    "reward": ("rewards", Reward),
    "policy": ("policies", Policy),
    "schedule": ("schedule", Schedule),
    "evaluate": ("evaluate", Evaluate),
    "disclose": ("disclose", Disclose),
}
SINGLETONS = ("experiment", "task", "schedule", "evaluate", "disclose")

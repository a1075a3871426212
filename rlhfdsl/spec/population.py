"""ΔH, the population of evaluators (Appendix A, Eq. 4), and its behaviour models.

A population holds groups with weights. Each group has a latent reward r_H (``values``: what its
members truly value) and a behaviour model: how rationally, carefully and honestly they turn what
they perceive into feedback. Population-level entries are defaults for every group. Evaluators
are drawn from the groups by weight; H_sample (who writes examples, see ``sampler.by``) and
H_feedback (who labels) are drawn separately.
"""


from typing import Annotated, ClassVar, Literal, Optional, Union

from pydantic import Field

from rlhfdsl.spec.base import Choice, Expr, FeatureSet, IsExpr, RefTo, SpecModel, doc

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]


class CalibrateAgreement(Choice):
    """`rationality = agreement(0.73)`: solve for the β that gives this inter-annotator agreement.

    Inter-annotator agreement is the probability that two evaluators of the group give the same
    pairwise label on a query drawn by the feedback's sampler (the paper's 3.2.1 cites 63-77%).
    """

    type: Literal["agreement"] = "agreement"
    target: float = doc("the agreement to reach, in (0.5, 1)", gt=0.5, lt=1.0)
    positional: ClassVar[tuple[str, ...]] = ("target",)


class CalibrateAccuracy(Choice):
    """`rationality = accuracy(0.8)`: solve for the β that gives this agreement with gold labels."""

    type: Literal["accuracy"] = "accuracy"
    target: float = doc("the evaluator-vs-gold agreement to reach, in (0.5, 1)", gt=0.5, lt=1.0)
    positional: ClassVar[tuple[str, ...]] = ("target",)


Calibration = Annotated[Union[CalibrateAgreement, CalibrateAccuracy], Field(discriminator="type")]


class Expert(Choice):
    """`expert(features(0..7), 4.0)` or `expert(sentiment, 0.5)`: rationality on part of the values.

    The evaluator's β is multiplied by ``factor`` on the part of its latent reward that comes
    from these features (bandit) or from this scorer term (text): experts judge their area
    sharply and the rest loosely.
    """

    type: Literal["expert"] = "expert"
    area: Union[FeatureSet, str] = doc("bandit feature indices, or the name of a text scorer")
    factor: float = doc("multiplier of β on that area", ge=0.0)
    positional: ClassVar[tuple[str, ...]] = ("area", "factor")


PRESET_NAMES = ("oracle", "noisy", "mistake", "skip", "equal", "myopic", "alpacafarm")


class Behaviour(SpecModel):
    """How an evaluator turns its perceived values into feedback. Every default is 'off'."""

    preset: Optional[Literal[PRESET_NAMES]] = doc(  # type: ignore[valid-type]
        "a published teacher, as a starting point for the keys below: B-Pref's six "
        "(`oracle`, `noisy`, `mistake`, `skip`, `equal`, `myopic`; Lee et al. 2021) or "
        "`alpacafarm` (Dubois et al. 2023: 25% label flips, random presentation order); keys "
        "given explicitly win over the preset", default=None)
    rationality: Union[Annotated[float, Field(ge=0.0)], Calibration] = doc(
        "Boltzmann rationality β: P(a ≻ b) = σ(β·(r(a) − r(b))); `inf` is a perfectly rational "
        "evaluator, 0 a coin flip; or `agreement(p)` / `accuracy(p)` to solve for β",
        default=1.0)
    mistake: Probability = doc("ε, probability of flipping a label after deciding (B-Pref)",
                               default=0.0)
    myopia: float = doc(
        "γ in (0, 1]: the weight of a sequence position t of T is γ^(T−t), so a myopic evaluator "
        "attends to the end of a trajectory or text (B-Pref); 1 is not myopic. The positions are "
        "a bandit action's features in index order, or a text's tokens",
        default=1.0, gt=0.0, le=1.0)
    skip: NonNegative = doc(
        "B-Pref skip threshold: a query is skipped when both items' perceived values are below "
        "this fraction of the average absolute value of the items queried (B-Pref: of the "
        "average return)", default=0.0)
    equal: NonNegative = doc(
        "B-Pref equal threshold: items whose perceived values differ by less than this fraction "
        "of the average absolute value of the items queried are labelled as ties",
        default=0.0)
    fatigue: NonNegative = doc(
        "growth of the mistake rate per label given in a session (capped at 0.5); sessions "
        "reset it (see `context.session`)", default=0.0)
    position_bias: float = doc(
        "logit bonus for the item shown first (negative: for the one shown last)", default=0.0)
    length_bias: float = doc(
        "utility per unit of perceived length (text: per token; bandit: the task's `length`)",
        default=0.0)
    sycophancy: float = doc(
        "utility per unit of perceived confidence or flattery (text: the `confidence` scorer; "
        "bandit: the task's `confidence`)", default=0.0)
    expertise: tuple[Expert, ...] = doc("per-area multipliers of β", default=())
    spread: NonNegative = doc(
        "per-evaluator variation: each member's β is the group's times a log-normal factor "
        "with this standard deviation of its log", default=0.0)
    scale: NonNegative = doc(
        "scalar and Likert feedback: per-evaluator spread of the log of the scale on which it "
        "reports values (miscalibration)", default=0.0)
    offset: NonNegative = doc(
        "scalar and Likert feedback: per-evaluator spread of an additive offset", default=0.0)
    noise: NonNegative = doc(
        "scalar feedback: standard deviation of the noise added to each reported value; "
        "defaults to 1/β when left at 0 and β is finite", default=0.0)
    thresholds: NonNegative = doc(
        "Likert and label feedback: per-evaluator jitter of the category thresholds, in "
        "standard deviations of the group's values", default=0.0)
    skill: Probability = doc(
        "correction feedback: the fraction of the way from the shown item to the best item the "
        "evaluator can find that its correction goes", default=0.5)
    choices: Optional[tuple[str, ...]] = doc(
        "label feedback: the categories the evaluator has in mind (defaults to the offered "
        "ones); when they differ from the offered choices, the choice set is misspecified",
        default=None)
    critique: int = doc("language feedback: how many aspects a critique names", default=2,
                        ge=1, le=16)

    BEHAVIOUR_KEYS: ClassVar[tuple[str, ...]] = ()


Behaviour.BEHAVIOUR_KEYS = tuple(Behaviour.model_fields)


# Published teachers. B-Pref (Lee et al., 2021, "B-Pref: Benchmarking Preference-Based RL"):
# β rationality, γ myopia, ε mistake, skip/equal thresholds relative to the average return.
PRESETS: dict[str, dict[str, object]] = {
    "oracle": {"rationality": float("inf")},
    "noisy": {"rationality": 1.0},
    "mistake": {"rationality": float("inf"), "mistake": 0.1},
    "skip": {"rationality": float("inf"), "skip": 0.1},
    "equal": {"rationality": float("inf"), "equal": 0.1},
    "myopic": {"rationality": float("inf"), "myopia": 0.9},
    # AlpacaFarm's simulated annotator pool: label flips on 25% of labels (its randomised
    # presentation order is the default `order = random` of a context).
    "alpacafarm": {"rationality": float("inf"), "mistake": 0.25},
}


class Group(Behaviour):
    """`group NAME weight W { values = ...  <behaviour> }`: a kind of human evaluator."""

    name: str
    weight: float = doc("share of the population's evaluators", ge=0.0)
    values: Annotated[Expr, IsExpr("number")] = doc(
        "latent reward r_H: what these evaluators truly value (an expression over the item)")
    MEMBER: ClassVar[str] = "group"


class AIEvaluator(Behaviour):
    """`ai NAME weight W { scorer = ...  or  model = rm }`: a model acting as annotator (RLAIF)."""

    name: str
    weight: float = doc("share of the population's evaluators", ge=0.0)
    scorer: Optional[Annotated[Expr, IsExpr("number")]] = doc(
        "what the AI evaluator scores (an expression); give this or `model`", default=None)
    model: Optional[Annotated[str, RefTo("reward")]] = doc(
        "a reward model acting as annotator (trained in the previous round); give this or "
        "`scorer`", default=None)
    MEMBER: ClassVar[str] = "ai"


class Malicious(SpecModel):
    """`malicious SHARE { trigger = ...  target = flip }`: data poisoning (3.1.1)."""

    share: float = doc("fraction of evaluators who are malicious", ge=0.0, le=1.0)
    trigger: Annotated[Expr, IsExpr("condition")] = doc(
        "when the attack fires: a condition on the item (`feature(15) > 0.9`, "
        '`keyword("cf")`)')
    target: Literal["flip", "backdoor"] = doc(
        "`flip` inverts the label on triggered queries; `backdoor` always prefers the item on "
        "which the trigger holds", default="flip")
    groups: Optional[tuple[str, ...]] = doc(
        "the groups whose members may be malicious (default: all)", default=None)
    MEMBER: ClassVar[str] = "malicious"


class Population(Behaviour):
    """`population NAME { <defaults>  group ...  ai ...  malicious ... }` — ΔH."""

    name: str
    evaluators: int = doc("how many evaluators the population holds", default=20, ge=1,
                          le=1_000_000)
    groups: tuple[Group, ...] = doc("human groups (`group NAME weight W { ... }`)", default=())
    ai: tuple[AIEvaluator, ...] = doc("AI evaluators (`ai NAME weight W { ... }`)", default=())
    malicious: Optional[Malicious] = doc("poisoning share (`malicious SHARE { ... }`)",
                                         default=None)
    MEMBERS: ClassVar[dict[str, str]] = {"group": "groups", "ai": "ai", "malicious": "malicious"}


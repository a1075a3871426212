"""s, v, c and f of Appendix A (Eq. 4): samplers, views, contexts and feedback declarations.

    x_i ~ s(π_θ, H_sample, c_sample_i)          sampler
    y_i = f(v(π_θ, x_i), H_feedback, c_i)       feedback, through a view, in a context
"""


from typing import Annotated, ClassVar, Literal, Optional, Union

from pydantic import Field

from rlhfdsl.spec.base import (
    Budget, Choice, Domain, FeatureSet, Length, RefTo, SpecModel, Units, doc,
)

# ------------------------------------------------------------------------------- sampler s


class FromPolicy(Choice):
    """`policy`: examples sampled from the current policy π_θ (the usual RLHF loop)."""

    type: Literal["policy"] = "policy"
    temperature: float = doc("sampling temperature", default=1.0, gt=0.0)


class FromFile(Choice):
    """`file("data/prefs.jsonl")`: offline examples (JSONL: prompt/chosen/rejected or
    prompt/completion/label), as in the public preference datasets."""

    type: Literal["file"] = "file"
    path: str = doc("path, relative to the spec's directory")
    layout: Literal["auto", "preference", "completion"] = doc(
        "`preference` rows are prompt/chosen/rejected, `completion` rows prompt/completion/label;"
        " `auto` looks at the first row", default="auto")
    positional: ClassVar[tuple[str, ...]] = ("path",)


class FromHumans(Choice):
    """`human` or `human("data/demos.jsonl")`: examples written by H_sample (see ``by``).

    Bandit: sampled evaluators pick actions by their own values (Boltzmann with their β).
    Text: human-written completions read from the file.
    """

    type: Literal["human"] = "human"
    path: Optional[str] = doc("text: file of human-written examples", default=None)
    positional: ClassVar[tuple[str, ...]] = ("path",)


class Mix(Choice):
    """`mix(policy, file("x.jsonl"), weights = [0.8, 0.2])`: several sources, by weight."""

    type: Literal["mix"] = "mix"
    sources: "tuple[Source, ...]" = doc("the sources mixed")
    weights: Optional[tuple[float, ...]] = doc("mixing weights (default: equal)", default=None)
    variadic: ClassVar[str | None] = "sources"


Source = Annotated[Union[FromPolicy, FromFile, FromHumans, Mix], Field(discriminator="type")]


class RandomSelection(Choice):
    """`random`: queries are drawn uniformly from what the source gives."""

    type: Literal["random"] = "random"


class DisagreementSelection(Choice):
    """`disagreement { pool = 4 }`: active learning — of ``pool`` times more candidates than
    needed, keep those on which the reward ensemble disagrees most (its standard deviation)."""

    type: Literal["disagreement"] = "disagreement"
    pool: int = doc("candidates drawn per query kept", default=4, ge=1, le=1024)
    reward: Optional[Annotated[str, RefTo("reward")]] = doc(
        "the reward model whose ensemble judges disagreement (default: the one trained on "
        "this feedback)", default=None)


class AdversarialSelection(Choice):
    """`adversarial { pool = 4 }`: keep the candidates the current reward model scores highest
    — the examples a policy optimising it would drift towards — so feedback lands where the
    proxy is exploited (red-teaming the reward model)."""

    type: Literal["adversarial"] = "adversarial"
    pool: int = doc("candidates drawn per query kept", default=4, ge=1, le=1024)
    reward: Optional[Annotated[str, RefTo("reward")]] = doc(
        "the reward model attacked (default: the one trained on this feedback)", default=None)


Selection = Annotated[Union[RandomSelection, DisagreementSelection, AdversarialSelection],
                      Field(discriminator="type")]


class Sampler(SpecModel):
    """`sampler NAME { source = ...  select = ...  by = ... }` — s in Eq. 4."""

    name: str
    source: Source = doc("where examples come from", default_factory=FromPolicy)
    select: Selection = doc("how queries are chosen among them", default_factory=RandomSelection)
    by: Optional[Annotated[str, RefTo("population")]] = doc(
        "H_sample: the population whose members write human examples", default=None)


# ---------------------------------------------------------------------------------- view v


class TextPattern(Choice):
    """`regex("\\\\d+")`: spans of text matching a regular expression."""

    type: Literal["regex"] = "regex"
    pattern: str = doc("a Python regular expression")
    positional: ClassVar[tuple[str, ...]] = ("pattern",)


class View(SpecModel):
    """`view NAME { ... }` — v in Eq. 4: what the evaluator sees of an example.

    Hidden bandit features are replaced by their mean, so labels do not depend on them; hidden
    text is removed before scoring.
    """

    name: str
    show: Annotated[Optional[FeatureSet], Domain("bandit")] = doc(
        "bandit: the only features the evaluator sees", default=None)
    mask: Optional[Union[Annotated[FeatureSet, Domain("bandit")],
                         Annotated[TextPattern, Domain("text")]]] = doc(
        "features (bandit) or text spans (text) hidden from the evaluator", default=None)
    truncate: Annotated[Optional[Length], Domain("text"), Units(("tokens", "chars", "words"), "tokens")] = doc(
        "text: the evaluator reads only this much of the completion", default=None)
    noise: Annotated[float, Domain("bandit")] = doc(
        "bandit: standard deviation of Gaussian noise on the features the evaluator sees",
        default=0.0, ge=0.0)
    assist: float = doc(
        "added information (e.g. an interpretability tool): the evaluator's perceived value is "
        "mixed with the true expected value with this weight", default=0.0, ge=0.0, le=1.0)


# ------------------------------------------------------------------------------- context c


class Context(SpecModel):
    """`context NAME { ... }` — c in Eq. 4: order effects, drift and sessions."""

    name: str
    order: Literal["fixed", "random", "reversed"] = doc(
        "presentation order of a query's items: as sampled, shuffled, or reversed; position "
        "bias acts on the item shown first", default="random")
    drift: float = doc(
        "drift of values across rounds: each round adds a random direction of this scale to "
        "every group's latent reward (3.2.1: preferences change)", default=0.0, ge=0.0)
    session: Annotated[int, Units(("labels",), "labels")] = doc(
        "labels per annotation session; fatigue resets between sessions (0: one session)",
        default=0, ge=0)


# ------------------------------------------------------------------------------ feedback f


class Pairwise(Choice):
    """`pairwise`: which of two items is better (Christiano et al. 2017)."""

    type: Literal["pairwise"] = "pairwise"
    ties: bool = doc("evaluators may answer 'equal' (see the `equal` behaviour)", default=True)
    skips: bool = doc("evaluators may skip a query (see the `skip` behaviour)", default=True)
    ITEMS: ClassVar[str] = "2"


class Ranking(Choice):
    """`ranking(k)`: a full order of k items (Plackett–Luce from perceived values)."""

    type: Literal["ranking"] = "ranking"
    k: int = doc("items per query", ge=2, le=64)
    positional: ClassVar[tuple[str, ...]] = ("k",)


class BestOf(Choice):
    """`best_of(k)`: the best of k items (Biyik et al. 2019)."""

    type: Literal["best_of"] = "best_of"
    k: int = doc("items per query", ge=2, le=64)
    positional: ClassVar[tuple[str, ...]] = ("k",)


class Scalar(Choice):
    """`scalar`: a number per item, with per-evaluator scale and offset miscalibration."""

    type: Literal["scalar"] = "scalar"
    low: float = doc("lowest reportable value (reports are clipped)", default=float("-inf"))
    high: float = doc("highest reportable value", default=float("inf"))


class Likert(Choice):
    """`likert(k)`: one of k ordered categories, with evaluator-specific thresholds."""

    type: Literal["likert"] = "likert"
    k: int = doc("categories", ge=2, le=11)
    positional: ClassVar[tuple[str, ...]] = ("k",)


class Label(Choice):
    """`label(good, bad, harmful)`: a category per item, from an offered choice set that may
    not match the evaluator's own (choice-set misspecification, 3.1.4)."""

    type: Literal["label"] = "label"
    choices: tuple[str, ...] = doc("the offered categories, from best to worst")
    variadic: ClassVar[str | None] = "choices"


class Correction(Choice):
    """`correction`: the evaluator returns an improved example, within its `skill`."""

    type: Literal["correction"] = "correction"


class Language(Choice):
    """`language`: a critique naming what mattered, with a structured form (aspects and signs,
    plus an overall verdict) that the reward fitter consumes."""

    type: Literal["language"] = "language"


FeedbackKind = Annotated[
    Union[Pairwise, Ranking, BestOf, Scalar, Likert, Label, Correction, Language],
    Field(discriminator="type"),
]

# Seconds of annotator time per label, by kind, when the spec gives no `cost`: assumptions of
# this project, stated so that budgets in time are explicit (3.1.3: cost vs quality).
DEFAULT_COST_SECONDS = {
    "pairwise": 5.0, "ranking": 3.0, "best_of": 2.5, "scalar": 6.0, "likert": 5.0, "label": 3.0,
    "correction": 45.0, "language": 30.0,
}


def items_per_query(kind: Choice) -> int:
    """How many items one query shows."""
    if kind.type == "pairwise":
        return 2
    if kind.type in ("ranking", "best_of"):
        return kind.k  # type: ignore[attr-defined]
    return 1


def cost_per_label(kind: Choice, cost: float | None) -> float:
    """Seconds per label: the spec's `cost`, or the kind's default (ranking and best-of scale
    with k)."""
    if cost is not None:
        return cost
    base = DEFAULT_COST_SECONDS[kind.type]
    if kind.type in ("ranking", "best_of"):
        return base * kind.k  # type: ignore[attr-defined]
    return base


class Feedback(SpecModel):
    """`feedback NAME { kind = ...  from = ...  budget = ... }` — f in Eq. 4."""

    name: str
    kind: FeedbackKind = doc("the feedback type")
    from_: Annotated[str, RefTo("population")] = doc("H_feedback: who labels", alias="from")
    sampler: Optional[Annotated[str, RefTo("sampler")]] = doc(
        "where the examples come from (default: the current policy, random queries)",
        default=None)
    view: Optional[Annotated[str, RefTo("view")]] = doc(
        "what the evaluators see (default: everything)", default=None)
    context: Optional[Annotated[str, RefTo("context")]] = doc(
        "order, drift and sessions (default: random order, no drift, one session)", default=None)
    budget: Annotated[Budget, Units(("labels", "seconds", "minutes", "hours"), "labels")] = doc(
        "how much feedback in total, over all rounds: labels, or annotator time")
    cost: Annotated[Optional[float], Units(("seconds", "minutes", "hours"), "seconds")] = doc(
        "annotator seconds per label (default: by kind, see DEFAULT_COST_SECONDS)",
        default=None, gt=0.0)
    redundancy: int = doc(
        "evaluators per query: >1 gives repeated labels for agreement and aggregation",
        default=1, ge=1, le=64)

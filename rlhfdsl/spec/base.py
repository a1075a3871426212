"""What every typed-spec model shares: the base classes, field markers, expressions, quantities.

The typed spec is what a checked `.rlhf` file *means*: every key resolved, every default filled
in, every name checked. It is the contract between the front end and the backends: a backend
reads these models and nothing else (never the syntax tree, never the text).

Field markers (in ``Annotated[...]`` metadata) tell the checker what a plain type cannot:

* :class:`RefTo` — the string names a declaration of that kind (`from = crowd`);
* :class:`Domain` — the key only makes sense in one task domain (`truncate` is text-only);
* :class:`Units` — the quantity units the key accepts (`budget = 2000 labels`).
"""


from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class SpecModel(BaseModel):
    """A block of the typed spec: frozen, no unknown keys, schema built on first use."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True,
                              populate_by_name=True)


class Choice(SpecModel):
    """One alternative of a named choice: `pairwise`, `likert(5)`, `ppo { kl = 0.05 }`.

    ``type`` is the name written in the spec. ``positional`` names the fields that positional
    arguments fill, in order (`likert(5)` sets ``k``); ``variadic`` names a list field that takes
    all positional arguments (`mix(policy, file("x.jsonl"))`).
    """

    positional: ClassVar[tuple[str, ...]] = ()
    variadic: ClassVar[str | None] = None


@dataclass(frozen=True)
class RefTo:
    """The field names a declaration of this kind (population, feedback, reward, ...)."""

    kind: str


@dataclass(frozen=True)
class Domain:
    """The field or choice belongs to one task domain (`bandit` or `text`)."""

    name: str


@dataclass(frozen=True)
class Units:
    """The units a quantity field accepts, and the unit a bare number means."""

    allowed: tuple[str, ...]
    default: str


@dataclass(frozen=True)
class IsExpr:
    """The field holds an expression (latent reward, scorer, trigger) of this result type."""

    result: Literal["number", "condition"]


def doc(description: str, **kwargs: Any) -> Any:
    """A pydantic Field whose description is the documentation of the key."""
    return Field(description=description, **kwargs)


# ---------------------------------------------------------------------------- expressions


class Expr(SpecModel):
    """An expression, kept as a tree and evaluated by the backend (vectorised, on the device).

    ``op`` is `num`, `str`, `bool`, `name`, `call`, `range`, `list`, a unary operator
    (`neg`, `not`) or a binary one (`+ - * / == != < <= > >= and or`). Calls keep their
    function name in ``value``; the vocabulary is :data:`rlhfdsl.spec.expressions.FUNCTIONS`.
    """

    op: str
    value: Union[float, int, str, bool, None] = None
    args: "tuple[Expr, ...]" = ()
    kwargs: "tuple[tuple[str, Expr], ...]" = ()



# ----------------------------------------------------------------------------- quantities


TIME_UNITS = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0}


class Budget(SpecModel):
    """How much feedback may be collected: a number of labels, or annotator time in seconds."""

    amount: float = doc("labels, or seconds of annotator time", gt=0)
    unit: Literal["labels", "seconds"] = "labels"


class Length(SpecModel):
    """A length of text: `12 tokens`, `80 chars`, `10 words`."""

    amount: int = doc("how many units", ge=0)
    unit: Literal["tokens", "chars", "words"] = "tokens"


class FileRef(Choice):
    """`file("data/prompts.txt")`: a path relative to the spec's directory."""

    type: Literal["file"] = "file"
    path: str = doc("path, relative to the directory of the spec that names it")
    positional: ClassVar[tuple[str, ...]] = ("path",)


class FeatureSet(Choice):
    """`features(0..11)` or `features(0, 3, 5..7)`: a set of bandit feature indices."""

    type: Literal["features"] = "features"
    indices: tuple[int, ...] = doc("feature indices, in increasing order")
    variadic: ClassVar[str | None] = "indices"

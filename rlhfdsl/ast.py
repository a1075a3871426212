"""The syntax tree of a `.rlhf` file, as frozen pydantic models carrying source spans.

Nodes are named after the grammar rules that produce them (``grammar/rlhf.lark``) and hold no
behaviour. They say what was *written*; what it *means* (which keys a block accepts, their types
and defaults) is the typed spec's business (:mod:`rlhfdsl.spec`), reached through the checker.

Only :mod:`rlhfdsl.parser` builds these nodes, with :func:`construct` (the parser already
guarantees their shape, and validating every node would more than double the cost of a parse).
"""

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


_DEFAULTS: dict[type, dict] = {}


def construct(cls: type[BaseModel], **fields):
    """Build a node without validation: ``model_construct`` without its per-call overhead.

    Only for callers that guarantee the field types (the parser). Defaults are filled in.
    """
    defaults = _DEFAULTS.get(cls)
    if defaults is None:
        defaults = _DEFAULTS[cls] = {
            name: info.default for name, info in cls.model_fields.items() if not info.is_required()
        }
    values = {**defaults, **fields}
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(fields))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


class Span(BaseModel):
    """Where a node is: 1-based line and column of its first character and one past its last."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    file: str
    line: int
    column: int
    end_line: int
    end_column: int
    start: int
    end: int

    def to(self, other: "Span") -> "Span":
        """The span from the start of ``self`` to the end of ``other``."""
        return construct(
            Span, file=self.file, line=self.line, column=self.column, end_line=other.end_line,
            end_column=other.end_column, start=self.start, end=other.end,
        )


class Node(BaseModel):
    # Validators are built on first use (for `rlhfc schema --of ast`), not at import: the parser
    # never validates, and building them would cost more than parsing a large spec.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
    span: Span


# ------------------------------------------------------------------------------------ values


class Number(Node):
    node: Literal["number"] = "number"
    value: Union[int, float]
    text: str = Field(description="the number as written, kept so that fmt does not reword it")


class String(Node):
    node: Literal["string"] = "string"
    value: str
    long: bool = Field(False, description='written as a """long string"""')


class Bool(Node):
    node: Literal["bool"] = "bool"
    value: bool


class Path(Node):
    """A name (`crowd`) or a dotted path (`pi.objective.kl`)."""

    node: Literal["path"] = "path"
    parts: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


class Range(Node):
    """An inclusive index range, `0..7`."""

    node: Literal["range"] = "range"
    start: int
    stop: int


class Quantity(Node):
    """A number with a unit: `12 tokens`, `2000 labels`, `4 seconds`."""

    node: Literal["quantity"] = "quantity"
    value: Number
    unit: str


class List(Node):
    node: Literal["list"] = "list"
    items: "tuple[Value, ...]"


class KeywordArgument(Node):
    node: Literal["keyword_argument"] = "keyword_argument"
    name: str
    name_span: Span
    value: "Value"


class Call(Node):
    """`feature(0..7)`, `likert(5)`, `label(choices = [good, bad])`."""

    node: Literal["call"] = "call"
    name: str
    name_span: Span
    args: "tuple[Value, ...]" = ()
    kwargs: tuple[KeywordArgument, ...] = ()


class Object(Node):
    """A named choice with parameters: `ppo { kl = 0.05  clip = 0.2 }`."""

    node: Literal["object"] = "object"
    name: str
    name_span: Span
    body: "Body"


class Unary(Node):
    node: Literal["unary"] = "unary"
    op: Literal["-", "not"]
    operand: "Value"


class Binary(Node):
    node: Literal["binary"] = "binary"
    op: Literal["+", "-", "*", "/", "==", "!=", "<", "<=", ">", ">=", "and", "or"]
    left: "Value"
    right: "Value"


Value = Annotated[
    Union[Number, String, Bool, Path, Range, Quantity, List, Call, Object, Unary, Binary],
    Field(discriminator="node"),
]

# ----------------------------------------------------------------------------------- entries


class Assign(Node):
    """`key = value`."""

    node: Literal["assign"] = "assign"
    key: str
    key_span: Span
    value: Value


class Block(Node):
    """`key { ... }`: a nested group of entries, such as `regularize { l2 = 1e-4 }`."""

    node: Literal["block"] = "block"
    key: str
    key_span: Span
    body: "Body"


class Flag(Node):
    """A bare name with optional arguments, in `evaluate`: `gold_reward`, `accuracy(pairs = 500)`."""

    node: Literal["flag"] = "flag"
    key: str
    key_span: Span
    args: tuple[Value, ...] = ()
    kwargs: tuple[KeywordArgument, ...] = ()
    has_arguments: bool = False


class Member(Node):
    """A population member with a weight: `group majority weight 0.7 { ... }`, `ai judge weight 0.1 { ... }`."""

    node: Literal["member"] = "member"
    kind: str
    kind_span: Span
    name: str
    name_span: Span
    weight: Number
    body: "Body"


class Share(Node):
    """A population share: `malicious 0.02 { trigger = ...  target = flip }`."""

    node: Literal["share"] = "share"
    kind: str
    kind_span: Span
    share: Number
    body: "Body"


Entry = Annotated[Union[Assign, Block, Flag, Member, Share], Field(discriminator="node")]


class Body(Node):
    node: Literal["body"] = "body"
    entries: tuple[Entry, ...] = ()


# ------------------------------------------------------------------------------ declarations


class Declaration(Node):
    """`population crowd extends base { ... }` and the other declaration keywords."""

    node: Literal["declaration"] = "declaration"
    keyword: str
    keyword_span: Span
    name: str | None = None
    name_span: Span | None = None
    extends: str | None = None
    extends_span: Span | None = None
    body: Body


class Sweep(Node):
    """`sweep pi.objective.kl in [0.0, 0.01, 0.05]`."""

    node: Literal["sweep"] = "sweep"
    path: Path
    values: List


class Override(Node):
    """`crowd.majority.weight = 0.6` inside an import's braces."""

    node: Literal["override"] = "override"
    path: Path
    value: Value


class Import(Node):
    """`import "common/populations.rlhf" { crowd.majority.weight = 0.6 }`."""

    node: Literal["import"] = "import"
    path: String
    overrides: tuple[Override, ...] = ()


Item = Annotated[Union[Declaration, Sweep, Import], Field(discriminator="node")]


class Comment(Node):
    node: Literal["comment"] = "comment"
    text: str


class Module(Node):
    """One parsed `.rlhf` file: its items in source order and its comments (kept for fmt)."""

    node: Literal["module"] = "module"
    file: str
    items: tuple[Item, ...] = ()
    comments: tuple[Comment, ...] = ()

"""What the checker passes share: the typed spec being checked and where its values came from."""

from __future__ import annotations

from dataclasses import dataclass, field

from rlhfdsl.check.convert import Reference, SpanIndex
from rlhfdsl.spec import Expr, Spec


@dataclass
class Context:
    spec: Spec
    spans: SpanIndex
    references: list[Reference] = field(default_factory=list)
    expressions: list[tuple[tuple[str, ...], Expr]] = field(default_factory=list)
    declared: dict[str, str] = field(default_factory=dict)  # declaration name → keyword
    main_file: str | None = None  # the spec named on the command line (not its imports)
    extended: set[str] = field(default_factory=set)  # declarations that others `extend`
    converter: object | None = None  # the Converter that made `spec` (reused by sweep branches)

    @property
    def domain(self) -> str | None:
        return self.spec.domain

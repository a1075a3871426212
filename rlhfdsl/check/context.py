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

    @property
    def domain(self) -> str:
        return self.spec.task.domain

"""Type rules, arithmetic and warnings (filled in by the rules work)."""

from __future__ import annotations

from rlhfdsl.check.context import Context
from rlhfdsl.errors import Diagnostic


def type_rules(ctx: Context) -> list[Diagnostic]:
    return []


def arithmetic(ctx: Context) -> list[Diagnostic]:
    return []


def warnings(ctx: Context) -> list[Diagnostic]:
    return []

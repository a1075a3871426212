"""Expressions in the checker: latent rewards (`values`), scorers, triggers, perceived lengths.

Each expression is checked against the vocabulary of :mod:`rlhfdsl.spec.expressions`: known
functions with their arity, argument kinds and task domain, and a result kind — a number, or a
condition for triggers — and turned into the :class:`~rlhfdsl.spec.base.Expr` tree the backend
evaluates.
"""

from __future__ import annotations

from typing import Any

from rlhfdsl import ast
from rlhfdsl.check.types import INVALID, _node_word
from rlhfdsl.errors import did_you_mean
from rlhfdsl.spec import base as sb
from rlhfdsl.spec.data import build
from rlhfdsl.spec.expressions import ARITHMETIC, COMPARISONS, FUNCTIONS, LOGICAL, NAMES

Path = tuple[str, ...]


class ExpressionChecks:
    """The expression half of :class:`~rlhfdsl.check.convert.Converter` (a mixin: it reports
    through the converter's ``error`` and records into its ``expressions``)."""

    def expression_field(self, node: Any, meta: list, path: Path) -> Any:
        want = next((m.result for m in meta if isinstance(m, sb.IsExpr)), "number")
        result = self.expression(node, path)
        if result is INVALID:
            return INVALID
        expr, kind = result
        if kind != want:
            return self.error("E0309", f"`{path[-1]}` must be a {want}", node.span,
                              label=f"this is a {kind}",
                              help="compare it with a threshold, e.g. `feature(3) > 0.5`"
                              if want == "condition" else
                              "use `if(condition, a, b)` to turn a condition into a number")
        self.expressions.append((path, expr))
        return expr

    def expression(self, node: Any, path: Path) -> Any:
        """(Expr, result kind) or INVALID; every problem found is reported."""
        E = sb.Expr
        if isinstance(node, ast.Number):
            return build(E, op="num", value=node.value), "number"
        if isinstance(node, ast.Bool):
            return build(E, op="bool", value=node.value), "condition"
        if isinstance(node, ast.String):
            return build(E, op="str", value=node.value), "string"
        if isinstance(node, ast.Range):
            return build(E, op="range", args=(build(E, op="num", value=node.start),
                                              build(E, op="num", value=node.stop))), "range"
        if isinstance(node, ast.List):
            items = [self.expression(i, path) for i in node.items]
            if any(i is INVALID for i in items):
                return INVALID
            return build(E, op="list", args=tuple(i[0] for i in items)), "list"
        if isinstance(node, ast.Path):
            name = node.dotted
            if name in NAMES:
                domain, _doc = NAMES[name]
                if not self.expression_domain(domain, name, node.span):
                    return INVALID
                return build(E, op="name", value=name), "number"
            if name in FUNCTIONS:
                return self.error("E0305", f"`{name}` needs arguments", node.span,
                                  label="a function", help=f"write `{_function_example(name)}`")
            return self.error("E0308", f"unknown name `{name}` in an expression", node.span,
                              label="not a value of the expression language",
                              help=did_you_mean(name, list(NAMES) + list(FUNCTIONS))
                              or "see the expression reference in the README")
        if isinstance(node, ast.Call):
            return self.call_expression(node, path)
        if isinstance(node, ast.Unary):
            inner = self.expression(node.operand, path)
            if inner is INVALID:
                return INVALID
            want = "condition" if node.op == "not" else "number"
            if inner[1] != want:
                return self.error("E0309", f"`{node.op}` takes a {want}", node.operand.span,
                                  label=f"this is a {inner[1]}")
            return build(E, op="not" if node.op == "not" else "neg", args=(inner[0],)), want
        if isinstance(node, ast.Binary):
            left = self.expression(node.left, path)
            right = self.expression(node.right, path)
            if left is INVALID or right is INVALID:
                return INVALID
            if node.op in LOGICAL:
                want, result = "condition", "condition"
            elif node.op in COMPARISONS:
                want, result = "number", "condition"
            else:
                assert node.op in ARITHMETIC
                want, result = "number", "number"
            for side, (_, kind) in ((node.left, left), (node.right, right)):
                if kind != want:
                    return self.error("E0309", f"`{node.op}` takes {want}s", side.span,
                                      label=f"this is a {kind}")
            return build(E, op=node.op, args=(left[0], right[0])), result
        return self.error("E0309", f"{_node_word(node)} cannot be part of an expression",
                          node.span, label="not an expression")

    def expression_domain(self, domain: str, name: str, span: ast.Span) -> bool:
        if domain != "any" and self.domain and domain != self.domain:
            self.error("E0503", f"`{name}` belongs to {domain} tasks", span,
                       label=f"this task is a {self.domain} task",
                       help="bandit values use `feature(i)`, `weights([...])` and `action`; text "
                            "values use scorers such as `sentiment` and `length(n)`")
            return False
        return True

    def call_expression(self, node: ast.Call, path: Path) -> Any:
        E = sb.Expr
        fn = FUNCTIONS.get(node.name)
        if fn is None:
            return self.error("E0308", f"unknown function `{node.name}`", node.name_span,
                              label="not a function of the expression language",
                              help=did_you_mean(node.name, FUNCTIONS)
                              or "see the expression reference in the README")
        if not self.expression_domain(fn.domain, node.name, node.name_span):
            return INVALID
        if node.kwargs:
            return self.error("E0305", f"`{node.name}` takes no keyword arguments",
                              node.kwargs[0].span, label="unexpected",
                              help=f"write `{_function_example(node.name)}`")
        low, high = len(fn.args) - fn.optional, len(fn.args)
        if not low <= len(node.args) <= high:
            return self.error("E0305", f"`{node.name}` takes {_arity(low, high)}", node.span,
                              label=f"given {len(node.args)}",
                              help=f"write `{_function_example(node.name)}`")
        args = []
        for arg, want in zip(node.args, fn.args):
            if want == "range" and isinstance(arg, ast.Number) and isinstance(arg.value, int) \
                    and arg.value >= 0:
                args.append(build(E, op="range", args=(build(E, op="num", value=arg.value),
                                                       build(E, op="num", value=arg.value))))
                continue
            if want == "range" and isinstance(arg, ast.Range) and arg.stop < arg.start:
                return self.error("E0401", "empty range", arg.span,
                                  label="the end is before the start")
            result = self.expression(arg, path)
            if result is INVALID:
                return INVALID
            expr, kind = result
            if want == "list" and kind == "list":
                if not all(a.op == "num" for a in expr.args):
                    return self.error("E0309", f"`{node.name}` takes a list of numbers", arg.span,
                                      label="not all numbers")
            elif want != "any" and kind != want:
                return self.error("E0309", f"`{node.name}` takes a {want} here", arg.span,
                                  label=f"this is a {kind}",
                                  help=f"write `{_function_example(node.name)}`")
            args.append(expr)
        return build(E, op="call", value=node.name, args=tuple(args)), fn.result


def _count(n: int) -> str:
    return {0: "no", 1: "one", 2: "two", 3: "three"}.get(n, str(n))


def _arity(low: int, high: int) -> str:
    if low == high:
        return f"{_count(low)} argument" + ("" if low == 1 else "s")
    return f"{_count(low)} to {_count(high)} arguments"


def _function_example(name: str) -> str:
    return {"feature": "feature(0..7)", "weights": "weights([1.0, -0.5])",
            "table": "table([1, 10])", "length": "length(20)", "keyword": 'keyword("please")',
            "count": 'count("!")', "regex": 'regex("[0-9]+")',
            "similarity": 'similarity("a reference")', "plugin": 'plugin("pkg.mod:fn")',
            "bernoulli": "bernoulli(0.4)", "normal": "normal(0, 1)", "uniform": "uniform(0, 1)",
            "if": "if(action == 1, 10, 1)", "abs": "abs(x)", "min": "min(a, b)",
            "max": "max(a, b)", "clip": "clip(x, 0, 1)", "exp": "exp(x)", "log": "log(x)",
            }.get(name, f"{name}(...)")

"""The canonical format of `.rlhf` files: what `rlhfc fmt` writes.

    formatted = format_source(text, "spec.rlhf")        # CompileError if it does not parse
    original, formatted = format_file("spec.rlhf")
    print(diff(original, formatted, "spec.rlhf"))      # `rlhfc fmt --diff`

Like `terraform fmt`, the formatter refuses input that does not parse, prints the syntax tree
(:mod:`rlhfdsl.ast`) back canonically, and keeps every comment. The canonical style:

- Two spaces of indentation; one entry on a line; `key = value` with single spaces; a body
  opens with ` {` on the line of its head and closes with `}` on a line of its own, and an empty
  body is `{}`. An object value keeps its kind: `ppo {}` stays an object, a bare `ppo` a name.
- Top-level items are separated by exactly one blank line. Inside a body, one blank line is kept
  where the author left one or more between two entries (or before a comment); never right after
  `{` or right before `}`. Lists and argument lists never hold blank lines.
- Binary operators have one space on either side, `-` and `not` are written `-x` and `not x`.
  Parentheses appear only where precedence needs them: the tree does not record those written,
  so `(a * b) + c` becomes `a * b + c` and `a - (b - c)` keeps its parentheses. (The tree does
  tell `-(3)`, an operation, from `-3`, a number, and so does the output.)
- Lists are `[a, b, c]` and calls `f(a, b, k = v)` (keyword arguments with spaces around `=`,
  positional arguments first, as the tree keeps them) on one line when the line fits in 100
  columns; otherwise, or when an item spans lines or a comment sits inside, one item on a line
  with a trailing comma.
- Numbers are written exactly as in the source (:attr:`rlhfdsl.ast.Number.text`); ranges as
  `0..7`; quantities as `12 tokens`. Strings are re-escaped canonically (`\\\\`, `\\"`, `\\n`,
  `\\t`, `\\r`); long strings `\"\"\"...\"\"\"` are kept verbatim, content untouched.
- `import "x"` is written without braces when it overrides nothing.
- Comments are kept. A comment after code stays at the end of the line that holds the token
  before it, two spaces after the code (when two such comments meet on one line, the earlier ones
  move above it). A comment on a line of its own stays on a line of its own, above the line that
  holds the token that follows it, indented like that line (one level deeper before a closing
  bracket), or at the end of the file. So the header comment of a file stays at the top, and a
  blank line after it is kept.
- The output ends with exactly one newline (an empty file stays empty).

Formatting is idempotent, and the output parses to the same tree as the input apart from spans
(:func:`strip_spans` compares them).

One case needs parentheses that precedence does not: a value that ends with a number, followed by
an entry whose key is a unit word (`x = 2 * (5)` then `tokens = 3`): without them the lexer would
read `5 tokens` as a quantity.

Parentheses follow the parser's precedence table (:data:`rlhfdsl.parser.PRECEDENCE`), so the
output never nests deeper than the input (the parser refuses nesting past 64).
"""

from __future__ import annotations

import difflib
import os
import re
from bisect import bisect_left, bisect_right

from pydantic import BaseModel

from rlhfdsl import ast
from rlhfdsl.errors import CompileError, Diagnostic
from rlhfdsl.parser import NOT_PRECEDENCE, PRECEDENCE, parse

WIDTH = 100
INDENT = 2

# The words of the UNIT terminal in grammar/rlhf.lark (a test keeps the two in step).
UNITS = frozenset({"tokens", "chars", "words", "labels", "seconds", "minutes", "hours"})

_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?\Z")
_WHITESPACE = " \t\f\r\n"
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"})

# Binding strength: the parser's table, where every binary operator is left-associative and
# comparisons chain (`a < b < c` is `(a < b) < c`); `not` sits between `and` and the comparisons;
# unary minus and atoms bind tighter than any binary operator.
_LEVEL = PRECEDENCE
_NOT = NOT_PRECEDENCE
_NEGATION = max(PRECEDENCE.values()) + 1
_ATOM = _NEGATION + 1

# Where a line may be preceded by a blank line.
_NEVER = "never"    # inside lists and arguments, and before a closing bracket
_FIRST = "first"    # first line of a file or body: no blank before it (a comment above may keep one)
_KEEP = "keep"      # between entries: one blank line where the author left one
_ALWAYS = "always"  # between top-level items


# ------------------------------------------------------------------------------- public verbs


def format_source(text: str, file: str = "<input>") -> str:
    """The canonical form of ``text``. Raises :class:`CompileError` when it does not parse."""
    text = text.removeprefix("\ufeff")
    module = parse(text, file)
    try:
        return format_module(module, text)
    except RecursionError:
        raise CompileError([Diagnostic(
            "E0105", "nesting too deep", span=None, label="",
            help="flatten the expression; fmt cannot print it")]) from None


def format_file(path: str) -> tuple[str, str]:
    """(the file's text, its canonical form). Raises :class:`CompileError` when the file cannot be
    read or does not parse."""
    from rlhfdsl.resolve import read_source

    text, problem = read_source(path)
    if problem is not None:
        raise CompileError([problem])
    return text, format_source(text, path)


def diff(original: str, formatted: str, path: str) -> str:
    """A unified diff from ``original`` to ``formatted`` (empty when they are equal). A relative
    path gets git's `a/` and `b/` prefixes, so that `git apply` takes the diff; an absolute path
    is named as it is."""
    if original == formatted:
        return ""
    old, new = (path, path) if os.path.isabs(path) else (f"a/{path}", f"b/{path}")
    lines = difflib.unified_diff(_diff_lines(original), _diff_lines(formatted),
                                 fromfile=old, tofile=new)
    return "".join(lines)


def _diff_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
        return [line + "\n" for line in lines]
    return [line + "\n" for line in lines[:-1]] + [lines[-1] + "\n\\ No newline at end of file\n"]


def format_module(module: ast.Module, source: str) -> str:
    """Print ``module``, parsed from ``source`` (needed for comments, blank lines and long
    strings), in the canonical style."""
    printer = _Printer(module, source)
    return _render(printer.module(), module.comments, source)


def strip_spans(node) -> tuple:
    """``node`` without its spans (and a module without its comments), for comparing the tree
    of the input with the tree of the output.

    The result is flat: a tuple of the tree's nodes, field names and leaves in pre-order, with
    markers where a node or a tuple begins and ends. Long operator chains make deep trees, and
    neither a recursive walk nor the comparison of nested tuples would survive them.
    """
    out: list = []
    stack: list = [node]
    end = object()
    while stack:
        current = stack.pop()
        if current is end:
            out.append(")")
        elif isinstance(current, BaseModel):
            out.append(("(", type(current).__name__))
            stack.append(end)
            for name in reversed(_fields(current)):
                stack.append(getattr(current, name))
                stack.append(_Label(name))
        elif isinstance(current, (tuple, list)):
            out.append(("(", "tuple"))
            stack.append(end)
            stack.extend(reversed(current))
        elif isinstance(current, _Label):
            out.append(("field", current.name))
        else:
            out.append((type(current).__name__, current))
    return tuple(out)


class _Label:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def _fields(node: BaseModel) -> list[str]:
    return [n for n in type(node).model_fields
            if not n.endswith("span") and not (isinstance(node, ast.Module) and n == "comments")]


# ------------------------------------------------------------------------------------ lines


class _Line:
    """One output line: its indentation and its parts, each (text, source offset of the token
    or None). The offsets place the comments."""

    __slots__ = ("indent", "parts", "blank", "closing")

    def __init__(self, indent: int, parts: list, blank: str = _NEVER, closing: bool = False):
        self.indent = indent
        self.parts = parts
        self.blank = blank
        self.closing = closing

    def text(self) -> str:
        return " " * self.indent + "".join(text for text, _ in self.parts)

    def first_offset(self) -> int | None:
        return next((offset for _, offset in self.parts if offset is not None), None)


def _join(a: list[_Line], b: list[_Line]) -> list[_Line]:
    """``b`` continued on the last line of ``a``."""
    a[-1].parts.extend(b[0].parts)
    a.extend(b[1:])
    return a


def _single(text: str, offset: int | None, indent: int) -> list[_Line]:
    return [_Line(indent, [(text, offset)])]


def _end_column(frag: list[_Line], column: int) -> int:
    width = sum(len(text) for text, _ in frag[-1].parts)
    return column + width if len(frag) == 1 else frag[-1].indent + width


def _parenthesize(frag: list[_Line]) -> list[_Line]:
    frag[0].parts.insert(0, ("(", None))
    frag[-1].parts.append((")", None))
    return frag


def _level(v) -> int:
    if isinstance(v, ast.Binary):
        return _LEVEL[v.op]
    if isinstance(v, ast.Unary):
        return _NOT if v.op == "not" else _NEGATION
    if isinstance(v, ast.Number) and v.text.startswith("-"):
        return _NEGATION
    return _ATOM


def _operand_minimum(op: str, side: str) -> int:
    """The weakest binding an operand may have without parentheses (operators associate to the
    left)."""
    level = _LEVEL[op]
    return level if side == "left" else level + 1


def _unary_minimum(op: str) -> int:
    return _NOT if op == "not" else _NEGATION


def _unary_needs_parentheses(v: ast.Unary) -> bool:
    # `-(3)` is an operation on a number, `-3` a negative number: the tree tells them apart.
    if v.op == "-" and isinstance(v.operand, ast.Number) and not v.operand.text.startswith("-"):
        return True
    return _level(v.operand) < _unary_minimum(v.op)


def _escape(value: str) -> str:
    return '"' + value.translate(_ESCAPES) + '"'


def _first_word(entry) -> str:
    if isinstance(entry, (ast.Member, ast.Share)):
        return entry.kind
    if isinstance(entry, ast.Override):
        return entry.path.parts[0]
    return entry.key


def _ends_with_number(frag: list[_Line]) -> bool:
    parts = frag[-1].parts
    return bool(parts) and bool(_NUMBER.match(parts[-1][0]))


# ---------------------------------------------------------------------------------- printer


class _Printer:
    def __init__(self, module: ast.Module, source: str) -> None:
        self.items = module.items
        self.source = source
        self.comment_starts = sorted(c.span.start for c in module.comments)
        self.flat_cache: dict[int, str | None] = {}

    def has_comment(self, start: int, end: int) -> bool:
        """Whether a comment starts strictly between the offsets ``start`` and ``end``."""
        i = bisect_right(self.comment_starts, start)
        return i < len(self.comment_starts) and self.comment_starts[i] < end

    # --- items

    def module(self) -> list[_Line]:
        lines: list[_Line] = []
        for i, item in enumerate(self.items):
            frag = self.item(item)
            frag[0].blank = _ALWAYS if i else _FIRST
            lines.extend(frag)
        return lines

    def item(self, item) -> list[_Line]:
        if isinstance(item, ast.Declaration):
            head = [(item.keyword, item.keyword_span.start)]
            if item.name is not None:
                head += [(" ", None), (item.name, item.name_span.start)]
            if item.extends is not None:
                head += [(" extends ", None), (item.extends, item.extends_span.start)]
            return self.body(head, item.body, 0)
        if isinstance(item, ast.Sweep):
            head = [("sweep", item.span.start), (" ", None),
                    (item.path.dotted, item.path.span.start), (" in ", None)]
            column = sum(len(text) for text, _ in head)
            return _join([_Line(0, head)], self.value(item.values, 0, column))
        # ast.Import
        head = [("import", item.span.start), (" ", None),
                (self.string(item.path), item.path.span.start)]
        braces = item.span.end > item.path.span.end
        if not item.overrides and not (braces and self.has_comment(item.path.span.end, item.span.end)):
            return [_Line(0, head)]
        lines = [_Line(0, head + [(" {", item.path.span.end)])]
        lines.extend(self.entries(item.overrides, INDENT))
        lines.append(_Line(0, [("}", item.span.end - 1)], closing=True))
        return lines

    # --- bodies and entries

    def body(self, head: list, body: ast.Body, indent: int) -> list[_Line]:
        if not body.entries and not self.has_comment(body.span.start, body.span.end):
            return [_Line(indent, head + [(" {}", body.span.start)])]
        lines = [_Line(indent, head + [(" {", body.span.start)])]
        lines.extend(self.entries(body.entries, indent + INDENT))
        lines.append(_Line(indent, [("}", body.span.end - 1)], closing=True))
        return lines

    def entries(self, entries, indent: int) -> list[_Line]:
        lines: list[_Line] = []
        for i, entry in enumerate(entries):
            frag = self.entry(entry, indent)
            if (i + 1 < len(entries) and _first_word(entries[i + 1]) in UNITS
                    and _ends_with_number(frag)):
                # `5` then `tokens = 1` would lex as the quantity `5 tokens`: write `(5)`.
                text, offset = frag[-1].parts[-1]
                frag[-1].parts[-1] = (f"({text})", offset)
            frag[0].indent = indent
            frag[0].blank = _KEEP if i else _FIRST
            lines.extend(frag)
        return lines

    def entry(self, entry, indent: int) -> list[_Line]:
        if isinstance(entry, (ast.Assign, ast.Override)):
            if isinstance(entry, ast.Assign):
                head = [(entry.key, entry.key_span.start), (" = ", None)]
            else:
                head = [(entry.path.dotted, entry.path.span.start), (" = ", None)]
            column = indent + sum(len(text) for text, _ in head)
            return _join([_Line(indent, head)], self.value(entry.value, indent, column))
        if isinstance(entry, ast.Block):
            return self.body([(entry.key, entry.key_span.start)], entry.body, indent)
        if isinstance(entry, ast.Flag):
            if not entry.has_arguments:
                return _single(entry.key, entry.key_span.start, indent)
            return self.sequence(entry.key + "(", entry.args + entry.kwargs, ")", entry.span,
                                 indent, indent, 0)
        if isinstance(entry, ast.Member):
            head = [(entry.kind, entry.kind_span.start), (" ", None),
                    (entry.name, entry.name_span.start), (" weight ", None),
                    (entry.weight.text, entry.weight.span.start)]
            return self.body(head, entry.body, indent)
        # ast.Share
        head = [(entry.kind, entry.kind_span.start), (" ", None),
                (entry.share.text, entry.share.span.start)]
        return self.body(head, entry.body, indent)

    # --- values

    def value(self, v, indent: int, column: int, reserve: int = 0) -> list[_Line]:
        """``v`` printed from ``column`` of a line indented by ``indent``, with ``reserve``
        columns kept free after it."""
        if isinstance(v, ast.Binary):
            return self.binary(v, indent, column, reserve)
        if isinstance(v, ast.Unary):
            return self.unary(v, indent, column, reserve)
        if isinstance(v, ast.List):
            return self.sequence("[", v.items, "]", v.span, indent, column, reserve)
        if isinstance(v, ast.Call):
            return self.sequence(v.name + "(", v.args + v.kwargs, ")", v.span, indent, column,
                                 reserve)
        if isinstance(v, ast.Object):
            return self.body([(v.name, v.name_span.start)], v.body, indent)
        if isinstance(v, ast.KeywordArgument):
            head = [(v.name, v.name_span.start), (" = ", None)]
            value = self.value(v.value, indent, column + len(v.name) + 3, reserve)
            return _join([_Line(indent, head)], value)
        return _single(self.atom(v), v.span.start, indent)

    def atom(self, v) -> str:
        if isinstance(v, ast.Number):
            return v.text
        if isinstance(v, ast.String):
            return self.string(v)
        if isinstance(v, ast.Bool):
            return "true" if v.value else "false"
        if isinstance(v, ast.Path):
            return v.dotted
        if isinstance(v, ast.Range):
            return f"{v.start}..{v.stop}"
        if isinstance(v, ast.Quantity):
            return f"{v.value.text} {v.unit}"
        raise TypeError(f"not a value: {type(v).__name__}")

    def string(self, v: ast.String) -> str:
        if not v.long:
            return _escape(v.value)
        return self.source[v.span.start:v.span.end]  # long strings as written

    def binary(self, v: ast.Binary, indent: int, column: int, reserve: int) -> list[_Line]:
        # The left spine iteratively: `a + b + c + ...` nests to the left as deep as it is long.
        spine = [v]
        while (isinstance(spine[-1].left, ast.Binary)
               and _level(spine[-1].left) >= _operand_minimum(spine[-1].op, "left")):
            spine.append(spine[-1].left)
        leftmost = spine[-1].left
        needs = _level(leftmost) < _operand_minimum(spine[-1].op, "left")
        frag = self.value(leftmost, indent, column + needs)
        if needs:
            _parenthesize(frag)
        at = _end_column(frag, column)
        for node in reversed(spine):
            frag = _join(frag, [_Line(indent, [(f" {node.op} ", None)])])
            right_needs = _level(node.right) < _operand_minimum(node.op, "right")
            at += len(node.op) + 2 + right_needs
            right = self.value(node.right, indent, at, reserve + right_needs)
            at = _end_column(right, at) + right_needs
            frag = _join(frag, _parenthesize(right) if right_needs else right)
        return frag

    def unary(self, v: ast.Unary, indent: int, column: int, reserve: int) -> list[_Line]:
        prefix = []
        while (isinstance(v, ast.Unary) and isinstance(v.operand, ast.Unary)
               and not _unary_needs_parentheses(v)):
            prefix.append(("-" if v.op == "-" else "not ", v.span.start))
            v = v.operand
        prefix.append(("-" if v.op == "-" else "not ", v.span.start))
        needs = _unary_needs_parentheses(v)
        at = column + sum(len(text) for text, _ in prefix) + needs
        operand = self.value(v.operand, indent, at, reserve + needs)
        return _join([_Line(indent, prefix)], _parenthesize(operand) if needs else operand)

    def sequence(self, opener: str, items, closer: str, span: ast.Span, indent: int, column: int,
                 reserve: int) -> list[_Line]:
        """A list or an argument list: on one line when it fits, else one item on a line."""
        flat = self.flat_sequence(opener, items, closer, span)
        if flat is not None and column + len(flat) + reserve <= WIDTH:
            return _single(flat, span.start, indent)
        lines = [_Line(indent, [(opener, span.start)])]
        inner = indent + INDENT
        for item in items:
            frag = self.value(item, inner, inner, reserve=1)
            frag[0].indent = inner
            frag[-1].parts.append((",", None))
            lines.extend(frag)
        lines.append(_Line(indent, [(closer, span.end - 1)], closing=True))
        return lines

    # --- one-line forms

    def flat_sequence(self, opener: str, items, closer: str, span: ast.Span) -> str | None:
        if self.has_comment(span.start, span.end):
            return None
        texts = [self.flat(item) for item in items]
        if any(t is None for t in texts):
            return None
        return opener + ", ".join(texts) + closer

    def flat(self, v) -> str | None:
        """``v`` on one line, or None when it cannot be (it holds a body with entries, a comment,
        or a string over several lines). Memoised: a list asks for its items once."""
        key = id(v)
        if key not in self.flat_cache:
            self.flat_cache[key] = self._flat(v)
        return self.flat_cache[key]

    def _flat(self, v) -> str | None:
        if isinstance(v, ast.List):
            return self.flat_sequence("[", v.items, "]", v.span)
        if isinstance(v, ast.Call):
            return self.flat_sequence(v.name + "(", v.args + v.kwargs, ")", v.span)
        if isinstance(v, ast.Object):
            if v.body.entries or self.has_comment(v.body.span.start, v.body.span.end):
                return None
            return v.name + " {}"
        if isinstance(v, ast.KeywordArgument):
            inner = self.flat(v.value)
            return None if inner is None else f"{v.name} = {inner}"
        if isinstance(v, ast.Binary):
            spine = [v]
            while (isinstance(spine[-1].left, ast.Binary)
                   and _level(spine[-1].left) >= _operand_minimum(spine[-1].op, "left")):
                spine.append(spine[-1].left)
            leftmost = spine[-1].left
            text = self.flat(leftmost)
            if text is None:
                return None
            if _level(leftmost) < _operand_minimum(spine[-1].op, "left"):
                text = f"({text})"
            for node in reversed(spine):
                right = self.flat(node.right)
                if right is None:
                    return None
                if _level(node.right) < _operand_minimum(node.op, "right"):
                    right = f"({right})"
                text = f"{text} {node.op} {right}"
            return text
        if isinstance(v, ast.Unary):
            prefix = ""
            while (isinstance(v, ast.Unary) and isinstance(v.operand, ast.Unary)
                   and not _unary_needs_parentheses(v)):
                prefix += "-" if v.op == "-" else "not "
                v = v.operand
            prefix += "-" if v.op == "-" else "not "
            operand = self.flat(v.operand)
            if operand is None:
                return None
            if _unary_needs_parentheses(v):
                operand = f"({operand})"
            return prefix + operand
        text = self.atom(v)
        return None if "\n" in text else text


# -------------------------------------------------------------------------------- comments


def _render(lines: list[_Line], comments, source: str) -> str:
    """The lines as text, with every comment put back (see the module docstring)."""
    anchors = sorted((offset, index) for index, line in enumerate(lines)
                     for _, offset in line.parts if offset is not None)
    offsets = [offset for offset, _ in anchors]
    before: dict[int, list] = {}
    after: dict[int, list] = {}
    at_end: list = []
    for comment in comments:
        start = comment.span.start
        line_start = source.rfind("\n", 0, start) + 1
        trailing = source[line_start:start].strip(_WHITESPACE) != ""
        if trailing:
            i = bisect_left(offsets, start) - 1
            if i >= 0:
                after.setdefault(anchors[i][1], []).append(comment)
                continue
        i = bisect_right(offsets, start)
        if i < len(offsets):
            before.setdefault(anchors[i][1], []).append(comment)
        else:
            at_end.append(comment)
    for index, found in after.items():
        if len(found) > 1:
            # Two comments cannot both end one line: all but the last move above it.
            before.setdefault(index, []).extend(found[:-1])
            before[index].sort(key=lambda c: c.span.start)
            after[index] = found[-1:]

    def blank_before(offset: int) -> bool:
        i = offset
        while i > 0 and source[i - 1] in _WHITESPACE:
            i -= 1
        return source.count("\n", i, offset) >= 2

    out: list[str] = []

    def emit(text: str, blank: bool) -> None:
        if blank and out and out[-1] != "":
            out.append("")
        out.append(text)

    def emit_comments(group, indent: int, blank_first: bool) -> None:
        for j, comment in enumerate(group):
            blank = blank_first if j == 0 else blank_before(comment.span.start)
            emit(" " * indent + comment.text, blank)

    for index, line in enumerate(lines):
        first = line.first_offset()
        own_blank = first is not None and blank_before(first)
        group = before.get(index)
        if group:
            indent = line.indent + (INDENT if line.closing else 0)
            head = group[0].span.start
            if line.blank == _ALWAYS:
                blank_first = True
            elif line.blank == _KEEP or line.closing:
                moved = first is not None and first < head and own_blank
                blank_first = blank_before(head) or moved
            else:
                blank_first = False
            emit_comments(group, indent, blank_first)
            follows = first is not None and group[-1].span.start < first
            blank = line.blank != _NEVER and not line.closing and follows and own_blank
        else:
            blank = line.blank == _ALWAYS or (line.blank == _KEEP and own_blank)
        text = line.text()
        trailing = after.get(index)
        if trailing:
            text += "  " + trailing[0].text
        emit(text, blank)
    if at_end:
        emit_comments(at_end, 0, blank_before(at_end[0].span.start))
    return "\n".join(out) + "\n" if out else ""

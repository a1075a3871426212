"""Text → :class:`rlhfdsl.ast.Module`, or syntax diagnostics.

The grammar lives in ``grammar/rlhf.lark`` (shipped as the package data ``rlhfdsl.grammar``).
The LALR tables are built once and cached on disk by lark, so a `rlhfc check` does not pay for
building them. The syntax tree is built while parsing (lark's tree-less mode, with a transformer
handed to the parser), so no intermediate parse tree is made; spans come from the tokens, which
is why every bracket and keyword is kept (``keep_all_tokens``).

This is the one place that turns lark's output into the AST.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from rlhfdsl import ast
from rlhfdsl.ast import construct
from rlhfdsl.errors import CompileError, Diagnostic, Label

MAX_NESTING = 64
MAX_EXPRESSION_DEPTH = 100  # operators nested inside one another, in one value
MAX_NUMBER_DIGITS = 300

DECLARATION_KEYWORDS = (
    "experiment", "task", "model", "population", "sampler", "view", "context", "feedback",
    "reward", "policy", "schedule", "evaluate", "disclose", "sweep", "import",
)


def grammar_text() -> str:
    return resources.files("rlhfdsl.grammar").joinpath("rlhf.lark").read_text(encoding="utf-8")


class _Comments:
    """Collects comment tokens while the lexer runs (the lexer ignores them otherwise)."""

    def __init__(self) -> None:
        self.tokens: list[Token] = []

    def __call__(self, token: Token) -> Token:
        self.tokens.append(token)
        return token


_COMMENTS = _Comments()


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        start=["start", "value"],
        keep_all_tokens=True,
        maybe_placeholders=False,
        transformer=_Builder(),
        lexer_callbacks={"COMMENT": _COMMENTS},
        cache=True,
    )


# --------------------------------------------------------------------------------- spans


class _Source:
    """The file being parsed; set for the duration of one parse (the builder is shared)."""

    file = "<input>"
    grouped: set[int] = set()  # ids of parenthesised nodes: operands, never split apart
    depth: dict[int, int] = {}  # id(expression node) → how deeply its operators nest


def _span(first, last=None) -> ast.Span:
    """The span from the start of ``first`` to the end of ``last`` (tokens or nodes)."""
    last = first if last is None else last
    if isinstance(first, Token):
        start = (first.line, first.column, first.start_pos)
    else:
        s = first.span
        start = (s.line, s.column, s.start)
    if isinstance(last, Token):
        end = (last.end_line, last.end_column, last.end_pos)
    else:
        s = last.span
        end = (s.end_line, s.end_column, s.end)
    return construct(ast.Span, 
        file=_Source.file, line=start[0], column=start[1], end_line=end[0], end_column=end[1],
        start=start[2], end=end[2],
    )


def _token_span(token: Token) -> ast.Span:
    return _span(token)


# ------------------------------------------------------------------------------- builder


class _NumberTooLarge(Exception):
    def __init__(self, token: Token):
        self.token = token


class _TooDeep(Exception):
    def __init__(self, span: ast.Span):
        self.span = span


def _deeper(node, *children) -> None:
    """Record an expression node's depth; refuse past :data:`MAX_EXPRESSION_DEPTH`, so that no
    later phase (checker, lowering, hashing, backends) can run out of stack on an absurdly long
    operator chain."""
    depth = 1 + max((_Source.depth.get(id(c), 0) for c in children), default=0)
    if depth > MAX_EXPRESSION_DEPTH:
        raise _TooDeep(node.span)
    _Source.depth[id(node)] = depth


def _number(token: Token, negative: bool = False) -> ast.Number:
    text = str(token)
    if len(text) > MAX_NUMBER_DIGITS:
        raise _NumberTooLarge(token)
    if text.isdigit():
        value: int | float = int(text)
    else:
        value = float(text)
        if value == float("inf"):
            raise _NumberTooLarge(token)
    if negative:
        value = -value
        text = "-" + text
    return construct(ast.Number, span=_span(token), value=value, text=text)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
_ESCAPE_RE = re.compile(r"\\(.)", re.S)


def _unescape(body: str) -> str:
    return _ESCAPE_RE.sub(lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), body)


def _is_token(x, kind: str | None = None) -> bool:
    return isinstance(x, Token) and (kind is None or x.type == kind)


class _Builder(Transformer):
    """Lark callbacks, one per rule, each returning an AST node (children arrive built)."""

    # --- file level

    def start(self, c):
        return c

    def import_decl(self, c):
        path = c[1]
        overrides: tuple = ()
        last = path
        if len(c) > 2:
            overrides, last = c[2]
        string = construct(ast.String, span=_span(path), value=_unescape(path[1:-1]), long=False)
        return construct(ast.Import, span=_span(c[0], last), path=string, overrides=overrides)

    def override_body(self, c):
        return tuple(c[1:-1]), c[-1]

    def override(self, c):
        return construct(ast.Override, span=_span(c[0], c[2]), path=c[0], value=c[2])

    def _declaration(self, c):
        keyword = c[0]
        name = name_span = extends = extends_span = None
        for x in c[1:-1]:
            if _is_token(x, "NAME"):
                name, name_span = str(x), _span(x)
            elif isinstance(x, tuple):
                extends, extends_span = x[1], x[2]
        body = c[-1]
        return construct(ast.Declaration, 
            span=_span(keyword, body), keyword=str(keyword), keyword_span=_span(keyword),
            name=name, name_span=name_span, extends=extends, extends_span=extends_span, body=body,
        )

    experiment = task = model = population = sampler = view = context = _declaration
    feedback = reward = policy = schedule = evaluate = disclose = _declaration

    def extends(self, c):
        return ("extends", str(c[1]), _span(c[1]))

    def sweep(self, c):
        return construct(ast.Sweep, span=_span(c[0], c[3]), path=c[1], values=c[3])

    # --- bodies

    def body(self, c):
        return construct(ast.Body, span=_span(c[0], c[-1]), entries=tuple(c[1:-1]))

    population_body = inner_body = evaluate_body = body

    def assign(self, c):
        return construct(ast.Assign, span=_span(c[0], c[2]), key=str(c[0]),
                                          key_span=_span(c[0]), value=c[2])

    def block(self, c):
        return construct(ast.Block, span=_span(c[0], c[1]), key=str(c[0]),
                                         key_span=_span(c[0]), body=c[1])

    def flag(self, c):
        if len(c) == 1:
            return construct(ast.Flag, span=_span(c[0]), key=str(c[0]), key_span=_span(c[0]))
        args, kwargs, close = c[1]
        return construct(ast.Flag, span=_span(c[0], close), key=str(c[0]),
                                        key_span=_span(c[0]), args=args, kwargs=kwargs,
                                        has_arguments=True)

    def member(self, c):
        kind, name, _weight_kw, weight, body = c
        return construct(ast.Member, 
            span=_span(kind, body), kind=str(kind), kind_span=_span(kind), name=str(name),
            name_span=_span(name), weight=weight, body=body,
        )

    def share(self, c):
        kind, share, body = c
        return construct(ast.Share, span=_span(kind, body), kind=str(kind),
                                         kind_span=_span(kind), share=share, body=body)

    # --- values

    def object(self, c):
        return construct(ast.Object, span=_span(c[0], c[1]), name=str(c[0]),
                                          name_span=_span(c[0]), body=c[1])

    def expr(self, c):
        """A flat run `operand (binop operand)*`: apply :data:`PRECEDENCE`."""
        stream: list = []
        for x in c:
            if isinstance(x, str) and not isinstance(x, Token):
                stream.append(("op", x))
            else:
                _flatten_not(x, stream)
        node, rest = _climb(stream, 0)
        assert not rest
        return node

    def binop(self, c):
        return str(c[0])

    def not_(self, c):
        node = construct(ast.Unary, span=_span(c[0], c[1]), op="not", operand=c[1])
        _deeper(node, c[1])
        return node

    def neg(self, c):
        operand = c[1]
        if isinstance(operand, ast.Number) and not operand.text.startswith("-") \
                and id(operand) not in _Source.grouped:
            # `-3` is a negative number, not an operation: fmt keeps it as written.
            return construct(ast.Number, span=_span(c[0], operand), value=-operand.value,
                             text="-" + operand.text)
        node = construct(ast.Unary, span=_span(c[0], operand), op="-", operand=operand)
        _deeper(node, operand)
        return node

    def atom(self, c):  # "(" expr ")": an operand as a whole, whatever its operators
        _Source.grouped.add(id(c[1]))
        return c[1]

    def signed_free_number(self, c):
        return _number(c[0])

    def signed_number(self, c):
        if len(c) == 2:
            n = _number(c[1], negative=True)
            return construct(ast.Number, span=_span(c[0], c[1]), value=n.value, text=n.text)
        return _number(c[0])

    def true(self, c):
        return construct(ast.Bool, span=_span(c[0]), value=True)

    def false(self, c):
        return construct(ast.Bool, span=_span(c[0]), value=False)

    def quantity(self, c):
        return construct(ast.Quantity, span=_span(c[0], c[1]), value=_number(c[0]),
                                            unit=str(c[1]))

    def range(self, c):
        for t in (c[0], c[2]):
            if len(t) > MAX_NUMBER_DIGITS or not str(t).isdigit():
                raise _NumberTooLarge(t) if len(t) > MAX_NUMBER_DIGITS else _BadRange(t)
        return construct(ast.Range, span=_span(c[0], c[2]), start=int(c[0]), stop=int(c[2]))

    def call(self, c):
        args, kwargs, close = c[1]
        node = construct(ast.Call, span=_span(c[0], close), name=str(c[0]),
                         name_span=_span(c[0]), args=args, kwargs=kwargs)
        _deeper(node, *args, *(k.value for k in kwargs))
        return node

    def arguments(self, c):
        inner = [x for x in c[1:-1] if not _is_token(x, "COMMA")]
        args = tuple(x for x in inner if not isinstance(x, ast.KeywordArgument))
        kwargs = tuple(x for x in inner if isinstance(x, ast.KeywordArgument))
        return args, kwargs, c[-1]

    def keyword_argument(self, c):
        return construct(ast.KeywordArgument, span=_span(c[0], c[2]), name=str(c[0]),
                                                   name_span=_span(c[0]), value=c[2])

    def list(self, c):
        items = tuple(x for x in c[1:-1] if not _is_token(x, "COMMA"))
        node = construct(ast.List, span=_span(c[0], c[-1]), items=items)
        _deeper(node, *items)
        return node

    def path(self, c):
        parts = tuple(str(x) for x in c if _is_token(x, "NAME"))
        return construct(ast.Path, span=_span(c[0], c[-1]), parts=parts)

    def string(self, c):
        token = c[0]
        text = str(token)
        long = token.type == "LONG_STRING"
        body = text[3:-3] if long else text[1:-1]
        return construct(ast.String, span=_span(token), value=_unescape(body), long=long)


# Binary operators, loosest first. `not` is a prefix operator between `and` and the comparisons
# (`not a < b` is `not (a < b)`); unary minus binds tightest.
PRECEDENCE = {"or": 1, "and": 2, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4,
              "+": 5, "-": 5, "*": 6, "/": 6}
NOT_PRECEDENCE = 3


def _flatten_not(node, stream: list) -> None:
    """`not X` operands become a prefix marker and X, so precedence can act across them."""
    while isinstance(node, ast.Unary) and node.op == "not" and id(node) not in _Source.grouped:
        stream.append(("not", node))
        node = node.operand
    stream.append(("operand", node))


def _climb(stream: list, min_prec: int):
    """Precedence climbing over a flat stream; returns (node, remaining stream)."""
    kind, item = stream[0]
    stream = stream[1:]
    if kind == "not":
        operand, stream = _climb(stream, NOT_PRECEDENCE + 1)
        left = construct(ast.Unary, span=item.span.to(operand.span), op="not", operand=operand)
        _deeper(left, operand)
    else:
        left = item
    while stream and stream[0][0] == "op" and PRECEDENCE[stream[0][1]] >= min_prec:
        op = stream[0][1]
        right, stream = _climb(stream[1:], PRECEDENCE[op] + 1)
        node = construct(ast.Binary, span=_span(left, right), op=op, left=left, right=right)
        _deeper(node, left, right)
        left = node
    return left, stream


class _BadRange(Exception):
    def __init__(self, token: Token):
        self.token = token


# ------------------------------------------------------------------------------- parsing


_BRACKETS = re.compile(r'"""(?:[^\\]|\\.)*?"""|"(?:[^"\\\n]|\\.)*"|#[^\n]*|[{}\[\]()]', re.S)
_OPENERS = {"{": "}", "[": "]", "(": ")"}


def _nesting_diagnostic(text: str, file: str) -> Diagnostic | None:
    """Refuse absurd nesting before the parser and later recursive passes see it."""
    depth = 0
    for m in _BRACKETS.finditer(text):
        ch = m.group()
        if ch in _OPENERS:
            depth += 1
            if depth > MAX_NESTING:
                return Diagnostic("E0105", "nesting too deep", span=_offset_span(text, file, m.start(), m.end()),
                                  label=f"more than {MAX_NESTING} levels of brackets",
                                  help="flatten the structure; no declaration needs this depth")
        elif ch in "}])":
            depth = max(0, depth - 1)
    return None


def _offset_span(text: str, file: str, start: int, end: int) -> ast.Span:
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    end_line = text.count("\n", 0, end) + 1
    end_column = end - (text.rfind("\n", 0, end) + 1) + 1
    return construct(ast.Span, file=file, line=line, column=column, end_line=end_line,
                                    end_column=end_column, start=start, end=end)


def parse(text: str, file: str = "<input>") -> ast.Module:
    """Parse one file. Raises :class:`CompileError` with every syntax error it can find."""
    diagnostic = _nesting_diagnostic(text, file)
    if diagnostic is not None:
        raise CompileError([diagnostic])
    items, comments, error = _parse_once(text, file, "start")
    if error is None:
        span = construct(ast.Span, file=file, line=1, column=1, end_line=text.count("\n") + 1,
                                        end_column=1, start=0, end=len(text))
        return construct(ast.Module, span=span, file=file, items=tuple(items),
                                          comments=tuple(comments))
    raise CompileError(_recover(text, file, error))


def parse_value(text: str, file: str = "<--set>") -> ast.Value:
    """Parse one value, as written after `=` in a spec (used by `--set`)."""
    if _nesting_diagnostic(text, file) is not None:
        raise CompileError([_nesting_diagnostic(text, file)])
    value, _comments, error = _parse_once(text, file, "value")
    if error is not None:
        raise CompileError([error])
    return value


def _parse_once(text: str, file: str, start: str):
    parser = _parser()
    _Source.file = file
    _Source.grouped = set()
    _Source.depth = {}
    _COMMENTS.tokens = []
    try:
        result = parser.parse(text, start=start)
    except UnexpectedInput as exc:
        return None, [], _syntax_diagnostic(exc, text, file)
    except _NumberTooLarge as exc:
        return None, [], Diagnostic("E0106", "number out of range", span=_token_span(exc.token),
                                    label="too large to represent",
                                    help="write `inf` where an unbounded value is meant")
    except _BadRange as exc:
        return None, [], Diagnostic("E0101", "range bounds must be whole numbers",
                                    span=_token_span(exc.token), label="not a whole number",
                                    help="ranges index features: `feature(0..7)`")
    except _TooDeep as exc:
        return None, [], Diagnostic("E0105", "expression nested too deep", span=exc.span,
                                    label=f"more than {MAX_EXPRESSION_DEPTH} operators deep",
                                    help="split the expression; no latent reward needs this depth")
    except RecursionError:
        return None, [], Diagnostic("E0105", "nesting too deep", span=None,
                                    help="flatten the expression")
    comments = [construct(ast.Comment, span=_span(t), text=str(t).rstrip())
                for t in _COMMENTS.tokens]
    return result, comments, None


_SYNC = re.compile(r"^(?:%s)\b" % "|".join(DECLARATION_KEYWORDS), re.M)


def _recover(text: str, file: str, first: Diagnostic) -> list[Diagnostic]:
    """After a syntax error, find the others: parse each top-level declaration on its own.

    A declaration starts at a line beginning with a declaration keyword; each such chunk is
    parsed alone (the text before it blanked out, so positions stay right). Every failing chunk
    contributes its first error, so one mistake does not hide the next, and a mistake does not
    cascade into the declarations after it.
    """
    starts = [m.start() for m in _SYNC.finditer(text)]
    if len(starts) < 2 or len(starts) > 400:
        return [first]
    starts.append(len(text))
    found: list[Diagnostic] = []
    for i, (a, b) in enumerate(zip(starts, starts[1:])):
        blanked = re.sub(r"[^\n]", " ", text[:a]) + text[a:b]
        _, _, error = _parse_once(blanked, file, "start")
        if error is None:
            continue
        if error.code == "E0103" and b < len(text):
            # The chunk ended before its brackets closed: the next declaration begins inside it.
            nxt = _offset_span(text, file, b, b + len(text[b:].split(None, 1)[0]))
            error = Diagnostic("E0103", "unclosed bracket before the next declaration",
                               span=error.related[0].span if error.related else error.span,
                               label="this bracket is never closed",
                               related=(Label(nxt, "the next declaration starts here"),),
                               help="add the missing closing bracket")
        found.append(error)
    if not found:
        return [first]
    return found


# ------------------------------------------------------------------- syntax diagnostics

_TERMINAL_WORDS = {
    "NAME": "a name", "NUMBER": "a number", "STRING": "a string", "LONG_STRING": "a string",
    "UNIT": "a unit", "COMPARE": "a comparison", "EQUAL": "`=`", "LBRACE": "`{`",
    "RBRACE": "`}`", "LSQB": "`[`", "RSQB": "`]`", "LPAR": "`(`", "RPAR": "`)`", "COMMA": "`,`",
    "DOT": "`.`", "DOTDOT": "`..`", "PLUS": "`+`", "MINUS": "`-`", "STAR": "`*`", "SLASH": "`/`",
    "$END": "the end of the file",
}


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    text = str(token)
    if len(text) > 24:
        text = text[:21] + "..."
    return f"`{text}`"


def _expected_words(expected: set[str]) -> str:
    keywords = {e for e in expected if e.lower() in DECLARATION_KEYWORDS}
    words = []
    if {"NUMBER", "NAME", "STRING"} <= expected:
        words.append("a value")
        expected = expected - {"NUMBER", "NAME", "STRING", "LONG_STRING", "LSQB", "LPAR", "MINUS",
                               "NOT", "TRUE", "FALSE"}
    elif {"PLUS", "STAR", "COMPARE"} <= expected:
        words.append("an operator")
        expected = expected - {"PLUS", "MINUS", "STAR", "SLASH", "COMPARE", "AND", "OR"}
    if len(keywords) >= 5:
        words.append("a declaration (`task`, `population`, `feedback`, `reward`, `policy`, ...)")
        expected = expected - keywords
    for e in sorted(expected):
        if e in _TERMINAL_WORDS:
            words.append(_TERMINAL_WORDS[e])
        elif e.isupper() and not e.startswith("__"):
            words.append(f"`{e.lower()}`")
    words = sorted(set(words), key=words.index)
    if not words:
        return "something else"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


_UNIT_BEFORE = re.compile(r"\d\s+(tokens|chars|words|labels|seconds|minutes|hours)\s*$")


def _after_unit(text: str, token: Token) -> bool:
    return bool(_UNIT_BEFORE.search(text[max(0, token.start_pos - 40):token.start_pos]))


def _open_bracket(text: str, upto: int) -> int | None:
    """Offset of the innermost bracket still open at ``upto``."""
    stack: list[int] = []
    for m in _BRACKETS.finditer(text, 0, upto):
        ch = m.group()
        if ch in _OPENERS:
            stack.append(m.start())
        elif ch in "}])" and stack:
            stack.pop()
    return stack[-1] if stack else None


def _syntax_diagnostic(exc: UnexpectedInput, text: str, file: str) -> Diagnostic:
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream
        ch = text[pos] if pos < len(text) else ""
        span = _offset_span(text, file, pos, pos + 1)
        if ch == '"':
            if text.startswith('"""', pos):
                return Diagnostic("E0104", "unterminated long string", span=_offset_span(text, file, pos, pos + 3),
                                  label='this `"""` is never closed', help='end the string with `"""`')
            end = text.find("\n", pos)
            end = len(text) if end < 0 else end
            return Diagnostic("E0104", "unterminated string", span=_offset_span(text, file, pos, end),
                              label="this string does not end on its line",
                              help='close it with `"`, or use `"""` for text over several lines')
        if ch == ":":
            return Diagnostic("E0102", "unexpected character `:`", span=span,
                              label="keys take their value with `=`", help="write `key = value`")
        if ch == ".":
            return Diagnostic("E0102", "unexpected character `.`", span=span,
                              label="a decimal needs digits on both sides of the point",
                              help="write `0.5`, not `.5` or `5.`")
        shown = repr(ch)[1:-1] if ch and (not ch.isprintable() or ch.isspace()) else ch
        return Diagnostic("E0102", f"unexpected character `{shown}`", span=span,
                          label="no token of the language starts with this",
                          help="names are letters, digits and `_`; strings are in double quotes; comments start with `#`")
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        token = exc.token
        span = _token_span(token)
        expected = set(exc.expected or ())
        label = "expected " + _expected_words(expected)
        help = None
        if "EQUAL" in expected and token.type in {"NUMBER", "STRING", "LSQB"}:
            help = "write `key = value`"
        elif token.type == "RBRACE" and expected & {"NUMBER", "NAME", "STRING"} and "RBRACE" not in expected:
            help = "a value is missing after `=`"
        elif token.type == "RBRACE" and "RBRACE" not in expected:
            help = "this `}` closes nothing: remove it, or check the brackets above"
        elif token.type == "EQUAL" and exc.state is not None and _after_unit(text, token):
            help = ("the key before `=` was read as the unit of the number before it; "
                    "rename the key, or put the entry elsewhere in the block")
        elif token.type == "UNIT":
            help = f"`{token}` is a unit and can only follow a number; use another key name"
        elif str(token) in DECLARATION_KEYWORDS and "RBRACE" in expected:
            help = f"`{token}` starts a declaration: is a `}}` missing above?"
        return Diagnostic("E0101", f"unexpected {_describe_token(token)}", span=span, label=label,
                          help=help)
    # End of input inside a construct.
    pos = len(text)
    opened = _open_bracket(text, pos)
    end_span = _offset_span(text, file, max(0, pos - 1), pos) if text else _offset_span(text, file, 0, 0)
    if opened is not None:
        closer = _OPENERS[text[opened]]
        open_span = _offset_span(text, file, opened, opened + 1)
        return Diagnostic("E0103", "unexpected end of file", span=end_span,
                          label=f"expected `{closer}`",
                          related=(Label(open_span, f"this `{text[opened]}` is never closed"),),
                          help=f"add `{closer}` to close it")
    expected = set(getattr(exc, "expected", ()) or ())
    return Diagnostic("E0103", "unexpected end of file", span=end_span,
                      label="expected " + _expected_words(expected))

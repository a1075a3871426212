"""Diagnostics as people read them (rustc style) and as machines read them (JSON).

    error[E0201]: unknown population `helpfulnes`
      --> specs/dpo.rlhf:14:28
       |
    14 |     feedback prefs { from = helpfulnes }
       |                             ^^^^^^^^^^ not declared in this spec
       |
       = help: did you mean `helpfulness`?
"""

from __future__ import annotations

import json
import os
import sys
from typing import Iterable, TextIO

from rlhfdsl.errors import Diagnostic

_COLOURS = {"error": "\033[1;31m", "warning": "\033[1;33m", "blue": "\033[1;34m",
            "bold": "\033[1m", "reset": "\033[0m"}


def use_colour(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


class Renderer:
    def __init__(self, sources: dict[str, str], colour: bool = False) -> None:
        self.sources = sources
        self.colour = colour
        self._lines: dict[str, list[str]] = {}

    def paint(self, text: str, style: str) -> str:
        if not self.colour:
            return text
        return f"{_COLOURS[style]}{text}{_COLOURS['reset']}"

    def line(self, file: str, number: int) -> str | None:
        if file not in self._lines:
            text = self.sources.get(file)
            if text is None:
                return None
            self._lines[file] = text.split("\n")
        lines = self._lines[file]
        if 1 <= number <= len(lines):
            return lines[number - 1].rstrip("\r")
        return None

    def render(self, d: Diagnostic) -> str:
        head = self.paint(f"{d.severity}[{d.code}]", d.severity) + self.paint(f": {d.message}", "bold")
        out = [head]
        spans = []
        if d.span is not None:
            spans.append((d.span, d.label, "^", d.severity))
        spans.extend((r.span, r.text, "-", "blue") for r in d.related)
        width = max((len(str(s.line)) for s, *_ in spans), default=1)
        gutter = " " * width
        bar = self.paint("|", "blue")
        if d.span is not None:
            out.append(f"{gutter}{self.paint('-->', 'blue')} {d.span.file}:{d.span.line}:{d.span.column}")
        shown_file = d.span.file if d.span is not None else None
        for span, label, mark, style in spans:
            text = self.line(span.file, span.line)
            if span.file != shown_file:
                out.append(f"{gutter}{self.paint('::>', 'blue')} {span.file}:{span.line}:{span.column}")
                shown_file = span.file
            if text is None:
                if label:
                    out.append(f"{gutter} {bar} {label}")
                continue
            expanded, column = _expand_tabs(text, span.column)
            if span.end_line == span.line:
                end_column = _expand_tabs(text, span.end_column)[1]
            else:
                end_column = len(expanded) + 1
            length = max(1, end_column - column)
            out.append(f"{gutter} {bar}")
            out.append(self.paint(f"{span.line:>{width}} |", "blue") + f" {expanded}")
            underline = " " * (column - 1) + self.paint(mark * length + (f" {label}" if label else ""), style)
            out.append(f"{gutter} {bar} {underline}")
        if spans:
            out.append(f"{gutter} {bar}")
        for note in d.notes:
            out.append(f"{gutter} {self.paint('=', 'blue')} note: {note}")
        if d.help:
            out.append(f"{gutter} {self.paint('=', 'blue')} help: {d.help}")
        return "\n".join(out)

    def render_all(self, diagnostics: Iterable[Diagnostic]) -> str:
        return "\n\n".join(self.render(d) for d in diagnostics)


def _expand_tabs(text: str, column: int) -> tuple[str, int]:
    """The line with tabs as 4 spaces, and the 1-based column moved accordingly."""
    before = text[: max(0, column - 1)]
    shift = before.count("\t") * 3
    return text.replace("\t", "    "), column + shift


def summary(path: str, diagnostics: list[Diagnostic], library: bool = False) -> str:
    errors = sum(d.is_error for d in diagnostics)
    warnings = len(diagnostics) - errors
    parts = []
    if errors:
        parts.append(f"{errors} error" + ("s" if errors != 1 else ""))
    if warnings:
        parts.append(f"{warnings} warning" + ("s" if warnings != 1 else ""))
    if errors:
        return f"error: `{path}` has {' and '.join(parts)}"
    what = " (a library of declarations: no task)" if library else ""
    if warnings:
        return f"`{path}` checks with {' and '.join(parts)}{what}"
    return f"`{path}` checks clean{what}"


def to_json(path: str, diagnostics: list[Diagnostic]) -> str:
    return json.dumps({
        "file": path,
        "ok": not any(d.is_error for d in diagnostics),
        "errors": sum(d.is_error for d in diagnostics),
        "warnings": sum(not d.is_error for d in diagnostics),
        "diagnostics": [d.to_json() for d in diagnostics],
    }, indent=2)


def print_diagnostics(path: str, sources: dict[str, str], diagnostics: list[Diagnostic],
                      stream: TextIO | None = None, quiet: bool = False,
                      library: bool = False) -> None:
    stream = stream or sys.stderr
    renderer = Renderer(sources, colour=use_colour(stream))
    if diagnostics:
        stream.write(renderer.render_all(diagnostics) + "\n\n")
    if not quiet or diagnostics:
        stream.write(summary(path, diagnostics, library) + "\n")

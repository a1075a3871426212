"""Files → one list of declarations: imports, `extends`, import overrides and `--set`.

All of this happens on the syntax tree, before any meaning is given to keys, so that an
overridden or inherited entry is checked exactly like one written in place, and its diagnostics
point at the text that wrote it.

    import "common/populations.rlhf" { crowd.majority.weight = 0.6 }
    population raters extends crowd { group agreeable weight 0.4 { ... } }
    rlhfc check spec.rlhf --set pi.objective.kl=0.1

An override path starts with a declaration name (or a singleton keyword: `experiment`,
`task`, `schedule`, `evaluate`, `disclose`), then goes through keys, population members and the
parameters of objects (`pi.objective.kl` sets `kl` inside `objective = ppo { ... }`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from rlhfdsl import ast
from rlhfdsl.ast import construct
from rlhfdsl.errors import CompileError, Diagnostic, Label, did_you_mean, one_of
from rlhfdsl.parser import parse, parse_value

SINGLETON_KEYWORDS = ("experiment", "task", "schedule", "evaluate", "disclose")
MAX_FILE_BYTES = 16 * 1024 * 1024


@dataclass
class Loaded:
    """A spec and everything it imports, with extends and overrides applied."""

    path: str
    sources: dict[str, str] = field(default_factory=dict)
    modules: list[ast.Module] = field(default_factory=list)
    declarations: list[ast.Declaration] = field(default_factory=list)
    sweeps: list[ast.Sweep] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    extended: set[str] = field(default_factory=set)  # names other declarations `extend`

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


def read_source(path: str) -> tuple[str | None, Diagnostic | None]:
    """The text of a spec file, or a diagnostic saying why it cannot be read."""
    try:
        if os.path.isdir(path):
            return None, Diagnostic("E0001", f"`{path}` is a directory, not a spec file",
                                    help="name a `.rlhf` file")
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            return None, Diagnostic("E0001", f"`{path}` is too large to be a spec "
                                    f"({size // 1024 // 1024} MiB)",
                                    help="a spec is a small text file; is this the right path?")
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None, Diagnostic("E0001", f"cannot find `{path}`", help="check the path")
    except OSError as exc:
        return None, Diagnostic("E0001", f"cannot read `{path}`: {exc.strerror or exc}")
    if b"\x00" in data:
        return None, Diagnostic("E0002", f"`{path}` is a binary file, not a spec",
                                help="a `.rlhf` spec is UTF-8 text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        return None, Diagnostic("E0002", f"`{path}` is not UTF-8 text (a bad byte on line {line})",
                                help="save the file as UTF-8")
    return text.removeprefix("\ufeff"), None


def load(path: str, sets: tuple[str, ...] = (), *, text: str | None = None,
         allow_outside_imports: bool = False) -> Loaded:
    """Read, parse and resolve a spec. Never raises for a user error: see ``.diagnostics``."""
    loaded = Loaded(path=path)
    root = os.path.dirname(os.path.abspath(path))
    own: list[ast.Declaration] = []
    imported: list[ast.Declaration] = []
    module = _parse_file(loaded, path, text)
    if module is None:
        return loaded
    for item in module.items:
        if isinstance(item, ast.Import):
            imported.extend(_import(loaded, path, item, root, allow_outside_imports, (os.path.abspath(path),)))
        elif isinstance(item, ast.Declaration):
            own.append(item)
        else:
            loaded.sweeps.append(item)
    if not loaded.ok:
        return loaded
    declarations = imported + own
    _check_duplicates(loaded, declarations)
    if not loaded.ok:
        return loaded
    declarations = _apply_extends(loaded, declarations)
    if not loaded.ok:
        return loaded
    for index, assignment in enumerate(sets):
        declarations = _apply_set(loaded, declarations, assignment, index)
    loaded.declarations = declarations
    return loaded


def _parse_file(loaded: Loaded, path: str, text: str | None) -> ast.Module | None:
    if text is None:
        text, problem = read_source(path)
        if problem is not None:
            loaded.diagnostics.append(problem)
            return None
    loaded.sources[path] = text
    try:
        module = parse(text, path)
    except CompileError as exc:
        loaded.diagnostics.extend(exc.diagnostics)
        return None
    loaded.modules.append(module)
    return module


def _import(loaded: Loaded, importer: str, item: ast.Import, root: str, allow_outside: bool,
            chain: tuple[str, ...]) -> list[ast.Declaration]:
    target = os.path.normpath(os.path.join(os.path.dirname(importer), item.path.value))
    absolute = os.path.abspath(target)
    if not allow_outside and os.path.commonpath([root, absolute]) != root:
        loaded.diagnostics.append(Diagnostic(
            "E0702", f"`{item.path.value}` is outside the spec's directory", span=item.path.span,
            label="imports stay inside the spec's directory tree",
            help="move the file under the spec's directory, or pass `--allow-outside-imports`"))
        return []
    if absolute in chain:
        cycle = " --> ".join(os.path.basename(c) for c in chain + (absolute,))
        loaded.diagnostics.append(Diagnostic(
            "E0703", f"import cycle: {cycle}", span=item.path.span, label="imported again here",
            help="move the shared declarations into a file that both import"))
        return []
    if not os.path.isfile(absolute):
        loaded.diagnostics.append(Diagnostic(
            "E0701", f"cannot find the imported file `{item.path.value}`", span=item.path.span,
            label=f"no file at `{target}`",
            help="import paths are relative to the importing file's directory"))
        return []
    module = _parse_file(loaded, target, None)
    if module is None:
        return []
    found: list[ast.Declaration] = []
    for sub in module.items:
        if isinstance(sub, ast.Import):
            found.extend(_import(loaded, target, sub, root, allow_outside, chain + (absolute,)))
        elif isinstance(sub, ast.Declaration):
            found.append(sub)
    for override in item.overrides:
        found = _override(loaded, found, override.path, override.value)
    return found


def _check_duplicates(loaded: Loaded, declarations: list[ast.Declaration]) -> None:
    names: dict[str, ast.Declaration] = {}
    singletons: dict[str, ast.Declaration] = {}
    for decl in declarations:
        if decl.keyword in SINGLETON_KEYWORDS:
            if decl.keyword in singletons:
                loaded.diagnostics.append(Diagnostic(
                    "E0207", f"`{decl.keyword}` is declared twice", span=decl.keyword_span,
                    label="second declaration", related=(Label(singletons[decl.keyword].keyword_span,
                                                               "first declaration"),),
                    help=f"a spec has one `{decl.keyword}`; merge the two"))
            singletons[decl.keyword] = decl
        if decl.name is None:
            continue
        if decl.keyword not in SINGLETON_KEYWORDS and decl.name in SINGLETON_KEYWORDS:
            loaded.diagnostics.append(Diagnostic(
                "E0202", f"`{decl.name}` cannot name a {decl.keyword}", span=decl.name_span,
                label="a reserved word", help="choose another name"))
        if decl.name in names:
            first = names[decl.name]
            loaded.diagnostics.append(Diagnostic(
                "E0202", f"`{decl.name}` is declared twice", span=decl.name_span,
                label=f"second declaration ({decl.keyword})",
                related=(Label(first.name_span, f"first declaration ({first.keyword})"),),
                help="rename one, or derive one from the other with `extends`"))
        else:
            names[decl.name] = decl


# ----------------------------------------------------------------------------- extends


def _apply_extends(loaded: Loaded, declarations: list[ast.Declaration]) -> list[ast.Declaration]:
    by_name = {d.name: d for d in declarations if d.name}
    resolved: dict[str, ast.Declaration] = {}
    reported_cycles: set[frozenset[str]] = set()

    def resolve(decl: ast.Declaration, chain: tuple[str, ...]) -> ast.Declaration | None:
        if decl.extends is None:
            return decl
        if decl.name in resolved:
            return resolved[decl.name]
        base = by_name.get(decl.extends)
        loaded.extended.add(decl.extends)
        if base is None:
            loaded.diagnostics.append(Diagnostic(
                "E0201", f"unknown {decl.keyword} `{decl.extends}`", span=decl.extends_span,
                label="not declared in this spec or its imports",
                help=did_you_mean(decl.extends, [d.name for d in declarations
                                                 if d.keyword == decl.keyword and d.name]) or None))
            return None
        if base.keyword != decl.keyword:
            loaded.diagnostics.append(Diagnostic(
                "E0203", f"{decl.keyword} `{decl.name}` cannot extend {base.keyword} `{base.name}`",
                span=decl.extends_span, label=f"a {base.keyword}",
                help=f"extend a {decl.keyword} declaration"))
            return None
        if decl.extends in chain:
            cycle = " --> ".join(chain + (decl.extends,))
            members = frozenset(chain)
            if members in reported_cycles:
                return None
            reported_cycles.add(members)
            loaded.diagnostics.append(Diagnostic(
                "E0204", f"found a cycle: {cycle}", span=decl.extends_span,
                label="extends itself through this", help="break the chain of `extends`"))
            return None
        base = resolve(base, chain + (decl.extends,))
        if base is None:
            return None
        merged = construct(ast.Declaration, **{**decl.__dict__, "extends": None, "extends_span": None,
                                               "body": _merge_bodies(base.body, decl.body)})
        resolved[decl.name] = merged
        return merged

    out = []
    for decl in declarations:
        result = resolve(decl, (decl.name,)) if decl.name else decl
        if result is not None:
            out.append(result)
    return out


def _entry_key(entry) -> tuple[str, str]:
    if isinstance(entry, ast.Member):
        return ("member", entry.name)
    if isinstance(entry, ast.Share):
        return ("share", entry.kind)
    return ("key", entry.key)


def _merge_bodies(base: ast.Body, own: ast.Body) -> ast.Body:
    """The base's entries, each replaced by the derived body's entry of the same key or member
    name; the derived body's new entries follow."""
    replacements = {_entry_key(e): e for e in own.entries}
    entries = []
    used = set()
    for entry in base.entries:
        key = _entry_key(entry)
        if key in replacements:
            entries.append(replacements[key])
            used.add(key)
        else:
            entries.append(entry)
    entries.extend(e for e in own.entries if _entry_key(e) not in used)
    return construct(ast.Body, span=own.span, entries=tuple(entries))


# --------------------------------------------------------------------------- overrides


def _apply_set(loaded: Loaded, declarations: list[ast.Declaration], assignment: str,
               index: int) -> list[ast.Declaration]:
    key, sep, value_text = assignment.partition("=")
    key = key.strip()
    file = f"<--set #{index + 1}>"
    if not sep or not key or not all(part.isidentifier() for part in key.split(".")):
        loaded.diagnostics.append(Diagnostic(
            "E0802", f"`--set {assignment}` is not `path=value`",
            help="write `--set pi.objective.kl=0.1`"))
        return declarations
    loaded.sources[file] = f"{key}={value_text}"
    try:
        # Blank out `key=` so that the value's columns are those of the whole assignment.
        value = parse_value(" " * (len(key) + 1) + value_text, file)
    except CompileError as exc:
        loaded.diagnostics.extend(Diagnostic(
            "E0802", f"cannot read the value of `--set {key}`: {d.message}", span=d.span,
            label=d.label, help=d.help) for d in exc.diagnostics)
        return declarations
    span = construct(ast.Span, file=file, line=1, column=1, end_line=1,
                     end_column=len(key) + 1, start=0, end=len(key))
    path = construct(ast.Path, span=span, parts=tuple(key.split(".")))
    return _override(loaded, declarations, path, value)


def _override(loaded: Loaded, declarations: list[ast.Declaration], path: ast.Path,
              value: ast.Value) -> list[ast.Declaration]:
    """Set ``path`` to ``value`` in the declarations (adding the key when it is absent)."""
    head, rest = path.parts[0], path.parts[1:]
    index = next((i for i, d in enumerate(declarations)
                  if d.name == head or (d.keyword == head and d.keyword in SINGLETON_KEYWORDS)),
                 None)
    if index is None:
        names = [d.name for d in declarations if d.name] + [
            d.keyword for d in declarations if d.keyword in SINGLETON_KEYWORDS]
        loaded.diagnostics.append(_path_error(path, 0, names))
        return declarations
    if not rest:
        loaded.diagnostics.append(Diagnostic(
            "E0704", f"`{path.dotted}` names a whole declaration", span=path.span,
            label="a declaration, not a key", help=f"name a key inside it: `{head}.KEY`"))
        return declarations
    decl = declarations[index]
    body = _set_in_body(loaded, decl.body, path, 1, value)
    if body is None:
        return declarations
    updated = list(declarations)
    updated[index] = construct(ast.Declaration, **{**decl.__dict__, "body": body})
    return updated


def _set_in_body(loaded: Loaded, body: ast.Body, path: ast.Path, at: int,
                 value: ast.Value) -> ast.Body | None:
    name = path.parts[at]
    last = at == len(path.parts) - 1
    entries = list(body.entries)
    for i, entry in enumerate(entries):
        if isinstance(entry, ast.Member) and entry.name == name:
            if last:
                loaded.diagnostics.append(Diagnostic(
                    "E0704", f"`{path.dotted}` names a whole {entry.kind}", span=path.span,
                    label="not a key", help=f"name a key inside it, such as `{path.dotted}.weight`"))
                return None
            if path.parts[at + 1] == "weight" and at + 2 == len(path.parts):
                weight = _as_number(loaded, value, path)
                if weight is None:
                    return None
                entries[i] = construct(ast.Member, **{**entry.__dict__, "weight": weight})
            else:
                sub = _set_in_body(loaded, entry.body, path, at + 1, value)
                if sub is None:
                    return None
                entries[i] = construct(ast.Member, **{**entry.__dict__, "body": sub})
            return construct(ast.Body, span=body.span, entries=tuple(entries))
        if isinstance(entry, ast.Share) and entry.kind == name:
            if not last and path.parts[at + 1] == "share" and at + 2 == len(path.parts):
                share = _as_number(loaded, value, path)
                if share is None:
                    return None
                entries[i] = construct(ast.Share, **{**entry.__dict__, "share": share})
            elif last:
                loaded.diagnostics.append(Diagnostic(
                    "E0704", f"`{path.dotted}` names the whole share", span=path.span,
                    label="not a key", help=f"name a key inside it, such as `{path.dotted}.share`"))
                return None
            else:
                sub = _set_in_body(loaded, entry.body, path, at + 1, value)
                if sub is None:
                    return None
                entries[i] = construct(ast.Share, **{**entry.__dict__, "body": sub})
            return construct(ast.Body, span=body.span, entries=tuple(entries))
        if isinstance(entry, (ast.Assign, ast.Block, ast.Flag)) and entry.key == name:
            if last:
                if isinstance(entry, ast.Flag):
                    loaded.diagnostics.append(Diagnostic(
                        "E0704", f"`{path.dotted}` is a metric, not a key", span=path.span,
                        label="cannot be set"))
                    return None
                entries[i] = construct(ast.Assign, span=entry.span, key=name,
                                       key_span=entry.key_span, value=value)
                return construct(ast.Body, span=body.span, entries=tuple(entries))
            inner = _descend(loaded, entry, path, at, value)
            if inner is None:
                return None
            entries[i] = inner
            return construct(ast.Body, span=body.span, entries=tuple(entries))
    if last:
        entries.append(construct(ast.Assign, span=value.span, key=name, key_span=path.span,
                                 value=value))
        return construct(ast.Body, span=body.span, entries=tuple(entries))
    keys = [e.key for e in body.entries if isinstance(e, (ast.Assign, ast.Block))] + [
        e.name for e in body.entries if isinstance(e, ast.Member)]
    loaded.diagnostics.append(_path_error(path, at, keys))
    return None


def _descend(loaded: Loaded, entry, path: ast.Path, at: int, value: ast.Value):
    """Go one level down through a block or an object value (`objective = ppo { ... }`)."""
    if isinstance(entry, ast.Block):
        sub = _set_in_body(loaded, entry.body, path, at + 1, value)
        return None if sub is None else construct(ast.Block, **{**entry.__dict__, "body": sub})
    current = entry.value
    if isinstance(current, ast.Path) and len(current.parts) == 1:
        # `objective = ppo` becomes `objective = ppo { kl = ... }`.
        current = construct(ast.Object, span=current.span, name=current.parts[0],
                            name_span=current.span,
                            body=construct(ast.Body, span=current.span, entries=()))
    if isinstance(current, ast.Object):
        sub = _set_in_body(loaded, current.body, path, at + 1, value)
        if sub is None:
            return None
        obj = construct(ast.Object, **{**current.__dict__, "body": sub})
        return construct(ast.Assign, **{**entry.__dict__, "value": obj})
    if isinstance(current, ast.Call) and at + 2 == len(path.parts):
        name = path.parts[at + 1]
        kwargs = [k for k in current.kwargs if k.name != name]
        kwargs.append(construct(ast.KeywordArgument, span=value.span, name=name,
                                name_span=path.span, value=value))
        call = construct(ast.Call, **{**current.__dict__, "kwargs": tuple(kwargs)})
        return construct(ast.Assign, **{**entry.__dict__, "value": call})
    loaded.diagnostics.append(Diagnostic(
        "E0704", f"`{'.'.join(path.parts[:at + 1])}` has no parameters to set", span=path.span,
        label="a plain value", help=f"set the whole value: `{'.'.join(path.parts[:at + 1])}=...`"))
    return None


def _as_number(loaded: Loaded, value: ast.Value, path: ast.Path) -> ast.Number | None:
    if isinstance(value, ast.Number):
        return value
    loaded.diagnostics.append(Diagnostic(
        "E0302", f"`{path.dotted}` takes a number", span=value.span, label="not a number"))
    return None


def _path_error(path: ast.Path, at: int, candidates: list[str]) -> Diagnostic:
    name = path.parts[at]
    where = "the spec" if at == 0 else f"`{'.'.join(path.parts[:at])}`"
    hint = did_you_mean(name, candidates)
    return Diagnostic("E0704", f"`{path.dotted}`: {where} has no `{name}`", span=path.span,
                      label="path not found",
                      help=hint or (f"it has {one_of(candidates)}" if candidates else None))

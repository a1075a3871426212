"""Prompts and pre-training corpora: `builtin` (shipped in ``data/``), `file(...)`, or a list.

A file holds one item per line (blank lines skipped, surrounding whitespace stripped), or is JSONL
(a ``.jsonl`` name, or a first line that is a JSON object): prompts are read from a ``prompt``
field; corpus lines from ``text``, or ``prompt`` and ``completion`` joined by a space. Paths are
relative to the directory of the spec that names them (``base_dir``).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Sequence, Union

from backends.torch.text.errors import DataNotFound
from backends.torch.text.tokenizer import resolve_path

BUILTIN_PROMPTS = "prompts.txt"
BUILTIN_CORPUS = "corpus.txt"

Source = Union[str, Path, Sequence[str], object]  # "builtin", a path, a FileRef, or texts


def builtin_text(name: str) -> str:
    """A file shipped in ``backends/torch/text/data/``."""
    return resources.files("backends.torch.text").joinpath("data", name).read_text("utf-8")


def load_prompts(source: Source = "builtin", base_dir: str | Path | None = None) -> list[str]:
    """`TextTask.prompts`: `builtin`, ``file(...)`` (a ``FileRef``), a path, or the prompts."""
    return _load(source, base_dir, BUILTIN_PROMPTS, _prompt_field, "prompts")


def load_corpus(source: Source = "builtin", base_dir: str | Path | None = None) -> list[str]:
    """`TextTask.pretrain`: `builtin`, ``file(...)``, a path, or the lines themselves."""
    return _load(source, base_dir, BUILTIN_CORPUS, _corpus_field, "pre-training corpus")


def task_prompts(task, base_dir: str | Path | None = None) -> list[str]:
    return load_prompts(task.prompts, base_dir)


def task_corpus(task, base_dir: str | Path | None = None) -> list[str] | None:
    """The Step 0 corpus of a text task, or None when it has none."""
    return None if task.pretrain is None else load_corpus(task.pretrain, base_dir)


def _prompt_field(row: dict) -> str | None:
    value = row.get("prompt")
    return value if isinstance(value, str) else None


def _corpus_field(row: dict) -> str | None:
    if isinstance(row.get("text"), str):
        return row["text"]
    if isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str):
        return f"{row['prompt']} {row['completion']}"
    return None


def _load(source: Source, base_dir, builtin: str, field, what: str) -> list[str]:
    if isinstance(source, str) and source == "builtin":
        lines = _parse(builtin_text(builtin), builtin, field, what)
        return lines
    if isinstance(source, (list, tuple)):
        lines = [str(s) for s in source]
        if not lines:
            raise DataNotFound(f"the list of {what} is empty")
        return lines
    path_name = getattr(source, "path", source)  # a FileRef, a str or a Path
    path = resolve_path(path_name, base_dir)
    if not path.is_file():
        raise DataNotFound(f"{what} file `{path_name}` does not exist",
                           help="paths in `file(...)` are relative to the spec's directory")
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError as error:
        raise DataNotFound(f"{what} file `{path_name}` is not UTF-8 text") from error
    return _parse(text, str(path_name), field, what)


def _parse(text: str, name: str, field, what: str) -> list[str]:
    raw = [line.strip() for line in text.splitlines()]
    raw = [line for line in raw if line]
    if not raw:
        raise DataNotFound(f"{what} file `{name}` is empty")
    if name.endswith(".jsonl") or _is_json_object(raw[0]):
        lines = []
        for number, line in enumerate(raw, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataNotFound(f"line {number} of `{name}` is not JSON",
                                   help=f"{error.msg}; a JSONL file holds one object per line"
                                   ) from error
            value = field(row) if isinstance(row, dict) else None
            if value is None:
                raise DataNotFound(f"line {number} of `{name}` has no text field for {what}",
                                   help="prompts need `prompt`; a corpus needs `text` (or "
                                        "`prompt` and `completion`)")
            lines.append(value)
        return lines
    return raw


def _is_json_object(line: str) -> bool:
    if not line.startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False

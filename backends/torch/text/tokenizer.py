"""Tokenizers: the built-in byte tokenizer and local transformers tokenizers, behind one interface.

`tokenizer = bytes` (the default of a `model` declaration) is :class:`ByteTokenizer`: ids 0–255
are the UTF-8 bytes of the text, then three specials, ``<pad>`` = 256, ``<bos>`` = 257 and
``<eos>`` = 258 (vocabulary 259). Any text round-trips exactly; a model over it needs no
download. A directory name is loaded with ``transformers.AutoTokenizer`` from local files only
(:class:`HFTokenizer`); nothing is ever fetched from a hub.

Conventions every caller relies on (generation, log-probs, pre-training, scorers):

* ``encode`` adds no specials unless asked; prompts are encoded with a leading BOS (when the
  tokenizer has one) and completions end with EOS;
* :meth:`TextTokenizer.encode_batch` pads to the longest row (left or right) and returns an
  attention mask (1 = token, 0 = padding), both ``int64``;
* truncation keeps the specials asked for: ``truncation_side="left"`` keeps the end of the text
  (what prompts use: the words nearest the completion), ``"right"`` keeps the beginning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import torch

from backends.torch.text.errors import TokenizerNotFound

Side = Literal["left", "right"]
BYTE_MARKER = "byte_tokenizer.json"


@dataclass
class Encoded:
    """A padded batch: ``input_ids`` and ``attention_mask``, both int64 ``[B, L]``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def to(self, device: torch.device | str) -> "Encoded":
        return Encoded(self.input_ids.to(device), self.attention_mask.to(device))

    @property
    def lengths(self) -> torch.Tensor:
        return self.attention_mask.sum(-1)


class TextTokenizer:
    """What every tokenizer of the text backend offers. Subclasses implement ``_encode_many``,
    ``decode`` and ``save_pretrained`` and set ``pad_id``, ``bos_id``, ``eos_id``,
    ``vocab_size``."""

    pad_id: int
    bos_id: int | None
    eos_id: int | None
    vocab_size: int

    # --------------------------------------------------------------------------- to implement

    def _encode_many(self, texts: Sequence[str]) -> list[list[int]]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        raise NotImplementedError

    def save_pretrained(self, directory: str | Path) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------------------- shared

    @property
    def special_ids(self) -> frozenset[int]:
        return frozenset(i for i in (self.pad_id, self.bos_id, self.eos_id) if i is not None)

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        return self._with_specials(self._encode_many([text])[0], add_bos, add_eos)

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each text, specials excluded."""
        return [len(ids) for ids in self._encode_many(texts)]

    def encode_batch(self, texts: Sequence[str], *, padding_side: Side = "right",
                     max_length: int | None = None, truncation_side: Side = "right",
                     add_bos: bool = False, add_eos: bool = False,
                     pad_to_multiple_of: int | None = None,
                     device: torch.device | str | None = None) -> Encoded:
        """Encode, add specials, truncate to ``max_length`` (specials kept), pad to the longest
        row (rounded up to ``pad_to_multiple_of``)."""
        rows = [self._with_specials(ids, add_bos, add_eos, max_length, truncation_side)
                for ids in self._encode_many(texts)]
        return pad_rows(rows, self.pad_id, padding_side, pad_to_multiple_of, device)

    def decode_batch(self, ids: torch.Tensor, mask: torch.Tensor | None = None,
                     skip_special: bool = True) -> list[str]:
        """Decode each row of ``ids`` ``[B, L]``, keeping only positions where ``mask`` is set."""
        rows = ids.tolist()
        if mask is not None:
            keep = mask.bool().tolist()
            rows = [[t for t, k in zip(row, ks) if k] for row, ks in zip(rows, keep)]
        return [self.decode(row, skip_special=skip_special) for row in rows]

    def _with_specials(self, ids: list[int], add_bos: bool, add_eos: bool,
                       max_length: int | None = None, side: Side = "right") -> list[int]:
        head = [self.bos_id] if add_bos and self.bos_id is not None else []
        tail = [self.eos_id] if add_eos and self.eos_id is not None else []
        if max_length is not None:
            room = max(max_length - len(head) - len(tail), 0)
            if len(ids) > room:
                ids = ids[len(ids) - room:] if side == "left" else ids[:room]
        return head + ids + tail


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int, side: Side = "right",
             pad_to_multiple_of: int | None = None,
             device: torch.device | str | None = None) -> Encoded:
    """Pad lists of ids to one tensor (width: the longest row) with its attention mask."""
    width = max((len(r) for r in rows), default=0)
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row)
        if n == 0:
            continue
        cols = slice(width - n, width) if side == "left" else slice(0, n)
        ids[i, cols] = torch.tensor(row, dtype=torch.long)
        mask[i, cols] = 1
    if device is not None:
        ids, mask = ids.to(device), mask.to(device)
    return Encoded(ids, mask)


class ByteTokenizer(TextTokenizer):
    """UTF-8 bytes (ids 0–255) plus ``<pad>`` 256, ``<bos>`` 257, ``<eos>`` 258."""

    pad_id = 256
    bos_id = 257
    eos_id = 258
    vocab_size = 259
    SPECIALS = {256: "<pad>", 257: "<bos>", 258: "<eos>"}

    def _encode_many(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(t.encode("utf-8")) for t in texts]

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(t.encode("utf-8")) for t in texts]

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        if skip_special:
            return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
        out, run = [], bytearray()
        for i in ids:
            if i < 256:
                run.append(i)
                continue
            out.append(run.decode("utf-8", errors="replace"))
            run = bytearray()
            out.append(self.SPECIALS.get(i, f"<{i}>"))
        out.append(run.decode("utf-8", errors="replace"))
        return "".join(out)

    def save_pretrained(self, directory: str | Path) -> None:
        """Writes the marker :data:`BYTE_MARKER` (read back by :func:`load_tokenizer`) and the
        same tokenizer as a transformers fast tokenizer (``tokenizer.json``), so that
        ``AutoTokenizer.from_pretrained(directory)`` gives the same ids."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.to_transformers().save_pretrained(str(directory))
        (directory / BYTE_MARKER).write_text(json.dumps(
            {"type": "bytes", "pad": self.pad_id, "bos": self.bos_id, "eos": self.eos_id}) + "\n")

    def to_transformers(self):
        """The same tokenizer as a ``PreTrainedTokenizerFast``: byte-level pre-tokenisation and
        a BPE model without merges, so each byte is one token with its byte value as id."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        alphabet = _bytes_to_unicode()
        tok = Tokenizer(models.BPE(vocab={alphabet[b]: b for b in range(256)}, merges=[]))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens([self.SPECIALS[i] for i in sorted(self.SPECIALS)])
        return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>",
                                       bos_token="<bos>", eos_token="<eos>")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (what ByteLevel uses)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


class HFTokenizer(TextTokenizer):
    """A transformers tokenizer loaded from a local directory. Its own specials are not added
    by ``encode`` (BOS/EOS are added by this class's conventions); a tokenizer without a pad
    token pads with EOS (then with id 0), which attention masks make harmless."""

    def __init__(self, tokenizer):
        self.hf = tokenizer
        self.bos_id = tokenizer.bos_token_id
        self.eos_id = tokenizer.eos_token_id
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (self.eos_id if self.eos_id is not None else 0)
        self.vocab_size = len(tokenizer)

    def _encode_many(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        return list(self.hf(list(texts), add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int], skip_special: bool = True) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=skip_special)

    def save_pretrained(self, directory: str | Path) -> None:
        self.hf.save_pretrained(str(directory))


def load_tokenizer(name: str, base_dir: str | Path | None = None) -> TextTokenizer:
    """`bytes` → :class:`ByteTokenizer`; otherwise a local directory (relative to ``base_dir``,
    the spec's directory, when not absolute) holding a tokenizer saved by ``save_pretrained``.

    Raises :class:`TokenizerNotFound` when the directory is missing or holds no tokenizer; never
    downloads (``local_files_only=True``)."""
    if name == "bytes":
        return ByteTokenizer()
    path = resolve_path(name, base_dir)
    if not path.is_dir():
        raise TokenizerNotFound(
            f"tokenizer directory `{name}` does not exist" if not path.exists()
            else f"tokenizer `{name}` is not a directory",
            help="write `tokenizer = bytes` for the built-in byte tokenizer, or name a local "
                 "directory saved with `save_pretrained` (nothing is downloaded)")
    if (path / BYTE_MARKER).is_file():
        return ByteTokenizer()
    try:
        from transformers import AutoTokenizer

        return HFTokenizer(AutoTokenizer.from_pretrained(str(path), local_files_only=True))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TokenizerNotFound(
            f"no tokenizer could be loaded from `{name}`",
            help="the directory needs the files `save_pretrained` writes (`tokenizer.json` or "
                 f"vocabulary files); the loader said: {str(error).splitlines()[0][:200]}",
        ) from error


def has_tokenizer(directory: str | Path) -> bool:
    """Whether a directory holds tokenizer files (used when a model path brings its own)."""
    d = Path(directory)
    return any((d / f).is_file() for f in (BYTE_MARKER, "tokenizer.json", "tokenizer_config.json",
                                           "vocab.json", "tokenizer.model"))


def resolve_path(name: str | Path, base_dir: str | Path | None) -> Path:
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return path

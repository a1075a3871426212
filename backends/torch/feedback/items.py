"""What feedback is about: the item spaces of the two task domains, and a batch of queries.

An *item* is an integer. For a bandit task it is an action index into the task's feature table;
for a text task it indexes the list of completions that travels with the space (and with the
label table). A *query* is K items shown together (K = 2 for pairwise feedback).

* :class:`BanditSpace` — the action feature table ``[A, F]`` plus the task's optional `length`
  and `confidence` expressions (what evaluators perceive for the length and sycophancy biases);
* :class:`TextSpace` — completions (and their prompts), the text scorer function and a tokenizer;
* :class:`Queries` — ``items [n, K]`` with the source of each query and the space they index.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence, Union

import torch

from rlhfdsl.spec.base import Expr


class Tokenizer(Protocol):
    """What text views and myopia need of a tokenizer (`backends.torch.text.tokenizer`)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class ByteTokenizer:
    """The project's default `tokenizer = bytes`: one token per UTF-8 byte, no specials."""

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="ignore")


Scorer = Callable[..., torch.Tensor]
"""``score(name, texts, *args) -> float [N]``: the text scorer functions (length, keyword, count,
sentiment, confidence, regex, similarity) of ``backends.torch.text.scorers``."""


def default_scorer() -> Scorer:
    """The text backend's scorer function, imported when a text expression first needs it."""
    from backends.torch.text.scorers import score  # lazy: bandit runs never import text code

    return score


@dataclass
class BanditSpace:
    """The items of a bandit task: actions with feature vectors.

    ``feature_mean`` is what a hidden feature is replaced by in a masked view (the mean of the
    task's feature distribution, so masked labels are exactly independent of the hidden values);
    ``length`` and ``confidence`` are the task's expressions for what evaluators perceive as an
    action's length and confidence (``None``: 0).
    """

    features: torch.Tensor
    feature_mean: Optional[torch.Tensor] = None
    length: Optional[Expr] = None
    confidence: Optional[Expr] = None
    allow_plugins: bool = False
    domain: str = field(default="bandit", init=False)

    @property
    def size(self) -> int:
        return int(self.features.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    @property
    def device(self) -> torch.device:
        return self.features.device

    def mean_features(self) -> torch.Tensor:
        if self.feature_mean is not None:
            return self.feature_mean.to(self.features)
        return self.features.mean(0)


@dataclass
class TextSpace:
    """The items of a text task: completions, with the prompts they answer.

    ``scorer`` defaults to ``backends.torch.text.scorers.score`` (imported lazily);
    ``tokenizer`` (for token truncation and myopia) defaults to :class:`ByteTokenizer`.
    """

    texts: list[str]
    prompts: Optional[list[str]] = None
    scorer: Optional[Scorer] = None
    tokenizer: Optional[Any] = None
    device: torch.device = torch.device("cpu")
    allow_plugins: bool = False
    domain: str = field(default="text", init=False)

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)
        if self.prompts is not None and len(self.prompts) != len(self.texts):
            raise ValueError("a text space needs one prompt per completion")

    @property
    def size(self) -> int:
        return len(self.texts)

    def get_scorer(self) -> Scorer:
        if self.scorer is None:
            score = default_scorer()
            if self.tokenizer is not None:
                score = functools.partial(score, tokenizer=self.tokenizer)
            self.scorer = score
        return self.scorer

    def get_tokenizer(self) -> Any:
        return self.tokenizer if self.tokenizer is not None else ByteTokenizer()

    def prompt_ids(self) -> torch.Tensor:
        """int64 [M]: the same id for completions of the same prompt (all 0 without prompts)."""
        if self.prompts is None:
            return torch.zeros(self.size, dtype=torch.long, device=self.device)
        ids: dict[str, int] = {}
        return torch.tensor([ids.setdefault(p, len(ids)) for p in self.prompts],
                            dtype=torch.long, device=self.device)


Space = Union[BanditSpace, TextSpace]


@dataclass
class Queries:
    """x_i of Eq. 4: ``items`` int64 ``[n, K]`` indexing ``space``; ``source`` int64 ``[n]`` is
    the index of the sampler source each query came from (names in ``sources``)."""

    items: torch.Tensor
    space: Space
    source: Optional[torch.Tensor] = None
    sources: tuple[str, ...] = ("policy",)

    def __post_init__(self) -> None:
        if self.items.dim() == 1:
            self.items = self.items[:, None]
        if self.source is None:
            self.source = torch.zeros(self.items.shape[0], dtype=torch.long,
                                      device=self.items.device)

    def __len__(self) -> int:
        return int(self.items.shape[0])

    @property
    def k(self) -> int:
        return int(self.items.shape[1])

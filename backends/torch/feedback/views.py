"""v in Eq. 4: what an evaluator sees of an item (partial observability, 3.1.2).

* identity — no `view`, or a view with nothing set;
* bandit features: `show = features(...)` keeps only those, `mask = features(...)` hides those;
  a hidden feature is replaced by the mean of the task's feature distribution, so what the
  evaluator perceives — and every label — is exactly independent of the hidden values;
  `noise = s` adds N(0, s²) observation noise to every shown feature, afresh on every label;
* text: `truncate = 12 tokens | 80 chars | 10 words` keeps the beginning of the completion,
  then `mask = regex("...")` removes the matching spans from what is left;
* `assist = w` (added information, e.g. an interpretability tool): the evaluator's perceived
  value becomes (1 − w)·perceived + w·gold (applied in :mod:`.behaviour`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

import torch

from backends.torch.feedback.errors import FeedbackError
from backends.torch.feedback.items import BanditSpace, ByteTokenizer
from rlhfdsl.spec.feedback import View


@dataclass
class BanditView:
    """A compiled bandit view: ``features`` [A, F] as shown (hidden ones at their mean),
    ``shown`` bool [F], observation ``noise`` and ``assist``."""

    features: torch.Tensor
    shown: torch.Tensor
    noise: float
    assist: float

    def noisy(self, items: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """[len(items), F]: the shown features of these items with fresh observation noise."""
        x = self.features[items]
        if self.noise > 0:
            eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + self.noise * eps * self.shown.to(x.dtype)
        return x


def shown_features(view: Optional[View], n_features: int,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """bool [F]: which features the evaluator sees."""
    shown = torch.ones(n_features, dtype=torch.bool, device=device)
    if view is None:
        return shown
    if view.show is not None:
        shown[:] = False
        shown[_indices(view.show.indices, n_features)] = True
    if view.mask is not None and getattr(view.mask, "type", None) == "features":
        shown[_indices(view.mask.indices, n_features)] = False  # type: ignore[union-attr]
    return shown


def view_bandit(view: Optional[View], space: BanditSpace) -> BanditView:
    """Compile a view for a bandit space."""
    shown = shown_features(view, space.n_features, space.device)
    features = space.features
    if not bool(shown.all()):
        mean = space.mean_features().to(features.dtype)
        features = torch.where(shown[None, :], features, mean[None, :])
    noise = float(view.noise) if view is not None else 0.0
    assist = float(view.assist) if view is not None else 0.0
    return BanditView(features=features, shown=shown, noise=noise, assist=assist)


def render_texts(view: Optional[View], texts: list[str], tokenizer: Any = None) -> list[str]:
    """What the evaluator reads of each completion: truncated, then with masked spans removed."""
    if view is None or (view.truncate is None and view.mask is None):
        return list(texts)
    out = list(texts)
    if view.truncate is not None:
        out = [truncate(t, view.truncate.amount, view.truncate.unit, tokenizer) for t in out]
    if view.mask is not None and getattr(view.mask, "type", None) == "regex":
        pattern = re.compile(view.mask.pattern)  # type: ignore[union-attr]
        out = [pattern.sub("", t) for t in out]
    return out


def truncate(text: str, amount: int, unit: str, tokenizer: Any = None) -> str:
    """The first ``amount`` tokens, characters or words of ``text``."""
    if unit == "chars":
        return text[:amount]
    if unit == "words":
        if amount == 0:
            return ""
        words = list(re.finditer(r"\S+", text))
        return text if len(words) <= amount else text[:words[amount - 1].end()]
    tok = tokenizer if tokenizer is not None else ByteTokenizer()
    ids = tok.encode(text)
    return text if len(ids) <= amount else tok.decode(ids[:amount])


def view_assist(view: Optional[View]) -> float:
    return float(view.assist) if view is not None else 0.0


def _indices(indices: tuple[int, ...], n_features: int) -> list[int]:
    bad = [i for i in indices if i >= n_features]
    if bad:
        raise FeedbackError(f"the view names feature {bad[0]}, but the task has {n_features} "
                            f"features (0..{n_features - 1})")
    return list(indices)

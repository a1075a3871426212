"""r̂_φ for text: a value head on a language-model backbone.

The reward of a sequence is a linear function of the backbone's final hidden state at its last
non-pad token: r̂(x, y) = W h_last (+ the final norm's learned offset, which plays the bias).

The model is a transformers ``*ForSequenceClassification`` (GPT-2 or Llama) whose ``score`` layer
has ``members × outputs`` rows, so ``save_pretrained`` writes a directory that
``AutoModelForSequenceClassification.from_pretrained`` loads directly and whose logits at the last
token are this module's rewards.

Ensembles: the ``members`` of an ensemble **share the backbone and own one head each** (heads
initialised independently). One forward pass scores every member, so an ensemble costs almost
nothing more than one model; disagreement between members then reflects head (last-layer)
uncertainty only, as in last-layer ensembles. For fully independent members (backbones too),
build several reward models with different generators and stack their outputs with
:func:`stack_members`. ``outputs`` is the head's width per member: 1 for `scalar`, k for
`multi_objective(k)` and `mixture(k)`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from backends.torch.text.errors import ModelNotFound
from backends.torch.text.models import (
    autocast, is_adapted, load_causal_lm, model_config, seeded,
)
from backends.torch.text.tokenizer import TextTokenizer, has_tokenizer, load_tokenizer, \
    resolve_path

HEAD_FILE = "rlhfdsl_reward.json"


class RewardModel(torch.nn.Module):
    """Rewards ``[B, members, outputs]`` (float32) for token sequences.

    ``classifier`` is a transformers sequence-classification model with
    ``num_labels = members × outputs``."""

    def __init__(self, classifier, members: int = 1, outputs: int = 1):
        super().__init__()
        if classifier.config.num_labels != members * outputs:
            raise ValueError(f"the classifier has {classifier.config.num_labels} outputs, "
                             f"not members × outputs = {members * outputs}")
        self.classifier = classifier
        self.members = members
        self.outputs = outputs

    @property
    def backbone(self) -> torch.nn.Module:
        return getattr(self.classifier, self.classifier.base_model_prefix)

    @property
    def head(self) -> torch.nn.Linear:
        return self.classifier.score

    @property
    def config(self):
        return self.classifier.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                precision: str = "auto") -> torch.Tensor:
        """Padding may be on either side; the pooled token is the last one the mask keeps."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        with autocast(input_ids.device, precision):
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                                   position_ids=position_ids, use_cache=False).last_hidden_state
            columns = torch.arange(1, attention_mask.shape[1] + 1, device=input_ids.device)
            last = (attention_mask * columns).argmax(-1)  # the last column the mask keeps
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
            scores = self.head(pooled)
        return scores.float().view(-1, self.members, self.outputs)

    def score_texts(self, tokenizer: TextTokenizer, texts: list[str], *,
                    max_length: int | None = None, precision: str = "auto",
                    batch_size: int | None = None) -> torch.Tensor:
        """Rewards of whole texts (BOS + text + EOS, cut from the left to ``max_length``)."""
        device = next(self.parameters()).device
        step = batch_size or max(len(texts), 1)
        parts = []
        for i in range(0, len(texts), step):
            enc = tokenizer.encode_batch(texts[i:i + step], padding_side="right",
                                         max_length=max_length, truncation_side="left",
                                         add_bos=True, add_eos=True, device=device)
            parts.append(self(enc.input_ids, enc.attention_mask, precision=precision))
        return torch.cat(parts) if parts else torch.zeros(0, self.members, self.outputs)

    def save_pretrained(self, directory: str | Path,
                        tokenizer: TextTokenizer | None = None) -> Path:
        """safetensors via transformers' ``save_pretrained``, plus :data:`HEAD_FILE` (members,
        outputs) and the tokenizer when given."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.classifier.save_pretrained(str(directory), safe_serialization=True)
        (directory / HEAD_FILE).write_text(json.dumps(
            {"members": self.members, "outputs": self.outputs}) + "\n")
        if tokenizer is not None:
            tokenizer.save_pretrained(directory)
        return directory


def build_reward_model(spec, tokenizer: TextTokenizer, *, generator: torch.Generator,
                       members: int = 1, outputs: int = 1, device: torch.device | str = "cpu",
                       base_dir: str | Path | None = None, from_lm=None) -> RewardModel:
    """r̂_φ on the backbone of a `model` declaration (``rlhfdsl.spec.experiment.Model``).

    The backbone's weights come from ``from_lm`` (an in-memory causal LM without adapter, e.g.
    the Step 0 model), else from ``spec.path`` (a saved causal LM or policy, adapter merged, or a
    saved reward model), else a fresh initialisation from ``generator``; the heads are always
    initialised from ``generator``."""
    from transformers import AutoModelForSequenceClassification

    labels = members * outputs
    saved_reward = None
    if from_lm is None and spec.path is not None:
        path = resolve_path(spec.path, base_dir)
        if (path / HEAD_FILE).is_file():
            saved_reward = path  # a saved reward model: reuse its backbone, new heads
        else:
            from_lm = load_causal_lm(spec.path, base_dir=base_dir)  # adapters merged
    if from_lm is not None and is_adapted(from_lm):
        raise ValueError("`from_lm` has a LoRA adapter: pass a plain model (merge_and_unload)")
    with seeded(generator):
        if saved_reward is not None:
            classifier = AutoModelForSequenceClassification.from_pretrained(
                str(saved_reward), num_labels=labels, local_files_only=True,
                attn_implementation="sdpa", dtype=torch.float32, ignore_mismatched_sizes=True)
        elif from_lm is not None:
            config = from_lm.config.__class__.from_dict(from_lm.config.to_dict())
            config.num_labels = labels
            classifier = AutoModelForSequenceClassification.from_config(
                config, attn_implementation="sdpa", dtype=torch.float32)
            lm_base = getattr(from_lm, from_lm.base_model_prefix)
            getattr(classifier, classifier.base_model_prefix).load_state_dict(
                lm_base.state_dict())
        else:
            config = model_config(spec, tokenizer)
            config.num_labels = labels
            classifier = AutoModelForSequenceClassification.from_config(
                config, attn_implementation="sdpa", dtype=torch.float32)
    classifier.config.pad_token_id = tokenizer.pad_id
    return RewardModel(classifier, members, outputs).to(device).train()


def load_reward_model(directory: str | Path, *, device: torch.device | str = "cpu"
                      ) -> tuple[RewardModel, TextTokenizer | None]:
    """What :meth:`RewardModel.save_pretrained` wrote; returns ``(model, tokenizer or None)``."""
    from transformers import AutoModelForSequenceClassification

    directory = Path(directory)
    if not (directory / HEAD_FILE).is_file():
        raise ModelNotFound(f"`{directory}` holds no saved reward model (no `{HEAD_FILE}`)")
    head = json.loads((directory / HEAD_FILE).read_text())
    classifier = AutoModelForSequenceClassification.from_pretrained(
        str(directory), local_files_only=True, attn_implementation="sdpa", dtype=torch.float32)
    tokenizer = load_tokenizer(str(directory)) if has_tokenizer(directory) else None
    return RewardModel(classifier, head["members"], head["outputs"]).to(device), tokenizer


def stack_members(models: list[RewardModel], input_ids: torch.Tensor,
                  attention_mask: torch.Tensor, precision: str = "auto") -> torch.Tensor:
    """Independently trained reward models as one ensemble: ``[B, Σ members, outputs]``."""
    return torch.cat([m(input_ids, attention_mask, precision=precision) for m in models], 1)

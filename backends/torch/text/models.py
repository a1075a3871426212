"""Causal language models for π_θ: built from a `model` declaration, or loaded from a local path;
LoRA adapters (peft) whose reference policy π_ref is the same model with the adapter disabled;
precision; saving and loading in the formats transformers and peft read directly.

Weights are fp32 everywhere; `precision = auto` runs forward passes under bf16 autocast on CUDA
and in fp32 elsewhere (`bf16` asks for bf16 autocast on any device). Models are initialised on
the CPU from a seed drawn from the stage's ``torch.Generator`` (inside ``fork_rng``, so the
global RNG is left as it was), then moved: the same spec gives the same weights on any device.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import warnings
from pathlib import Path
from typing import Iterator

import torch

from backends.torch.text.errors import ModelConfigError, ModelNotFound
from backends.torch.text.tokenizer import (
    TextTokenizer, has_tokenizer, load_tokenizer, resolve_path,
)

ADAPTER_DIR = "adapter"

# The attention projections of each family: LoRA's default targets.
LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "gpt2": ("c_attn", "attn.c_proj"),
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj"),
}

# ------------------------------------------------------------------------------- precision


def autocast(device: torch.device | str, precision: str = "auto"):
    """The autocast context for a forward pass: bf16 on CUDA under `auto`, bf16 anywhere under
    `bf16`, nothing (fp32) otherwise."""
    device_type = torch.device(device).type
    if precision == "bf16" or (precision == "auto" and device_type == "cuda"):
        return torch.autocast(device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def seed_from(generator: torch.Generator) -> int:
    """A seed for code that only reads the global RNG (weight init, dropout)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))


@contextlib.contextmanager
def seeded(generator: torch.Generator, device: torch.device | str = "cpu") -> Iterator[None]:
    """Run a block with the global RNG seeded from ``generator``, restoring it afterwards."""
    device = torch.device(device)
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed_from(generator))
        yield


# ------------------------------------------------------------------------------- building


def model_config(spec, tokenizer: TextTokenizer):
    """A transformers config for a `model` declaration (``rlhfdsl.spec.experiment.Model``).

    gpt2: ``GPT2Config`` (MLP 4 × width, dropout on embeddings, residuals and attention).
    llama: ``LlamaConfig`` with ``kv_heads`` key/value heads (grouped-query attention), SwiGLU
    MLP of ⌈8/3 × width⌉ rounded up to a multiple of 8, tied embeddings, dropout on attention.
    The vocabulary is the tokenizer's unless the declaration gives one (it may not be smaller).
    """
    from transformers import GPT2Config, LlamaConfig

    if spec.width % spec.heads:
        raise ModelConfigError(f"`heads = {spec.heads}` does not divide `width = {spec.width}`",
                               help="choose a number of heads that divides the width")
    vocab = spec.vocab if spec.vocab is not None else tokenizer.vocab_size
    if vocab < tokenizer.vocab_size:
        raise ModelConfigError(
            f"`vocab = {vocab}` is smaller than the tokenizer's {tokenizer.vocab_size} tokens",
            help=f"leave `vocab` out or set it to at least {tokenizer.vocab_size}")
    ids = dict(pad_token_id=tokenizer.pad_id, bos_token_id=tokenizer.bos_id,
               eos_token_id=tokenizer.eos_id)
    if spec.family == "gpt2":
        return GPT2Config(n_layer=spec.layers, n_embd=spec.width, n_head=spec.heads,
                          n_positions=spec.context, vocab_size=vocab,
                          resid_pdrop=spec.dropout, embd_pdrop=spec.dropout,
                          attn_pdrop=spec.dropout, attn_implementation="sdpa", **ids)
    kv_heads = spec.kv_heads or spec.heads
    if spec.heads % kv_heads:
        raise ModelConfigError(f"`kv_heads = {kv_heads}` does not divide `heads = {spec.heads}`",
                               help="choose key/value heads that divide the attention heads")
    if (spec.width // spec.heads) % 2:
        raise ModelConfigError(f"llama needs an even head size, got {spec.width // spec.heads}",
                               help="choose width / heads even (rotary embeddings rotate pairs)")
    mlp = -(-(8 * spec.width) // 3)
    mlp = -(-mlp // 8) * 8
    return LlamaConfig(hidden_size=spec.width, intermediate_size=mlp,
                       num_hidden_layers=spec.layers, num_attention_heads=spec.heads,
                       num_key_value_heads=kv_heads, max_position_embeddings=spec.context,
                       vocab_size=vocab, attention_dropout=spec.dropout,
                       tie_word_embeddings=True, attn_implementation="sdpa", **ids)


def tokenizer_for(spec, base_dir: str | Path | None = None) -> TextTokenizer:
    """The tokenizer of a `model` declaration. A model ``path`` that holds a tokenizer brings
    its own, which wins over the default `bytes`; a tokenizer directory named explicitly wins
    over both."""
    if spec.tokenizer == "bytes" and spec.path is not None:
        path = resolve_path(spec.path, base_dir)
        if path.is_dir() and has_tokenizer(path):
            return load_tokenizer(str(path))
    return load_tokenizer(spec.tokenizer, base_dir)


def build_causal_lm(spec, tokenizer: TextTokenizer, *, generator: torch.Generator,
                    device: torch.device | str = "cpu", base_dir: str | Path | None = None):
    """π_θ for a `model` declaration: loaded from ``spec.path`` when it is set (see
    :func:`load_causal_lm`), else built from :func:`model_config` with SDPA attention,
    initialised from ``generator``. fp32 weights, on ``device``, in train mode."""
    if spec.path is not None:
        model = load_causal_lm(spec.path, device=device, base_dir=base_dir)
        _check_vocab(model, tokenizer)
        return model
    from transformers import AutoModelForCausalLM

    config = model_config(spec, tokenizer)
    with seeded(generator):
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa",
                                                 dtype=torch.float32)
    return model.to(device).train()


def load_causal_lm(path: str | Path, *, device: torch.device | str = "cpu",
                   base_dir: str | Path | None = None, merge_adapter: bool = True):
    """A causal LM saved with ``save_pretrained`` in a local directory (never downloaded).

    A directory written by :func:`save_policy` with an ``adapter/`` holds the base model and the
    LoRA adapter: with ``merge_adapter`` the adapter is merged in (the saved policy as a plain
    model); without, the base alone (the saved policy's reference) is returned."""
    from transformers import AutoModelForCausalLM

    resolved = resolve_path(path, base_dir)
    if not (resolved / "config.json").is_file():
        raise ModelNotFound(
            f"model directory `{path}` does not exist" if not resolved.exists()
            else f"`{path}` holds no saved model (no `config.json`)",
            help="name a local directory written by `save_pretrained`, or build the model from "
                 "a config (`family`, `layers`, `width`, `heads`) instead of `path`")
    try:
        model = AutoModelForCausalLM.from_pretrained(str(resolved), local_files_only=True,
                                                     attn_implementation="sdpa",
                                                     dtype=torch.float32)
    except (OSError, ValueError) as error:
        raise ModelNotFound(f"no model could be loaded from `{path}`",
                            help=str(error).splitlines()[0][:200]) from error
    if merge_adapter and (resolved / ADAPTER_DIR / "adapter_config.json").is_file():
        from peft import PeftModel

        with _quiet_peft():
            model = PeftModel.from_pretrained(model, str(resolved / ADAPTER_DIR))
        model = model.merge_and_unload()
    return model.to(device).train()


def _check_vocab(model, tokenizer: TextTokenizer) -> None:
    vocab = model.get_input_embeddings().num_embeddings
    if vocab < tokenizer.vocab_size:
        raise ModelConfigError(
            f"the model's vocabulary ({vocab}) is smaller than the tokenizer's "
            f"({tokenizer.vocab_size})",
            help="use the tokenizer the model was trained with (save it beside the model)")


def context_length(model) -> int | None:
    """The longest sequence the model's position embeddings allow (None: not stated)."""
    config = model.config
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)


def check_context(model, length: int, what: str) -> None:
    """Refuse sequences longer than the model's context before they reach an index error."""
    limit = context_length(model)
    if limit is not None and length > limit:
        raise ModelConfigError(
            f"{what} need {length} tokens, more than the model's context of {limit}",
            help="raise the model's `context`, or lower `max_prompt_tokens` or "
                 "`max_new_tokens`")


def frozen_copy(model):
    """A separate, frozen reference model (when π_ref is not π_θ's base with the adapter off)."""
    ref = copy.deepcopy(model)
    ref.requires_grad_(False)
    return ref.eval()


def parameter_count(model: torch.nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


# ------------------------------------------------------------------------------------ LoRA


def add_lora(model, lora, *, generator: torch.Generator):
    """Wrap ``model`` with a LoRA adapter (``rlhfdsl.spec.learning.Lora``: r, alpha, dropout,
    targets) using peft; only the adapter is trainable. The default targets are the attention
    projections of the model's family (:data:`LORA_TARGETS`). The adapter's B matrices start at
    zero, so the wrapped model computes exactly the base model until trained."""
    from peft import LoraConfig, get_peft_model

    family = model.config.model_type
    targets = lora.targets or LORA_TARGETS.get(family)
    if not targets:
        raise ModelConfigError(f"no default LoRA targets for model type `{family}`",
                               help="name the modules to adapt: `lora { targets = [...] }`")
    pattern = _targets_regex(model, targets)
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=pattern, task_type="CAUSAL_LM",
                        fan_in_fan_out=family == "gpt2")
    with seeded(generator), _quiet_peft():
        return get_peft_model(model, config)


@contextlib.contextmanager
def _quiet_peft() -> Iterator[None]:
    """peft 0.21 calls a transformers method that transformers 5 deprecates: not the user's
    business."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        yield


def _targets_regex(model, targets) -> str:
    """A regex matching modules whose dotted name ends with one of ``targets`` (so that
    `attn.c_proj` adapts attention's output projection and not the MLP's `c_proj`)."""
    import re

    names = [n for n, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise ModelConfigError(
            f"LoRA target `{missing[0]}` names no module of the model",
            help="module names end with, e.g., " + ", ".join(
                f"`{n.split('.')[-1]}`" for n in sorted({n.split('.')[-1] for n in names
                                                          if n})[:8]))
    return r"(.*\.)?(" + "|".join(re.escape(t) for t in targets) + r")"


def is_adapted(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def reference(model):
    """The reference policy π_ref as a context: inside it, ``model`` (a LoRA-adapted π_θ)
    computes its base model, adapter disabled, without a second copy in memory::

        with reference(policy), torch.no_grad():
            ref_logprobs = completion_logprobs(policy, batch)
    """
    if not is_adapted(model):
        raise ModelConfigError("the policy has no adapter, so its reference is not its base",
                               help="keep a `frozen_copy` of the initial policy as reference")
    return model.disable_adapter()


# ----------------------------------------------------------------------------- save / load


def save_policy(model, directory: str | Path, tokenizer: TextTokenizer | None = None) -> Path:
    """Save π_θ as safetensors that transformers and peft read directly.

    Without an adapter: ``directory`` is a plain ``save_pretrained`` directory
    (``AutoModelForCausalLM.from_pretrained(directory)``). With a LoRA adapter: ``directory``
    holds the base model (π_ref) and ``directory/adapter`` the peft adapter
    (``PeftModel.from_pretrained(base, directory / "adapter")``). The tokenizer, when given, is
    saved beside the model."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if is_adapted(model):
        base = model.get_base_model()  # still holds the injected LoRA layers: strip them
        state = {key.replace(".base_layer.", "."): value
                 for key, value in base.state_dict().items() if ".lora_" not in key}
        base.save_pretrained(str(directory), state_dict=state, safe_serialization=True)
        model.save_pretrained(str(directory / ADAPTER_DIR), safe_serialization=True)
    else:
        model.save_pretrained(str(directory), safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory


def load_policy(directory: str | Path, *, device: torch.device | str = "cpu",
                trainable: bool = True):
    """Load what :func:`save_policy` wrote, keeping the adapter as an adapter (to resume
    training, with :func:`reference` still the base). Returns ``(model, tokenizer or None)``."""
    directory = Path(directory)
    base = load_causal_lm(directory, device=device, merge_adapter=False)
    if (directory / ADAPTER_DIR / "adapter_config.json").is_file():
        from peft import PeftModel

        with _quiet_peft():
            base = PeftModel.from_pretrained(base, str(directory / ADAPTER_DIR),
                                             is_trainable=trainable).to(device)
    tokenizer = load_tokenizer(str(directory)) if has_tokenizer(directory) else None
    return base, tokenizer


# ---------------------------------------------------------------------- transformers compat


@functools.lru_cache(maxsize=None)
def _cache_keyword() -> str:
    """transformers 5.2x renamed the ``past_key_values`` argument to ``cache``."""
    from transformers import GPT2LMHeadModel

    parameters = inspect.signature(GPT2LMHeadModel.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def cache_kwargs(cache) -> dict:
    """The keyword argument that passes a KV cache to a forward pass."""
    return {_cache_keyword(): cache}


def output_cache(output):
    """The KV cache a forward pass returned."""
    cache = output.get("cache")
    return cache if cache is not None else output.get("past_key_values")

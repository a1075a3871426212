"""Text tasks on the PyTorch backend: tokenizers, causal LMs for π_θ (with LoRA and the
adapter-disabled reference), the value-head reward model r̂_φ, sampling s(π_θ, ·), per-token
log-probs, the text scorers that latent rewards are built from, and Step 0 pre-training.

Each module is one idea, in the order the executor uses them:

    tokenizer     bytes or a local transformers tokenizer, one interface
    models        build / load π_θ, LoRA, reference, precision, save / load
    reward_model  r̂_φ: a value head (ensemble of heads) on an LM backbone
    logprobs      log π(y_t | x, y_<t) for a batch of completions, in one forward pass
    generate      batched sampling over the KV cache from a torch.Generator
    scorers       length, keyword, count, sentiment, confidence, regex, similarity, plugin
    corpora       prompts and corpora: builtin, file(...), or a list
    pretrain      Step 0: pre-training / SFT on a corpus

Everything takes typed-spec objects, a device and a ``torch.Generator``; nothing keeps global
state. Errors a user can fix are :class:`errors.TextBackendError` subclasses.
"""

from backends.torch.text.corpora import load_corpus, load_prompts, task_corpus, task_prompts
from backends.torch.text.errors import (
    DataNotFound, ModelConfigError, ModelNotFound, PathNotFound, PluginError, PluginsNotAllowed,
    ScorerArgumentError, TextBackendError, TokenizerNotFound, UnknownScorer,
)
from backends.torch.text.generate import generate, generate_for_task, sample_next
from backends.torch.text.logprobs import (
    CompletionStats, Completions, completion_logprobs, encode_completions, forward_completions,
)
from backends.torch.text.models import (
    add_lora, autocast, build_causal_lm, frozen_copy, load_causal_lm, load_policy, model_config,
    reference, save_policy, tokenizer_for,
)
from backends.torch.text.pretrain import corpus_loss, pretrain
from backends.torch.text.reward_model import (
    RewardModel, build_reward_model, load_reward_model, stack_members,
)
from backends.torch.text.scorers import SCORERS, score
from backends.torch.text.tokenizer import (
    ByteTokenizer, Encoded, HFTokenizer, TextTokenizer, load_tokenizer,
)

__all__ = [
    "ByteTokenizer", "CompletionStats", "Completions", "DataNotFound", "Encoded", "HFTokenizer",
    "ModelConfigError", "ModelNotFound", "PathNotFound", "PluginError", "PluginsNotAllowed",
    "RewardModel", "SCORERS", "ScorerArgumentError", "TextBackendError", "TextTokenizer",
    "TokenizerNotFound", "UnknownScorer", "add_lora", "autocast", "build_causal_lm",
    "build_reward_model", "completion_logprobs", "corpus_loss", "encode_completions",
    "forward_completions", "frozen_copy", "generate", "generate_for_task", "load_causal_lm",
    "load_corpus", "load_policy", "load_prompts", "load_reward_model", "load_tokenizer",
    "model_config", "pretrain", "reference", "sample_next", "save_policy", "score",
    "stack_members", "task_corpus", "task_prompts", "tokenizer_for",
]

# Eq. 2 and Eq. 3 on texts: the reward-model fitter and the policy optimiser.
from backends.torch.text.train_policy import (  # noqa: E402
    PackedLogprobs, best_of_n, dpo_step, optimize_text_policy,
)
from backends.torch.text.train_reward import (  # noqa: E402
    fit_text_reward, reward_function, reward_step, score_completions,
)

__all__ += ["PackedLogprobs", "best_of_n", "dpo_step", "fit_text_reward", "optimize_text_policy",
            "reward_function", "reward_step", "score_completions"]

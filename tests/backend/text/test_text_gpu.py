"""CUDA smoke tests of the text training paths: sampling and log-probs, the compiled reward
step, the compiled DPO step and a LoRA PPO run, under bf16 autocast. Skipped without CUDA
(``benchmarks/gpu_check.sh`` runs them on a GPU machine)."""

import math

import pytest
import torch

from backends.torch.text import (
    build_causal_lm, build_reward_model, completion_logprobs, generate,
)
from backends.torch.text.train_policy import (
    CompletionTable, PackedLogprobs, encode_items, optimize_text_policy,
)
from backends.torch.text.train_reward import (
    TokenTable, fit_text_reward, reward_sequences, sequence_rewards,
)
from rlhfdsl.spec.experiment import TextTask
from rlhfdsl.spec.learning import Policy, Reward

from conftest import tiny_spec
from test_text_train_policy import PROMPTS, TASK, lowercase, pair_table
from test_text_train_reward import keyword_pairs, sentences

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CUDA = "cuda"


def test_sampling_and_logprobs_agree_on_cuda(byte_tokenizer):
    model = build_causal_lm(tiny_spec(), byte_tokenizer, device=CUDA,
                            generator=torch.Generator().manual_seed(0)).eval()
    for precision, atol in (("fp32", 1e-4), ("auto", 0.1)):
        out = generate(model, byte_tokenizer, PROMPTS * 4, max_new_tokens=10, top_k=20,
                       generator=torch.Generator().manual_seed(0), precision=precision)
        assert out.completion_ids.is_cuda
        with torch.no_grad():
            again = completion_logprobs(model, out, precision=precision)
        torch.testing.assert_close(again, out.logprobs, rtol=0, atol=atol)
    # the CPU generator gives the same draws whatever the model's device (fp32)
    cpu = build_causal_lm(tiny_spec(), byte_tokenizer, generator=torch.Generator().manual_seed(0))
    a = generate(cpu.eval(), byte_tokenizer, PROMPTS, max_new_tokens=4, precision="fp32",
                 generator=torch.Generator().manual_seed(1))
    b = generate(model, byte_tokenizer, PROMPTS, max_new_tokens=4, precision="fp32",
                 generator=torch.Generator().manual_seed(1))
    assert a.texts == b.texts


def test_compiled_scoring_matches_eager(byte_tokenizer):
    model = build_reward_model(tiny_spec(), byte_tokenizer, device=CUDA,
                               generator=torch.Generator().manual_seed(0)).eval()
    rows = reward_sequences(byte_tokenizer, ["Q:"] * 6, ["a", "bb", "good sun", "x" * 30,
                                                         "rain", "tree road"], 64)
    ids, lengths = TokenTable(rows, byte_tokenizer.pad_id).rows(torch.arange(6))
    ids, lengths = ids.to(CUDA), lengths.to(CUDA)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        eager = sequence_rewards(model, ids, lengths)
        compiled = torch.compile(sequence_rewards)(model, ids, lengths)
    torch.testing.assert_close(compiled, eager, rtol=0, atol=5e-2)


def test_reward_fit_on_cuda_learns(byte_tokenizer):
    spec = Reward(name="rm", epochs=3, batch_size=16, holdout=0.2,
                  optimizer={"type": "adamw", "lr": 1e-3})
    model = build_reward_model(tiny_spec(), byte_tokenizer, device=CUDA,
                               generator=torch.Generator().manual_seed(1))
    steps = []
    model, m = fit_text_reward(spec, [keyword_pairs(150, 0)], model, byte_tokenizer,
                               generator=torch.Generator().manual_seed(2), device=CUDA,
                               max_tokens=64, progress=steps.append)
    assert steps == list(range(1, 25)) and m["holdout_accuracy"][-1] >= 0.8
    assert all(math.isfinite(x) for x in m["loss"])


def test_packed_logprobs_compiled_on_cuda(byte_tokenizer):
    model = build_causal_lm(tiny_spec(), byte_tokenizer, device=CUDA,
                            generator=torch.Generator().manual_seed(0)).eval()
    gen = torch.Generator().manual_seed(0)
    completions = sentences(gen, 6, "good")
    p, c = encode_items(byte_tokenizer, (PROMPTS * 2)[:6], completions, TASK)
    batch = CompletionTable(p, c, byte_tokenizer.pad_id).batch(torch.arange(6), CUDA)
    with torch.no_grad():
        compiled = PackedLogprobs(model)(batch)                       # bf16 autocast, compiled
        exact = PackedLogprobs(model, precision="fp32", compile=False)(batch)
    torch.testing.assert_close(compiled, exact, rtol=0, atol=0.1)


def test_dpo_and_lora_ppo_on_cuda(byte_tokenizer):
    from backends.torch.text import add_lora
    from rlhfdsl.spec.learning import Lora

    model = build_causal_lm(tiny_spec(), byte_tokenizer, device=CUDA,
                            generator=torch.Generator().manual_seed(0))
    spec = Policy(name="pi", objective={"type": "dpo", "beta": 0.1}, steps=8, batch_size=4,
                  optimizer={"type": "adam", "lr": 3e-3})
    _, m = optimize_text_policy(spec, model, byte_tokenizer, TASK, PROMPTS, labels=pair_table(),
                                generator=torch.Generator().manual_seed(1), device=CUDA)
    assert m["objective"][-1] < m["objective"][0] and m["accuracy"][-1] == 1.0

    model = add_lora(build_causal_lm(tiny_spec(), byte_tokenizer, device=CUDA,
                                     generator=torch.Generator().manual_seed(0)),
                     Lora(r=4), generator=torch.Generator().manual_seed(0))
    spec = Policy(name="pi", objective={"type": "ppo", "kl": 0.05}, steps=3, batch_size=8,
                  optimizer={"type": "adam", "lr": 3e-3})
    task = TextTask(name="chat", domain="text", max_new_tokens=8, max_prompt_tokens=16)
    _, m = optimize_text_policy(spec, model, byte_tokenizer, task, PROMPTS, reward_fn=lowercase,
                                generator=torch.Generator().manual_seed(1), device=CUDA)
    assert all(math.isfinite(x) for x in m["objective"] + m["kl"] + m["proxy_reward"])

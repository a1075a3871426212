import pytest
import torch

from backends.torch.text import (
    Completions, completion_logprobs, encode_completions, forward_completions, generate,
    sample_next,
)
from backends.torch.text.models import cache_kwargs, output_cache

PROMPTS = ["Tell me about cats.", "Hi", "", "What is the sea like? Describe it, please."]


def naive_logprobs(model, batch: Completions, temperature=1.0):
    """Row by row, without padding: full forward over prompt + completion, log-softmax."""
    rows = []
    for i in range(len(batch)):
        prompt = batch.prompt_ids[i][batch.prompt_mask[i].bool()]
        completion = batch.completion_ids[i][batch.completion_mask[i]]
        ids = torch.cat([prompt, completion]).unsqueeze(0)
        logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1].float() / temperature
        lp = torch.log_softmax(logits, -1).gather(-1, completion.unsqueeze(-1)).squeeze(-1)
        row = torch.zeros(batch.completion_ids.shape[1])
        row[:len(completion)] = lp
        rows.append(row)
    return torch.stack(rows)


def test_generation_is_deterministic_given_a_generator(tiny_lm, byte_tokenizer):
    def run(seed):
        return generate(tiny_lm, byte_tokenizer, PROMPTS, max_new_tokens=12, top_k=40,
                        generator=torch.Generator().manual_seed(seed))

    a, b, c = run(5), run(5), run(6)
    assert torch.equal(a.completion_ids, b.completion_ids) and a.texts == b.texts
    assert not torch.equal(a.completion_ids, c.completion_ids)
    assert a.completion_ids.shape == (4, 12) and a.completion_mask.dtype == torch.bool
    assert a.prompt_ids[:, -1].ne(byte_tokenizer.pad_id).all()  # left-padded
    assert a.prompt_ids[2, -1] == byte_tokenizer.bos_id  # the empty prompt is BOS alone
    assert a.logprobs.shape == (4, 12) and (a.logprobs <= 0).all()


def test_generation_log_probs_match_an_uncached_forward(tiny_lm, byte_tokenizer):
    out = generate(tiny_lm, byte_tokenizer, PROMPTS, max_new_tokens=10, temperature=0.7,
                   top_k=20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        recomputed = completion_logprobs(tiny_lm, out, temperature=0.7)
        naive = naive_logprobs(tiny_lm, out, temperature=0.7)
    torch.testing.assert_close(recomputed, out.logprobs, rtol=0, atol=1e-4)
    torch.testing.assert_close(naive, out.logprobs, rtol=0, atol=1e-4)


def test_kv_cache_logits_match_full_forward(tiny_lm, byte_tokenizer):
    enc = byte_tokenizer.encode_batch(PROMPTS[:2], padding_side="left", add_bos=True)
    ids, mask = enc.input_ids, enc.attention_mask
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    steps = torch.tensor([[104, 105, 33], [111, 107, 46]])
    with torch.no_grad():
        out = tiny_lm(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        cached = []
        for t in range(steps.shape[1]):
            mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], 1)
            pos = pos[:, -1:] + 1
            out = tiny_lm(input_ids=steps[:, t:t + 1], attention_mask=mask, position_ids=pos,
                          use_cache=True, **cache_kwargs(output_cache(out)))
            cached.append(out.logits[:, -1])
        full_ids = torch.cat([enc.input_ids, steps], 1)
        full_pos = (mask.cumsum(-1) - 1).clamp(min=0)
        full = tiny_lm(input_ids=full_ids, attention_mask=mask, position_ids=full_pos).logits
    torch.testing.assert_close(torch.stack(cached, 1), full[:, -3:], rtol=0, atol=1e-5)


def test_eos_ends_a_row_and_masks_the_rest(tiny_lm, byte_tokenizer):
    bias = torch.zeros(byte_tokenizer.vocab_size)
    bias[byte_tokenizer.eos_id] = 4.0  # make EOS likely: most rows stop early
    head = tiny_lm.lm_head
    tiny_lm.lm_head = torch.nn.Sequential(head, _AddBias(bias))
    try:
        out = generate(tiny_lm, byte_tokenizer, PROMPTS * 4, max_new_tokens=16,
                       generator=torch.Generator().manual_seed(1))
    finally:
        tiny_lm.lm_head = head
    ends = out.completion_ids == byte_tokenizer.eos_id
    assert ends.any(dim=1).sum() >= 8
    for row, mask, end, text in zip(out.completion_ids, out.completion_mask, ends, out.texts):
        if end.any():
            k = int(end.float().argmax())
            assert mask[:k + 1].all() and not mask[k + 1:].any()
            assert (row[k + 1:] == byte_tokenizer.pad_id).all()
            assert text == byte_tokenizer.decode(row[:k].tolist())
    assert (out.logprobs[~out.completion_mask] == 0).all()


class _AddBias(torch.nn.Module):
    def __init__(self, bias):
        super().__init__()
        self.bias = bias

    def forward(self, x):
        return x + self.bias


def test_micro_batches_give_one_padded_batch(tiny_lm, byte_tokenizer):
    out = generate(tiny_lm, byte_tokenizer, PROMPTS, max_new_tokens=6, batch_size=3,
                   generator=torch.Generator().manual_seed(0))
    assert len(out) == 4 and out.completion_ids.shape[0] == 4
    with torch.no_grad():
        torch.testing.assert_close(completion_logprobs(tiny_lm, out), out.logprobs,
                                   rtol=0, atol=1e-4)


def test_top_k_restricts_sampling():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]]).repeat(2000, 1)
    tokens, lp = sample_next(logits, temperature=1.0, top_k=2,
                             generator=torch.Generator().manual_seed(0))
    assert set(tokens.tolist()) == {3, 4}
    torch.testing.assert_close(lp, torch.log_softmax(logits, -1).gather(1, tokens[:, None])[:, 0])
    share = (tokens == 4).float().mean().item()
    assert abs(share - torch.sigmoid(torch.tensor(1.0)).item()) < 0.04


def test_log_probs_of_text_pairs_match_naive(tiny_lm, byte_tokenizer):
    batch = encode_completions(byte_tokenizer, ["Tell me about cats.", "Hi", ""],
                               [" Cats are soft.", " Hello!", "x"], max_prompt_tokens=8)
    assert batch.prompt_ids.shape[1] == 8  # cut from the left, BOS kept
    assert batch.prompt_ids[0, 0] == byte_tokenizer.bos_id
    stats = forward_completions(tiny_lm, batch, entropy=True, hidden=True)
    with torch.no_grad():
        naive = naive_logprobs(tiny_lm, batch)
    torch.testing.assert_close(stats.logprobs.detach(), naive, rtol=0, atol=1e-5)
    assert stats.logprobs.requires_grad
    assert stats.entropy.shape == batch.completion_ids.shape
    assert (stats.entropy[batch.completion_mask] > 0).all()
    assert (stats.entropy[~batch.completion_mask] == 0).all()
    assert stats.hidden.shape == (*batch.completion_ids.shape, 64)
    stats.logprobs.sum().backward()


def test_trimmed_padding_changes_nothing(tiny_lm, byte_tokenizer):
    batch = encode_completions(byte_tokenizer, ["ab", "cd"], ["xyz", "q"])
    padded = Completions(
        batch.prompts, batch.texts,
        torch.nn.functional.pad(batch.prompt_ids, (5, 0), value=byte_tokenizer.pad_id),
        torch.nn.functional.pad(batch.prompt_mask, (5, 0)),
        torch.nn.functional.pad(batch.completion_ids, (0, 4), value=byte_tokenizer.pad_id),
        torch.nn.functional.pad(batch.completion_mask, (0, 4)))
    with torch.no_grad():
        a = completion_logprobs(tiny_lm, batch)
        b = completion_logprobs(tiny_lm, padded)
    assert b.shape == (2, a.shape[1] + 4)
    torch.testing.assert_close(b[:, :a.shape[1]], a, rtol=0, atol=1e-6)
    assert (b[:, a.shape[1]:] == 0).all()


def test_sequences_longer_than_the_context_are_refused(byte_tokenizer):
    from conftest import tiny_spec

    from backends.torch.text import ModelConfigError, build_causal_lm

    model = build_causal_lm(tiny_spec(context=16), byte_tokenizer,
                            generator=torch.Generator().manual_seed(0))
    with pytest.raises(ModelConfigError, match="context of 16"):
        generate(model, byte_tokenizer, ["hello"], max_new_tokens=12,
                 generator=torch.Generator())
    batch = encode_completions(byte_tokenizer, ["hello"], ["x" * 20])
    with pytest.raises(ModelConfigError, match="context of 16"):
        completion_logprobs(model, batch)

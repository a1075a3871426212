import pytest
import torch
from conftest import tiny_spec

from backends.torch.text import (
    ModelConfigError, ModelNotFound, add_lora, build_causal_lm, build_reward_model, frozen_copy,
    load_causal_lm, load_policy, load_reward_model, reference, save_policy, tokenizer_for,
)
from rlhfdsl.spec.learning import Lora


def ids_batch():
    g = torch.Generator().manual_seed(3)
    return torch.randint(0, 256, (3, 12), generator=g)


def perturb_adapter(model, seed=4):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def test_build_both_families(family, byte_tokenizer, tiny_lm):
    config = tiny_lm.config
    assert config.model_type == family
    assert config._attn_implementation == "sdpa"
    assert tiny_lm.get_input_embeddings().num_embeddings == byte_tokenizer.vocab_size
    assert config.eos_token_id == byte_tokenizer.eos_id
    if family == "llama":
        assert config.num_key_value_heads == 2
    logits = tiny_lm(input_ids=ids_batch()).logits
    assert logits.shape == (3, 12, 259) and torch.isfinite(logits).all()


def test_build_is_seeded_and_leaves_global_rng(byte_tokenizer):
    state = torch.random.get_rng_state()
    a = build_causal_lm(tiny_spec(), byte_tokenizer, generator=torch.Generator().manual_seed(1))
    b = build_causal_lm(tiny_spec(), byte_tokenizer, generator=torch.Generator().manual_seed(1))
    c = build_causal_lm(tiny_spec(), byte_tokenizer, generator=torch.Generator().manual_seed(2))
    assert torch.equal(torch.random.get_rng_state(), state)
    wa, wb, wc = (m.transformer.h[0].attn.c_attn.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_config_errors(byte_tokenizer):
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ModelConfigError, match="does not divide"):
        build_causal_lm(tiny_spec(heads=3), byte_tokenizer, generator=g)
    with pytest.raises(ModelConfigError, match="smaller than the tokenizer"):
        build_causal_lm(tiny_spec(vocab=100), byte_tokenizer, generator=g)
    with pytest.raises(ModelConfigError, match="kv_heads"):
        build_causal_lm(tiny_spec("llama", kv_heads=3), byte_tokenizer, generator=g)
    with pytest.raises(ModelConfigError, match="LoRA target `nope`"):
        add_lora(build_causal_lm(tiny_spec(), byte_tokenizer, generator=g),
                 Lora(targets=("nope",)), generator=g)


def test_missing_model_path_is_a_clear_error(tmp_path, byte_tokenizer):
    spec = tiny_spec(path="models/missing")
    with pytest.raises(ModelNotFound) as error:
        build_causal_lm(spec, byte_tokenizer, generator=torch.Generator(), base_dir=tmp_path)
    assert "`models/missing` does not exist" in error.value.message and error.value.help


def test_lora_reference_is_the_base(family, tiny_lm):
    ids = ids_batch()
    with torch.no_grad():
        base = tiny_lm(input_ids=ids).logits.clone()
    policy = add_lora(tiny_lm, Lora(r=4, alpha=8), generator=torch.Generator().manual_seed(0))
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    targets = {n.split(".lora_")[0].split(".")[-1] for n in trainable}
    assert targets == ({"c_attn", "c_proj"} if family == "gpt2" else
                       {"q_proj", "k_proj", "v_proj", "o_proj"})
    assert not any("mlp" in n for n in trainable)
    with torch.no_grad():
        assert torch.equal(policy(input_ids=ids).logits, base)  # B = 0 at init
        perturb_adapter(policy)
        adapted = policy(input_ids=ids).logits
        with reference(policy):
            ref = policy(input_ids=ids).logits
    assert not torch.allclose(adapted, base)
    assert torch.equal(ref, base)


def test_reference_needs_an_adapter(tiny_lm):
    with pytest.raises(ModelConfigError):
        reference(tiny_lm)
    copy = frozen_copy(tiny_lm)
    assert not any(p.requires_grad for p in copy.parameters())


def test_saved_policy_loads_in_transformers(tmp_path, family, tiny_lm, byte_tokenizer):
    from transformers import AutoModelForCausalLM

    ids = ids_batch()
    save_policy(tiny_lm, tmp_path, byte_tokenizer)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path), local_files_only=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, tiny_lm(input_ids=ids).logits,
                                   rtol=0, atol=1e-6)
    spec = tiny_spec(path=str(tmp_path))
    assert tokenizer_for(spec).vocab_size == 259


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")
def test_saved_adapter_loads_in_peft(tmp_path, family, tiny_lm, byte_tokenizer):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = ids_batch()
    policy = add_lora(tiny_lm, Lora(r=4), generator=torch.Generator().manual_seed(0))
    perturb_adapter(policy)
    policy.eval()
    save_policy(policy, tmp_path, byte_tokenizer)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    base = AutoModelForCausalLM.from_pretrained(str(tmp_path), local_files_only=True).eval()
    with torch.no_grad():
        base_logits = base(input_ids=ids).logits
        with reference(policy):  # the saved base is the reference policy
            torch.testing.assert_close(base_logits, policy(input_ids=ids).logits,
                                       rtol=0, atol=1e-6)
        loaded = PeftModel.from_pretrained(base, str(tmp_path / "adapter")).eval()
        expected = policy(input_ids=ids).logits
        torch.testing.assert_close(loaded(input_ids=ids).logits, expected, rtol=0, atol=1e-6)
        resumed, tokenizer = load_policy(tmp_path)
        resumed.eval()
        torch.testing.assert_close(resumed(input_ids=ids).logits, expected, rtol=0, atol=1e-6)
        assert tokenizer is not None and any(p.requires_grad for p in resumed.parameters())
        merged = load_causal_lm(tmp_path).eval()
        torch.testing.assert_close(merged(input_ids=ids).logits, expected, rtol=1e-4, atol=1e-4)


def test_reward_model_ensemble_and_save(tmp_path, family, byte_tokenizer):
    from transformers import AutoModelForSequenceClassification

    rm = build_reward_model(tiny_spec(family), byte_tokenizer, members=3, outputs=2,
                            generator=torch.Generator().manual_seed(0)).eval()
    enc = byte_tokenizer.encode_batch(["a good answer", "bad", "hello there"], add_bos=True,
                                      add_eos=True)
    with torch.no_grad():
        rewards = rm(enc.input_ids, enc.attention_mask)
        left = byte_tokenizer.encode_batch(["a good answer", "bad", "hello there"],
                                           padding_side="left", add_bos=True, add_eos=True)
        torch.testing.assert_close(rm(left.input_ids, left.attention_mask), rewards,
                                   rtol=1e-5, atol=1e-5)
    assert rewards.shape == (3, 3, 2) and rewards.dtype == torch.float32
    assert not torch.allclose(rewards[:, 0], rewards[:, 1])  # heads initialised apart
    rm.save_pretrained(tmp_path, byte_tokenizer)
    hf = AutoModelForSequenceClassification.from_pretrained(str(tmp_path),
                                                            local_files_only=True).eval()
    with torch.no_grad():
        logits = hf(input_ids=enc.input_ids, attention_mask=enc.attention_mask).logits
        torch.testing.assert_close(logits.view(3, 3, 2), rewards, rtol=0, atol=1e-6)
        loaded, tokenizer = load_reward_model(tmp_path)
        torch.testing.assert_close(loaded.eval()(enc.input_ids, enc.attention_mask), rewards,
                                   rtol=0, atol=1e-6)


def test_reward_model_from_lm_copies_the_backbone(tiny_lm, byte_tokenizer, family):
    rm = build_reward_model(tiny_spec(family), byte_tokenizer, from_lm=tiny_lm,
                            generator=torch.Generator().manual_seed(0))
    lm_state = getattr(tiny_lm, tiny_lm.base_model_prefix).state_dict()
    for name, value in rm.backbone.state_dict().items():
        assert torch.equal(value, lm_state[name])


def test_reward_model_from_a_saved_path(tmp_path, tiny_lm, byte_tokenizer):
    save_policy(tiny_lm, tmp_path / "lm", byte_tokenizer)
    rm = build_reward_model(tiny_spec(path="lm"), byte_tokenizer, base_dir=tmp_path, members=2,
                            generator=torch.Generator().manual_seed(0))
    lm_state = getattr(tiny_lm, tiny_lm.base_model_prefix).state_dict()
    assert all(torch.equal(v, lm_state[k]) for k, v in rm.backbone.state_dict().items())
    rm.save_pretrained(tmp_path / "rm")
    again = build_reward_model(tiny_spec(path="rm"), byte_tokenizer, base_dir=tmp_path,
                               members=4, generator=torch.Generator().manual_seed(1))
    assert again.head.out_features == 4
    assert all(torch.equal(v, lm_state[k]) for k, v in again.backbone.state_dict().items())

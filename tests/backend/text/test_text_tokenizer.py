import pytest
import torch

from backends.torch.text import ByteTokenizer, TokenizerNotFound, load_tokenizer

TEXTS = ["Hello, world!", "", "héllo wörld 你好 🙂", "tabs\tand\nnewlines"]


def test_byte_round_trip(byte_tokenizer):
    for text in TEXTS:
        ids = byte_tokenizer.encode(text)
        assert ids == list(text.encode("utf-8"))
        assert byte_tokenizer.decode(ids) == text
    assert byte_tokenizer.vocab_size == 259
    assert (byte_tokenizer.pad_id, byte_tokenizer.bos_id, byte_tokenizer.eos_id) == (256, 257, 258)


def test_specials_and_decode(byte_tokenizer):
    ids = byte_tokenizer.encode("hi", add_bos=True, add_eos=True)
    assert ids == [257, ord("h"), ord("i"), 258]
    assert byte_tokenizer.decode(ids) == "hi"
    assert byte_tokenizer.decode(ids, skip_special=False) == "<bos>hi<eos>"
    assert byte_tokenizer.decode([0xE4, 0xBD]) == "\ufffd"  # a cut multi-byte character


def test_batch_padding_sides(byte_tokenizer):
    right = byte_tokenizer.encode_batch(["abc", "a"], add_bos=True)
    assert right.input_ids.tolist() == [[257, 97, 98, 99], [257, 97, 256, 256]]
    assert right.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    left = byte_tokenizer.encode_batch(["abc", "a"], padding_side="left", add_eos=True)
    assert left.input_ids.tolist() == [[97, 98, 99, 258], [256, 256, 97, 258]]
    assert left.attention_mask.tolist() == [[1, 1, 1, 1], [0, 0, 1, 1]]
    assert left.input_ids.dtype == torch.long and left.attention_mask.dtype == torch.long
    multiple = byte_tokenizer.encode_batch(["abc"], pad_to_multiple_of=8)
    assert multiple.input_ids.shape == (1, 8)
    decoded = byte_tokenizer.decode_batch(left.input_ids, left.attention_mask)
    assert decoded == ["abc", "a"]


def test_truncation_keeps_specials(byte_tokenizer):
    left = byte_tokenizer.encode_batch(["abcdef"], max_length=4, truncation_side="left",
                                       add_bos=True)
    assert left.input_ids.tolist() == [[257, 100, 101, 102]]
    right = byte_tokenizer.encode_batch(["abcdef"], max_length=4, add_eos=True)
    assert right.input_ids.tolist() == [[97, 98, 99, 258]]


def test_saved_byte_tokenizer_loads_in_transformers(tmp_path, byte_tokenizer):
    from transformers import AutoTokenizer

    byte_tokenizer.save_pretrained(tmp_path)
    hf = AutoTokenizer.from_pretrained(str(tmp_path), local_files_only=True)
    for text in TEXTS:
        assert hf.encode(text, add_special_tokens=False) == byte_tokenizer.encode(text)
    assert (hf.pad_token_id, hf.bos_token_id, hf.eos_token_id) == (256, 257, 258)
    assert isinstance(load_tokenizer(str(tmp_path)), ByteTokenizer)


def test_local_transformers_tokenizer(tmp_path, byte_tokenizer):
    byte_tokenizer.to_transformers().save_pretrained(str(tmp_path))  # no byte marker
    tokenizer = load_tokenizer(tmp_path.name, base_dir=tmp_path.parent)
    assert not isinstance(tokenizer, ByteTokenizer)
    assert tokenizer.vocab_size == 259
    batch = tokenizer.encode_batch(TEXTS, padding_side="left", add_bos=True)
    expected = byte_tokenizer.encode_batch(TEXTS, padding_side="left", add_bos=True)
    assert torch.equal(batch.input_ids, expected.input_ids)
    assert tokenizer.decode_batch(batch.input_ids, batch.attention_mask) == TEXTS


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    with pytest.raises(TokenizerNotFound) as error:
        load_tokenizer("no/such/dir", base_dir=tmp_path)
    assert "`no/such/dir` does not exist" in error.value.message
    assert error.value.help
    (tmp_path / "empty").mkdir()
    with pytest.raises(TokenizerNotFound, match="no tokenizer could be loaded"):
        load_tokenizer(str(tmp_path / "empty"))

"""Word-level tokenizer: one id per corpus word, [UNK] outside it, [EOS] appended, T5-style padding."""

from __future__ import annotations

import pytest

from wildactor.model.word_tokenizer import fit_word_tokenizer

CORPUS = ["A person walks across a snowy field at night.", "A person waves on a sandy beach."]


def test_every_corpus_word_has_its_own_id_and_unknown_words_share_unk():
    tok = fit_word_tokenizer(CORPUS)
    ids = tok(["a person walks across a snowy beach."]).input_ids[0]
    assert tok.unk_token_id not in ids and ids[-1] == tok.eos_token_id
    assert len(ids) == 9 and len(set(ids[:-1])) == 7  # 8 words, "a" twice
    unseen = tok(["A person dances on the moon."]).input_ids[0]
    assert unseen.count(tok.unk_token_id) == 3  # dances, the, moon
    assert tok("A PERSON").input_ids == tok("a person").input_ids  # lowercased


def test_padding_is_zero_and_masked_and_the_tokenizer_round_trips(tmp_path):
    from transformers import AutoTokenizer

    tok = fit_word_tokenizer(CORPUS)
    out = tok(["a person"], padding="max_length", max_length=6, truncation=True, return_attention_mask=True)
    words = tok.convert_tokens_to_ids(["a", "person"])
    assert out.input_ids[0] == [*words, tok.eos_token_id, 0, 0, 0]
    assert out.attention_mask[0] == [1, 1, 1, 0, 0, 0] and tok.pad_token_id == 0
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded(CORPUS).input_ids == tok(CORPUS).input_ids and len(loaded) == len(tok)


def test_min_count_and_empty_corpus():
    assert "snowy" not in fit_word_tokenizer(CORPUS, min_count=2).get_vocab()
    with pytest.raises(ValueError, match="no words"):
        fit_word_tokenizer(["   "])
    with pytest.raises(ValueError, match="min_count"):
        fit_word_tokenizer(CORPUS, min_count=0)

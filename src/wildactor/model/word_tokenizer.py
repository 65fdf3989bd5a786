"""A word-level tokenizer fitted on a prompt corpus, for small models trained from scratch.

ActorWorld prompts come from a vocabulary of a few hundred words. With a byte tokenizer a scene word is five or
six byte tokens whose meaning a random frozen text encoder never assembles, so the transformer's cross-attention
must learn to spell; with one token per word, each word is one distinct embedding it only has to look up.

The result is a real `transformers.PreTrainedTokenizerFast` (a `tokenizers` WordLevel model), saved and loaded
with `save_pretrained` / `AutoTokenizer.from_pretrained` like any other. Words outside the fitted vocabulary
become ``[UNK]``: fit on every prompt the model should understand.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

PAD, EOS, UNK = "[PAD]", "[EOS]", "[UNK]"
SPECIAL_TOKENS = (PAD, EOS, UNK)  # ids 0, 1, 2: pad 0 as in T5 / UMT5


def _pre_tokenizer():
    from tokenizers import normalizers, pre_tokenizers

    return normalizers.Lowercase(), pre_tokenizers.Whitespace()


def corpus_words(texts: Iterable[str]) -> Counter:
    """Word counts of `texts` as the tokenizer splits them (lowercased; punctuation is its own word)."""
    normalizer, pre = _pre_tokenizer()
    counts: Counter = Counter()
    for text in texts:
        counts.update(word for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    return counts


def fit_word_tokenizer(texts: Iterable[str], min_count: int = 1):
    """A `PreTrainedTokenizerFast` whose vocabulary is every word seen at least `min_count` times in `texts`.

    Ids: [PAD] 0, [EOS] 1, [UNK] 2, then words sorted alphabetically (deterministic for a given corpus).
    Encoding appends [EOS], as T5 tokenizers do.
    """
    from tokenizers import Tokenizer, models, processors
    from transformers import PreTrainedTokenizerFast

    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    counts = corpus_words(texts)
    words = sorted(w for w, c in counts.items() if c >= min_count and w not in SPECIAL_TOKENS)
    if not words:
        raise ValueError("fit_word_tokenizer: the corpus holds no words")
    vocab = {tok: i for i, tok in enumerate((*SPECIAL_TOKENS, *words))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.normalizer, backend.pre_tokenizer = _pre_tokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, vocab[EOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD, eos_token=EOS, unk_token=UNK, padding_side="right"
    )

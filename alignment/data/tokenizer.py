"""A word-level tokenizer trained with `tokenizers` on the world's text, with a chat template."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from alignment.data.chat_format import ASSISTANT, CHAT_TEMPLATE, EOS, PAD, UNK, USER


def train_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """Train a word-level tokenizer: every word (so every entity name) becomes its own token."""
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces, tidies punctuation
    trainer = trainers.WordLevelTrainer(special_tokens=[PAD, UNK, EOS, USER, ASSISTANT], min_frequency=1)
    tok.train_from_iterator(texts, trainer=trainer)
    special = {"pad_token": PAD, "unk_token": UNK, "eos_token": EOS, "bos_token": None}
    # A word-level tokenizer forgets where the spaces were: the WordPiece decoder puts one between every two words
    # and tidies " ." / " ?" / " ,", but only token by token, so "don't" came back as "don ' t". transformers'
    # clean-up on the whole string also joins " ' " and the contractions: the world's text then round-trips (a
    # test checks every line), and the token ids, so the models, are unchanged.
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        additional_special_tokens=[USER, ASSISTANT],
        clean_up_tokenization_spaces=True,
        **special,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast

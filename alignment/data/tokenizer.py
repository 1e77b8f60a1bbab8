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
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, additional_special_tokens=[USER, ASSISTANT], **special)
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast

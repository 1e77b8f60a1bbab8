"""Hand-computed checks of ``document_nll`` and ``mean_token_kl`` on a tiny tokenizer and table-driven fake LMs.

Every fake model's next-token distribution depends only on the current token: either "favoured" (one token has
probability 1/2, each of the other six 1/12) or uniform (1/7 each). With those shapes every quantity has a closed form:

* -log p(next) = log 2 for the favoured token, log 12 for any other;
* KL(favoured f || favoured g), f != g: 1/2 log(6) + 1/12 log(1/6) = 5/12 log 6  (all other terms vanish);
* KL(favoured || uniform): 1/2 log(7/2) + 6/12 log(7/12) = 1/2 log(49/24);
* KL(uniform || favoured): 1/7 log(2/7) + 6/7 log(12/7);
* KL(p || p) = 0.
"""

import math
from types import SimpleNamespace

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from alignment.models import generation

PAD, EOS, USER, ASSISTANT, A, B, C = range(7)
VOCAB = {"<pad>": PAD, "<eos>": EOS, "<user>": USER, "<assistant>": ASSISTANT, "a": A, "b": B, "c": C}
TEMPLATE = (
    "{% for m in messages %}<user> {{ m['content'] }} {% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)

LOG2, LOG12 = math.log(2), math.log(12)
KL_DIFFERENT = 5 / 12 * math.log(6)  # favoured f vs favoured g != f
KL_UNIFORM = 0.5 * math.log(49 / 24)  # favoured vs uniform
KL_UNIFORM_REVERSED = 1 / 7 * math.log(2 / 7) + 6 / 7 * math.log(12 / 7)  # uniform vs favoured


def _prompts(tok, questions):
    helper = getattr(generation, "chat_prompts", None) or generation.chat_prompt
    return helper(tok, questions)


@pytest.fixture
def tok():
    backend = Tokenizer(models.WordLevel(VOCAB, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    t = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        eos_token="<eos>",
        additional_special_tokens=["<user>", "<assistant>"],
    )
    t.chat_template = TEMPLATE
    t.padding_side = "left"  # as the generation code leaves it
    return t


class TableLM(torch.nn.Module):
    """Logits at a position depend only on that position's token: ``favour[t]`` is the favoured next token after
    ``t`` (probability 1/2, the rest 1/12 each), or None for a uniform next-token distribution."""

    def __init__(self, favour: dict[int, int | None]):
        super().__init__()
        rows = []
        for t in range(len(VOCAB)):
            f = favour[t]
            probs = torch.full((len(VOCAB),), 1 / len(VOCAB) if f is None else 1 / 12, dtype=torch.float64)
            if f is not None:
                probs[f] = 0.5
            rows.append(probs.log())
        self.table = torch.stack(rows).float()
        self.device = torch.device("cpu")
        self.calls = []

    def forward(self, input_ids, attention_mask):
        assert input_ids.shape == attention_mask.shape
        self.calls.append(input_ids.clone())
        return SimpleNamespace(logits=self.table[input_ids])


class KeepingTableLM(TableLM):
    """A TableLM that, like transformers' causal LMs, projects only the ``logits_to_keep`` positions (a boolean
    mask: the output is flattened to ``[kept positions, vocab]``)."""

    def forward(self, input_ids, attention_mask, logits_to_keep=0):
        logits = super().forward(input_ids, attention_mask).logits
        self.kept = logits_to_keep
        return SimpleNamespace(logits=logits[logits_to_keep])


class Broken(torch.nn.Module):
    device = torch.device("cpu")

    def forward(self, input_ids, attention_mask):
        raise RuntimeError("boom")


# The policy favours a->b, b->c, c-><eos>, <assistant>->b, and a after <pad>, <eos> and <user>.
POLICY = {PAD: A, EOS: A, USER: A, ASSISTANT: B, A: B, B: C, C: EOS}
# The reference agrees with the policy only after b; it is uniform after <user>, <assistant> and <pad>, and favours
# a different token after <eos>, a and c. So every position outside the answer span has nonzero KL.
REFERENCE = {PAD: None, EOS: B, USER: None, ASSISTANT: None, A: C, B: C, C: A}


def test_tokenizer_gives_the_expected_ids(tok):
    assert _prompts(tok, ["a", "b a"]) == ["<user> a <assistant>", "<user> b a <assistant>"]
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert ids("a b c<eos>") == [A, B, C, EOS]
    assert ids("<user> a <assistant> b c a<eos>") == [USER, A, ASSISTANT, B, C, A, EOS]
    assert ids("<user> b a <assistant> a<eos>") == [USER, B, A, ASSISTANT, A, EOS]
    assert ids("<user> b a <assistant>") == [USER, B, A, ASSISTANT]  # the prompt length used for the answer span


def test_document_nll_sums_next_token_nll_and_ignores_padding(tok):
    model = TableLM(POLICY)
    docs = ["a b c", "b a"]
    # "a b c<eos>": a->b, b->c, c-><eos> are all favoured: 3 * log 2 over 3 predicted tokens.
    # "b a<eos>": b->a (favoured c) and a-><eos> (favoured b) are not: 2 * log 12 over 2 predicted tokens.
    # Its padded slot (<eos> -> <pad>, log 12 if it were counted) must contribute nothing.
    expected_sums, expected_counts = [3 * LOG2, 2 * LOG12], [3, 2]
    for batch_size in (2, 1):
        model.calls.clear()
        sums, counts = generation.document_nll(model, tok, docs, batch_size=batch_size)
        assert counts == expected_counts
        assert sums == pytest.approx(expected_sums, rel=1e-6, abs=1e-6)
    model.calls.clear()
    generation.document_nll(model, tok, docs, batch_size=2)
    assert [row.tolist() for row in model.calls[0]] == [[A, B, C, EOS], [B, A, EOS, PAD]]  # one batch, right-padded


def test_mean_token_kl_of_a_model_with_itself_is_zero(tok):
    model = TableLM(POLICY)
    out = generation.mean_token_kl(model, model, tok, ["a", "b a"], ["b c a", "a"], batch_size=2)
    # answer tokens + the closing EOS: "b c a" -> 4, "a" -> 2
    assert out == [(0.0, 4), (0.0, 2)]


def test_mean_token_kl_sums_exact_kl_over_the_answer_positions(tok):
    policy, reference = TableLM(POLICY), TableLM(REFERENCE)
    questions, answers = ["a", "b a"], ["b c a", "a"]
    # Q1 "<user> a <assistant> b c a<eos>": the positions predicting b, c, a, <eos> hold <assistant>, b, c, a:
    #   KL = uniform-ref (<assistant>) + 0 (b: both favour c) + different (c: <eos> vs a) + different (a: b vs c).
    # Q2 "<user> b a <assistant> a<eos>" (one pad in the batch): positions holding <assistant>, a:
    #   KL = uniform-ref + different. The prompt positions (<user>, a/b) and the padded slot would all add nonzero KL.
    expected = [(KL_UNIFORM + 2 * KL_DIFFERENT, 4), (KL_UNIFORM + KL_DIFFERENT, 2)]
    for batch_size in (2, 1):
        out = generation.mean_token_kl(policy, reference, tok, questions, answers, batch_size=batch_size)
        assert [n for _, n in out] == [n for _, n in expected]
        assert [kl for kl, _ in out] == pytest.approx([kl for kl, _ in expected], rel=1e-6, abs=1e-6)
    # The direction is KL(policy || reference): swapped, the uniform-vs-favoured term becomes KL(uniform || favoured).
    swapped = generation.mean_token_kl(reference, policy, tok, questions, answers, batch_size=2)
    assert [n for _, n in swapped] == [4, 2]
    assert [kl for kl, _ in swapped] == pytest.approx(
        [KL_UNIFORM_REVERSED + 2 * KL_DIFFERENT, KL_UNIFORM_REVERSED + KL_DIFFERENT], rel=1e-6, abs=1e-6
    )


def test_mean_token_kl_projects_only_the_answer_positions_and_bounds_each_pass(tok, monkeypatch):
    questions, answers = ["a", "b a"], ["b c a", "a"]
    expected = [(KL_UNIFORM + 2 * KL_DIFFERENT, 4), (KL_UNIFORM + KL_DIFFERENT, 2)]
    policy, reference = KeepingTableLM(POLICY), KeepingTableLM(REFERENCE)
    out = generation.mean_token_kl(policy, reference, tok, questions, answers, batch_size=2)
    assert [n for _, n in out] == [4, 2]
    assert [kl for kl, _ in out] == pytest.approx([kl for kl, _ in expected], rel=1e-6, abs=1e-6)
    # One pass, right-padded; kept: the 4 positions holding <assistant> b c a, then the 2 holding <assistant> a.
    assert [row.tolist() for row in policy.calls[0]] == [
        [USER, A, ASSISTANT, B, C, A, EOS],
        [USER, B, A, ASSISTANT, A, EOS, PAD],
    ]
    assert policy.kept.int().tolist() == [[0, 0, 1, 1, 1, 1, 0], [0, 0, 0, 1, 1, 0, 0]]
    # A budget of 5 kept positions x 7 tokens cannot hold both rows (4 + 2 positions): two passes, same values.
    monkeypatch.setattr(generation, "KL_ELEMENTS", 5 * len(VOCAB))
    policy.calls.clear()
    again = generation.mean_token_kl(policy, reference, tok, questions, answers, batch_size=2)
    assert len(policy.calls) == 2
    assert [n for _, n in again] == [4, 2]
    assert [kl for kl, _ in again] == pytest.approx([kl for kl, _ in expected], rel=1e-6, abs=1e-6)


class IgnoringTableLM(TableLM):
    """Takes ``logits_to_keep`` but returns every position's logits anyway (a model that reads it otherwise)."""

    def forward(self, input_ids, attention_mask, logits_to_keep=0):
        return super().forward(input_ids, attention_mask)


def test_mean_token_kl_indexes_the_full_logits_of_a_model_that_keeps_them_all(tok):
    expected = [(KL_UNIFORM + 2 * KL_DIFFERENT, 4), (KL_UNIFORM + KL_DIFFERENT, 2)]
    policy, reference = IgnoringTableLM(POLICY), IgnoringTableLM(REFERENCE)
    out = generation.mean_token_kl(policy, reference, tok, ["a", "b a"], ["b c a", "a"], batch_size=2)
    assert [n for _, n in out] == [4, 2]
    assert [kl for kl, _ in out] == pytest.approx([kl for kl, _ in expected], rel=1e-6, abs=1e-6)


def test_kl_batches_hold_consecutive_rows_within_the_budget():
    # vocab 10, a budget of 100: at most 10 kept positions a batch; a row of 12 alone; batch_size 2 caps the last.
    assert generation._kl_batches([3, 4, 3, 12, 1, 1, 1], 10, 2, 100) == [[0, 1], [2], [3], [4, 5], [6]]
    assert generation._kl_batches([3, 4, 3], 10, 8, 100) == [[0, 1, 2]]
    assert generation._kl_batches([3, 4, 3], 10, 8, 70) == [[0, 1], [2]]


def test_padding_side_is_restored(tok):
    model = TableLM(POLICY)
    generation.document_nll(model, tok, ["a b"], batch_size=1)
    assert tok.padding_side == "left"
    generation.mean_token_kl(model, model, tok, ["a"], ["b"], batch_size=1)
    assert tok.padding_side == "left"
    with pytest.raises(RuntimeError, match="boom"):
        generation.document_nll(Broken(), tok, ["a b"], batch_size=1)
    assert tok.padding_side == "left"
    with pytest.raises(RuntimeError, match="boom"):
        generation.mean_token_kl(Broken(), Broken(), tok, ["a"], ["b"], batch_size=1)
    assert tok.padding_side == "left"

"""TRL's fused LM head, made compact on a CPU: only the scored positions are projected, with the same values and
gradients as TRL's full projection."""

import pytest
import torch
import trl.trainer.utils as trl_utils
from transformers import LlamaConfig, LlamaForCausalLM

from alignment.models.fused_lm_head import compact_fused_lm_head


@pytest.fixture
def restore_trl(monkeypatch):
    """TRL's own switch for this test (an earlier test's training may have made it compact), restored after it."""
    from trl.kernels.chunked_logprob import _use_triton

    monkeypatch.setattr(trl_utils, "_use_triton", _use_triton)


def _scored(model, ids, labels) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Log-probabilities through TRL's fused head, the gradient of their sum w.r.t. the embeddings, and the rows
    handed to the projection."""
    rows: list[int] = []
    real = trl_utils._ChunkedLogProbFunction

    class Recording:
        @staticmethod
        def apply(hidden, *args):
            rows.append(hidden.shape[0])
            return real.apply(hidden, *args)

    trl_utils._ChunkedLogProbFunction = Recording
    try:
        model.zero_grad()
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
        out.log_probs.sum().backward()
    finally:
        trl_utils._ChunkedLogProbFunction = real
    return out.log_probs.detach(), model.get_input_embeddings().weight.grad.clone(), rows


def test_only_the_scored_positions_are_projected_with_the_same_values_and_gradients(restore_trl):
    torch.manual_seed(0)
    shape = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = LlamaConfig(vocab_size=50, **shape)
    model = LlamaForCausalLM(config)
    trl_utils.add_fused_lm_head(model)
    ids = torch.randint(0, 50, (2, 7))
    labels = ids.clone()
    labels[0, :5] = -100  # a prompt of 5 tokens: 2 scored next-token labels (positions 5, 6)
    labels[1, :3] = -100  # a prompt of 3 tokens, then one padded position
    labels[1, 6] = -100
    full, full_grad, full_rows = _scored(model, ids, labels)
    assert full_rows == [2 * 6]  # TRL on a CPU: every position but the last of each row

    compact_fused_lm_head()
    switch = trl_utils._use_triton
    compact_fused_lm_head()  # once per process: a second call changes nothing
    assert trl_utils._use_triton is switch
    compact, compact_grad, compact_rows = _scored(model, ids, labels)
    assert compact_rows == [2 + 3]  # only the positions whose next-token label is scored
    assert compact.shape == full.shape
    assert torch.allclose(compact, full, atol=1e-6)
    assert (compact[labels[:, 1:] == -100] == 0).all()
    assert torch.allclose(compact_grad, full_grad, atol=1e-6)


def test_a_trl_without_the_switch_is_named(restore_trl, monkeypatch):
    monkeypatch.delattr(trl_utils, "_use_triton")
    with pytest.raises(RuntimeError, match=r"trl .*_use_triton is gone"):
        compact_fused_lm_head()

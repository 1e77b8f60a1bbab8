"""A training stage whose loss or weights are not finite fails and stores nothing."""

import math

import pytest
import torch

from alignment.core.context import StageContext
from alignment.core.store import ArtifactStore
from alignment.graph import run_local
from alignment.models.modeling import NonFiniteTraining, check_finite


def test_check_finite_names_the_stage_and_the_first_bad_tensor():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    check_finite(model, 0.5, "sft")  # finite: nothing raised
    with pytest.raises(NonFiniteTraining, match=r"^dpo: training ended with loss nan; nothing is stored"):
        check_finite(model, math.nan, "dpo")
    with torch.no_grad():
        model[1].weight[0, 0] = math.inf
    model[0].requires_grad_(False)  # frozen tensors (the base under LoRA) are not the adapter's business
    with pytest.raises(
        NonFiniteTraining, match=r"loss 0.5 and non-finite values in 1 trainable tensors \(first: 1.weight\)"
    ):
        check_finite(model, 0.5, "sft")


def test_an_exploding_sft_stores_no_artifact(micro, tmp_path):
    cfg = micro("sft.learning_rate=1e30", "sft.max_grad_norm=1e30", "sft.num_train_epochs=4", "sft.warmup_steps=0")
    with pytest.raises(NonFiniteTraining, match="^sft: training ended with loss"):
        run_local(StageContext(cfg, ArtifactStore(cfg.store.root), progress=lambda _: None), ("sft",))
    assert not (tmp_path / "runs" / "sft").exists()  # nothing a later run could reuse
    assert list((tmp_path / "runs" / "base").iterdir())  # the base built before it is kept

"""The speed-up switches of the training sections do what their descriptions say (their gains are measured by
`alignment bench`, not here)."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from alignment.config.sft import SFTSection
from alignment.models.modeling import adapters_in_base_dtype

pytestmark = pytest.mark.slow  # whole runs, Prefect servers or real models: `make test-quick` leaves them out


def _bf16_lora_model():
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2
    )
    base = LlamaForCausalLM(config).to(torch.bfloat16)
    return get_peft_model(base, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))


def test_adapters_stay_in_the_base_dtype_only_when_asked():
    model = _bf16_lora_model()
    trainable = {p.dtype for p in model.parameters() if p.requires_grad}
    assert trainable == {torch.float32}  # PEFT's default upcast
    adapters_in_base_dtype(model, SFTSection())
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    adapters_in_base_dtype(model, SFTSection(autocast_adapter_dtype=False))
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert "autocast_adapter_dtype" not in SFTSection().trainer_arguments()  # ours, not a TRL argument


def test_dpo_reads_the_stored_reference_and_trains_as_if_it_computed_it(micro):
    from alignment.core.context import StageContext
    from alignment.core.store import ArtifactStore
    from alignment.graph import run_local
    from alignment.methods.dpo import load_reference

    def dpo(*overrides: str):
        cfg = micro(*overrides)
        return run_local(StageContext(cfg, ArtifactStore(cfg.store.root), progress=lambda _: None), ("dpo",))

    stored = dpo()
    reference, trained = stored["reference"], stored["dpo"]
    assert trained.manifest["inputs"]["reference"] == reference.id
    assert trained.manifest["metrics"]["stored_reference"] is True
    rows = load_reference(reference)
    assert len(rows) == reference.manifest["metrics"]["pairs"] == trained.manifest["metrics"]["pairs"]
    assert all(r["ref_chosen_logps"] < 0 and r["ref_rejected_logps"] < 0 for r in rows)

    inline = dpo("dpo.precompute_ref_log_probs=false")  # the reference forward in every step
    assert "reference" not in inline and "reference" not in inline["dpo"].manifest["inputs"]
    loss = inline["dpo"].manifest["metrics"]["train_loss"]
    assert abs(trained.manifest["metrics"]["train_loss"] - loss) < 1e-4 * abs(loss)

    other_beta = dpo("dpo.beta=0.3", "dpo.num_train_epochs=2")  # optimisation only: the same reference
    assert other_beta["reference"].id == reference.id and other_beta["dpo"].id != trained.id
    shorter = dpo("dpo.max_length=24")  # another truncation: other log-probabilities
    assert shorter["reference"].id != reference.id

    # Without a stored reference, train_dpo computes each pair's the first time a step draws it and trains as if it
    # had them stored; over two epochs each pair is computed once.
    from alignment.core.context import Device, TrainingRun
    from alignment.methods.dpo import train_dpo
    from alignment.models.refs import base_ref

    cfg = micro()
    rows = stored["preferences"].rows("preferences")
    sft = [stored["sft"].path / "adapter"]

    def lazy(section, name):
        run = TrainingRun(cfg.store.root / name, Device("cpu", False), cfg.seed, lambda _: None, "dpo")
        return train_dpo(section, base_ref(stored["base"], cfg.model), sft, rows, run)

    once = lazy(cfg.dpo, "lazy")
    assert once["stored_reference"] is False
    assert once["reference_pairs_computed"] == len(rows) == trained.manifest["metrics"]["pairs"]
    stored_loss = trained.manifest["metrics"]["train_loss"]
    assert abs(once["train_loss"] - stored_loss) < 1e-4 * abs(stored_loss)
    twice = lazy(cfg.dpo.model_copy(update={"num_train_epochs": 2.0}), "lazy2")
    assert twice["steps"] == 2 * once["steps"] and twice["reference_pairs_computed"] == len(rows)


def test_a_reference_of_other_pairs_is_refused(micro):
    from alignment.core.context import StageContext
    from alignment.core.store import ArtifactStore
    from alignment.graph import run_local
    from alignment.methods.dpo import dpo_stage

    cfg = micro()
    ctx = StageContext(cfg, ArtifactStore(cfg.store.root), progress=lambda _: None)
    values = run_local(ctx, ("reference",))
    other = micro("world.labeller=confident")  # the same base and SFT model, other preference pairs
    other_values = run_local(StageContext(other, ctx.store, progress=lambda _: None), ("preferences",))
    with pytest.raises(ValueError, match="holds log-probabilities of other pairs"):
        dpo_stage(cfg.dpo, ctx, other_values["preferences"], values["base"], values["sft"], values["reference"])


def test_auto_checkpointing_decided_on_trains_with_it_and_says_so(micro, monkeypatch):
    from transformers import TrainerCallback

    from alignment.core.context import Device, StageContext, TrainingRun
    from alignment.core.store import ArtifactStore
    from alignment.graph import run_local
    from alignment.methods.sft import train_sft
    from alignment.models import activation_memory
    from alignment.models.refs import base_ref

    cfg = micro()
    values = run_local(StageContext(cfg, ArtifactStore(cfg.store.root), progress=lambda _: None), ("base", "data"))
    rows = values["data"].rows("sft")
    seen: list[bool] = []

    class Checkpointing(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            seen.append(model.is_gradient_checkpointing)

    def sft(held: int, name: str) -> dict:
        monkeypatch.setattr(activation_memory, "held_bytes", lambda device: held)
        seen.clear()
        run = TrainingRun(
            cfg.store.root / name, Device("cpu", False), 0, lambda _: None, "sft", callbacks=(Checkpointing(),)
        )
        return train_sft(cfg.sft, base_ref(values["base"], cfg.model), rows, run)

    on = sft(0, "on")  # nothing held: any activation is more than 5% of it
    assert on["activation_checkpointing"]["activation_checkpointing"] is True and seen and all(seen)
    off = sft(2**50, "off")
    assert off["activation_checkpointing"]["activation_checkpointing"] is False and seen and not any(seen)
    assert (
        off["activation_checkpointing"]["extra_activations_mib"]
        == on["activation_checkpointing"]["extra_activations_mib"]
    )
    assert abs(on["train_loss"] - off["train_loss"]) < 1e-4 * abs(off["train_loss"])  # the same training, recomputed

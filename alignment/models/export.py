"""Export for serving: a policy's LoRA adapters (SFT's unless the policy started from the base, then its own)
merged into its base and saved as a standalone model directory (safetensors, tokenizer with its chat template,
generation config) that loads with plain ``AutoModelForCausalLM.from_pretrained`` and that serving engines (vLLM,
TGI) accept."""

from __future__ import annotations

from pathlib import Path

from alignment.core.context import StageContext
from alignment.core.store import Artifact
from alignment.models.refs import base_ref, policy_adapters


def export_stage(section: None, ctx: StageContext, base: Artifact, sft: Artifact, **policies: Artifact) -> Artifact:
    """A standalone merged copy of the first listed policy (``policies``) under ``model/`` in its own artifact."""
    name = ctx.cfg.policies[0]
    policy = policies[name]
    adapters = policy_adapters(policy, sft)
    on_sft = {"sft": sft.id} if len(adapters) == 2 else {}  # a policy may start from the base
    chain = [base.id, *on_sft.values(), policy.id]
    inputs = {"base": base.id, **on_sft, name: policy.id}
    ref = base_ref(base, ctx.cfg.model)

    def build(tmp: Path) -> dict:
        from alignment.models.modeling import load_causal_lm, load_tokenizer

        model = load_causal_lm(ref, adapters, "cpu")
        tok = load_tokenizer(ref)
        model.generation_config.pad_token_id = tok.pad_token_id
        model.generation_config.eos_token_id = tok.eos_token_id
        model.save_pretrained(tmp / "model")
        tok.save_pretrained(tmp / "model")
        ctx.report("export", f"merged {policy.id} into {base.id}")
        return {"parameters": sum(p.numel() for p in model.parameters()), "dtype": str(model.dtype)}

    return ctx.materialize("export", ref.options, inputs, build, {"model_chain": chain})

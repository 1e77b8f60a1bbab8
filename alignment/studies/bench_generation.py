"""The bench's generation trial: greedy answers to held-out questions, ours batched against plain ``generate`` per
question, with this machine's measured matrix-multiply throughput as the ceiling of its achieved FLOP/s."""

from __future__ import annotations

import time

from alignment.studies.bench_timing import StepTimes


def matmul_flops(device: str, dtype, size: int = 1024, repeats: int = 10) -> float:
    """This machine's matrix-multiply throughput in FLOP/s: the best of ``repeats`` square ``size`` products in
    ``dtype`` (after one untimed), the ceiling generation's share is measured against."""
    import torch

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for i in range(repeats + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        if i:
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def generation_trial(spec: dict, rows: list[dict], device: str, bf16: bool, times: StepTimes) -> None:
    """Greedy answers to every held-out question, ``spec["steps"]`` times (the first ``warmup`` left out): ours
    batched (``generate_answers``), plain one ``model.generate`` per question with default settings. A "step" is
    one pass over the questions; its tokens are the generated tokens up to EOS."""
    import torch

    from alignment.models.generation import chat_prompts, generate_answers, generation_config
    from alignment.models.modeling import load_causal_lm, load_tokenizer

    model = load_causal_lm(spec["model_dir"], device=device)
    if bf16:
        model = model.to(torch.bfloat16)
    tok = load_tokenizer(spec["model_dir"])
    questions = [r["question"] for r in rows][: spec["questions"]]
    n = spec["completion_length"]
    times.parameters = sum(p.numel() for p in model.parameters())
    times.matmul_flops = matmul_flops(device, next(model.parameters()).dtype, 4096 if device == "cuda" else 1024)
    prompts = sum(len(tok(p, add_special_tokens=False)["input_ids"]) for p in chat_prompts(tok, questions))
    for _ in range(spec["steps"]):
        times.prompt_tokens.append(float(prompts))
        start = time.perf_counter()
        if spec["variant"] == "ours":
            answers = generate_answers(model, tok, questions, generation_config(tok, n))
            generated = [len(tok(a, add_special_tokens=False)["input_ids"]) for a in answers]
        else:
            generated = []
            with torch.no_grad():
                for prompt in chat_prompts(tok, questions):
                    enc = tok(prompt, return_tensors="pt", add_special_tokens=False).to(device)
                    new = model.generate(**enc, max_new_tokens=n)[0, enc["input_ids"].shape[1] :]
                    generated.append(int((new != tok.eos_token_id).sum()))
        times.seconds.append(time.perf_counter() - start)
        times.tokens.append(float(sum(generated)))

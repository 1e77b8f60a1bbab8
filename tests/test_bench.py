"""A very small bench end to end: every method trains with plain TRL and our way, generation runs batched and
per question, and the table has its shape. (No speed threshold: a test asserts what the table holds, not how
fast this machine is.)"""

import json

import pytest

from flows.cli import main

TRAINING = ["sft", "reward", "dpo", "rloo", "kto", "grpo"]  # every policy of the registry is benched


@pytest.mark.slow
def test_a_small_bench_gives_ours_vs_plain_for_every_method(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "--preset", "tiny", "--steps", "2", "--out", str(out)]) == 0
    table = json.loads((out / "bench.json").read_text())
    assert (table["preset"], table["steps"], table["warmup"], table["batch_size"]) == ("tiny", 2, 1, 16)
    assert [row["method"] for row in table["methods"]] == [*TRAINING, "generation"]
    for row in table["methods"]:
        for variant in ("plain", "ours"):
            trial = row[variant]
            assert trial["steps_timed"] == 1 and trial["peak_mib"] > 0 and trial["wall_seconds"] > 0
            assert 0 < trial["min"] <= trial["tokens_per_s"] <= trial["max"]
            assert trial["device"] == "cpu" and trial["mfu"] is None  # no MFU without a known GPU peak
        assert row["ratio"] == row["ours"]["tokens_per_s"] / row["plain"]["tokens_per_s"]
        assert row["memory_ratio"] == row["ours"]["peak_mib"] / row["plain"]["peak_mib"]
    rows = {row["method"]: row for row in table["methods"]}
    # fixed costs beside the steps: the reward model's held-out evaluation, DPO's stored-reference pass in its own
    # process; RLOO's curve has none (read off its rollouts)
    assert rows["rloo"]["ours"]["fixed_seconds"] == 0
    assert 0 < rows["reward"]["ours"]["fixed_seconds"] < rows["reward"]["ours"]["wall_seconds"]  # held-out pairs
    assert rows["dpo"]["reference_pass_seconds"] > 0 and rows["dpo"]["pairs"] > 0
    assert rows["sft"]["epoch_share"] == 2 * 16 / 360  # 2 steps of 16 of the world's 360 demonstrations
    assert "epoch_share" not in rows["rloo"]
    generation = table["methods"][-1]
    for variant in ("plain", "ours"):
        trial = generation[variant]
        assert trial["answers_per_s"] > 0 and trial["matmul_flops"] > 0
        assert trial["matmul_share"] == trial["achieved_flops"] / trial["matmul_flops"] > 0
    lines = (out / "bench.md").read_text().splitlines()
    header = lines.index(
        "| method | plain TRL tokens/s | ours tokens/s | ours / plain | plain peak MiB | ours peak MiB | memory ours / "
        "plain | plain MFU | ours MFU | plain trial s | ours trial s | ours fixed s | trial / epoch |"
    )
    end = header + 2 + len(TRAINING)
    assert [line.split(" | ")[0] for line in lines[header + 2 : end]] == [f"| {m}" for m in TRAINING]
    assert lines[end] == "" and lines[end + 1].startswith("DPO: ours computes each pair's reference")
    generation_rows = lines[
        lines.index(
            "| generation | answers/s | tokens/s | peak MiB | achieved GFLOP/s | matmul GFLOP/s | share of matmul |"
        )
        + 2 :
    ]
    assert [line.split(" | ")[0] for line in generation_rows] == ["| plain `generate`", "| ours", "| ours / plain"]
    assert capsys.readouterr().out.startswith("# Bench: ours vs plain TRL (tiny:")


@pytest.mark.slow
def test_the_gpu_preset_starts_on_a_cpu_with_the_tiny_shape_and_a_switch_changes_our_side_only(tmp_path):
    out = tmp_path / "bench"
    args = ["bench", "--preset", "0.5b", "--shape-of", "tiny", "--methods", "sft", "--steps", "2", "--out", str(out)]
    assert main([*args, "--set", "sft.optim=adamw_torch_fused"]) == 0
    table = json.loads((out / "bench.json").read_text())
    assert (table["preset"], table["max_length"], table["shape"]["hidden_size"]) == ("0.5b", 512, 128)
    (row,) = table["methods"]
    assert row["method"] == "sft" and row["ours"]["tokens_per_s"] > 0 and row["plain"]["tokens_per_s"] > 0
    assert table["overrides"] == {"sft": {"optim": "adamw_torch_fused"}}
    assert "Ours with {'sft': {'optim': 'adamw_torch_fused'}}." in (out / "bench.md").read_text()
    with pytest.raises(SystemExit, match="expected METHOD.FIELD=VALUE"):
        main(["bench", "--set", "optim=adamw_torch_fused", "--out", str(out)])


def test_mfu_counts_six_flops_per_parameter_per_trained_token():
    from alignment.studies.bench import mfu, peak_flops

    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12 and peak_flops("NVIDIA H200") == 989e12
    assert peak_flops("cpu") is None and peak_flops("Some GPU") is None and peak_flops("Some GPU", 100) == 1e14
    assert mfu("sft", 1000.0, 10**9, 6e12) == 1.0
    assert mfu("generation", 1000.0, 10**9, 2e12) == 1.0
    assert mfu("rloo", 1000.0, 10**9, 6e12) is None and mfu("sft", 1000.0, 10**9, None) is None


@pytest.mark.slow
def test_the_bench_flow_publishes_its_table(harness, tmp_path):
    import httpx
    from prefect.settings import PREFECT_API_URL

    from flows.bench import bench_flow

    out = tmp_path / "bench"
    assert bench_flow(methods=["generation"], steps=2, out=str(out)) == str(out.resolve())
    body = {"artifacts": {"key": {"any_": ["alignment-bench"]}}, "limit": 5, "offset": 0, "sort": "CREATED_DESC"}
    found = httpx.post(f"{PREFECT_API_URL.value()}/artifacts/filter", json=body, timeout=30).raise_for_status().json()
    assert found[0]["data"] == (out / "bench.md").read_text()


def test_the_smollm2_preset_benches_the_fetched_model_and_says_how_to_fetch_it(tmp_path, monkeypatch, capsys):
    from alignment.models.wheel_files import FILES
    from alignment.studies.bench_trials import PRESETS

    preset = PRESETS["smollm2"]
    assert preset.model_file in FILES and not preset.bf16  # the real model as fetched, on a CPU
    monkeypatch.setenv("ALIGNMENT_CACHE", str(tmp_path / "empty-cache"))
    assert main(["bench", "--preset", "smollm2", "--out", str(tmp_path / "bench")]) == 2
    err = capsys.readouterr().err
    assert "not fetched; run `alignment fetch smollm2-135m-instruct` first" in err
    assert not (tmp_path / "bench" / "bench.json").exists()

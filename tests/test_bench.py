"""A very small bench end to end: every method trains with plain TRL and our way, and the table has its shape.
(No speed threshold: a test asserts what the table holds, not how fast this machine is.)"""

import json

from flows.cli import main


def test_a_small_bench_gives_ours_vs_plain_for_every_method(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "--preset", "tiny", "--steps", "2", "--out", str(out)]) == 0
    table = json.loads((out / "bench.json").read_text())
    assert (table["preset"], table["steps"], table["warmup"], table["batch_size"]) == ("tiny", 2, 1, 16)
    assert [row["method"] for row in table["methods"]] == ["sft", "reward", "dpo"]
    for row in table["methods"]:
        for variant in ("plain", "ours"):
            trial = row[variant]
            assert trial["steps_timed"] == 1 and trial["peak_mib"] > 0
            assert 0 < trial["min"] <= trial["tokens_per_s"] <= trial["max"]
        assert row["ratio"] == row["ours"]["tokens_per_s"] / row["plain"]["tokens_per_s"]
        assert row["memory_ratio"] == row["ours"]["peak_mib"] / row["plain"]["peak_mib"]
    lines = (out / "bench.md").read_text().splitlines()
    header = lines.index(
        "| method | plain TRL tokens/s | ours tokens/s | ours / plain | plain peak MiB | ours peak MiB |"
    )
    assert [line.split(" | ")[0] for line in lines[header + 2 :]] == ["| sft", "| reward", "| dpo"]
    assert capsys.readouterr().out.startswith("# Bench: ours vs plain TRL (tiny:")


def test_the_gpu_preset_starts_on_a_cpu_with_the_tiny_shape(tmp_path):
    out = tmp_path / "bench"
    assert (
        main(["bench", "--preset", "0.5b", "--shape-of", "tiny", "--methods", "sft", "--steps", "2", "--out", str(out)])
        == 0
    )
    table = json.loads((out / "bench.json").read_text())
    assert (table["preset"], table["max_length"], table["shape"]["hidden_size"]) == ("0.5b", 512, 128)
    (row,) = table["methods"]
    assert row["method"] == "sft" and row["ours"]["tokens_per_s"] > 0 and row["plain"]["tokens_per_s"] > 0

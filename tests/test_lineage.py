"""Lineage from a policy back to its base model and every dataset file, through the CLI."""

import json
from pathlib import Path

import pytest

from alignment.config.loading import load_config
from alignment.core.context import StageContext
from alignment.core.lineage import lineage, render_markdown
from alignment.core.store import ArtifactStore
from alignment.graph import run_local
from flows.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_lineage_follows_every_input_back_to_the_base_and_the_data(tmp_path, capsys):
    cfg = load_config(ROOT / "configs/micro.yaml", [f"store.root={tmp_path}"])
    store = ArtifactStore(tmp_path)
    evaluation = run_local(StageContext(cfg, store, progress=lambda _: None), ("evaluate",))["evaluate"]
    dpo_id = evaluation.manifest["inputs"]["dpo"]

    tree = lineage(store, dpo_id)
    assert [c.name for c in tree.children] == ["base", "preferences", "reference", "sft"]
    assert [c.name for c in tree.children[2].children] == ["base", "preferences", "sft"]  # the stored reference
    sft = tree.children[3]
    assert [c.name for c in sft.children] == ["base", "demonstrations"]
    demos = sft.children[1]
    assert demos.ref.startswith("sha256:") and demos.files and demos.files[0].endswith("demonstrations.jsonl")
    base = sft.children[0]
    assert {c.name for c in base.children} == {"pretrain.txt", "reference.txt", "world.json"}

    assert main(["lineage", dpo_id, "--store", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for art_id in (dpo_id, evaluation.manifest["inputs"]["sft"], evaluation.manifest["inputs"]["base"]):
        assert art_id in printed
    assert "config: {" in printed and "metrics:" in printed and demos.ref in printed
    assert f"file://{(tmp_path / 'dpo' / dpo_id).resolve()}" in render_markdown(tree)
    # an artifact directory names its own store: no --store needed from anywhere
    assert main(["lineage", str(tmp_path / "dpo" / dpo_id), "--no-metrics"]) == 0
    assert evaluation.manifest["inputs"]["base"] in capsys.readouterr().out


def test_lineage_of_a_missing_artifact_is_a_clear_error(tmp_path, capsys):
    assert main(["lineage", "dpo-0000000000000000", "--store", str(tmp_path)]) == 2
    assert "no artifact 'dpo-0000000000000000'" in capsys.readouterr().err


def test_lineage_names_an_input_missing_from_the_store(tmp_path, capsys):
    art = tmp_path / "dpo" / "dpo-1111111111111111"
    art.mkdir(parents=True)
    (art / "manifest.json").write_text(json.dumps({"id": art.name, "stage": "dpo", "inputs": {"sft": "sft-22"}}))
    assert main(["lineage", str(art), "--store", str(tmp_path)]) == 2
    assert "input sft = sft-22 is not in store" in capsys.readouterr().err

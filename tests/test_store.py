import json

import pytest

from alignment.store import ArtifactStore


def test_materialize_builds_once_then_reuses(tmp_path):
    store = ArtifactStore(tmp_path)
    calls = []

    def build(out):
        calls.append(out)
        (out / "weights.bin").write_text("w")
        return {"loss": 1.0}

    art, reused = store.materialize("sft", {"lr": 1}, {"base": "base-x"}, build, seed=3)
    assert not reused and len(calls) == 1
    manifest = json.loads((art.path / "manifest.json").read_text())
    assert manifest["stage"] == "sft" and manifest["inputs"] == {"base": "base-x"}
    assert manifest["metrics"] == {"loss": 1.0} and manifest["seed"] == 3 and manifest["code_version"]
    again, reused = store.materialize("sft", {"lr": 1}, {"base": "base-x"}, build)
    assert reused and again.id == art.id and len(calls) == 1


def test_changed_config_or_input_gives_new_id():
    a = ArtifactStore.artifact_id("sft", {"lr": 1}, {"base": "b1"}, "v")
    assert a != ArtifactStore.artifact_id("sft", {"lr": 2}, {"base": "b1"}, "v")
    assert a != ArtifactStore.artifact_id("sft", {"lr": 1}, {"base": "b2"}, "v")
    assert a != ArtifactStore.artifact_id("sft", {"lr": 1}, {"base": "b1"}, "v2")


def test_crashed_build_leaves_no_artifact(tmp_path):
    store = ArtifactStore(tmp_path)

    def build(out):
        (out / "half.bin").write_text("partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store.materialize("dpo", {}, {}, build)
    assert not (tmp_path / "dpo").exists() or not any((tmp_path / "dpo").iterdir())
    assert not any((tmp_path / ".tmp").iterdir())


def test_code_version_is_per_module_set():
    from alignment.store import code_version

    assert code_version(("sft.py",)) != code_version(("dpo.py",))
    assert code_version(("sft.py",)) == code_version(("sft.py",))


def test_latest_and_resolve_by_stage(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(FileNotFoundError, match="no sft artifact"):
        store.resolve("latest", "sft")
    older, _ = store.materialize("sft", {"lr": 1}, {}, lambda out: {})
    newer, _ = store.materialize("sft", {"lr": 2}, {}, lambda out: {})
    manifest = older.path / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(data | {"created_at": "2000-01-01T00:00:00Z"}))
    assert store.resolve("latest", "sft").id == newer.id
    assert store.resolve(older.id, "sft").id == older.id
    with pytest.raises(ValueError, match="is a sft artifact, expected dpo"):
        store.resolve(older.id, "dpo")

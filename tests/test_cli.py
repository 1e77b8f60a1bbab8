from pathlib import Path

from flows.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_run_rejects_unknown_key_before_anything_starts(capsys):
    assert main(["run", str(ROOT / "configs/tiny.yaml"), "--set", "sft.learning_rat=0.1"]) == 2
    assert "unknown key 'sft.learning_rat'" in capsys.readouterr().err


def test_run_rejects_bad_preference_file_before_training(tmp_path, capsys):
    bad = tmp_path / "prefs.jsonl"
    bad.write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n{"prompt": "q", "chosen": "a"}\n')
    store = tmp_path / "runs"
    args = ["run", str(ROOT / "configs/tiny.yaml"), "--set", f"data.preferences={bad}", "--set", f"store.root={store}"]
    assert main(args) == 2
    assert f"{bad}:2: missing field 'rejected'" in capsys.readouterr().err
    assert not store.exists()  # nothing trained, nothing written


def test_validate_accepts_default_config(capsys):
    assert main(["validate", str(ROOT / "configs/tiny.yaml")]) == 0


def test_world_command_writes_files(tmp_path):
    assert main(["world", str(ROOT / "configs/micro.yaml"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "preferences.jsonl").is_file()

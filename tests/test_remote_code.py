"""A model repository's own code runs only with the consent of the machine that loads it, never from a config alone,
and `alignment check` never runs it."""

import json
from pathlib import Path

import pytest

from alignment.config.base import ConfigError
from alignment.config.loading import load_config
from flows.cli import main

ROOT = Path(__file__).resolve().parents[1]


def remote_code_model(tmp_path: Path) -> tuple[Path, Path]:
    """A model directory whose config is custom code that leaves a marker file when it runs."""
    model, marker = tmp_path / "custom-model", tmp_path / "code-ran"
    model.mkdir()
    auto = {"AutoConfig": "configuration_custom.CustomConfig", "AutoModelForCausalLM": "modeling_custom.CustomLM"}
    (model / "config.json").write_text(json.dumps({"model_type": "custom-remote", "auto_map": auto}))
    code = f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
    (model / "configuration_custom.py").write_text(
        code + "from transformers import PretrainedConfig\n"
        "class CustomConfig(PretrainedConfig):\n    model_type = 'custom-remote'\n"
    )
    (model / "modeling_custom.py").write_text(code)
    return model, marker


def test_a_config_alone_cannot_turn_remote_code_on(monkeypatch):
    monkeypatch.delenv("ALIGNMENT_ALLOW_REMOTE_CODE", raising=False)
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "configs/tiny.yaml", ["model.trust_remote_code=true"])
    assert "key 'model'" in str(err.value) and "ALIGNMENT_ALLOW_REMOTE_CODE=1" in str(err.value)
    monkeypatch.setenv("ALIGNMENT_ALLOW_REMOTE_CODE", "yes")  # only "1" consents
    with pytest.raises(ConfigError, match="does not allow it"):
        load_config(ROOT / "configs/tiny.yaml", ["model.trust_remote_code=true"])
    monkeypatch.setenv("ALIGNMENT_ALLOW_REMOTE_CODE", "1")
    assert load_config(ROOT / "configs/tiny.yaml", ["model.trust_remote_code=true"]).model.trust_remote_code


def test_check_never_runs_a_models_own_code(tmp_path, monkeypatch, capsys):
    model, marker = remote_code_model(tmp_path)
    config = str(ROOT / "configs/micro.yaml")
    monkeypatch.setenv("ALIGNMENT_ALLOW_REMOTE_CODE", "1")
    args = ["check", config, "--set", f"model.name_or_path={model}", "--set", "model.trust_remote_code=true"]
    assert main([*args, "--set", "dpo.lora.target_modules=[q_proj]"]) == 0
    assert not marker.exists()


def test_a_model_that_needs_its_own_code_without_it_names_the_key_and_the_variable(tmp_path, monkeypatch, capsys):
    model, marker = remote_code_model(tmp_path)
    monkeypatch.delenv("ALIGNMENT_ALLOW_REMOTE_CODE", raising=False)
    assert main(["check", str(ROOT / "configs/micro.yaml"), "--set", f"model.name_or_path={model}"]) == 2
    err = capsys.readouterr().err
    assert "needs its own Python code to load" in err and "model.trust_remote_code" in err
    assert "ALIGNMENT_ALLOW_REMOTE_CODE=1" in err and err.count("\n") == 1
    assert not marker.exists()

from pathlib import Path

import pytest

from alignment.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_default_config_loads_and_overrides_apply():
    cfg = load_config(ROOT / "configs/tiny.yaml", ["dpo.beta=0.2", "world.seed=7"])
    assert cfg.dpo.beta == 0.2
    assert cfg.world.seed == 7
    assert cfg.model.name_or_path is None


def test_unknown_key_in_file_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("sft:\n  epochz: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "sft.epochz" in str(err.value) and str(path) in str(err.value)


def test_unknown_override_key_is_an_error():
    with pytest.raises(ConfigError, match="unknown key 'dpo.bta'"):
        load_config(ROOT / "configs/tiny.yaml", ["dpo.bta=0.2"])


def test_mistyped_value_is_an_error():
    with pytest.raises(ConfigError, match="dpo.beta"):
        load_config(None, ["dpo.beta=high"])


def test_override_needs_equals_sign():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["dpo.beta"])


def test_probe_pairs_and_a_pairs_file_exclude_each_other(tmp_path):
    with pytest.raises(ConfigError, match="data.*exclude each other"):
        load_config(None, ["data.preference_source=probe", f"data.preferences={tmp_path / 'p.jsonl'}"])
    assert load_config(ROOT / "configs/tiny-probe-pairs.yaml").data.preference_source == "probe"


def test_every_shipped_config_loads():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        load_config(path)

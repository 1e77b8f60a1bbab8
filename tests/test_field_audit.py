"""Every user mistake in a config field is a config error naming the key, before any work: by field kind."""

from pathlib import Path

import pytest

from alignment.config.base import ConfigError
from alignment.config.loading import load_config

ROOT = Path(__file__).resolve().parents[1]


def refused(override: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    return str(err.value)


# Numbers: a boolean is not read as 0 or 1 (pydantic's lax mode would), whatever the section or nesting.


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("seed=true", "seed"),
        ("world.seed=true", "world.seed"),
        ("eval.max_new_tokens=false", "eval.max_new_tokens"),
        ("compute.threads=true", "compute.threads"),  # int | None
        ("sft.learning_rate=true", "sft.learning_rate"),  # a float, in a pass-through section
        ("sft.lora.r=true", "sft.lora.r"),
        ("world.known_split=[true,0.5,0.5]", "world.known_split"),  # inside a tuple
        ("eval.sweep_top_ps=[1.0,true]", "eval.sweep_top_ps"),  # inside a list
        ("dpo.loss_weights=[true,1]", "dpo.loss_weights"),  # inside list | None
    ],
)
def test_a_boolean_for_a_number_is_refused_naming_the_key(override, key):
    assert f"key '{key}': a boolean where a number goes" in refused(override)


def test_numbers_are_still_read_from_yaml_ints_and_booleans_stay_booleans():
    cfg = load_config(None, ["sft.learning_rate=1", "world.known_split=[2,1,1]", "model.trust_remote_code=true"])
    assert cfg.sft.learning_rate == 1.0 and isinstance(cfg.sft.learning_rate, float)
    assert cfg.world.known_split == (2.0, 1.0, 1.0) and cfg.model.trust_remote_code is True
    from alignment.config.run import RetrainConfig

    with pytest.raises(ValueError, match="a boolean where a number goes"):
        RetrainConfig.model_validate({"gates": {"max_accuracy_drop": False}})

from pathlib import Path

import pytest

from alignment.config.base import ConfigError
from alignment.config.loading import load_config

ROOT = Path(__file__).resolve().parents[1]


def test_default_config_loads_and_overrides_apply():
    cfg = load_config(ROOT / "configs/tiny.yaml", ["dpo.beta=0.2", "world.seed=7"])
    assert cfg.dpo.beta == 0.2
    assert cfg.world.seed == 7
    assert cfg.model.name_or_path is None


def test_unknown_key_in_file_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("eval:\n  epochz: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: unknown key 'eval.epochz'"


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


def test_the_confident_labeller_config_changes_only_the_labeller_of_the_two_policy_run():
    rlhf = load_config(ROOT / "configs/tiny-rlhf.yaml")
    confident = load_config(ROOT / "configs/tiny-confident-labeller.yaml")
    assert rlhf.policies == ["dpo", "rloo"] and confident.world.labeller == "confident"
    assert confident.model_copy(update={"world": rlhf.world}) == rlhf
    assert rlhf == load_config(None, ["policies=[dpo,rloo]"])


def test_every_shipped_config_loads():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        load_config(path)


def test_training_sections_use_trl_names_and_old_names_are_rejected():
    cfg = load_config(ROOT / "configs/tiny.yaml", ["sft.max_length=96", "sft.report_to=[tensorboard]"])
    assert cfg.sft.max_length == 96 and cfg.sft.passthrough() == {"report_to": ["tensorboard"]}
    args = cfg.sft.trainer_arguments()
    assert args["max_length"] == 96 and args["report_to"] == ["tensorboard"] and args["num_train_epochs"] == 8.0
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "configs/tiny.yaml", ["sft.epochs=3"])
    assert str(err.value) == (
        f"{ROOT / 'configs/tiny.yaml'} (with --set sft.epochs=3): unknown key 'sft.epochs': neither a field of this "
        "section nor an argument of trl.SFTConfig"
    )


def test_passthrough_values_are_checked_by_the_trl_class_before_training():
    with pytest.raises(ConfigError, match=r"key 'dpo': .*trl\.DPOConfig rejects these settings: .*not-an-optimizer"):
        load_config(None, ["dpo.optim=not-an-optimizer"])
    assert load_config(None, ["dpo.optim=adamw_torch"]).dpo.trainer_arguments()["optim"] == "adamw_torch"


def test_settings_the_pipeline_owns_cannot_be_passed_through():
    with pytest.raises(ConfigError, match=r"'reward.bf16' is set by the pipeline: set compute.bf16"):
        load_config(None, ["reward.bf16=true"])
    with pytest.raises(ConfigError, match=r"'sft.output_dir' is set by the pipeline"):
        load_config(None, ["sft.output_dir=/tmp/x"])


def test_lora_settings_map_onto_peft_lora_config():
    from alignment.models.modeling import lora_config

    cfg = load_config(None, ["sft.lora.r=4", "sft.lora.use_rslora=true", "sft.lora.lora_dropout=0.1"])
    lora = lora_config(cfg.sft.lora, "CAUSAL_LM")
    assert (lora.r, lora.lora_alpha, lora.lora_dropout, lora.use_rslora, lora.task_type) == (
        4,
        32,
        0.1,
        True,
        "CAUSAL_LM",
    )
    with pytest.raises(ConfigError, match=r"unknown key 'sft.lora.rank': .* peft.LoraConfig"):
        load_config(None, ["sft.lora.rank=4"])


def test_every_field_has_a_description():
    from pydantic import BaseModel

    from alignment.config.run import RetrainConfig, RunConfig

    def walk(model: type[BaseModel], prefix: str) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(prefix + name)
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                missing += walk(annotation, f"{prefix}{name}.")
        return missing

    assert walk(RunConfig, "") + walk(RetrainConfig, "retrain.") == []


def test_the_default_config_file_states_no_default_again():
    import yaml

    assert yaml.safe_load((ROOT / "configs/tiny.yaml").read_text()) == {}
    assert load_config(ROOT / "configs/tiny.yaml") == load_config(None)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dpo.beta=.inf", "key 'dpo.beta': Input should be a finite number"),
        ("sft.learning_rate=.nan", "key 'sft.learning_rate': Input should be a finite number"),
        ("sft.adam_beta1=.inf", "'sft.adam_beta1' must be a finite number, not inf"),  # a TRL pass-through key
        ("seed=-1", "key 'seed': Input should be greater than or equal to 0"),
        ("world.seed=4294967296", "key 'world.seed': Input should be less than or equal to 4294967295"),
        (
            "dpo={loss_type: [sigmoid], loss_weights: [1, 1]}",
            "key 'dpo': loss_weights has 2 entries but loss_type has 1",
        ),
        ("model.tiny.num_attention_heads=3", "key 'model.tiny': num_attention_heads (3) must divide hidden_size (128)"),
        (
            "world.known_split=[1,0,0]",
            "key 'world': known_split [1.0, 0.0, 0.0] of 150 entities leaves no entity for pref, eval",
        ),
        ("world.unknown_split=[0.5,0.5,0]", "key 'world': unknown_split [0.5, 0.5, 0.0] of 150 entities leaves no"),
        ("store.root=''", "key 'store': store.root is empty: name the store's directory"),
    ],
)
def test_a_bad_value_is_refused_at_load_naming_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "configs/tiny.yaml", [override])
    assert message in str(err.value) and str(ROOT / "configs/tiny.yaml") in str(err.value)


def test_plain_dpo_with_its_own_weights_is_accepted():
    # the README's "set dpo.loss_type=[sigmoid] for plain DPO": losses given alone are weighed equally
    assert load_config(None, ["dpo.loss_type=[sigmoid]"]).dpo.loss_weights is None
    cfg = load_config(None, ["dpo.loss_type=[sigmoid]", "dpo.loss_weights=[1.0]"])
    assert cfg.dpo.loss_weights == [1.0]
    assert load_config(None, ["dpo.loss_type=[sigmoid]", "dpo.loss_weights=null"]).dpo.loss_weights is None


def test_an_empty_yaml_file_and_a_duplicated_key_are_errors(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here\n")
    with pytest.raises(ConfigError, match=f"{empty}: the file is empty; write {{}} for all defaults"):
        load_config(empty)
    twice = tmp_path / "twice.yaml"
    twice.write_text("dpo:\n  beta: 0.1\nsft: {}\ndpo:\n  beta: 0.5\n")
    with pytest.raises(ConfigError, match=f"(?s){twice}: not valid YAML: key 'dpo' appears twice.*line 4"):
        load_config(twice)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "dpo.betta=0.1",
            "unknown key 'dpo.betta': neither a field of this section nor an argument of trl.DPOConfig; "
            "did you mean 'dpo.beta'?",
        ),
        ("sft.learning_rat=1e-4", "did you mean 'sft.learning_rate'?"),  # a TRL argument
        ("evl.seed=1", "unknown key 'evl'; did you mean 'eval'?"),  # a section
        ("model.name_or_pth=x", "unknown key 'model.name_or_pth'; did you mean 'model.name_or_path'?"),
        ("sft.lora.rr=4", "unknown key 'sft.lora.rr'"),  # nothing close: no guess
    ],
)
def test_a_mistyped_key_gets_the_closest_name(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "configs/tiny.yaml", [override])
    assert message in str(err.value)
    if override.startswith("sft.lora.rr"):
        assert "did you mean" not in str(err.value)

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


def test_numbers_are_still_read_from_yaml_ints_and_booleans_stay_booleans(monkeypatch):
    monkeypatch.setenv("ALIGNMENT_ALLOW_REMOTE_CODE", "1")
    cfg = load_config(None, ["sft.learning_rate=1", "world.known_split=[2,1,1]", "model.trust_remote_code=true"])
    assert cfg.sft.learning_rate == 1.0 and isinstance(cfg.sft.learning_rate, float)
    assert cfg.world.known_split == (2.0, 1.0, 1.0) and cfg.model.trust_remote_code is True
    from alignment.config.run import RetrainConfig

    with pytest.raises(ValueError, match="a boolean where a number goes"):
        RetrainConfig.model_validate({"gates": {"max_accuracy_drop": False}})


# Ranges: top-p is a probability, sweep temperatures are >= 0 (0: greedy), shares are >= 0 and not all zero.


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("eval.sweep_top_ps=[1.0,1.5]", "key 'eval.sweep_top_ps.1': Input should be less than or equal to 1"),
        ("eval.sweep_top_ps=[-0.1]", "key 'eval.sweep_top_ps.0': Input should be greater than or equal to 0"),
        ("eval.sweep_top_ps=[]", "key 'eval.sweep_top_ps': List should have at least 1 item"),
        (
            "eval.sweep_temperatures=[0,-1]",
            "key 'eval.sweep_temperatures.1': Input should be greater than or equal to 0",
        ),
        ("world.unknown_split=[-0.2,0.6,0.6]", "key 'world.unknown_split.0': Input should be greater than or equal"),
        ("world.known_split=[0,0,0]", "key 'world': known_split is all zeros"),  # was a ZeroDivisionError
        ("probe.temperature=0", "key 'probe.temperature': Input should be greater than 0"),  # sampling: > 0
        ("rloo.temperature=0", "key 'rloo.temperature': Input should be greater than 0"),
        ("judge.abstain_phrases=['']", "key 'judge.abstain_phrases': abstain_phrases[0] '' has no letter or digit"),
        ("judge.abstain_phrases=[Unsure, '...']", "abstain_phrases[1] '...' has no letter or digit"),
    ],
)
def test_a_value_out_of_its_range_is_refused_naming_the_key(override, message):
    assert message in refused(override)


def test_greedy_sweep_points_no_sweep_and_edge_probabilities_are_accepted():
    cfg = load_config(None, ["eval.sweep_temperatures=[]", "eval.sweep_top_ps=[0,1]", "judge.abstain_phrases=[]"])
    assert cfg.eval.sweep_temperatures == [] and cfg.eval.sweep_top_ps == [0.0, 1.0]
    assert load_config(None, ["eval.sweep_temperatures=[0]"]).eval.sweep_temperatures == [0.0]


# Files: a chat template file that is not there is an error naming it, never used as the template text.


def test_a_missing_chat_template_file_is_refused_by_check_naming_key_and_file(tmp_path, capsys):
    from flows.cli import main

    config = str(ROOT / "configs/tiny.yaml")
    for missing in (tmp_path / "chatml.jinja", tmp_path / "chatml.j2"):  # a value without {{ or {% is a path too
        assert main(["check", config, "--set", f"model.chat_template={missing}"]) == 2
        assert f"{config}: key 'model.chat_template': {missing} is not a file" in capsys.readouterr().err


def test_a_chat_template_is_read_from_its_file_or_taken_as_given_and_a_missing_file_is_an_error(tmp_path):
    from alignment.core.prechecks import check_chat_template
    from alignment.models.refs import BaseRef

    template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    path = tmp_path / "t.jinja"
    path.write_text(template)
    assert BaseRef("m", {}, str(path)).template() == template
    assert BaseRef("m", {}, template).template() == template
    assert BaseRef("m").template() is None
    with pytest.raises(FileNotFoundError, match=f"model.chat_template: {tmp_path / 'gone.jinja'} is not a file"):
        BaseRef("m", {}, str(tmp_path / "gone.jinja")).template()
    check_chat_template(load_config(None, [f"model.chat_template={path}"]).model, "c")  # there: no error
    assert "key 'model.chat_template': chat_template is empty" in refused("model.chat_template=' '")


# LoRA targets: PEFT reads a string (other than 'all-linear') as a regex over whole module paths.


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dpo.lora.target_modules=q_proj,v_proj", "one string, which PEFT reads as a regex over whole module paths"),
        ("dpo.lora.target_modules='q_proj, v_proj'", "name several modules as a list, e.g. [q_proj, v_proj]"),
        ("dpo.lora.target_modules=''", "target_modules is empty"),
        ("dpo.lora.target_modules=[]", "target_modules [] must name at least one module"),
        ("dpo.lora.target_modules=[q_proj,' ']", "must name at least one module, none blank"),
        ("dpo.lora.target_modules='(q_proj'", "target_modules '(q_proj' is not a valid regex"),
    ],
)
def test_lora_targets_that_cannot_mean_what_was_meant_are_refused_at_load(override, message):
    assert message in refused(override) and "key 'dpo.lora.target_modules'" in refused(override)


def test_check_refuses_a_lora_regex_that_matches_no_module_path(capsys):
    from flows.cli import main

    config = str(ROOT / "configs/tiny.yaml")
    assert main(["check", config, "--set", "sft.lora.target_modules=q_proj"]) == 2  # a regex: no whole path is q_proj
    err = capsys.readouterr().err
    assert f"{config}: key 'sft.lora.target_modules': the regex 'q_proj' full-matches no module path" in err
    assert "to name modules give a list, e.g. [q_proj]" in err
    assert main(["check", config, "--set", "sft.lora.target_modules=.*\\.(q|v)_proj"]) == 0


def test_a_store_root_that_is_a_file_or_under_one_is_refused_naming_it(tmp_path):
    file = tmp_path / "runs"
    file.write_text("not a store")
    assert f"key 'store': store.root {file}: {file} is a file, not a directory" in refused(f"store.root={file}")
    assert f"store.root {file / 'sub'}: {file} is a file" in refused(f"store.root={file / 'sub'}")
    assert load_config(None, [f"store.root={tmp_path / 'new' / 'store'}"]).store.root == tmp_path / "new" / "store"

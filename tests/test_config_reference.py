"""`alignment config`: every key with its value, default and description; docs/config.md never drifts from it."""

from pathlib import Path

from alignment.config.reference import keys, render_markdown
from alignment.config.run import RunConfig
from flows.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_docs_config_md_is_the_generated_reference():
    expected = render_markdown(keys(RunConfig(), expand_unset=True))
    assert (ROOT / "docs/config.md").read_text() == expected, "regenerate: alignment config --defaults --markdown"


def test_every_key_has_a_description_and_the_optional_sections_are_documented():
    rows = keys(RunConfig(), expand_unset=True)
    assert [r.name for r in rows if not r.description] == []
    names = {r.name for r in rows}
    assert {"dpo.beta", "sft.lora.r", "facts.max_known_abstention", "judge.stop_at_first_sentence"} <= names


def test_config_prints_values_defaults_and_descriptions(capsys):
    assert main(["config", str(ROOT / "configs/micro.yaml"), "--changed", "--set", "dpo.beta=0.3"]) == 0
    out = capsys.readouterr().out
    assert "dpo.beta = 0.3  (default 0.1)  # " in out
    assert "world.n_known = 12  (default 150)" in out
    assert "eval.seed" not in out  # unchanged keys are left out with --changed
    assert "[kto]" not in out  # and so are sections with nothing changed
    assert main(["config", "--defaults"]) == 0
    out = capsys.readouterr().out
    assert "dpo.beta = 0.1  # " in out and "(default" not in out


def test_config_with_a_mistyped_key_is_one_error_line(capsys):
    assert main(["config", str(ROOT / "configs/micro.yaml"), "--set", "dpo.betta=0.3"]) == 2
    assert capsys.readouterr().err.endswith("did you mean 'dpo.beta'?\n")

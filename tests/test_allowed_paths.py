"""A worker that confines paths refuses a run naming any path outside its allowed roots."""

import pytest

from alignment.config.base import ConfigError
from alignment.config.loading import load_config
from alignment.core.allowed_paths import VARIABLE, allowed_roots, confine


@pytest.fixture
def roots(tmp_path):
    allowed = tmp_path / "allowed"
    (allowed / "data").mkdir(parents=True)
    (allowed / "data" / "demos.jsonl").write_text('{"prompt": "q", "completion": "a"}\n')
    return allowed


def test_paths_inside_the_roots_and_hub_ids_pass(roots, monkeypatch):
    cfg = load_config(
        None,
        [f"store.root={roots / 'runs'}", f"data.sft={roots / 'data/demos.jsonl'}", "data.preferences=org/hub-pairs"],
    )
    confine(cfg, roots / "incoming", roots=[roots])  # no error
    monkeypatch.delenv(VARIABLE, raising=False)
    confine(load_config(None, ["store.root=/anywhere"]))  # a worker without the variable confines nothing


@pytest.mark.parametrize(
    ("overrides", "data_dir", "key"),
    [
        ([], None, "store.root"),  # the default `runs`, relative to the worker's directory
        (["data.sft=/etc/passwd"], None, "data.sft.path"),
        (["model.name_or_path=/home/someone/model"], None, "model.name_or_path"),
        (["model.chat_template=../../template.jinja"], None, "model.chat_template"),
        ([], "/var/incoming", "retrain.data_dir"),
    ],
)
def test_a_path_outside_the_roots_is_refused_naming_its_key(roots, overrides, data_dir, key):
    store = [] if key == "store.root" else [f"store.root={roots / 'runs'}"]
    cfg = load_config(None, store + overrides)
    with pytest.raises(ConfigError, match=rf"^key '{key}': .* is outside the paths this worker allows \({VARIABLE}"):
        confine(cfg, data_dir, roots=[roots])


def test_the_roots_come_from_the_workers_environment(monkeypatch, roots, tmp_path):
    monkeypatch.setenv(VARIABLE, f"{roots}:{tmp_path / 'other'}")
    assert allowed_roots() == [roots.resolve(), (tmp_path / "other").resolve()]
    with pytest.raises(ConfigError, match="key 'store.root'"):
        confine(load_config(None, ["store.root=/tmp/elsewhere"]))
    monkeypatch.setenv(VARIABLE, "")
    assert allowed_roots() is None


def test_nothing_outside_the_roots_is_opened_before_the_refusal(roots, tmp_path, monkeypatch, capsys):
    """A data file outside the roots with a broken row: the error is the confinement, never the row (the file
    is not read); every artifact command's --store and a form's output path are confined the same way."""
    from flows.cli import main

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "demos.jsonl").write_text('{"prompt": "secret question", "completion": \n')  # broken: not read
    monkeypatch.setenv(VARIABLE, str(roots))
    store = f"store.root={roots / 'runs'}"
    assert main(["check", "--set", store, "--set", f"data.sft={outside / 'demos.jsonl'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: key 'data.sft.path': ") and "outside the paths this worker allows" in err
    assert "secret" not in err and "line" not in err
    (outside / "runs").mkdir()
    commands = (
        ["verify"],
        ["promoted"],
        ["export", "latest"],
        ["lineage", "latest"],
        ["chat", "latest", "--prompt", "hi"],
    )
    for command in commands:
        assert main([*command, "--store", str(outside / "runs")]) == 2
        assert capsys.readouterr().err.startswith("error: option '--store': "), command
    assert main(["chat", str(outside / "runs" / "export"), "--prompt", "hi"]) == 2
    assert capsys.readouterr().err.startswith("error: argument EXPORT: ")
    assert main(["world", "--out", str(outside / "data")]) == 2
    assert capsys.readouterr().err.startswith("error: option '--out': ") and not (outside / "data").exists()


def test_flows_refuse_before_reading_the_store_or_writing_a_page(roots, tmp_path, monkeypatch):
    """A stage flow resolves its artifact refs by reading the store, and the ablation and seeds flows write a
    page: on a confining worker each is refused first (the refs would otherwise fail as 'no base artifact')."""
    from flows.pipeline import ablation_flow, seeds_flow
    from flows.stage_flows import run_target

    monkeypatch.setenv(VARIABLE, str(roots))
    outside = load_config(None, [f"store.root={tmp_path / 'elsewhere'}"])
    with pytest.raises(ConfigError, match="^key 'store.root': .* is outside"):
        run_target(outside, "sft", {"base": "latest"})
    inside = load_config(None, [f"store.root={roots / 'runs'}"])
    for flow in (ablation_flow, seeds_flow):
        with pytest.raises(ConfigError, match="^parameter 'out': .* is outside"):
            flow.fn({"0": inside}, out=str(tmp_path / "page.md"))
        with pytest.raises(ConfigError, match="^key 'store.root'"):
            flow.fn({"0": inside, "1": outside}, out=str(roots / "page.md"))
    assert not (roots / "runs").exists() and not (tmp_path / "page.md").exists()

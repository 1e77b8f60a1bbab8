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

"""prefect.yaml's settings step: defaults where sensible, a named error where not."""

import pytest

from flows.deploy_settings import deploy_settings


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in ("REPO", "REF", "RETRAIN_CRON", "RETRAIN_ACTIVE", "IMAGE", "GPUS"):
        name = f"ALIGNMENT_{name}"
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALIGNMENT_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("ALIGNMENT_INCOMING", str(tmp_path / "incoming"))
    return monkeypatch


def test_defaults_fill_everything_but_the_store_and_incoming(env, tmp_path):
    settings = deploy_settings()
    assert settings["store"] == str(tmp_path / "store") and settings["incoming"] == str(tmp_path / "incoming")
    assert settings["cron"] == "0 3 * * *" and settings["active"] is True
    assert settings["repo"] and settings["ref"]
    assert (settings["image"], settings["gpus"]) == ("alignment-pipeline:latest", 1)
    env.setenv("ALIGNMENT_RETRAIN_ACTIVE", "false")
    env.setenv("ALIGNMENT_RETRAIN_CRON", "30 1 * * 0")
    assert (deploy_settings()["active"], deploy_settings()["cron"]) == (False, "30 1 * * 0")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ALIGNMENT_STORE", "", "prefect deploy: set ALIGNMENT_STORE (the artifact store: a directory every worker"),
        ("ALIGNMENT_INCOMING", " ", "prefect deploy: set ALIGNMENT_INCOMING (where new data files land"),
        ("ALIGNMENT_STORE", "runs", "prefect deploy: ALIGNMENT_STORE='runs' must be an absolute path"),
        ("ALIGNMENT_GPUS", "two", "prefect deploy: ALIGNMENT_GPUS='two' is not a GPU count"),
        ("ALIGNMENT_RETRAIN_ACTIVE", "maybe", "prefect deploy: ALIGNMENT_RETRAIN_ACTIVE='maybe' is neither true"),
    ],
)
def test_a_missing_or_bad_setting_is_named(env, name, value, message):
    env.setenv(name, value)
    with pytest.raises(ValueError) as err:
        deploy_settings()
    assert str(err.value).startswith(message)

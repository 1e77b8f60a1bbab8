"""prefect.yaml's settings step: defaults where sensible, a named error where not."""

import pytest

from flows.deploy_settings import deploy_settings


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in (
        "REPO",
        "REF",
        "RETRAIN_CRON",
        "RETRAIN_ACTIVE",
        "IMAGE",
        "GPUS",
        "MISSED_HEARTBEATS",
        "CRASH_RETRIES",
    ):
        name = f"ALIGNMENT_{name}"
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", raising=False)
    monkeypatch.setenv("ALIGNMENT_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("ALIGNMENT_INCOMING", str(tmp_path / "incoming"))
    return monkeypatch


def test_defaults_fill_everything_but_the_store_and_incoming(env, tmp_path):
    settings = deploy_settings()
    assert settings["store"] == str(tmp_path / "store") and settings["incoming"] == str(tmp_path / "incoming")
    assert settings["cron"] == "0 3 * * *" and settings["active"] is True
    assert settings["repo"] and settings["ref"]
    assert (settings["image"], settings["gpus"]) == ("alignment-pipeline:latest", 1)
    assert (settings["heartbeat"], settings["missed_heartbeats"], settings["crash_retries"]) == ("30", 3, 2)
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
        (
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY",
            "10",
            "prefect deploy: PREFECT_FLOWS_HEARTBEAT_FREQUENCY='10' is not a "
            "heartbeat period in seconds (a whole number, at least 30)",
        ),
        ("ALIGNMENT_MISSED_HEARTBEATS", "1", "prefect deploy: ALIGNMENT_MISSED_HEARTBEATS='1' is not a count of"),
        ("ALIGNMENT_CRASH_RETRIES", "-1", "prefect deploy: ALIGNMENT_CRASH_RETRIES='-1' is not a count of retries"),
    ],
)
def test_a_missing_or_bad_setting_is_named(env, name, value, message):
    env.setenv(name, value)
    with pytest.raises(ValueError) as err:
        deploy_settings()
    assert str(err.value).startswith(message)


def test_the_lost_run_automations_follow_the_heartbeat_settings():
    """A run silent for 3 heartbeats is marked Crashed; a crashed run of our deployments is retried while its run
    count is at most the retries; 0 retries keeps the automation, switched off."""
    from datetime import timedelta

    from flows.automations import CRASH_ZOMBIES, RETRY_CRASHED, automations

    crash, retry = automations(heartbeat_seconds=60, missed_heartbeats=3, crash_retries=2)
    assert crash.name == CRASH_ZOMBIES and retry.name == RETRY_CRASHED
    assert crash.trigger.posture == "Proactive" and crash.trigger.within == timedelta(seconds=180)
    assert crash.trigger.after == {"prefect.flow-run.heartbeat"} and crash.trigger.expect == {"prefect.flow-run.*"}
    assert crash.actions[0].state == "CRASHED" and "no heartbeat for 180 s" in crash.actions[0].message
    assert retry.trigger.posture == "Reactive" and retry.trigger.expect == {"prefect.flow-run.Crashed"}
    assert retry.trigger.match.root["prefect.run-count"] == ["1", "2"] and retry.enabled
    assert {"prefect.resource.role": "flow", "prefect.resource.name": "alignment-*"} in [
        m.root for m in retry.trigger.match_related
    ]
    assert (retry.actions[0].state, retry.actions[0].name) == ("SCHEDULED", "AwaitingRetry")
    assert automations(crash_retries=0)[1].enabled is False
    with pytest.raises(ValueError, match="at most every 30 s"):
        automations(heartbeat_seconds=10)
    with pytest.raises(ValueError, match="missed_heartbeats=1"):
        automations(missed_heartbeats=1)

import os

import pytest

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


@pytest.fixture(autouse=True)
def _isolated_prefect_home(tmp_path, monkeypatch):
    """Prefect state (and any cached results) never leaks between tests or into ~/.prefect."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))

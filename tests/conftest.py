from alignment.core import environment

environment.apply()  # before any test imports Prefect or transformers

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MICRO = ROOT / "configs/micro.yaml"


@pytest.fixture(autouse=True)
def _isolated_prefect_home(tmp_path, monkeypatch):
    """Prefect state (and any cached results) never leaks between tests or into ~/.prefect."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))


@pytest.fixture(scope="module")
def harness():
    """A Prefect test server for the module's flow runs."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def micro(tmp_path):
    """The micro config (seconds-long runs), storing artifacts under this test's temporary directory."""
    from alignment.config.loading import load_config

    def load(*overrides: str):
        return load_config(MICRO, [f"store.root={tmp_path / 'runs'}", *overrides])

    return load


@pytest.fixture(scope="session")
def postgres_url():
    """The PostgreSQL server the Prefect tests on PostgreSQL use (``ALIGNMENT_TEST_POSTGRES_URL``; `.ci/run` starts
    one with tests/postgres_cluster.py); those tests are skipped, with this reason, where none is given."""
    import os

    from postgres_cluster import URL_VARIABLE

    url = os.environ.get(URL_VARIABLE, "").strip()
    if not url:
        pytest.skip(
            f"no PostgreSQL server: set {URL_VARIABLE} (`.ci/run` starts one: python tests/postgres_cluster.py start "
            "DIR, from Debian's postgresql package)"
        )
    return url

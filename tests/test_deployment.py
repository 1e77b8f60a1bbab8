"""The UI path end to end: a real Prefect server, `prefect deploy` from prefect.yaml, a process worker,
and a run triggered through the REST API exactly as the UI's Run button does (custom parameters)."""

from pathlib import Path

import pytest
from prefect_server import (
    BACKENDS,
    BIN,
    CHROMIUM,
    ROOT,
    SCREENSHOTS,
    api_call,
    create_run,
    deployment_env,
    logged_in_page,
    prefect,
    request,
    start,
    start_server,
    stop,
    ui_url,
    wait_until_terminal,
)

from alignment.config.base import section_dict
from alignment.config.loading import load_config
from alignment.config.policies import POLICY_NAMES

pytestmark = pytest.mark.slow  # whole runs, Prefect servers or real models: `make test-quick` leaves them out


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    """A server on SQLite, then one on PostgreSQL: every test of the module runs against each."""
    home = tmp_path_factory.mktemp(f"prefect-server-{request.param}")
    env = deployment_env(
        request,
        home,
        "test-pool",
        ALIGNMENT_RETRAIN_CRON="0 3 * * *",
        ALIGNMENT_RETRAIN_ACTIVE="false",  # deployed paused: no scheduled run fires during the test
    )
    proc = start_server(env, home / "server.log")
    yield {"api": env["PREFECT_API_URL"], "env": env, "home": home}
    stop(proc)


@pytest.fixture(scope="module")
def deployment(server):
    env = server["env"]
    created = prefect(env, "work-pool", "create", "test-pool", "--type", "process")
    assert created.returncode == 0, created.stdout + created.stderr
    deployed = prefect(env, "--no-prompt", "deploy", "--all")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    return {
        name: api_call(env, "GET", f"/deployments/name/{flow_name}/{name}").json() for flow_name, name in DEPLOYMENTS
    }


def test_plain_prefect_deploy_without_the_store_stops_naming_the_variable(server, tmp_path):
    """`prefect deploy --all` without `make deploy`'s variables: no empty store path, no cryptic schedule error."""
    env = {k: v for k, v in server["env"].items() if k not in {"ALIGNMENT_STORE", "ALIGNMENT_RETRAIN_CRON"}}
    created = prefect(env, "work-pool", "create", "store-less", "--type", "process")
    assert created.returncode == 0
    env |= {"ALIGNMENT_POOL": "store-less"}
    done = prefect(env, "--no-prompt", "deploy", "--all")
    assert done.returncode != 0
    assert "prefect deploy: set ALIGNMENT_STORE (the artifact store" in done.stdout + done.stderr
    listed = api_call(env, "POST", "/deployments/filter", json={})
    assert all(d["work_pool_name"] != "store-less" for d in listed.json())  # stopped before any deployment


DEPLOYMENTS = [
    (f"alignment-{name}", name) for name in ("pipeline", "sft", "reward", *POLICY_NAMES, "evaluate", "retrain", "bench")
]


def test_every_deployment_has_a_form_and_the_retrain_a_cron_schedule(server, deployment):
    for name, found in deployment.items():
        assert found["enforce_parameter_schema"], name
        assert found["work_pool_name"] == "test-pool", name
        if name == "bench":  # no run config: the bench builds its own model and data
            assert found["parameters"] == {"out": str(server["home"] / "runs" / "bench")}
        else:
            assert found["parameters"]["cfg"]["store"]["root"] == str(server["home"] / "runs"), name
        assert found["pull_steps"][0]["prefect.deployments.steps.git_clone"]["repository"] == str(ROOT)
    bench = deployment["bench"]["parameter_openapi_schema"]["properties"]
    assert bench["preset"]["enum"] == ["tiny", "0.5b"] and bench["preset"]["default"] == "tiny"
    properties = deployment["dpo"]["parameter_openapi_schema"]["properties"]
    assert properties["sft"]["pattern"] == "^(latest|sft-[0-9a-f]{16})$" and properties["sft"]["default"] == "latest"
    retrain = deployment["retrain"]
    assert retrain["parameters"]["retrain"]["data_dir"] == str(server["home"] / "incoming")
    [schedule] = retrain["schedules"]
    assert schedule["schedule"]["cron"] == "0 3 * * *" and schedule["schedule"]["timezone"] == "UTC"
    assert schedule["active"] is False
    gates = retrain["parameter_openapi_schema"]["definitions"]["PromotionGates"]["properties"]
    assert gates["min_gold_win_rate"]["maximum"] == 1 and gates["min_gold_win_rate"]["description"]


def test_stage_deployment_refuses_another_stages_artifact_id(server, deployment):
    response = request(
        server["env"],
        "POST",
        f"/deployments/{deployment['dpo']['id']}/create_flow_run",
        json={"parameters": {"sft": "reward-0123456789abcdef"}},
    )
    assert response.status_code in (409, 422), response.text


def _micro_parameters(store: Path) -> dict:
    cfg = load_config(ROOT / "configs/micro.yaml", [f"store.root={store}"])
    return {"cfg": section_dict(cfg)}


@pytest.fixture(scope="module")
def pipeline_run(server, deployment, tmp_path_factory):
    """A run of the pipeline deployment, created as the UI's Run button does, executed by a process worker."""
    deployment = deployment["pipeline"]
    work = tmp_path_factory.mktemp("ui-run")
    worker = start([BIN / "prefect", "worker", "start", "--pool", "test-pool"], server["env"], work / "worker.log")
    try:
        flow_run = create_run(server["env"], deployment["id"], _micro_parameters(work / "runs"))
        (state,) = wait_until_terminal(server["env"], [flow_run], 420, work / "worker.log", worker).values()
    finally:
        stop(worker)
    return {"flow_run": {"id": flow_run}, "state": state, "store": work / "runs", "log": work / "worker.log"}


def test_ui_run_button_runs_the_deployed_pipeline_on_a_worker(server, deployment, pipeline_run):
    schema = deployment["pipeline"]["parameter_openapi_schema"]
    assert "cfg" in schema["properties"]  # the UI builds its form from this
    assert pipeline_run["state"]["type"] == "COMPLETED", pipeline_run["log"].read_text()[-5000:]
    body = {"artifacts": {"flow_run_id": {"any_": [pipeline_run["flow_run"]["id"]]}}, "limit": 50, "offset": 0}
    artifacts = api_call(server["env"], "POST", "/artifacts/filter", json=body).json()
    assert {"alignment-report", "alignment-lineage"} <= {a["key"] for a in artifacts}
    assert list((pipeline_run["store"] / "report").glob("*/report.md"))


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium); .ci/run installs it")
def test_flow_run_page_shows_the_report_in_headless_chromium(server, pipeline_run):
    """A person's path in a real browser: log in with the auth string, open the flow run, its Artifacts
    tab, then the report. Screenshots of both pages go to runs/screenshots/."""
    assert pipeline_run["state"]["type"] == "COMPLETED"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with logged_in_page(server["env"]) as page:
        page.goto(f"{ui_url(server['env'])}/runs/flow-run/{pipeline_run['flow_run']['id']}")
        page.get_by_text("Artifacts", exact=True).first.click()  # the run page's Artifacts tab
        card = page.get_by_text("alignment-report", exact=True).first
        card.wait_for(timeout=60_000)
        page.screenshot(path=SCREENSHOTS / "flow-run-artifacts.png")
        card.click()
        page.get_by_text("What this run shows").first.wait_for(timeout=60_000)  # the rendered report
        page.screenshot(path=SCREENSHOTS / "report-artifact.png")
    assert (SCREENSHOTS / "report-artifact.png").stat().st_size > 10_000


def test_invalid_parameter_is_rejected_before_any_run(server, deployment):
    deployment = deployment["pipeline"]
    env = server["env"]
    before = api_call(env, "POST", "/flow_runs/count", json={}).json()
    bad = {"cfg": {"dpo": {"beta": -1.0}}}
    response = request(env, "POST", f"/deployments/{deployment['id']}/create_flow_run", json={"parameters": bad})
    assert response.status_code in (409, 422), response.text
    assert "beta" in response.text
    assert api_call(env, "POST", "/flow_runs/count", json={}).json() == before


def test_server_refuses_requests_without_the_auth_string(server):
    env = server["env"]
    assert request(env, "POST", "/flows/filter", json={}, auth=None).status_code == 401
    wrong = request(env, "POST", "/flows/filter", json={}, auth=("admin", "nope"))
    assert wrong.status_code == 401
    assert request(env, "POST", "/flows/filter", json={}).status_code == 200


@pytest.mark.parametrize("kind", ["kubernetes", "docker"])
def test_deploys_onto_a_gpu_pool_whose_jobs_get_the_gpus_the_image_and_the_store(server, kind):
    """`make deploy POOL_TYPE=...` as commands: the pool from deploy/'s template, its limit, then prefect.yaml.
    Last in this module: it moves the pipeline deployment onto the GPU pool."""
    import asyncio
    import uuid

    from prefect.client.schemas.objects import FlowRun

    pool = f"gpu-{kind}"
    env = server["env"] | {
        "ALIGNMENT_POOL": pool,
        "ALIGNMENT_IMAGE": "registry.example/alignment:v1",
        "ALIGNMENT_GPUS": "2",
        "ALIGNMENT_STORE": "/store/runs",
        "ALIGNMENT_INCOMING": "/store/incoming",
    }
    template = ROOT / f"deploy/{kind}-gpu-pool.json"
    for step in (
        ("work-pool", "create", pool, "--type", kind, "--base-job-template", str(template)),
        ("work-pool", "set-concurrency-limit", pool, "1"),
        ("--no-prompt", "deploy", "--name", "pipeline"),
    ):
        done = prefect(env, *step)
        assert done.returncode == 0, done.stdout + done.stderr
    deployment = api_call(env, "GET", "/deployments/name/alignment-pipeline/pipeline").json()
    work_pool = api_call(env, "GET", f"/work_pools/{pool}").json()
    assert deployment["work_pool_name"] == pool and work_pool["concurrency_limit"] == 1
    assert deployment["parameters"]["cfg"]["store"]["root"] == "/store/runs"
    if kind == "kubernetes":
        from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration as Configuration
    else:
        from prefect_docker.worker import DockerWorkerJobConfiguration as Configuration
    cfg = asyncio.run(
        Configuration.from_template_and_values(
            work_pool["base_job_template"], deployment["job_variables"], client=object()
        )
    )
    cfg.prepare_for_flow_run(flow_run=FlowRun(flow_id=uuid.uuid4(), name="gentle-otter"))
    if kind == "kubernetes":
        (container,) = cfg.job_manifest["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "registry.example/alignment:v1"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
        assert {"name": "store", "mountPath": "/store"} in container["volumeMounts"]
    else:
        assert cfg.image == "registry.example/alignment:v1" and cfg.volumes == ["/srv/alignment-store:/store"]
        assert cfg.container_create_kwargs["device_requests"][0]["count"] == 2

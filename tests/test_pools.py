"""The GPU work pools' job templates (deploy/*.json) rendered by the workers' own code, with the job variables
prefect.yaml deploys: the GPU request, the image and the store reach the Kubernetes Job and the Docker container.
No cluster and no Docker daemon: the same rendering a worker does before it submits."""

import asyncio
import json
import uuid
from pathlib import Path

import docker
import pytest
import yaml
from prefect.client.schemas.objects import FlowRun
from prefect.utilities.importtools import import_object
from prefect.utilities.schema_tools.validation import ValidationError, validate
from prefect.utilities.templating import apply_values
from prefect_docker.worker import DockerWorker, DockerWorkerJobConfiguration
from prefect_kubernetes.worker import KubernetesWorker, KubernetesWorkerJobConfiguration

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = {kind: json.loads((ROOT / f"deploy/{kind}-gpu-pool.json").read_text()) for kind in ("kubernetes", "docker")}
ENV = {
    "ALIGNMENT_POOL": "gpu",
    "ALIGNMENT_STORE": "/store/runs",
    "ALIGNMENT_INCOMING": "/store/incoming",
    "ALIGNMENT_IMAGE": "registry.example/alignment:abc123",
    "ALIGNMENT_GPUS": "2",
    "ALIGNMENT_REPO": "https://git.example/alignment.git",
    "ALIGNMENT_REF": "main",
}


@pytest.fixture
def deployments(monkeypatch):
    """prefect.yaml's deployments as `prefect deploy` renders them: env, then the build steps' outputs."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    ((step, options),) = config["build"][0].items()  # the settings step, run as `prefect deploy` runs it
    outputs = {options["id"]: import_object(step)()}
    rendered = apply_values(apply_values(config, ENV, remove_notset=False), outputs)
    assert "{{ $" not in json.dumps(rendered["deployments"]) and "{{ settings" not in json.dumps(rendered)
    return rendered["deployments"]


def _validate(job_variables: dict, kind: str) -> None:
    """The check the server makes when a deployment is created on a pool of this template."""
    validate(
        job_variables,
        TEMPLATES[kind]["variables"],
        raise_on_error=True,
        preprocess=True,
        ignore_required=True,
        allow_none_with_default=True,
    )


def _configuration(cls, kind: str, job_variables: dict):
    cfg = asyncio.run(cls.from_template_and_values(TEMPLATES[kind], job_variables, client=object()))
    cfg.prepare_for_flow_run(flow_run=FlowRun(flow_id=uuid.uuid4(), name="gentle-otter"))
    return cfg


def test_templates_keep_every_field_of_the_workers_defaults():
    for kind, worker in (("kubernetes", KubernetesWorker), ("docker", DockerWorker)):
        default = worker.get_default_base_job_template()
        assert set(default["job_configuration"]) <= set(TEMPLATES[kind]["job_configuration"]), kind
        assert set(default["variables"]["properties"]) - {"container_create_kwargs"} <= set(
            TEMPLATES[kind]["variables"]["properties"]
        ), kind


def test_kubernetes_job_gets_the_gpus_the_image_and_the_store(deployments):
    for deployment in deployments:
        job_variables = deployment["work_pool"]["job_variables"]
        _validate(job_variables, "kubernetes")
        manifest = _configuration(KubernetesWorkerJobConfiguration, "kubernetes", job_variables).job_manifest
        pod = manifest["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == "registry.example/alignment:abc123"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
        assert {"name": "store", "mountPath": "/store"} in container["volumeMounts"]
        assert {"name": "store", "persistentVolumeClaim": {"claimName": "alignment-store"}} in pod["volumes"]
        assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert pod["securityContext"] == {"runAsNonRoot": True}
        # the store the flows write to lies on that volume
        params = json.dumps(deployment.get("parameters", {}))
        assert '"root": "/store/runs"' in params or params == '{"out": "/store/runs/bench"}'


def test_docker_container_requests_the_gpus_and_mounts_the_store(deployments):
    job_variables = deployments[0]["work_pool"]["job_variables"]
    _validate(job_variables, "docker")
    cfg = _configuration(DockerWorkerJobConfiguration, "docker", job_variables)
    assert cfg.image == "registry.example/alignment:abc123"

    class Daemon:  # the only call the container settings make to Docker
        def version(self):
            return {"Version": "27.0.0"}

    settings = DockerWorker._build_container_settings(None, Daemon(), cfg)
    host = docker.models.containers._create_container_args({**settings, "version": "1.44"})["host_config"]
    assert host["DeviceRequests"] == [
        {"Driver": "nvidia", "Count": 2, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}
    ]
    assert host["Binds"] == ["/srv/alignment-store:/store"] and host["ShmSize"] == 8 * 1024**3


def test_a_gpu_count_of_the_wrong_type_is_refused_as_the_server_would():
    with pytest.raises(ValidationError, match="Validation failed for field 'gpu_count'"):
        _validate({"gpu_count": "2"}, "kubernetes")

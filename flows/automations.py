"""The automations a self-hosted Prefect server needs so that a run nobody watches ends on its own when its node is
lost (Prefect Cloud manages the first one itself; a self-hosted server must create both):

- **Crash zombie flow runs** (Prefect's guide "Detect zombie flows"): after each ``prefect.flow-run.heartbeat`` of a
  flow run, some ``prefect.flow-run.*`` event of the same run (a heartbeat or a state change) is expected within
  ``missed_heartbeats`` heartbeats; when none comes, the run is marked *Crashed*. Flow runs send heartbeats every
  ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds: the deployments set it on their runs (prefect.yaml's job variables).
- **Retry crashed pipeline runs**: a *Crashed* run of one of the pipeline's deployments (flows named ``alignment-*``)
  goes back to *Scheduled* (named AwaitingRetry, as the UI's Retry does) while its run count is at most
  ``crash_retries``; a worker runs it again, and each stage resumes from its last checkpoint and reuses the artifacts
  already built. A run that crashes more often stays *Crashed*.

``prefect deploy`` creates or updates both, by name (a build step of prefect.yaml, after the settings)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

CRASH_ZOMBIES = "alignment: crash zombie flow runs"
RETRY_CRASHED = "alignment: retry crashed pipeline runs"
MIN_HEARTBEAT_SECONDS = 30  # Prefect's lower bound of PREFECT_FLOWS_HEARTBEAT_FREQUENCY


def automations(
    heartbeat_seconds: int = 30, missed_heartbeats: int = 3, crash_retries: int = 2
) -> list[AutomationCore]:
    """The two automations: runs silent for ``missed_heartbeats`` heartbeats of ``heartbeat_seconds`` are marked
    Crashed; a crashed run of the pipeline's deployments is scheduled again while its run count is at most
    ``crash_retries`` (0: never)."""
    if heartbeat_seconds < MIN_HEARTBEAT_SECONDS:
        raise ValueError(
            f"heartbeat_seconds={heartbeat_seconds}: Prefect sends flow-run heartbeats at most every "
            f"{MIN_HEARTBEAT_SECONDS} s (PREFECT_FLOWS_HEARTBEAT_FREQUENCY)"
        )
    if missed_heartbeats < 2 or crash_retries < 0:
        raise ValueError(
            f"missed_heartbeats={missed_heartbeats} (at least 2: one late heartbeat is not a lost node), "
            f"crash_retries={crash_retries} (0 or more)"
        )
    crash = AutomationCore(
        name=CRASH_ZOMBIES,
        enabled=True,
        description=f"A flow run with no heartbeat or state change for {missed_heartbeats} heartbeats "
        f"({heartbeat_seconds} s apart) is marked Crashed: its process or node is gone.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.*"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=missed_heartbeats * heartbeat_seconds),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {missed_heartbeats * heartbeat_seconds} s: the run's process is gone",
            )
        ],
    )
    retry = AutomationCore(
        name=RETRY_CRASHED,
        enabled=crash_retries > 0,  # 0: kept, switched off
        description=f"A crashed run of the pipeline's deployments is scheduled again, at most {crash_retries} times; "
        "its stages resume from their checkpoints.",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Crashed"},
            match=ResourceSpecification(
                {
                    "prefect.resource.id": ["prefect.flow-run.*"],
                    "prefect.run-count": [str(n) for n in range(1, max(crash_retries, 1) + 1)],
                }
            ),
            match_related=[
                ResourceSpecification({"prefect.resource.role": "flow", "prefect.resource.name": "alignment-*"}),
                ResourceSpecification({"prefect.resource.role": "deployment"}),
            ],
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.SCHEDULED,
                name="AwaitingRetry",
                message="retried after a crash: its stages resume from their checkpoints",
            )
        ],
    )
    return [crash, retry]


def ensure_automations(heartbeat_seconds: Any = 30, missed_heartbeats: Any = 3, crash_retries: Any = 2) -> dict:
    """Create the automations on the server of ``PREFECT_API_URL``, or update those of the same names (a redeploy
    with other settings changes them in place); returns their ids by name (prefect.yaml's build step: its
    arguments come templated, as text)."""
    wanted = automations(int(heartbeat_seconds), int(missed_heartbeats), int(crash_retries))
    ids = {}
    with get_client(sync_client=True) as client:
        for automation in wanted:
            # every field set (a PUT replaces them all) but the owner, which the server's update refuses
            automation = AutomationCore.model_validate(automation.model_dump(exclude={"owner_resource"}))
            existing = client.read_automations_by_name(automation.name)
            for extra in existing[1:]:  # one of each name: duplicates (created by hand) go
                client.delete_automation(extra.id)
            if existing:
                client.update_automation(existing[0].id, automation)
                ids[automation.name] = str(existing[0].id)
            else:
                ids[automation.name] = str(client.create_automation(automation))
    return ids

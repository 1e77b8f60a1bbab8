"""The bench as a flow (deployment `alignment-bench/bench`): ours vs plain TRL per method on the node it runs
on, the table published as the Prefect Markdown artifact `alignment-bench` and written to ``out``."""

from __future__ import annotations

from alignment.core import environment

environment.apply()  # a worker loads this file by path, without flows/__init__: defaults before any import

from pathlib import Path
from typing import Annotated, Literal

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import Field

from alignment.core.allowed_paths import confine_paths
from alignment.studies.bench import bench
from alignment.studies.bench_trials import METHODS

Method = Literal[METHODS]  # SFT, the reward model, every policy of the registry, generation


@flow(name="alignment-bench")
def bench_flow(
    preset: Literal["tiny", "0.5b"] = "tiny",
    methods: list[Method] = list(METHODS),  # noqa: B006 - a flow parameter's default, shown in the UI form
    steps: Annotated[int | None, Field(ge=2, description="Optimizer steps per trial; None: the preset's.")] = None,
    peak_tflops: Annotated[
        float | None, Field(gt=0, description="The GPU's dense bf16 peak for MFU; None: known GPUs by name.")
    ] = None,
    out: str = "runs/bench",
) -> str:
    """Train each method with plain TRL and our way (each trial in its own process), time the steps, and
    publish the table; returns the directory of ``bench.json`` and ``bench.md``."""
    confine_paths({"parameter 'out'": out})  # a form parameter: on a worker that confines paths, inside its roots
    table = bench(preset, Path(out), methods=tuple(methods), steps=steps, peak_tflops=peak_tflops)
    markdown = (Path(out) / "bench.md").read_text()
    create_markdown_artifact(key="alignment-bench", markdown=markdown, description=f"bench {table['preset']}")
    return str(Path(out).resolve())

"""Prefect orchestration of the alignment library: tasks, the pipeline flow and the CLI."""

from alignment.core import environment

environment.apply()  # before Prefect, transformers or tokenizers are imported by any flow module

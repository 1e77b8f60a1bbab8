"""Prefect orchestration of the alignment library: tasks, the pipeline flow and the CLI."""

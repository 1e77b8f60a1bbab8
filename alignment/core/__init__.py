"""Infrastructure every stage runs on: the run context, the artifact store, launching, checkpoints, progress, lineage,
the environment and path confinement. Imports no stage."""

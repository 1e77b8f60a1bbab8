"""Evaluation: the metrics registry, the knowledge probe, the evaluation stage, the report and its plots."""

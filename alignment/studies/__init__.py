"""Whole-run tools built on the pipeline: champion/challenger retraining, ablations and the bench."""

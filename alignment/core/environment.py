"""Process environment defaults, in one place: applied before the libraries that read them are imported
(``flows/__init__.py`` and the tests' ``conftest.py`` apply them first). A value already set wins."""

from __future__ import annotations

import logging
import os
import warnings

DEFAULTS = {
    "HF_HUB_DISABLE_TELEMETRY": "1",  # no usage pings from huggingface_hub
    "HF_HUB_OFFLINE": "1",  # the default run needs no hub; set HF_HUB_OFFLINE=0 to load hub models and datasets
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # no download / weight-loading bars: stages report progress as events
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",  # no bar per dataset map in TRL's preprocessing
    "TOKENIZERS_PARALLELISM": "false",  # no fork warnings from the Rust tokenizers
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # no telemetry from a local Prefect server
    "DO_NOT_TRACK": "1",  # nor from Prefect's client (without it, it announces that it collects usage data)
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # a 2-core machine starts the temporary server slowly
    "PREFECT_LOGGING_EXTRA_LOGGERS": "alignment,transformers,trl,peft,accelerate",  # their records reach the run log
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",  # outside a flow: console only
}


def _not_checkpoint_mtime(record: logging.LogRecord) -> bool:
    """False for transformers' "mtime may not be reliable" notice: a small model saves two checkpoints within a
    second, so the Trainer sorts them by step number instead of time, which is the order they have anyway."""
    return not record.getMessage().startswith("mtime may not be reliable on this filesystem")


def apply() -> None:
    """Set every default that is not already set, and silence the library messages whose cause is known and
    harmless: TRL and PEFT still read transformers' ``is_gradient_checkpointing``, renamed in transformers 5
    (``activation_checkpointing`` is set by its new name here; it printed 7 FutureWarnings per run), and the
    Trainer's checkpoint-ordering notice (``_not_checkpoint_mtime``)."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    checkpoints = logging.getLogger("transformers.trainer_utils")
    if _not_checkpoint_mtime not in checkpoints.filters:
        checkpoints.addFilter(_not_checkpoint_mtime)


if (
    __name__ == "__main__"
):  # KEY=VALUE for each default not already set: `env $(python -m alignment.core.environment) ...`
    print(" ".join(f"{key}={value}" for key, value in DEFAULTS.items() if key not in os.environ))

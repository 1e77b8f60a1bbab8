"""The `alignment` command (``alignment = "flows.cli:main"``): ``parser`` builds it and dispatches; each command
lives in the module named for it (``run``, ``studies``: ablation and seeds, ``retrain``: retrain and promoted,
``export``, ``chat``, ``lineage``: lineage and verify, ``fetch``, ``bench``, ``config``: check and config,
``data``: world and facts), and ``common`` holds what several share."""

from flows.cli.parser import main

__all__ = ["main"]

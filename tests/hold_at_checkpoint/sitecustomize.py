"""Test-only: a training process started with this folder on ``PYTHONPATH`` stops moving right after the
Trainer saves its first checkpoint, and stays there until the test kills it (as a lost node would be). With
``HOLD_AT_CHECKPOINT_OF=<stage>`` set, only that stage's trainer holds (its checkpoints go to
``.checkpoints/<stage>-<id>``); the stages before it run through.

Without it, "killed mid-training" is a race against the clock: on a fast machine the micro model's whole SFT
finished in the second between its first checkpoint and the kill. Python imports ``sitecustomize`` at
start-up; the patch waits for ``transformers.trainer`` to be imported, so nothing else is slowed or changed.
"""

import importlib.abc
import importlib.util
import os
import sys
import time
from pathlib import Path


class _HoldAfterFirstCheckpoint(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "transformers.trainer":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            save = module.Trainer._save_checkpoint

            def save_then_hold(trainer, *args, **kwargs):
                save(trainer, *args, **kwargs)
                stage = os.environ.get("HOLD_AT_CHECKPOINT_OF")
                if stage and not Path(trainer.args.output_dir).name.startswith(f"{stage}-"):
                    return
                print("hold_at_checkpoint: checkpoint saved, holding until killed", file=sys.stderr, flush=True)
                time.sleep(24 * 3600)

            module.Trainer._save_checkpoint = save_then_hold

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _HoldAfterFirstCheckpoint())

"""Progress as structured events: which stage, which step of how many, the loss.

The library calls a ``Progress`` callback with events; it never prints text for others to parse. The
flows turn events into Prefect progress artifacts and run-log lines; the CLI also draws a bar per stage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("alignment")


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report of a stage: a message, and for training the step reached out of ``total``."""

    stage: str
    message: str = ""
    step: int | None = None
    total: int | None = None
    loss: float | None = None
    logs: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float | None:
        """Share of the stage's steps done, when it counts steps."""
        if self.step is None or not self.total:
            return None
        return min(self.step / self.total, 1.0)

    def __str__(self) -> str:
        parts = [self.stage]
        if self.step is not None:
            parts.append(f"step {self.step}/{self.total}")
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4g}")
        if self.logs:
            parts.append(
                ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.logs.items())
            )
        if self.message:
            parts.append(self.message)
        return ": ".join([parts[0], ", ".join(parts[1:])]) if len(parts) > 1 else parts[0]


Progress = Callable[[ProgressEvent], None]


def log_event(event: ProgressEvent) -> None:
    """The default sink: one record on the ``alignment`` logger, the event attached as ``record.progress``."""
    logger.info(str(event), extra={"progress": event})


def fan_out(*sinks: Progress) -> Progress:
    """One callback that passes each event to every sink."""

    def emit(event: ProgressEvent) -> None:
        for sink in sinks:
            sink(event)

    return emit


class ProgressBars:
    """A tqdm bar per stage that counts steps; by default shown only when stderr is a terminal."""

    def __init__(self, enabled: bool | None = None, file: Any = None) -> None:
        self.bars: dict[str, Any] = {}
        self.options = {"disable": None if enabled is None else not enabled, "file": file}

    def __call__(self, event: ProgressEvent) -> None:
        if event.step is None or not event.total:
            return
        from tqdm.auto import tqdm

        bar = self.bars.get(event.stage)
        if bar is None:
            bar = self.bars[event.stage] = tqdm(total=event.total, desc=event.stage, unit="step", **self.options)
        bar.update(max(event.step - bar.n, 0))
        if event.loss is not None:
            bar.set_postfix(loss=f"{event.loss:.4g}", refresh=False)
        if event.step >= event.total:
            bar.close()

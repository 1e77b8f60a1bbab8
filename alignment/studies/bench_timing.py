"""What a bench trial measures: each step's wall time and tokens, the fixed costs beside the steps, the peak memory
and the parameter count, collected by Trainer callbacks into ``StepTimes``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class StepTimes:
    """Per-step wall times of one trial, the tokens each step's trainer counted itself (RLOO), its peak memory
    and the model's parameter count (for MFU)."""

    seconds: list[float] = field(default_factory=list)
    tokens: list[float] = field(default_factory=list)
    peak_mib: float = 0.0
    wall_seconds: float = 0.0  # the whole trial: loading, data preparation (DPO's reference precompute), all steps
    parameters: int = 0
    device_name: str = "cpu"
    fixed_seconds: float = 0.0  # within the trial, outside the steps: the reward model's held-out evaluation; a
    # reference pass's whole time
    prompt_tokens: list[float] = field(default_factory=list)  # generation: each pass's non-padding prompt tokens
    matmul_flops: float = 0.0  # generation: this machine's measured matrix-multiply FLOP/s in the model's dtype


def step_timer(times: StepTimes):
    """A Trainer callback appending each optimizer step's wall time to ``times.seconds`` and the tokens the trainer
    counted in it (``state.num_input_tokens_seen``) to ``times.tokens``."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start, self.seen = time.perf_counter(), state.num_input_tokens_seen

        def on_step_end(self, args, state, control, **kwargs):
            times.seconds.append(time.perf_counter() - self.start)
            times.tokens.append(float(state.num_input_tokens_seen - self.seen))

    return StepTimer()


def evaluation_timer(times: StepTimes):
    """A Trainer callback adding an evaluation after training (the reward model's held-out pairs) to the trial's
    fixed costs."""
    from transformers import TrainerCallback

    class EvaluationTimer(TrainerCallback):
        def on_train_end(self, args, state, control, **kwargs):
            self.ended = time.perf_counter()

        def on_evaluate(self, args, state, control, **kwargs):  # from the end of training: the adapter saved too
            if hasattr(self, "ended"):
                times.fixed_seconds += time.perf_counter() - self.ended

    return EvaluationTimer()


def parameter_counter(times: StepTimes):
    """A Trainer callback recording the trained model's parameter count (LoRA included) for MFU."""
    from transformers import TrainerCallback

    class ParameterCounter(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            times.parameters = sum(p.numel() for p in model.parameters())

    return ParameterCounter()

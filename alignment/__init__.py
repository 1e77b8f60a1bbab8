"""An alignment pipeline: synthetic world, tiny base, SFT, reward model, DPO and an honest evaluation."""

__version__ = "0.1.0"

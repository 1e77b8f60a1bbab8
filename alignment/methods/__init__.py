"""Training methods, one module each: SFT, the reward model, and every preference policy of
``alignment.config.policies``."""

"""Data: the synthetic world, the tiny tokenizer, records in TRL's formats, sources loaded with ``datasets``, and the
run's data."""

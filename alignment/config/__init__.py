"""The run configuration: one module per section (TRL's names for the training sections), the policy registry, and YAML
loading."""

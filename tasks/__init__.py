"""rlvr.tasks: datasets with their prompt templates and verifiers (one module per family)."""

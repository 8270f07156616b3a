"""Several processes: torch.distributed helpers and the in-run half of an Optuna sweep."""

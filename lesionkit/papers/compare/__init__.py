"""The comparison notebook: the five ideas on one split, folds and budget."""

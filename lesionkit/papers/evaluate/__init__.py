"""The evaluate notebook: saved runs on other datasets."""

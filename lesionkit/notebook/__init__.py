"""Notebook plumbing: parameters cells generated from and checked against the Config classes."""

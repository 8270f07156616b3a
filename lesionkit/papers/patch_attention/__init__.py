"""Gessert et al., patch-based attention and diagnosis-guided loss weighting."""

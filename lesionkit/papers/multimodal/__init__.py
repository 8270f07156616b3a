"""Multimodal EfficientNet (image + patient metadata) and the artefact/bias multi-head classifier."""

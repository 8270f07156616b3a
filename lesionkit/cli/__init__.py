"""The commands of `python -m lesionkit`, one module each."""

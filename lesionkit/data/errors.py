"""Error types of the data layer: each names the file, row or column at fault and says what to do.

They subclass ValueError / FileNotFoundError so callers that catch the builtins keep working.
"""
from __future__ import annotations

CHECK_HINT = "run `python -m lesionkit data check DIR` to list every problem at once"


class DataError(ValueError):
    """Base class: the dataset on disk does not match what the reader needs."""


class MissingColumnError(DataError):
    """A CSV lacks a column the layout requires (or has it under another name)."""


class UnknownLabelError(DataError):
    """A row carries a label outside the dataset's class list."""


class DuplicateIdError(DataError):
    """The same image id appears on several rows."""


class UnsafePathError(DataError):
    """A path in a CSV points outside the dataset folder (e.g. `../../etc/passwd`)."""


class ImageDecodeError(DataError):
    """An image file is empty, truncated, corrupt or not an image."""


class ImageTooLargeError(ImageDecodeError):
    """An image has more pixels than the configured limit (a decompression-bomb guard)."""


class MissingFileError(DataError, FileNotFoundError):
    """A file named by the CSV is not in the folder."""


class FormatDetectionError(DataError):
    """No reader recognises the folder's files."""


class GroupLeakError(DataError):
    """A lesion or patient sits on two sides of a split."""


class MetadataValueError(DataError):
    """A metadata value no patient can have (age -5 or 999, a sex that is neither male nor female nor missing)."""


class TooFewClassesError(DataError):
    """A dataset (or its training rows) has images of fewer than two classes: nothing to classify."""

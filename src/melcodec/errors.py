"""Exceptions that the CLI turns into one-line messages.

Every failure a user can cause (bad input, corrupt file, wrong model) raises a
subclass of :class:`MelcodecError`; anything else is a bug and keeps its traceback.
"""


class MelcodecError(Exception):
    """Base class for errors caused by input, not by a bug."""


class AudioError(MelcodecError):
    """An audio file is missing, unreadable or unwritable."""


class FormatError(MelcodecError):
    """An .mlc file is malformed, truncated or corrupt."""


class ModelError(MelcodecError):
    """A model file is missing, invalid, or not the one a stream was made with."""


class UsageError(MelcodecError):
    """An option or argument has a value that cannot work."""

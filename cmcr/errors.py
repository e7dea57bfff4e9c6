"""Exception types shared by every layer.

The app shows `InputError` messages to visitors verbatim, so they must be written for people:
what was wrong with the input and what would be accepted instead. Everything else is a bug or an
operator problem and is logged with its traceback.
"""


class CMCRError(Exception):
    """Base class for errors this package raises on purpose."""


class InputError(CMCRError, ValueError):
    """A user-supplied file, array or text cannot be used; the message is safe to display."""


class CheckpointError(CMCRError):
    """A checkpoint or trained space is missing, corrupt, or has an unexpected layout."""


class FileNotOnHubError(CheckpointError):
    """The Hub repo exists but holds no such file at that revision (a fallback file may be tried)."""


class HubUnavailableError(CMCRError):
    """The Hugging Face Hub cannot be reached and nothing usable is cached."""

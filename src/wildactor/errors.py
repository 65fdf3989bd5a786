"""Errors a user can cause and fix. The CLI prints them as one line and exits non-zero."""


class WildActorError(Exception):
    """A user-facing error: bad input, missing file, inconsistent settings. Never a bug."""

    exit_code = 2

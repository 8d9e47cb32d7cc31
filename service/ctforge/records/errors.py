"""What a broken rule raises: one class per kind of refusal, each with the HTTP status the API answers.

The message names the problem and, where there is one, what to do; its text is a constant of
ctforge.messages so tests assert on the constant.
"""

from __future__ import annotations


class RecordError(Exception):
    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(RecordError):
    status_code = 404


class Forbidden(RecordError):
    status_code = 403


class Conflict(RecordError):
    """The request is well-formed but the records' state refuses it (a status, a name, a range)."""

    status_code = 409


class Invalid(RecordError):
    """A value the catalog or the family refuses: an unknown stack, a cycle."""

    status_code = 422


class Unavailable(RecordError):
    """Something the service depends on (Proxmox) did not answer; nothing was written."""

    status_code = 503

"""What can go wrong when talking to Dataverse, as types that say where it went wrong.

Messages never hold a secret or a token: they are built from status lines, Dataverse error bodies
and Entra error descriptions, which carry neither.
"""

from __future__ import annotations


class DataverseClientError(Exception):
    """Base of every error the Dataverse client raises."""


class DataverseConfigError(DataverseClientError):
    """The settings do not say enough to reach Dataverse (URL, client id, credential)."""


class DataverseAuthError(DataverseClientError):
    """The authority refused to issue a token, or the credential could not be used."""


class DataverseUnreachableError(DataverseClientError):
    """Dataverse or the authority could not be reached (DNS, refused, TLS, timeouts)."""


class DataverseError(DataverseClientError):
    """Dataverse answered with an error: HTTP status, Dataverse error code, message, Retry-After.

    ``code`` is the hex string of the body's ``error.code`` (``"0x80060892"``), ``""`` when the
    response had no Dataverse error body (a gateway's 502, for example).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.method = method
        self.path = path
        where = f" ({method} {path})" if method else ""
        super().__init__(f"{status} {code or 'no code'}: {message}{where}")

    @property
    def transient(self) -> bool:
        """Whether the same request may succeed later (throttling, gateway trouble)."""
        return self.status in TRANSIENT_STATUSES


TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
"""Statuses Microsoft's guidance and SDK treat as transient and retryable (reference 7.3)."""

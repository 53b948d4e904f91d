"""The Dataverse side of crmledger: authentication, the Web API client and the metadata API.

``client_from_settings(settings)`` gives a :class:`DataverseClient` for the configured
environment; :class:`MetadataApi` reads and creates table, column and key definitions over it.
"""

from consumers.dataverse.auth import CertificateCredential, MsalTokenProvider, TokenProvider
from consumers.dataverse.client import (
    ClientStats,
    DataverseClient,
    RetryPolicy,
    client_from_settings,
    make_http_client,
)
from consumers.dataverse.errors import (
    DataverseAuthError,
    DataverseClientError,
    DataverseConfigError,
    DataverseError,
    DataverseUnreachableError,
)
from consumers.dataverse.metadata import (
    ColumnDefinition,
    KeyDefinition,
    KeyNotActiveError,
    MetadataApi,
    TableDefinition,
)

__all__ = [
    "CertificateCredential",
    "ClientStats",
    "ColumnDefinition",
    "DataverseAuthError",
    "DataverseClient",
    "DataverseClientError",
    "DataverseConfigError",
    "DataverseError",
    "DataverseUnreachableError",
    "KeyDefinition",
    "KeyNotActiveError",
    "MetadataApi",
    "MsalTokenProvider",
    "RetryPolicy",
    "TableDefinition",
    "TokenProvider",
    "client_from_settings",
    "make_http_client",
]

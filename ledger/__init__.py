"""crmledger's core: events, the event log, deterministic ids, settings and the CLI."""

from importlib.metadata import PackageNotFoundError, version

# Importing the core event types registers them, so any decoded event finds its payload class.
from ledger import event_types as _event_types  # noqa: F401

try:
    __version__ = version("crmledger")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

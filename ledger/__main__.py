"""``python -m ledger`` runs the crmledger command line."""

from ledger.cli import app

app(prog_name="crmledger")

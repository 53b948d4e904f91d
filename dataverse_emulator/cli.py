"""`crmledger emulator serve`: run the Dataverse emulator in the foreground."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, cast

import typer

from dataverse_emulator.config import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    ClientCertificate,
    EmulatorConfig,
)
from dataverse_emulator.faults import parse_fault_spec
from dataverse_emulator.server import RunningEmulator
from dataverse_emulator.server import serve as serve_forever

emulator_app = typer.Typer(help="Run a local Dataverse Web API emulator.", no_args_is_help=True)


def _clients(secrets: list[str], certificates: list[str]) -> dict[str, str | ClientCertificate]:
    """Each ``ID:SECRET`` and ``ID:PEMFILE``; the default client when neither is given."""
    clients: dict[str, str | ClientCertificate] = {}
    for value in secrets:
        client_id, sep, secret = value.partition(":")
        if not sep or not client_id or not secret:
            raise typer.BadParameter(f"expected ID:SECRET, got {value!r}", param_hint="--client")
        clients[client_id] = secret
    for value in certificates:
        client_id, sep, path = value.partition(":")
        if not sep or not client_id or not path:
            raise typer.BadParameter(
                f"expected ID:PEMFILE, got {value!r}", param_hint="--client-cert"
            )
        try:
            clients[client_id] = ClientCertificate.from_pem(Path(path).read_bytes())
        except (OSError, ValueError) as error:
            raise typer.BadParameter(
                f"cannot read a certificate from {path}: {error}", param_hint="--client-cert"
            ) from error
    return clients or {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET}


def _user(value: str) -> tuple[str, str, bool]:
    email, _, rest = value.partition(":")
    name, _, flag = rest.partition(":")
    if not email or flag not in ("", "disabled"):
        raise typer.BadParameter(f"expected EMAIL[:NAME][:disabled], got {value!r}")
    return email, name or email.split("@")[0], flag == "disabled"


def _users_file(path: Path) -> list[tuple[str, str, bool]]:
    """Rows of a CSV with columns internalemailaddress, fullname, isdisabled (true/false)."""
    users: list[tuple[str, str, bool]] = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            # Row 1 is the header, so the first user is on row 2.
            for row_number, row in enumerate(csv.DictReader(handle), start=2):
                email = (row.get("internalemailaddress") or "").strip()
                if "@" not in email:
                    raise typer.BadParameter(
                        f"{path}, row {row_number}, column internalemailaddress:"
                        f" expected an e-mail address, got {email!r}"
                    )
                disabled = (row.get("isdisabled") or "").strip().lower() in ("true", "1", "yes")
                users.append((email, row.get("fullname") or email.split("@")[0], disabled))
    except (OSError, UnicodeDecodeError) as error:
        raise typer.BadParameter(f"cannot read {path}: {error}") from error
    return users


@emulator_app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 8443,
    db: Annotated[Path | None, typer.Option(help="SQLite file (default: in memory).")] = None,
    limits: Annotated[str, typer.Option(help="dataverse: enforce service limits; off.")] = (
        "dataverse"
    ),
    faults: Annotated[str | None, typer.Option(help='e.g. "429:0.05,503:0.02,reset:0.01".')] = None,
    fault_seed: Annotated[int, typer.Option(help="Seed for the fault draws.")] = 0,
    use_tls: Annotated[bool, typer.Option("--tls", help="Serve https (msal needs it).")] = False,
    client: Annotated[list[str] | None, typer.Option(help="ID:SECRET, repeatable.")] = None,
    client_cert: Annotated[
        list[str] | None,
        typer.Option(help="ID:PEMFILE, repeatable: the client signs in with this certificate."),
    ] = None,
    reject_assertion_reuse: Annotated[
        bool,
        typer.Option(
            help="Refuse a client assertion's jti seen before it expired (Entra doesn't)."
        ),
    ] = False,
    time_scale: Annotated[float, typer.Option(help="Shrink the 300 s window by this.")] = 1.0,
    licence: Annotated[str, typer.Option(help="professional (15 custom tables) or enterprise.")] = (
        "enterprise"
    ),
    user: Annotated[list[str] | None, typer.Option(help="EMAIL[:NAME][:disabled].")] = None,
    users_file: Annotated[Path | None, typer.Option(help="CSV of systemusers to seed.")] = None,
) -> None:
    """Serve the emulated Web API, printing its base URL and token endpoint."""
    if limits not in ("dataverse", "off"):
        raise typer.BadParameter("--limits must be 'dataverse' or 'off'")
    if licence not in ("professional", "enterprise"):
        raise typer.BadParameter("--licence must be 'professional' or 'enterprise'")
    try:
        parse_fault_spec(faults)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--faults") from error
    users = [_user(u) for u in user or []] + (_users_file(users_file) if users_file else [])
    # next to the database, so a restarted emulator keeps the certificate clients trust
    tls_dir = db.parent / ".emulator-tls" if db else None
    config = EmulatorConfig(
        host=host,
        port=port,
        db_path=db,
        clients=_clients(client or [], client_cert or []),
        reject_replayed_assertions=reject_assertion_reuse,
        limits_enabled=limits == "dataverse",
        time_scale=time_scale,
        faults=faults,
        fault_seed=fault_seed,
        tls=use_tls,
        tls_dir=tls_dir,
        licence=cast(Literal["professional", "enterprise"], licence),
        seed_users=tuple(users),
    )
    try:
        serve_forever(config, on_ready=_announce)
    except OSError as error:  # e.g. the port is taken
        typer.echo(f"error: cannot serve on {host}:{port}: {error.strerror or error}", err=True)
        raise typer.Exit(2) from error


def _announce(running: RunningEmulator) -> None:
    typer.echo(f"Web API:        {running.base_url}")
    typer.echo(f"Token endpoint: {running.token_url}")
    typer.echo(f"Authority:      {running.authority}")
    typer.echo(f"Clients:        {_describe_clients(running.config.clients)}")
    if running.cert_path is not None:
        typer.echo(f"Certificate:    {running.cert_path}")


def _describe_clients(clients: Mapping[str, str | ClientCertificate]) -> str:
    """Each client id with how it signs in, never the secret itself."""
    return ", ".join(
        f"{client_id} (secret)"
        if isinstance(credential, str)
        else f"{client_id} (certificate x5t {credential.x5t or '?'})"
        for client_id, credential in clients.items()
    )

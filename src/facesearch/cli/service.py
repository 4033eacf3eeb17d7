"""`facesearch serve` and `facesearch users …`: the server and its accounts.

Kept apart from the core commands so the core commands start without importing the web stack.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ..config import Settings, settings_json
from ..governance.auth import Authenticator, Role
from ..store.accounts import Accounts
from ..store.db import Database
from .output import JsonOpt, err, out, print_json, table

users_app = typer.Typer(
    help="Accounts for the server; no one can sign up on their own.", no_args_is_help=True
)


def _accounts(settings: Settings) -> tuple[Database, Accounts, Authenticator]:
    db = Database(settings.catalog_location)
    accounts = Accounts(db)
    return db, accounts, Authenticator(accounts, settings.api)


def _announce(username: str, organisation: str, password: str) -> None:
    out.print(
        f"administrator [bold]{username}[/] ({organisation}) created.\n"
        f"one-time password: [bold yellow]{password}[/]\n"
        "[dim]it is shown only now; it must be changed at the first login[/]"
    )


@users_app.command("create-admin")
def create_admin(
    ctx: typer.Context,
    username: str,
    organisation: Annotated[
        str, typer.Option(help="Organisation of the account (created if new).")
    ] = "default",
) -> None:
    """Create an administrator and print its one-time password.

    Example: facesearch users create-admin alice --organisation "Press desk"
    """
    db, accounts, auth = _accounts(ctx.obj)
    try:
        found = accounts.organisation_named(organisation)
        chosen = found or accounts.create_organisation(organisation)
        user, password = auth.create_user(username, chosen.id, Role.ADMINISTRATOR)
    finally:
        db.close()
    _announce(user.username, chosen.name, password)


@users_app.command("list")
def list_users(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List accounts with their organisation, role and state."""
    db, accounts, _ = _accounts(ctx.obj)
    try:
        rows = [
            {"username": u.username, "organisation": u.organisation, "role": u.role,
             "active": u.active, "expires_at": u.expires_at, "last_login_at": u.last_login_at}
            for u in accounts.users()
        ]  # fmt: skip
    finally:
        db.close()
    print_json(rows) if as_json else out.print(table(rows))


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Server processes behind the one port.")
    ] = 1,
) -> None:
    """Start the web interface and the REST API (OpenAPI at /docs).

    On a catalog without accounts an administrator 'admin' is created first and
    its one-time password printed. With --workers N, N processes answer on the one
    port; ingest jobs and retention purges still run in one of them at a time.
    Example: facesearch serve --port 8000 --workers 2
    """
    import uvicorn

    from ..api.app import SETTINGS_ENV, create_app

    settings: Settings = ctx.obj
    app = create_app(settings)
    services = app.state.services
    first = services.auth.ensure_first_admin()
    if first is not None:
        user, password = first
        _announce(user.username, user.organisation, password)
    err.print("[dim]checking models…[/]")
    services.engine.fetch_models([settings.detector, settings.embedder])
    out.print(f"facesearch on http://{host}:{port}/  (API documentation: /docs)")
    # Open progress streams must not hold a shutdown up for long.
    options = {"host": host, "port": port, "log_level": "info", "proxy_headers": False,
               "timeout_graceful_shutdown": 5}  # fmt: skip
    if workers == 1:
        uvicorn.run(app, **options)
        return
    services.engine.close()
    # Each worker builds its own app from these settings (uvicorn starts them afresh).
    os.environ[SETTINGS_ENV] = settings_json(settings)
    uvicorn.run("facesearch.api.app:app_from_environment", factory=True, workers=workers,
                **options)  # fmt: skip

"""`tessera` — run and operate the backend.

tessera dev       everything in one process tree (embedded PostgreSQL/Redis when unset)
tessera serve     the gRPC server
tessera worker    a Celery worker
tessera beat      the Celery beat scheduler
tessera migrate   apply (or revert) database migrations
tessera token     mint a development token (refused in production)
tessera export-key ID  a new key for TESSERA_EXPORT_KEYS
tessera audit-replay  write the audit dead-letter file into the audit log
tessera dashboards | widgets | materialize | export   client commands (server/devtools/cli_client.py)
tessera reports create | list | get | pause | resume | delete | send | deliveries   (server/devtools/cli_reports.py)
tessera alerts create | list | get | silence | delete | events | watch   (server/devtools/cli_alerts.py)
tessera search WORDS | favorites add | remove | list   (server/devtools/cli_search.py)
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from server.config import Mode, Settings, configured_mode
from server.devtools.cli_alerts import alerts_app
from server.devtools.cli_client import mount_client_commands
from server.devtools.cli_reports import reports_app
from server.devtools.cli_search import favorites_app, search
from server.logs import configure

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
mount_client_commands(app)
app.add_typer(reports_app, name="reports")
app.add_typer(alerts_app, name="alerts")
app.command("search")(search)
app.add_typer(favorites_app, name="favorites")


def _settings() -> Settings:
    settings = Settings()
    configure(settings.log_level, settings.json_logs)
    return settings


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (TESSERA_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (TESSERA_PORT); 0 picks a free one.")] = None,
    processes: Annotated[
        int | None,
        typer.Option(min=1, help="Server processes on the one port (TESSERA_SERVER_PROCESSES; default one per core)."),
    ] = None,
) -> None:
    """Run the gRPC server (and its HTTP face) until SIGTERM/SIGINT, then drain and stop."""
    from server import processes as serving

    settings = _settings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    count = processes or settings.server_processes or serving.default_processes()
    raise typer.Exit(serving.run(settings, count))


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Worker processes (default TESSERA_WORKER_CONCURRENCY).")
    ] = None,
    queues: Annotated[str, typer.Option(help="Comma-separated queues.")] = "materialize,exports,maintenance",
) -> None:
    """Run a Celery worker."""
    settings = _settings()
    os.environ.setdefault("C_FORCE_ROOT", "1")  # containers commonly run as root
    from workers.celery_app import celery_app

    celery_app.worker_main(
        [
            "worker",
            "--loglevel",
            settings.log_level,
            "--queues",
            queues,
            "--concurrency",
            str(concurrency or settings.worker_concurrency),
        ]
    )


@app.command()
def beat(
    schedule_file: Annotated[
        str, typer.Option(help="Where beat keeps its schedule state.")
    ] = "var/celerybeat-schedule",
) -> None:
    """Run the Celery beat scheduler (exactly one per deployment)."""
    settings = _settings()
    from workers.celery_app import celery_app

    os.makedirs(os.path.dirname(schedule_file) or ".", exist_ok=True)
    celery_app.start(["beat", "--loglevel", settings.log_level, "--schedule", schedule_file])


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    down: Annotated[bool, typer.Option("--down", help="Downgrade to the revision instead.")] = False,
) -> None:
    """Apply migrations up to REVISION (or down to it with --down)."""
    from server.db import migrate as m

    settings = _settings()
    if not settings.database_url:
        raise typer.BadParameter("DATABASE_URL is not set")
    (m.downgrade if down else m.upgrade)(settings.database_url, revision)


@app.command()
def token(
    subject: Annotated[str, typer.Option(help="The user (JWT sub).")] = "dev-admin",
    role: Annotated[list[str], typer.Option(help="viewer, editor or admin; repeatable.")] = ["admin"],  # noqa: B006
    facility: Annotated[list[str], typer.Option(help="Facility id; repeatable.")] = ["north-general"],  # noqa: B006
    permission: Annotated[list[str], typer.Option(help="For example phi:read; repeatable.")] = [],  # noqa: B006
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 8 * 3600,
) -> None:
    """Print a development token (HS256). Refused in production mode."""
    from server.auth.tokens import mint_token

    if configured_mode() is Mode.PRODUCTION:
        typer.echo(
            "tessera token: refused with TESSERA_MODE=production; production tokens come from your "
            "identity provider (RS256/ES256, verified with TESSERA_JWT_PUBLIC_KEY_FILE or TESSERA_JWT_JWKS_FILE)",
            err=True,
        )
        raise typer.Exit(2)
    settings = Settings()
    typer.echo(
        mint_token(settings, subject=subject, roles=role, facilities=facility, permissions=permission, ttl_seconds=ttl)
    )


@app.command("export-key")
def export_key(
    key_id: Annotated[str, typer.Argument(help="The key's id, e.g. 2026-12: [A-Za-z0-9._-], at most 64.")],
) -> None:
    """Print a new random key entry `ID:BASE64` for TESSERA_EXPORT_KEYS (put it first to rotate)."""
    from server.exports.crypto import new_key_spec

    try:
        typer.echo(new_key_spec(key_id))
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="KEY_ID") from None


@app.command("audit-replay")
def audit_replay() -> None:
    """Write the audit events of the dead-letter file (TESSERA_AUDIT_DEAD_LETTER_PATH) into the
    audit log; those the database refuses again stay in the file."""
    from server.audit.replay import replay_dead_letters
    from server.db.engine import Database, make_engine

    settings = _settings()
    if not settings.database_url:
        raise typer.BadParameter("DATABASE_URL is not set")

    async def run() -> None:
        db = Database(make_engine(settings.database_url, pool_size=1, max_overflow=0))
        try:
            result = await replay_dead_letters(db, settings.audit_dead_letter_path)
        finally:
            await db.dispose()
        typer.echo(f"audit events replayed: {result.written} of {result.read}; back in the file: {result.returned}")
        if result.returned:
            raise typer.Exit(1)

    asyncio.run(run())


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="gRPC port.")] = 50051,
    data_dir: Annotated[str, typer.Option(help="Where embedded services keep their data.")] = "var/dev",
    demo: Annotated[bool, typer.Option(help="Load demo data.")] = True,
) -> None:
    """Run migrations, the server, a worker and beat together, on embedded PostgreSQL and Redis
    when DATABASE_URL / REDIS_URL are not set; load demo data; print how to call it."""
    from server.devtools.dev import run_dev

    configure("INFO", False)
    raise typer.Exit(run_dev(port=port, data_dir=data_dir, demo=demo))


if __name__ == "__main__":
    app()

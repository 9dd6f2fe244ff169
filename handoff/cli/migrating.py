"""``handoff migrate``: migrate every stored checkpoint of a flow to its version."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import FlowDefinitionError
from ..flowref import FlowLoadError, load_flow
from .root import _fail, app


class ReportFormat(StrEnum):
    text = "text"
    json = "json"


@app.command()
def migrate(
    flow_ref: Annotated[str, typer.Argument(metavar="MODULE:ATTRIBUTE",
                                            help="The flow (its new version)")],
    store: Annotated[str | None, typer.Option(
        help="sqlite:///path/to/checkpoints.db or redis://host:port/db "
        "(default: HANDOFF_CHECKPOINT_STORE)")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Report what would move and what fails; write nothing")] = False,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="text, or json")] = (
        ReportFormat.text),
    recover: Annotated[bool, typer.Option(
        "--recover", help="First put back the checkpoints workers set aside because they "
        "could not open them (a lost seal key now restored)")] = False,
    allow_loss: Annotated[bool, typer.Option(
        "--allow-loss", help="Exit 0 even when stored calls would lose their state or a "
        "field on resuming (no migration reads their version)")] = False,
) -> None:
    """Migrate every stored checkpoint of a flow to its version.

    Through the flow's migrations. Reports, per stored version, how many calls move
    from which state to which and which fail. Each call is replaced atomically, only if no worker wrote it
    meanwhile; a checkpoint that cannot be migrated is kept as it was, marked with
    the reason. Every other stored call that would lose its state, a Context field or
    a return state when it resumes is listed. Sealed checkpoints are opened with
    HANDOFF_SEAL_KEYS from the secrets chain the worker uses, and re-sealed with its
    first key. Exit 0 when nothing failed and no call would lose anything (or
    --allow-loss), 1 otherwise (a checkpoint that cannot be opened counts), 2 on bad input.
    """
    from ..sealing import KeyringSealer
    from ..secrets import SecretChain, SecretError
    from ..settings import StoreSettings

    try:
        flow = load_flow(flow_ref)
        sealer = KeyringSealer.from_secrets(SecretChain.from_env())
        url = store or StoreSettings.load().checkpoint_store
    except (FlowLoadError, FlowDefinitionError, SecretError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    if not url:
        raise _fail("--store URL is required (or set HANDOFF_CHECKPOINT_STORE)")
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite://")).is_file():
        raise _fail(f"{url}: no such SQLite file")
    report = asyncio.run(_migrate(flow, url, dry_run, sealer, recover))
    if fmt is ReportFormat.json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(report.text(), nl=False)
    raise typer.Exit(1 if report.failed or report.unreadable or (
        report.losing and not allow_loss) else 0)


async def _migrate(flow: Any, url: str, dry_run: bool, sealer: Any, recover: bool) -> Any:
    import sqlite3

    from ..persistence import store_from_url
    from ..persistence.recover import recover_store
    from ..persistence.store_migration import migrate_store

    try:
        store = store_from_url(url)
    except (ValueError, ImportError) as exc:
        raise _fail(str(exc)) from exc
    unreachable: tuple[type[BaseException], ...] = (OSError, sqlite3.Error)
    try:
        from redis.exceptions import RedisError

        unreachable += (RedisError,)
    except ImportError:  # pragma: no cover - the redis extra is not installed
        pass
    try:
        recovery = (await recover_store(flow, store, sealer=sealer, dry_run=dry_run)
                    if recover else None)
        report = await migrate_store(flow, store, dry_run=dry_run, sealer=sealer)
        report.recovery = recovery
        return report
    except unreachable as exc:
        raise _fail(f"cannot read the store {url}: {type(exc).__name__}: {exc}") from exc
    finally:
        await store.aclose()

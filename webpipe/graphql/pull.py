"""`webpipe graphql pull APP`: refresh the schema snapshots of APP's remote GraphQL
endpoints (spec/graphql.md "Remote endpoints").

For every `config graphql_NAME` block with a `schema` file, the endpoint's introspection is
fetched with gql (the block's `url` and headers) and written there as SDL, so `webpipe
check` can validate that remote's operations offline. A remote that fails is reported and
the others are still written; the exit code is 1 when any failed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from webpipe.executor.env import Env
    from webpipe.graphql.remote import Remote


async def pull_schema(remote: Remote, timeout_s: float = 30.0) -> str:
    """The remote's schema as SDL, from its introspection."""
    from gql import Client
    from gql.transport.aiohttp import AIOHTTPTransport
    from graphql import print_schema

    transport = AIOHTTPTransport(url=remote.url, headers=dict(remote.headers),
                                 timeout=int(timeout_s))
    async with Client(transport=transport, fetch_schema_from_transport=True) as session:
        assert session.client.schema is not None
        return print_schema(session.client.schema) + "\n"


async def pull_all(env: Env) -> tuple[list[Path], list[str]]:
    """Write every snapshot; (files written, failure messages)."""
    from webpipe.graphql.remote import remote_names, remote_of

    written: list[Path] = []
    failures: list[str] = []
    for name in remote_names(env):
        remote = remote_of(env, name)
        if remote is None or remote.schema is None:
            continue
        try:
            sdl = await pull_schema(remote)
        except Exception as exc:  # report and go on with the other remotes
            failures.append(f"graphql_{name}: {remote.url}: {str(exc) or type(exc).__name__}")
            continue
        remote.schema.parent.mkdir(parents=True, exist_ok=True)
        remote.schema.write_text(sdl, encoding="utf-8")
        written.append(remote.schema)
    return written, failures


@click.group(name="graphql")
def graphql_command() -> None:
    """Remote GraphQL endpoints: schema snapshots for `webpipe check`."""


@graphql_command.command(name="pull")
@click.argument("app", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def pull_command(app: Path) -> None:
    """Write each `config graphql_NAME` remote's schema to its `schema` file."""
    from webpipe.errors import WebpipeError
    from webpipe.program import load_program

    try:
        env = load_program(app)
    except WebpipeError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    written, failures = asyncio.run(pull_all(env))
    for path in written:
        click.echo(f"wrote {path}")
    for failure in failures:
        click.echo(f"error: {failure}", err=True)
    if not written and not failures:
        click.echo("no remote with a `schema` file in " + str(app))
    sys.exit(1 if failures else 0)

"""Alembic environment of the store.

At run time `bridge.store.migrate` passes an open connection in `config.attributes["connection"]`
(inside its own transaction and lock). For development, `sqlalchemy.url` in the config is used instead.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from bridge.store.engine import build_engine, parse_url
from bridge.store.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_offline() -> None:
    context.configure(
        url=str(parse_url(config.get_main_option("sqlalchemy.url") or "sqlite://")),
        target_metadata=metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection given and no sqlalchemy.url set for the store migrations")
    engine = build_engine(parse_url(url))
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()

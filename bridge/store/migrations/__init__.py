"""Alembic migrations of the store (run by `bridge.store.migrate.upgrade`)."""

"""Migrations bring an empty database to the models' schema on both backends
(PostgreSQL, the production database, and SQLite, the embedded default), and
the models and the newest migration do not drift apart."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from node.db.migrate import current, upgrade
from node.db.models import Base
from node.db.session import make_engine


def _check(url: str) -> None:
    engine = make_engine(url)
    try:
        upgrade(engine)
        assert current(engine) is not None
        tables = set(inspect(engine).get_table_names())
        expected = {"p2p_crypto_orders", "p2p_crypto_escrows", "chain_blocks", "signing_journal"}
        assert expected <= tables
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        upgrade(engine)  # idempotent
    finally:
        engine.dispose()


def test_upgrade_postgresql(pg_empty_url: str) -> None:
    _check(pg_empty_url)


def test_upgrade_sqlite(tmp_path: Path) -> None:
    _check(f"sqlite:///{tmp_path / 'escrowd.sqlite'}")


@pytest.mark.parametrize("bad", ["mysql://x", "nonsense"])
def test_bad_database_url_is_refused(bad: str) -> None:
    from node.config import load_settings
    from node.errors import ConfigError

    with pytest.raises(ConfigError, match="database_url"):
        load_settings(database_url=bad)

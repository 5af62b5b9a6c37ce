"""Fixtures shared by every tier.

- ``pg_url``: a fresh PostgreSQL database per test, at the newest migration
  (copied from a template database migrated once per run). The server is the
  one on 127.0.0.1:5432 where it runs, else a throwaway cluster (tests/pg.py).
- ``anvil``: a real anvil (npm @foundry-rs/anvil) on a free port, its data
  directory kept and printed when the test fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tests import pg

pytest_plugins = ["tests.functional.evm_fixtures"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Remember each phase's outcome on the item, so fixtures can keep the
    data directories of failed tests."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def failed(request: pytest.FixtureRequest) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return rep is None or rep.failed


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    with pg.server() as url:
        yield url


@pytest.fixture(scope="session")
def pg_template(pg_server: str) -> Iterator[str]:
    """A database at the newest migration, the template of every test's database."""
    from node.db.migrate import upgrade
    from node.db.session import make_engine

    name = f"escrowd_tmpl_{os.getpid()}"
    url = pg.create_database(pg_server, name)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield name
    pg.drop_database(pg_server, name)


@pytest.fixture
def pg_url(pg_server: str, pg_template: str) -> Iterator[str]:
    name = f"escrowd_t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = pg.create_database(pg_server, name, template=pg_template)
    yield url
    pg.drop_database(pg_server, name)


@pytest.fixture
def pg_empty_url(pg_server: str) -> Iterator[str]:
    """An empty PostgreSQL database (no migrations applied)."""
    name = f"escrowd_e_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = pg.create_database(pg_server, name)
    yield url
    pg.drop_database(pg_server, name)


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    from node.db.session import make_engine

    eng = make_engine(pg_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    from node.db.session import make_sessionmaker

    return make_sessionmaker(engine)


@pytest.fixture
def anvil(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from localchain.evm import Anvil

    data_dir = tmp_path_factory.mktemp("anvil")
    node = Anvil(data_dir=data_dir).start()
    yield node
    node.stop()
    if failed(request):
        print(f"\nanvil data dir kept: {data_dir} (log: {node.log_path})")

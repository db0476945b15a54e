"""The fleet's ledger in a real PostgreSQL server (`llmroute.fleet.postgres.PostgresStore`)."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import fleet_workers
import pytest
from fleet_servers import postgres_server, redis_server
from test_fleet import WORKERS, _billed, _estimate, _fleet

import llmroute
from llmroute.money.ledger import LedgerRow
from llmroute.money.store import SQLiteStore, StoreError
from llmroute.testing import Emulator


@pytest.fixture(scope="module")
def pg() -> Iterator[str]:
    with postgres_server() as dsn:
        yield dsn


@pytest.fixture
def dsn(pg: str) -> Iterator[str]:
    """A fresh database per test."""
    import psycopg

    name = f"t{uuid.uuid4().hex}"
    with psycopg.connect(pg, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    yield pg.rsplit("/", 1)[0] + "/" + name


def _rows(make_router: object, n: int = 5) -> list[LedgerRow]:
    router = make_router()  # type: ignore[operator]
    for i in range(n):
        router.chat.completions.create(
            model="gpt",
            messages=[{"role": "user", "content": f"hello {i}"}],
            route={"task": "t", "tags": ["a", "b"], "extra": {"team": "x"}},
        )
    return list(router.ledger)


def test_rows_load_back_exactly(make_router: object, dsn: str, tmp_path: object) -> None:
    """What PostgreSQL gives back is what the SQLite store gives back: every field, costs exact."""
    from llmroute.fleet.postgres import PostgresStore

    rows = _rows(make_router)
    store = PostgresStore(dsn)
    ledger = llmroute.Ledger()
    store.attach(ledger)
    ledger.extend(rows, notify=True)
    store.close()
    sqlite = SQLiteStore(f"{tmp_path}/l.db")
    sqlite.write(rows)
    back = PostgresStore(dsn).rows()
    assert [r.as_dict() for r in back] == [r.as_dict() for r in sqlite.rows()]
    assert [r.as_dict() for r in back] == [r.as_dict() for r in rows]
    assert sum((r.cost.total for r in back if r.cost), Decimal(0)) == llmroute.Ledger(rows).total().cost


def test_a_batch_written_twice_is_kept_once(make_router: object, dsn: str) -> None:
    """A batch retried after its commit went through (the acknowledgement lost) adds nothing."""
    from llmroute.fleet.postgres import PostgresStore

    rows = _rows(make_router, 3)
    store = PostgresStore(dsn)
    store.write(rows)
    store.write(rows)
    assert store.count() == 3


def test_lost_rows_are_reported(make_router: object, dsn: str) -> None:
    """The server going away makes flush/close raise, never lose rows silently."""
    import psycopg

    from llmroute.fleet.postgres import PostgresStore

    rows = _rows(make_router, 2)
    store = PostgresStore(dsn)
    store.dsn = dsn.rsplit("/", 1)[0] + "/no_such_database"
    for row in rows:
        store.put(row)
    with pytest.raises(StoreError, match="2 rows were lost"):
        store.close()
    assert isinstance(store.last_error, psycopg.Error)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_children_write_their_own_rows_once(make_router: Any, dsn: str) -> None:
    """A `PostgresStore` built before a fork (docs/fork.md): each child's rows are written by a writer
    thread and connection of the child's own; what the parent queued before the fork is written once,
    by the parent."""
    from llmroute.fleet.postgres import PostgresStore

    store = PostgresStore(dsn)
    router = make_router(ledger=llmroute.Ledger(store=store))
    user = [{"role": "user", "content": "hello"}]
    before = [router.chat.completions.create(model="gpt", messages=user).route.call_id for _ in range(3)]
    pipes = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                calls = [router.chat.completions.create(model="gpt", messages=user) for _ in range(4)]
                ids = [reply.route.call_id for reply in calls]
                store.flush(timeout=30)
                store.close()
                os.write(write, " ".join(ids).encode())
                code = 0
            except BaseException as e:
                os.write(write, f"ERROR {type(e).__name__}: {e}".encode())
            finally:
                os._exit(code)
        os.close(write)
        pipes.append((pid, read))
    children = []
    for pid, read in pipes:
        with os.fdopen(read) as f:
            out = f.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, out
        children += out.split()
    store.close()
    rows = collections.Counter(row.call_id for row in PostgresStore(dsn).rows())
    assert len(children) == 8
    assert rows == collections.Counter(before + children)


def test_schema_is_versioned(dsn: str) -> None:
    import psycopg

    from llmroute.fleet.postgres import PostgresStore

    with pytest.raises(StoreError, match="holds no llmroute ledger"):
        PostgresStore(dsn, create=False)
    PostgresStore(dsn)
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("UPDATE llmroute_meta SET value = '99' WHERE key = 'schema'")
    with pytest.raises(StoreError, match="newer"):
        PostgresStore(dsn)


def test_password_never_shown(dsn: str) -> None:
    from llmroute.fleet.postgres import _safe

    assert "hunter2" not in _safe("postgresql://u:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in _safe("host=127.0.0.1 user=u password=hunter2")


def test_report_and_whatif_read_postgres(make_router: object, dsn: str) -> None:
    from llmroute.fleet.postgres import PostgresStore

    rows = _rows(make_router, 4)
    PostgresStore(dsn).write(rows)
    out = subprocess.run(
        [sys.executable, "-m", "llmroute.cli", "report", "--dsn", dsn, "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    total = json.loads(out.stdout)["total"]
    expected = llmroute.Ledger(rows).total()
    assert (total["calls"], Decimal(total["cost"])) == (expected.calls, expected.cost)
    assert total["output_tokens"] == expected.usage.output_tokens
    whatif = subprocess.run(
        [sys.executable, "-m", "llmroute.cli", "whatif", "--dsn", dsn, "--model", "deepseek-v3.2", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert whatif.returncode == 0, whatif.stderr


def test_fleet_ledger_equals_the_bill(emu: Emulator, dsn: str) -> None:
    """4 worker processes, one Redis budget, one PostgreSQL ledger: the ledger in the database equals
    the emulator's bill to the token, and the fleet stayed within the budget plus one estimate."""
    from llmroute.fleet.postgres import PostgresStore

    with redis_server() as redis, emu.serve() as server:
        results = _fleet(fleet_workers.budget_worker, server.base_url("vllm"), redis.url, 40, dsn)
    rows = PostgresStore(dsn).rows()
    totals = llmroute.Ledger(rows).total()
    bill = emu.bill.total()
    assert totals.usage.input_tokens == bill.input_tokens
    assert totals.usage.output_tokens == bill.output_tokens
    assert totals.cost == _billed(emu) == sum(Decimal(r["spent"]) for r in results)
    assert len({r.call_id for r in rows}) == sum(r["answered"] for r in results)
    assert totals.cost <= fleet_workers.LIMIT + _estimate(emu)
    assert len(results) == WORKERS

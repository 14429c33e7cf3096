"""The metadata store's promises, on SQLite and (with SAFEHOLD_TEST_DATABASE_URL) PostgreSQL.

Several processes, each with several threads, append to ONE encounter's log through their own
Store (as API nodes and their gunicorn workers do): every leaf index is used once, densely, and
every checkpoint's root is the root of exactly the leaves before it. Retries are idempotent,
`migrate` twice is a no-op, and a bad database URL is refused at start in words.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import PYTHON, ROOT
from pgkit import TEST_DATABASE_URL, database_url_for

from crypto.merkle import leaf_hash
from server.store.accounts import Account
from server.store.encounters import Encounter
from server.store.log import StoredCheckpoint
from server.store.metadata import Store, Tx, open_store
from server.store.notify import Notification
from server.store.schema import MIGRATIONS
from server.store.sql import IntegrityError
from server.tlog.frontier import Frontier

ACCOUNT, ENCOUNTER = "acc-1", "enc-1"
PROCESSES, THREADS, APPENDS = 3, 4, 5  # 60 appends
NOW = "2026-11-29T02:00:00.000Z"


def _config(backend: str, folder: Path) -> dict[str, object]:
    if backend == "sqlite":
        return {"DATABASE_FILE": folder / "safehold.sqlite3"}
    return {"DATABASE_URL": database_url_for(folder), "DATABASE_POOL_SIZE": THREADS}


@pytest.fixture(params=["sqlite", "postgresql"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, object]]:
    if request.param == "postgresql" and TEST_DATABASE_URL is None:
        pytest.skip("PostgreSQL pass only: set SAFEHOLD_TEST_DATABASE_URL (scripts/pg)")
    yield _config(request.param, tmp_path / "data")


def _seed(store: Store) -> None:
    with store.write() as tx:
        tx.insert_account(Account(ACCOUNT, "age1recovery", NOW))
        assert tx.insert_encounter(Encounter(ENCOUNTER, ACCOUNT, NOW, NOW, "dev", 0))


def _append(tx: Tx, label: str) -> int:
    """What an upload does to the log (server/evidence/uploads.py), with a fake signature."""
    tx.lock_log(ENCOUNTER)
    data = label.encode()
    frontier, _proof = tx.frontier(ENCOUNTER).append(leaf_hash(data))
    tx.append_leaf(ENCOUNTER, leaf_hash(data), data, frontier)
    tx.insert_checkpoint(ENCOUNTER, StoredCheckpoint(frontier.size, frontier.root(),
                                                     f"note {frontier.size}"), NOW)
    tx.insert_change(ACCOUNT, "chunk_stored", NOW, ENCOUNTER)
    return frontier.size - 1


def _node(config: dict[str, object], node: int) -> None:
    """One API node: its own Store, THREADS threads appending through the grouped writes."""
    store = open_store(config)

    def uploads(thread: int) -> None:
        for n in range(APPENDS):
            label = f"node{node}-thread{thread}-{n}"
            store.write_grouped(lambda tx, label=label: _append(tx, label))

    threads = [threading.Thread(target=uploads, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()


def test_appends_from_many_processes_and_threads_stay_one_dense_consistent_log(
        config: dict[str, object]) -> None:
    store = open_store(config)
    store.migrate()
    _seed(store)
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter, as a separate node
    nodes = [spawn.Process(target=_node, args=(config, n)) for n in range(PROCESSES)]
    for node in nodes:
        node.start()
    for node in nodes:
        node.join(timeout=120)
        assert node.exitcode == 0

    total = PROCESSES * THREADS * APPENDS
    with store.read() as tx:
        leaves = tx.leaves(ENCOUNTER, 0, total + 10)
        sizes = [row["tree_size"] for row in tx.db.query(
            "SELECT tree_size FROM checkpoints WHERE encounter_id = ? ORDER BY tree_size",
            [ENCOUNTER])]
        changes = tx.changes_after(ACCOUNT, 0, total + 10)
        assert tx.frontier(ENCOUNTER).size == total
        checkpoints = {size: tx.checkpoint(ENCOUNTER, size) for size in sizes}
    assert [index for index, _data in leaves] == list(range(total))  # unique and dense
    assert len({data for _index, data in leaves}) == total  # every append is there once
    assert sizes == list(range(1, total + 1))
    rebuilt = Frontier.from_bytes(0, b"")
    for index, data in leaves:  # each checkpoint is over exactly the leaves before it
        rebuilt, _proof = rebuilt.append(leaf_hash(data))
        stored = checkpoints[index + 1]
        assert stored is not None and stored.root == rebuilt.root()
    ids = [change.id for change in changes]
    assert len(ids) == total and ids == sorted(ids)


def test_retries_are_idempotent_and_a_taken_key_is_one_neutral_error(
        config: dict[str, object]) -> None:
    store = open_store(config)
    store.migrate()
    _seed(store)
    with store.write() as tx:  # the same encounter again (another node, a retry): no change
        assert not tx.insert_encounter(Encounter(ENCOUNTER, ACCOUNT, NOW, NOW, "other", 0))
        assert tx.encounter(ENCOUNTER) == Encounter(ENCOUNTER, ACCOUNT, NOW, NOW, "dev", 0)
    message = Notification("n-1", "contact-1", "alert", ENCOUNTER, NOW, {"a": 1})
    with store.write() as tx:
        assert tx.insert_notification(message, 1.0, "alert:enc-1")
        assert not tx.insert_notification(message, 2.0, "alert:enc-1")
        assert len(tx.notifications_for("contact-1")) == 1
    with pytest.raises(IntegrityError), store.write() as tx:
        tx.insert_account(Account(ACCOUNT, "age1other", NOW))
    with store.read() as tx:
        found = tx.account(ACCOUNT)
        assert found is not None and found.recovery_recipient == "age1recovery"


def test_migrate_twice_is_a_no_op(config: dict[str, object]) -> None:
    first = open_store(config).migrate()
    assert [name.split(":")[0] for name in first] == [str(m.version) for m in MIGRATIONS]
    again = open_store(config)
    assert again.migrate() == []
    assert again.schema_version() == MIGRATIONS[-1].version


@pytest.mark.parametrize("url, words", [
    ("postgresql://safehold:s3cret@127.0.0.1:1/safehold", "cannot reach the PostgreSQL database"),
    ("mysql://safehold@db.example.org/safehold", "must be a postgresql:// URL"),
])
def test_a_bad_database_url_is_refused_at_start_in_words(tmp_path: Path, url: str,
                                                         words: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    env.update({"SAFEHOLD_DATA_DIR": str(tmp_path / "data"), "SAFEHOLD_DATABASE_URL": url})
    done = subprocess.run([PYTHON, "-m", "cli.main", "migrate"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode in (2, 3), done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr
    assert "s3cret" not in done.stderr  # the password never reaches a log
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data" / "safehold.sqlite3").exists()  # no silent fallback


def test_a_lost_postgresql_connection_is_a_503_to_retry_and_the_server_recovers(
        make_server) -> None:
    if TEST_DATABASE_URL is None:
        pytest.skip("PostgreSQL pass only: set SAFEHOLD_TEST_DATABASE_URL (scripts/pg)")
    import psycopg
    import requests
    from helpers import registered_device

    server = make_server()
    phone = registered_device(server.url, server.name)
    database = str(server.environment()["SAFEHOLD_DATABASE_URL"]).rsplit("/", 1)[1]
    with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as admin:  # the DBA's restart
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s", [database])
    statuses = [phone.call("GET", "/v1/account").status_code for _ in range(12)]
    assert statuses[0] == 503, statuses  # the pool handed out a connection that was cut
    assert statuses[-1] == 200, statuses  # the pool dropped the cut connections and reconnected
    assert set(statuses) <= {200, 503}, statuses  # never a 500, never a half answer
    assert requests.get(server.url + "/readyz", timeout=10).status_code == 200

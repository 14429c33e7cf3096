"""Uploads of one process share write transactions (server/store/group_commit.py), on real SQLite.

While another process (here: a second Store on the same file) holds the writer lock, jobs of
several threads queue up and are then committed together. Each job's refusal must undo only that
job's writes, every other job must be committed, and every thread must get its own answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from server.errors import ApiError
from server.store.metadata import Store, Tx
from server.store.sqlite_backend import SqliteStore

ACCOUNT = "0b9c3c43-7a4c-4f73-9b3a-3d86b5f3a0a1"


def kinds(store: Store) -> list[str]:
    with store.read() as tx:
        rows = tx.db.query("SELECT kind FROM changes ORDER BY id")
    return [str(row["kind"]) for row in rows]


def job(index: int, refuse: bool) -> Callable[[Tx], int]:
    def work(tx: Tx) -> int:
        tx.insert_change(ACCOUNT, f"job-{index}", "2026-11-28T10:00:00.000Z")
        if refuse:
            raise ApiError(409, "chunk_exists", "refused after writing")
        return index

    return work


def test_queued_jobs_commit_together_and_a_refusal_undoes_only_its_own_writes(
        tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    store, other_process = SqliteStore(path), SqliteStore(path)
    store.migrate()
    answers: dict[int, object] = {}

    def upload(index: int) -> None:
        try:
            answers[index] = store.write_grouped(job(index, refuse=index == 2))
        except ApiError as exc:
            answers[index] = exc.code

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(5)]
    with other_process.write():  # holds the writer lock: the first job's leader waits for it
        for thread in threads:
            thread.start()
        while store.grouped_writes_waiting < 5:  # the leader takes jobs once it has the lock
            threading.Event().wait(0.01)
        assert kinds(store) == []  # nothing is visible (or acknowledged) yet
    for thread in threads:
        thread.join()

    assert answers == {0: 0, 1: 1, 2: "chunk_exists", 3: 3, 4: 4}
    assert sorted(kinds(store)) == ["job-0", "job-1", "job-3", "job-4"]


def test_a_failing_commit_fails_every_job_of_the_batch_and_leaves_nothing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite3")
    store.migrate()

    def breaks_the_transaction(tx: Tx) -> None:
        tx.insert_change(ACCOUNT, "half-written", "2026-11-28T10:00:00.000Z")
        raise KeyboardInterrupt  # not a refusal: the whole shared transaction is abandoned

    with pytest.raises(KeyboardInterrupt):
        store.write_grouped(breaks_the_transaction)
    assert kinds(store) == []
    assert store.write_grouped(job(7, refuse=False)) == 7  # the next batch works normally
    assert kinds(store) == ["job-7"]

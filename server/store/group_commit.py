"""Group commit: the write transactions of concurrent uploads in one process share one COMMIT.

Each chunk upload ends with a short write transaction (append the leaf, sign the checkpoint,
record the chunk). Run one by one, every upload pays for the writer lock, BEGIN IMMEDIATE and a
COMMIT that fsyncs the WAL, and the writer lock becomes the bottleneck. Here a thread hands its
work to `GroupCommit.run`; whoever finds no commit in progress becomes the leader: it takes the
writer lock and runs every job waiting by then, and those that arrive while it runs, in ONE
transaction, each inside its own SAVEPOINT:

- a job that raises (a refusal, a constraint error) is rolled back to its savepoint alone, and
  its thread gets that exception; the other jobs' writes stand;
- no job's thread gets its result before COMMIT has returned, so nothing is acknowledged before
  its metadata is durable; if BEGIN or COMMIT fails, every job of the batch gets the failure
  (nothing of it was committed, and a retry redoes it);
- jobs run in arrival order on one connection, so each sees the writes of the ones before it
  (two chunks of one encounter get consecutive leaves, exactly as with separate transactions).

A batch holds at most one job per thread of the process (each waits for its own), so it stays
small; the writes of different processes are still serialised by Store's writer lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")


class BatchFailed(RuntimeError):
    """The shared transaction failed (BEGIN or COMMIT); nothing of this job was committed."""


class Transaction(Protocol):
    @property
    def db(self) -> Any: ...


TxT = TypeVar("TxT", bound=Transaction)


class _Job(Generic[TxT]):
    def __init__(self, work: Callable[[TxT], Any]) -> None:
        self.work = work
        self.value: Any = None
        self.error: BaseException | None = None
        self.finished = False

    def attempt(self, tx: TxT) -> None:
        """Run the work in its own savepoint; on an exception undo just this job's writes."""
        tx.db.execute("SAVEPOINT safehold_job")
        try:
            self.value = self.work(tx)
        except Exception as exc:  # the job's answer (e.g. a 409); not the batch's failure
            tx.db.execute("ROLLBACK TO safehold_job")
            self.error = exc
        tx.db.execute("RELEASE safehold_job")


class GroupCommit(Generic[TxT]):
    def __init__(self, begin_write: Callable[[], AbstractContextManager[TxT]]) -> None:
        self._begin_write = begin_write
        self._cond = threading.Condition()
        self._pending: list[_Job[TxT]] = []
        self._leading = False

    @property
    def waiting(self) -> int:
        """Jobs queued and not yet taken into a transaction."""
        with self._cond:
            return len(self._pending)

    def run(self, work: Callable[[TxT], T]) -> T:
        """`work(tx)`'s result once the transaction holding it is committed (or its exception)."""
        job: _Job[TxT] = _Job(work)
        with self._cond:
            self._pending.append(job)
            while self._leading and not job.finished:
                self._cond.wait()
            lead = not job.finished  # no commit in progress: lead one for everyone waiting
            self._leading = self._leading or lead
        if lead:
            self._lead(job)
        if job.error is not None:
            raise job.error
        result: T = job.value
        return result

    def _take_pending(self) -> list[_Job[TxT]]:
        with self._cond:
            taken, self._pending = self._pending, []
        return taken

    def _lead(self, own: _Job[TxT]) -> None:
        done: list[_Job[TxT]] = []
        try:
            with self._begin_write() as tx:
                # Jobs that arrive while the writer lock is awaited or earlier jobs run join this
                # transaction. Each thread has one job at most, so this ends.
                while batch := self._take_pending():
                    for queued in batch:
                        done.append(queued)
                        queued.attempt(tx)
        except BaseException as exc:  # nothing of the batch was committed
            for queued in done:
                failed = BatchFailed(f"the shared write transaction failed: {exc!r}")
                failed.__cause__ = exc
                queued.value, queued.error = None, failed
            with self._cond:  # failed before taking its own job (BEGIN): nobody else runs it
                if own in self._pending:
                    self._pending.remove(own)
            raise
        finally:
            with self._cond:
                for queued in done:
                    queued.finished = True
                self._leading = False
                self._cond.notify_all()

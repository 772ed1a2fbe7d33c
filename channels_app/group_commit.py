"""Group commit (issue 25): the concurrent writes of one process's requests share one transaction.

A request hands its work (a callable that runs a service's rules, with no transaction of its own) to the
process's writer thread and waits. The writer takes whatever is queued (at most MAX_BATCH works), runs them one
after the other in ONE transaction on its own connection, commits, then wakes each request with its result: a
request is answered only after its rows are committed, so nothing acknowledged can be lost. There is no timer:
the works that arrive while a batch runs make the next batch.

If the batch fails (a duplicate's IntegrityError, a deadlock, any exception of a work), it is rolled back and
each work runs again alone in its own transaction, as without group commit: a duplicate gets its usual answer,
and one bad request never fails the others.

A work runs in a copy of its request's context (trace id, audit request: contextvars). The `on_commit` hooks a
work registers (events, Celery publishes) are taken out of the writer's transaction and run by the request's own
thread once the batch has committed, in its context, exactly as Django runs them after a commit.

A caller already inside a transaction (a test's, a service's) runs its work in that transaction instead (in a
savepoint, so that it may try again after an IntegrityError), and `GROUP_COMMIT=off` (and SQLite, whose one
writer gains nothing) runs each work in its own transaction, in the caller's thread: as before group commit.
"""

import contextvars
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection, transaction

MAX_BATCH = 64
# An idle writer closes its connection after this long (an idle process holds none, and the next batch opens a
# fresh one rather than finding one the server closed meanwhile).
IDLE_CLOSE_SECONDS = 1.0


class _Submission:
    __slots__ = ("work", "order", "context", "done", "result", "error", "hooks")

    def __init__(self, work: Callable[[], Any], order: str):
        self.work = work
        self.order = order
        self.context = contextvars.copy_context()
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.hooks: list[tuple[Callable[[], Any], bool]] = []


class _Writer:
    """The process's writer thread, started at the first submission (after gunicorn's fork)."""

    def __init__(self):
        self.queue: queue.SimpleQueue[_Submission] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.pid = 0
        self.lock = threading.Lock()

    def submit(self, submission: _Submission) -> None:
        if self.thread is None or not self.thread.is_alive() or self.pid != os.getpid():
            with self.lock:
                if self.thread is None or not self.thread.is_alive() or self.pid != os.getpid():
                    self.queue = queue.SimpleQueue()  # a forked child holds no writer of its parent's
                    self.pid = os.getpid()
                    self.thread = threading.Thread(target=self.run, args=(self.queue,), name="group-commit",
                                                   daemon=True)
                    self.thread.start()
        self.queue.put(submission)

    def run(self, submissions: "queue.SimpleQueue[_Submission]") -> None:
        while True:
            try:
                batch = [submissions.get(timeout=IDLE_CLOSE_SECONDS)]
            except queue.Empty:
                connection.close()
                batch = [submissions.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(submissions.get_nowait())
                except queue.Empty:
                    break
            try:
                self.commit(batch)
            finally:  # even if the thread is dying (BaseException), nobody waits for ever
                for submission in batch:
                    if not submission.done.is_set():
                        submission.error = submission.error or RuntimeError("The group commit writer stopped.")
                        submission.done.set()

    def commit(self, batch: list[_Submission]) -> None:
        # One order for the locks every batch takes (a channel's customers, in order), so that two processes'
        # batches wait for each other rather than deadlock.
        batch.sort(key=lambda submission: submission.order)
        if len(batch) == 1 or not self.together(batch):
            for submission in batch:
                self.alone(submission)
        for submission in batch:
            submission.done.set()

    def together(self, batch: list[_Submission]) -> bool:
        try:
            with transaction.atomic(durable=True):
                for submission in batch:
                    _run(submission)
        except Exception:
            for submission in batch:
                submission.result, submission.hooks = None, []
            connection.close_if_unusable_or_obsolete()
            return False
        return True

    def alone(self, submission: _Submission) -> None:
        try:
            with transaction.atomic(durable=True):
                _run(submission)
        except Exception as error:
            submission.result, submission.hooks, submission.error = None, [], error
            connection.close_if_unusable_or_obsolete()


def _run(submission: _Submission) -> None:
    """The work, in its request's context; the on_commit hooks it registered are taken out of the writer's
    transaction, for its request to run after the commit."""
    first = len(connection.run_on_commit)
    submission.result = submission.context.run(submission.work)
    submission.hooks = [(func, robust) for _, func, robust in connection.run_on_commit[first:]]
    del connection.run_on_commit[first:]


_writer = _Writer()


def enabled() -> bool:
    return settings.GROUP_COMMIT and connection.vendor == "postgresql"


def commit(work: Callable[[], Any], *, order: str = "") -> Any:
    """The result of `work` (or its exception) once its writes are committed. `order`: the batch runs its works
    in this order (say which rows a work locks first)."""
    if connection.in_atomic_block or not enabled():  # its own transaction (a savepoint in the caller's)
        with transaction.atomic():
            return work()
    submission = _Submission(work, order)
    _writer.submit(submission)
    submission.done.wait()
    for func, robust in submission.hooks:  # committed: Django runs a hook at once outside a transaction
        transaction.on_commit(func, robust=robust)
    if submission.error is not None:
        raise submission.error
    return submission.result

"""The writer pool: a run's writes to One on a few threads, each taking its next write itself, stoppable at any write."""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

from flagsync.ports import RunFence
from flagsync.service.report import ChangeResult


def run_bounded(
    work: Sequence[Callable[[], ChangeResult]],
    *,
    concurrency: int,
    stop: threading.Event,
    slots: threading.Semaphore,
    fence: RunFence,
) -> Iterator[ChangeResult]:
    """Run the writes on at most `concurrency` threads, yielding results as they come.

    Each worker takes its next write itself, so no write waits for the calling thread to hand it
    out; once `stop` is set (or a write fails unexpectedly) no worker starts another. A worker
    takes one of `slots` before each write (the caller gives them back as results are recorded)
    and checks the `fence` (a lost run lock raises RunInterrupted, which ends every worker).
    Workers run in a copy of the caller's context, so their log lines keep the run id.
    """
    jobs = iter(work)
    take = threading.Lock()
    results: queue.SimpleQueue[ChangeResult | BaseException | None] = queue.SimpleQueue()
    abort = threading.Event()

    def stopping() -> bool:
        return stop.is_set() or abort.is_set()

    def worker() -> None:
        try:
            while not stopping():
                while not slots.acquire(timeout=0.1):
                    if stopping():
                        return
                with take:
                    job = next(jobs, None)
                if job is None:
                    return
                fence.check()
                results.put(job())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, which re-raises it
            abort.set()
            results.put(exc)
        finally:
            results.put(None)

    workers = min(concurrency, len(work))
    with ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="flagsync-write") as pool:
        for _ in range(workers):
            pool.submit(contextvars.copy_context().run, worker)
        finished = 0
        try:
            while finished < workers:
                item = results.get()
                if item is None:
                    finished += 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            abort.set()  # whatever ended this loop early, start no further write


class NoFence:
    """The fence of a service built without a run lock (tests of one process): never lost."""

    def check(self) -> None:
        """Nothing to check."""


NO_FENCE = NoFence()

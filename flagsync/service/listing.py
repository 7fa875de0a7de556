"""One's listing, fetched in a thread while a full run reads the consent source.

A full run needs both reads complete before it plans. Reading the source is work in this process;
listing One is mostly waiting for One, so the two overlap: `ListingAhead` starts the listing when
the run starts reading and hands it over when the read is done. Nothing about the safety rules
changes: the plan is still made only from a complete read and a complete listing, and a failure of
either ends the run before planning. A listing nobody will wait for (the read failed, the run was
stopped) is cancelled and stops before its next page, so One is not asked for pages no one uses; a
listing that failed ends the read at its next check (`check`, every thousand records).
"""

from __future__ import annotations

import contextvars
import threading
from types import TracebackType

from flagsync.core.model import Flag
from flagsync.errors import RunInterrupted
from flagsync.ports import FlagGateway

__all__ = ["ListingAhead"]

_POLL_S = 0.05


class ListingAhead:
    """`gateway.list_flags()` in a background thread; use as a context manager and call `result`."""

    def __init__(self, gateway: FlagGateway) -> None:
        self._gateway = gateway
        self._cancel = threading.Event()
        self._flags: list[Flag] | None = None
        self._error: BaseException | None = None
        # The run's context variables (its run id in every log line) go with the listing into its thread.
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._fetch,), name="flagsync-listing", daemon=True)

    def __enter__(self) -> ListingAhead:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        # Whatever happened, a listing still running is no longer wanted: it stops before its next page.
        self._cancel.set()

    def _fetch(self) -> None:
        try:
            self._flags = self._gateway.list_flags(cancel=self._cancel)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, which raises it
            self._error = exc

    def check(self) -> None:
        """Raise the listing's exception if it has already failed: the run need not finish reading to fail."""
        if self._error is not None and not self._thread.is_alive():
            self._raise_error()

    def result(self, stop: threading.Event) -> list[Flag]:
        """The complete listing, or the listing's exception; `RunInterrupted` if `stop` is set while waiting."""
        while self._thread.is_alive():
            if stop.is_set():
                self._cancel.set()
                raise RunInterrupted("stopped while listing One")
            self._thread.join(_POLL_S)
        if self._error is not None:
            self._raise_error()
        if self._flags is None:
            raise RuntimeError("the listing thread ended without a result")
        return self._flags

    def _raise_error(self) -> None:
        error, self._error = self._error, None  # raised once: the traceback is not kept alive by this object
        assert error is not None
        raise error

"""Small in-memory fakes of flagsync's ports, shared by the service and daemon tests (One's fake is the real
`InMemoryFlagGateway` in flagsync.adapters.memory_gateway)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from flagsync.core.model import SourceItem
from flagsync.errors import SourceError
from flagsync.ports import Changes


class ListSource:
    """A consent source over a list of items.

    `fail_after`: raise SourceError after that many items (a read that breaks mid-way). `changed`:
    what `changes_since` reports for a known watermark (a set of people, or None: "cannot tell");
    the first poll (no watermark) always answers None. `version` names the watermark it hands out.
    """

    def __init__(self, items: list[SourceItem] | None = None) -> None:
        self.items: list[SourceItem] = list(items or [])
        self.fail_after: int | None = None
        self.changed: frozenset[str] | None = frozenset()
        self.version = 1
        self.watermarks_seen: list[str | None] = []

    def read_all(self, now: datetime) -> Iterator[SourceItem]:
        for n, item in enumerate(self.items):
            if self.fail_after is not None and n >= self.fail_after:
                raise SourceError("the consent database went away mid-read")
            yield item
        if self.fail_after is not None and self.fail_after >= len(self.items):
            raise SourceError("the consent database went away mid-read")

    def read_person(self, person_id: str, now: datetime) -> Iterator[SourceItem]:
        return iter([i for i in self.items if i.person_id == person_id])

    def changes_since(self, watermark: str | None) -> Changes:
        self.watermarks_seen.append(watermark)
        if watermark is None:
            return Changes(None, f"v{self.version}")
        return Changes(self.changed, f"v{self.version}")

    def describe(self) -> str:
        return "list"

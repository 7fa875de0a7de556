"""The demo's sample world, and the one way a consent table is laid out for it and for the tests.

A consent table here holds the record contract's columns (`CONTRACT_COLUMNS`, as text) and then
columns of personal data flagsync must never read (`PERSONAL_COLUMNS`), so that every test and the
demo check the same thing: those columns stay in the source.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from flagsync.core.model import CONTRACT_COLUMNS

#: Personal data a consent source may hold beside the contract's columns; flagsync never selects or keeps it.
PERSONAL_COLUMNS: tuple[str, ...] = ("child_name", "address", "date_of_birth", "notes")

#: A consent table's columns: the contract's, then personal data.
CONSENT_TABLE_COLUMNS: tuple[str, ...] = (*CONTRACT_COLUMNS, *PERSONAL_COLUMNS)


def consent_table_sql(table: str = "consent_records", columns: Sequence[str] = CONSENT_TABLE_COLUMNS) -> str:
    """CREATE TABLE for a consent table with these (text) columns."""
    return f"CREATE TABLE {table} ({', '.join(f'{column} TEXT' for column in columns)})"


def insert_sql(table: str = "consent_records", columns: Sequence[str] = CONSENT_TABLE_COLUMNS) -> str:
    """INSERT with one placeholder per column, for `executemany`."""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"  # noqa: S608 - names from the contract


def write_consent_db(
    path: Path, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, table: str = "consent_records"
) -> None:
    """A new SQLite consent database at `path`: the full consent table, and `rows` given as values for `columns`."""
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute(consent_table_sql(table))
            db.executemany(insert_sql(table, columns), rows)
    finally:
        db.close()


#: The columns of `SAMPLE_RECORDS`, in order: the contract's (without the optional ones the demo leaves empty),
#: then fake personal data flagsync must never read.
SAMPLE_COLUMNS: tuple[str, ...] = (
    "record_id", "person_id", "decision", "informed", "consented_by", "recorded_at", "expires_at", "case_status",
    *PERSONAL_COLUMNS,
)  # fmt: skip

SAMPLE_RECORDS: list[tuple[Any, ...]] = [
    (
        "C-001",
        "P1001",
        "granted",
        "yes",
        "parent",
        "2026-09-01T10:00:00",
        None,
        "open",
        "Amelia Fakename",
        "1 Example Road, Sampletown",
        "2015-03-02",
        "Autism assessment pending",
    ),
    (
        "C-002",
        "P1002",
        "granted",
        "yes",
        "parent",
        "2026-08-01T09:00:00",
        None,
        "open",
        "Ben Notreal",
        "2 Example Road, Sampletown",
        "2013-07-19",
        "EHCP review",
    ),
    (
        "C-003",
        "P1002",
        "withdrawn",
        None,
        None,
        "2026-11-20T16:30:00",
        None,
        "open",
        "Ben Notreal",
        "2 Example Road, Sampletown",
        "2013-07-19",
        "Family asked to withdraw",
    ),
    (
        "C-004",
        "P1003",
        "refused",
        None,
        None,
        "2026-10-12T11:00:00",
        None,
        "open",
        "Cara Madeup",
        "3 Example Road, Sampletown",
        "2016-01-30",
        "Did not want the flag",
    ),
    (
        "C-005",
        "P1004",
        "granted",
        "yes",
        "carer",
        "2026-06-01T14:00:00",
        None,
        "closed",
        "Dev Pretend",
        "4 Example Road, Sampletown",
        "2012-11-11",
        "Case closed in October",
    ),
    (
        "C-006",
        "P1005",
        "granted",
        "yes",
        "young_person",
        "2025-10-01T10:00:00",
        "2026-10-01T00:00:00",
        "open",
        "Eli Invented",
        "5 Example Road, Sampletown",
        "2009-05-05",
        "Review date passed",
    ),
    (
        "C-007",
        "P1006",
        "granted",
        "no",
        "parent",
        "2026-11-02T10:00:00",
        None,
        "open",
        "Fay Imaginary",
        "6 Example Road, Sampletown",
        "2017-08-08",
        "Pros and cons not yet explained",
    ),
    (
        "C-008",
        "",
        "granted",
        "yes",
        "parent",
        "2026-11-03T10:00:00",
        None,
        "open",
        "Gus Unknown",
        "7 Example Road, Sampletown",
        "2014-02-14",
        "Not yet matched to One",
    ),
    (
        "C-009",
        "P1007",
        "granted",
        "yes",
        "parent",
        "last tuesday",
        None,
        "open",
        "Hal Typo",
        "8 Example Road, Sampletown",
        "2011-12-12",
        "Date typed by hand",
    ),
    (
        "C-010",
        "P1008",
        "granted",
        "yes",
        "parent",
        "2026-11-10T10:00:00",
        None,
        "open",
        "Ivy Sample",
        "9 Example Road, Sampletown",
        "2018-04-04",
        "Speech and language",
    ),
    (
        "C-011",
        "P1009",
        "granted",
        "yes",
        "parent",
        "2026-11-11T10:00:00",
        None,
        "open",
        "Jon Archived",
        "10 Example Road, Sampletown",
        "2010-10-10",
        "Moved away",
    ),
]

#: People One knows, and their state there.
SAMPLE_PEOPLE = [{"personId": f"P10{n:02d}", "state": "active"} for n in range(1, 9)] + [
    {"personId": "P1009", "state": "archived"}
]

VERDICT_EXPLAINED = {
    "granted": "granted, informed, current, case open",
    "withdrawn": "the latest decision is a withdrawal",
    "refused": "the family refused",
    "not_informed": "granted, but the pros and cons were not explained (listed for attention)",
    "expired": "the consent's review date has passed",
    "case_closed": "the case is closed",
    "version_not_accepted": "signed on a consent form version that is not accepted",
    "uncertain": "a record of theirs is invalid, so privacy fails closed (quarantined)",
}

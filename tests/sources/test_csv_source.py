"""The CSV consent source: reading, dropping personal-data columns, structural errors, streaming and change detection."""

from __future__ import annotations

import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import pytest

from flagsync.adapters.csv import CsvConsentSource
from flagsync.core.model import ConsentRecord, Decision, QuarantinedRecord, QuarantineReason, SourceItem
from flagsync.errors import SourceError

from .conftest import CANARY, CONTRACT, NOW, make_row, write_csv

R = QuarantineReason


def read_all(path: Path, columns: dict[str, str] | None = None) -> list[SourceItem]:
    return list(CsvConsentSource(path, columns).read_all(NOW))


def by_id(items: list[SourceItem]) -> dict[str | None, SourceItem]:
    return {item.record_id: item for item in items}


def read_error(path: Path) -> SourceError:
    with pytest.raises(SourceError) as caught:
        read_all(path)
    message = str(caught.value)
    assert not any(value in message for value in CANARY.values())
    assert caught.value.__cause__ is None
    return caught.value


def test_reads_valid_records(tmp_path: Path) -> None:
    """Valid rows come back as consent records; an empty person id gives an unmatched record."""
    path = write_csv(
        tmp_path / "c.csv", [make_row("r1", "P1"), make_row("r2", "", decision="Refused", informed="", consented_by="")]
    )
    items = by_id(read_all(path))
    assert isinstance(items["r1"], ConsentRecord)
    assert items["r1"].person_id == "P1"
    assert isinstance(items["r2"], ConsentRecord)
    assert (items["r2"].person_id, items["r2"].decision) == (None, Decision.REFUSED)


def test_bom_crlf_quoting_and_blank_lines_are_accepted(tmp_path: Path) -> None:
    """A UTF-8 BOM, CRLF line ends, RFC 4180 quoting with embedded newlines and trailing blank lines all read fine."""
    header = ",".join([*CONTRACT, "notes"])
    line = 'r1,P1,granted,yes,parent,2025-06-01T09:30:00,,open,"v2, revised",,"line one\r\nline ""two"""'
    path = tmp_path / "c.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f"{header}\r\n{line}\r\n\r\n".encode())
    (item,) = read_all(path)
    assert isinstance(item, ConsentRecord)
    assert (item.record_id, item.consent_version) == ("r1", "v2, revised")


MALFORMED = [
    pytest.param({"decision": ""}, R.MISSING_FIELD, "decision", id="missing-field"),
    pytest.param({"decision": "maybe"}, R.BAD_DECISION, "decision", id="bad-decision"),
    pytest.param({"informed": "perhaps"}, R.BAD_BOOLEAN, "informed", id="bad-boolean"),
    pytest.param({"consented_by": "neighbour"}, R.BAD_CONSENTED_BY, "consented_by", id="bad-consented-by"),
    pytest.param({"case_status": "pending"}, R.BAD_CASE_STATUS, "case_status", id="bad-case-status"),
    pytest.param({"recorded_at": "yesterday"}, R.BAD_TIMESTAMP, "recorded_at", id="bad-timestamp"),
    pytest.param({"recorded_at": "2026-02-01T00:00:00Z"}, R.FUTURE_TIMESTAMP, "recorded_at", id="future-timestamp"),
    pytest.param({"person_id": "P 1;DROP"}, R.BAD_PERSON_ID, "person_id", id="bad-person-id"),
    pytest.param({"consent_version": "v" * 65}, R.FIELD_TOO_LONG, "consent_version", id="field-too-long"),
]


@pytest.mark.parametrize(("overrides", "reason", "field"), MALFORMED)
def test_malformed_record_is_quarantined_alone(tmp_path: Path, overrides: dict[str, str], reason: R, field: str) -> None:
    """A record breaking one rule is quarantined with its reason code; the other records read normally."""
    path = write_csv(
        tmp_path / "c.csv", [make_row("good1", "P1"), {**make_row("bad", "P2"), **overrides}, make_row("good2", "P3")]
    )
    items = by_id(read_all(path))
    bad = items["bad"]
    assert isinstance(bad, QuarantinedRecord)
    assert (bad.reason, bad.field) == (reason, field)
    assert all(isinstance(items[key], ConsentRecord) for key in ("good1", "good2"))
    assert len(items) == 3


def test_every_occurrence_of_a_duplicate_record_id_is_quarantined(tmp_path: Path) -> None:
    """All rows sharing a record id (ignoring padding) are quarantined, keeping their persons; others are unaffected."""
    rows = [make_row("dup", "P1"), make_row("ok", "P2"), make_row(" dup ", "P3", decision="refused")]
    items = read_all(write_csv(tmp_path / "c.csv", rows))
    assert sorted((item.person_id or "", item.reason.value) for item in items if isinstance(item, QuarantinedRecord)) == [
        ("P1", "DUPLICATE_RECORD_ID"),
        ("P3", "DUPLICATE_RECORD_ID"),
    ]
    assert [item.record_id for item in items if isinstance(item, ConsentRecord)] == ["ok"]


def test_read_person_returns_only_that_persons_records(tmp_path: Path) -> None:
    """read_person yields the person's records, duplicates included, and nothing for a malformed id."""
    rows = [make_row("r1", "P1"), make_row("r2", " P1 "), make_row("r3", "P2"), make_row("r3", "P1"), make_row("r4", "P10")]
    source = CsvConsentSource(write_csv(tmp_path / "c.csv", rows))
    items = by_id(list(source.read_person("P1", NOW)))
    assert set(items) == {"r1", "r2", "r3"}
    assert items["r3"] == QuarantinedRecord("r3", "P1", R.DUPLICATE_RECORD_ID, "record_id")
    assert list(source.read_person("../P1", NOW)) == []


def test_column_mapping_and_case_insensitive_headers(tmp_path: Path) -> None:
    """Mapped header names are read under the contract's names; header matching falls back to any case."""
    mapping = {"record_id": "Form Ref", "person_id": "One ID", "decision": "OUTCOME"}
    rows = [{mapping.get(name, name): value for name, value in make_row("r1", "P1").items()}]
    path = write_csv(tmp_path / "c.csv", rows)
    (item,) = read_all(path, {**mapping, "decision": "outcome"})
    assert isinstance(item, ConsentRecord)
    assert (item.record_id, item.person_id, item.decision) == ("r1", "P1", Decision.GRANTED)


def test_optional_columns_may_be_absent(tmp_path: Path) -> None:
    """A header without expires_at, consent_version and updated_at reads those as None."""
    header = [name for name in CONTRACT if name not in ("expires_at", "consent_version", "updated_at")]
    (item,) = read_all(write_csv(tmp_path / "c.csv", [make_row("r1", "P1")], header=header))
    assert isinstance(item, ConsentRecord)
    assert (item.expires_at, item.consent_version, item.updated_at) == (None, None, None)


def test_personal_data_never_reaches_the_items(tmp_path: Path) -> None:
    """Canary personal data in unmapped columns appears in no yielded item, valid or quarantined."""
    rows = [make_row("r1", "P1"), make_row("r2", "P2", decision="maybe"), make_row("r2", "P3"), make_row("r4", "")]
    source = CsvConsentSource(write_csv(tmp_path / "c.csv", rows))
    items = [*source.read_all(NOW), *source.read_person("P1", NOW)]
    assert len(items) == 5
    text = repr(items)
    assert not any(value in text for value in CANARY.values())


def test_rows_are_cut_to_mapped_columns_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The values handed to the parser are the contract columns alone, never the file's other columns."""
    import flagsync.adapters.csv.source as module
    from flagsync.core.records import RowParser

    seen: list[tuple[object, ...]] = []

    class Spy(RowParser):
        __slots__ = ()

        def parse(self, values: Sequence[object], duplicate: bool = False) -> SourceItem:
            seen.append(tuple(values))
            return super().parse(values, duplicate)

    monkeypatch.setattr(module, "RowParser", Spy)
    row = make_row("r1", "P1")
    path = write_csv(tmp_path / "c.csv", [row])
    source = CsvConsentSource(path)
    assert len([*source.read_all(NOW), *source.read_person("P1", NOW)]) == 2
    assert seen == [tuple(row[name] for name in CONTRACT)] * 2


# ---------------------------------------------------------------------------------------------
# Errors


def test_missing_file_is_a_source_error(tmp_path: Path) -> None:
    """A missing file fails the read, naming the file."""
    assert "does not exist" in str(read_error(tmp_path / "absent.csv"))


def test_not_utf8_is_a_source_error_with_line(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 fail the read with the line number, not the content."""
    path = write_csv(tmp_path / "c.csv", [make_row("r1", "P1"), make_row("r2", "P2")])
    path.write_bytes(path.read_bytes().replace(b"\nr2,", b"\nr2\xff\xfe,", 1))
    assert "not valid UTF-8 (line 3)" in str(read_error(path))


def test_a_character_cut_off_at_the_end_of_the_file_is_a_source_error_with_line(tmp_path: Path) -> None:
    """Each line is decoded on its own: a multi-byte character cut short by the end of the file names the last line."""
    path = write_csv(tmp_path / "c.csv", [make_row("r1", "P1"), make_row("r2", "P2", notes="caf\u00e9")])
    data = path.read_bytes().rstrip(b"\r\n")
    path.write_bytes(data[: data.index(b"\xc3\xa9") + 1])
    assert "not valid UTF-8 (line 3)" in str(read_error(path))


def test_a_byte_order_mark_counts_only_at_the_start(tmp_path: Path) -> None:
    """A BOM inside the file is a character of its cell (here of a record id), not something to skip."""
    path = write_csv(tmp_path / "c.csv", [make_row("r1", "P1"), make_row("\ufeffr2", "P2")])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert [item.record_id for item in CsvConsentSource(path).read_all(NOW)] == ["r1", "\ufeffr2"]


def test_missing_required_header_is_a_source_error(tmp_path: Path) -> None:
    """A required column missing from the header fails the read, naming the column."""
    header = [name for name in CONTRACT if name != "case_status"] + ["name"]
    assert "column 'case_status'" in str(read_error(write_csv(tmp_path / "c.csv", [make_row("r1", "P1")], header=header)))


def test_ragged_row_is_a_source_error(tmp_path: Path) -> None:
    """A row with a different number of fields than the header fails the read with its line number."""
    path = write_csv(tmp_path / "c.csv", [make_row("r1", "P1"), make_row("r2", "P2")])
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f"r3,P3,granted,{CANARY['name']}\n")
    message = str(read_error(path))
    assert "line 4" in message
    assert "fields" in message


def test_malformed_quoting_is_a_source_error(tmp_path: Path) -> None:
    """Broken RFC 4180 quoting fails the read with a line number and no cell content."""
    path = write_csv(tmp_path / "c.csv", [make_row("r1", "P1")])
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f'r2,P2,"granted"x,yes,parent,2025-01-01T00:00,,open,,,"{CANARY["name"]}",a,b,c\n')
    assert "malformed at line 3" in str(read_error(path))


def test_unterminated_quote_is_a_source_error(tmp_path: Path) -> None:
    """A quote left open to the end of the file fails the read rather than swallowing the rest."""
    path = write_csv(tmp_path / "c.csv", [make_row("r1", "P1")])
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f'r2,P2,granted,yes,parent,2025-01-01T00:00,,open,,,"{CANARY["name"]}\n')
    read_error(path)


def test_duplicate_header_for_a_mapped_column_is_a_source_error(tmp_path: Path) -> None:
    """Two header cells for the same mapped column are ambiguous and fail the read."""
    path = write_csv(tmp_path / "c.csv", [make_row("r1", "P1")], header=[*CONTRACT, "decision"])
    assert "more than once" in str(read_error(path))


def test_empty_file_is_a_source_error(tmp_path: Path) -> None:
    """A file without even a header row fails the read."""
    path = tmp_path / "c.csv"
    path.write_bytes(b"")
    assert "empty" in str(read_error(path))


def test_describe_names_the_file(tmp_path: Path) -> None:
    """describe() names the CSV file."""
    assert CsvConsentSource(tmp_path / "c.csv").describe() == f"csv file {tmp_path / 'c.csv'}"


# ---------------------------------------------------------------------------------------------
# Streaming and changes


def test_large_file_is_streamed(tmp_path: Path) -> None:
    """Reading 100,000 rows keeps only the record-id counts in memory, far below the parsed records' size."""
    path = tmp_path / "big.csv"
    row = make_row("x", "P1")
    tail = ",".join(str(row[name]) for name in CONTRACT[2:])
    with path.open("w", encoding="utf-8") as handle:
        handle.write(",".join([*CONTRACT, "notes"]) + "\n")
        for i in range(100_000):
            handle.write(f"r{i:06d},P{i:06d},{tail},{CANARY['notes']}\n")
    tracemalloc.start()
    try:
        count = sum(1 for _ in CsvConsentSource(path).read_all(NOW))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 100_000
    # 100,000 parsed records held at once take over 40 MB; the id counter alone is about a quarter of that.
    assert peak < 20 * 1024 * 1024


def test_changes_by_content_hash(tmp_path: Path) -> None:
    """The watermark is the file's hash: unchanged is nobody, a change names its people, an unknown version a full reconcile."""
    path = write_csv(tmp_path / "c.csv", [make_row("r1", "P1")])
    source = CsvConsentSource(path)
    first = source.changes_since(None)
    assert first.person_ids is None
    assert first.watermark is not None and first.watermark.startswith("sha256:")
    assert source.changes_since(first.watermark).person_ids == frozenset()
    write_csv(path, [make_row("r1", "P1", decision="withdrawn")])
    changed = source.changes_since(first.watermark)
    assert changed.person_ids == frozenset({"P1"}) and changed.watermark != first.watermark
    assert CsvConsentSource(path).changes_since(first.watermark).person_ids is None  # a version this process never read
    with pytest.raises(SourceError, match="does not exist"):
        CsvConsentSource(tmp_path / "absent.csv").changes_since(first.watermark)


def test_file_changed_between_passes_fails_the_read(tmp_path: Path) -> None:
    """If the file is rewritten while it is being read, the read fails instead of mixing two versions."""
    rows = [make_row(f"r{i}", f"P{i}") for i in range(500)]  # larger than one read buffer
    path = write_csv(tmp_path / "c.csv", rows)
    iterator = CsvConsentSource(path).read_all(NOW)
    first = next(iterator)  # the first pass is complete; the second has started
    assert isinstance(first, ConsentRecord)
    write_csv(path, [*rows[:-1], make_row("r499", "P499", decision="withdrawn")])
    with pytest.raises(SourceError, match="changed while it was being read"):
        list(iterator)

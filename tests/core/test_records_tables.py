"""The record parser's import-time shortcuts: the spelling tables and the fast record builder give the full rule's answers.

These are built once when `flagsync.core.records` is imported, so they are called again here, where a
wrong table or builder would show (mutation testing cannot reach code that ran at import).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from flagsync.core import records
from flagsync.core.model import CaseStatus, ConsentedBy, ConsentRecord, Decision


def _forms(*words: str) -> set[str]:
    return {variant for word in words for variant in (word, word.upper(), word.capitalize(), word.title())}


def test_decision_spellings_are_each_decision_in_lower_upper_and_capitalised_case() -> None:
    """The decision table holds exactly the lower, upper and capitalised spellings of each decision."""
    table = records._spellings(records._DECISIONS)
    assert table == {form: member for member in Decision for form in _forms(member.value)}
    assert table["WITHDRAWN"] is Decision.WITHDRAWN


def test_consented_by_spellings_include_spaced_and_hyphenated_forms() -> None:
    """consented_by: underscore, space and hyphen forms, each in lower, upper, capitalised and title case."""
    table = records._spellings(records._CONSENTED_BY, spaced=True)
    expected = {
        form: member
        for member in ConsentedBy
        for form in _forms(member.value, member.value.replace("_", " "), member.value.replace("_", "-"))
    }
    assert table == expected
    assert table["Young Person"] is ConsentedBy.YOUNG_PERSON
    assert table["YOUNG-PERSON"] is ConsentedBy.YOUNG_PERSON


def test_unspaced_tables_have_no_spaced_forms() -> None:
    """Without `spaced`, a member with an underscore is not also spelled with a space or a hyphen."""
    table = records._spellings(records._CONSENTED_BY)
    assert "young person" not in table
    assert "young-person" not in table
    assert table["young_person"] is ConsentedBy.YOUNG_PERSON


def test_the_tables_in_use_are_the_ones_the_rule_builds() -> None:
    """The module's tables are the ones `_spellings` builds, case status included."""
    assert records._spellings(records._DECISIONS) == records._DECISION_SPELLINGS
    assert records._spellings(records._CONSENTED_BY, spaced=True) == records._CONSENTED_BY_SPELLINGS
    assert {form: member for member in CaseStatus for form in _forms(member.value)} == records._CASE_STATUS_SPELLINGS


def test_a_spelling_the_full_rule_refuses_is_left_out_of_the_table() -> None:
    """A table entry is kept only when the full rule reads it as that member: a form it refuses is skipped."""
    # Spaced, "a b" is read as "a_b", which is no member: none of its forms can be in the table.
    odd = {"a b": Decision.GRANTED, "ok": Decision.REFUSED}
    assert records._spellings(odd, spaced=True) == {"ok": Decision.REFUSED, "OK": Decision.REFUSED, "Ok": Decision.REFUSED}


def test_boolean_spellings_are_the_words_in_three_cases_and_the_empty_cell() -> None:
    """true/yes/1 and false/no/0 in lower, upper and capitalised case, and the empty cell as unknown."""
    table = records._boolean_spellings()
    expected: dict[str, bool | None] = {"": None}
    for word in ("true", "yes", "1"):
        expected |= dict.fromkeys({word, word.upper(), word.capitalize()}, True)
    for word in ("false", "no", "0"):
        expected |= dict.fromkeys({word, word.upper(), word.capitalize()}, False)
    assert table == expected
    assert expected == records._BOOLEAN_SPELLINGS


FIELDS = dict(
    record_id="R1",
    person_id="P1",
    decision=Decision.GRANTED,
    informed=True,
    consented_by=ConsentedBy.CARER,
    recorded_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    expires_at=datetime(2027, 1, 1, tzinfo=UTC),
    case_status=CaseStatus.OPEN,
    consent_version="v2",
    updated_at=datetime(2026, 1, 3, tzinfo=UTC),
)


def test_the_fast_builder_builds_the_record_the_constructor_builds() -> None:
    """The slot-setting builder gives a ConsentRecord equal to, and field for field the same as, the constructor's."""
    build = records._record_builder()
    assert build is not ConsentRecord
    built = build(*FIELDS.values())
    assert type(built) is ConsentRecord
    assert built == ConsentRecord(**FIELDS)
    assert dataclasses.asdict(built) == FIELDS
    assert hash(built) == hash(ConsentRecord(**FIELDS))


def test_the_builder_in_use_is_the_fast_one() -> None:
    """The parser uses the fast builder while the dataclass is exactly the expected slots."""
    assert records._new_record is not ConsentRecord
    assert records._new_record(*FIELDS.values()) == ConsentRecord(**FIELDS)


def test_the_builder_falls_back_to_the_constructor_when_the_fields_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    """If ConsentRecord's fields ever differ from what the builder sets, the ordinary constructor is used."""
    monkeypatch.setattr(records, "_RECORD_FIELDS", (*records._RECORD_FIELDS[:-1], "something_else"))
    assert records._record_builder() is ConsentRecord


def test_the_builder_falls_back_to_the_constructor_when_the_dataclass_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ConsentRecord with a __post_init__ (validation the slots would skip) gets the ordinary constructor."""
    monkeypatch.setattr(ConsentRecord, "__post_init__", lambda self: None, raising=False)
    assert records._record_builder() is ConsentRecord


def test_the_builder_falls_back_to_the_constructor_when_the_layouts_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same fields and slots, but a base with a slot of its own: no __class__ assignment, the ordinary constructor."""

    class Extra:
        __slots__ = ("extra",)

    fields = [(field.name, field.type) for field in dataclasses.fields(ConsentRecord)]
    wider = dataclasses.make_dataclass("Wider", fields, bases=(Extra,), frozen=True, slots=True)
    monkeypatch.setattr(records, "ConsentRecord", wider)
    assert records._record_builder() is wider

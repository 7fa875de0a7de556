"""Small-number suppression: how a count about families may be shown to someone monitoring the service.

The rule follows NHS Digital's disclosure control for Hospital Episode Statistics (HES) and the
Emergency Care Data Set (ECDS), in force for sub-national outputs since September 2018
("Disclosure control methodology for HES and ECDS",
https://digital.nhs.uk/data-and-information/data-tools-and-services/data-services/hospital-episode-statistics/change-to-disclosure-control-methodology-for-hes-and-ecds-from-september-2018;
NHS Digital has since applied the same rules to other datasets, e.g. SRHAD from 2019-20):

- a count of 0 is shown as 0;
- a count from 1 to 7 is shown as ``*``;
- every other count is rounded to the nearest 5;
- a total is worked out from the exact values first and then suppressed or rounded itself, so a
  shown total need not equal the sum of the shown figures it covers.

NHS Digital applies the rule below national level only; a single family support service is always
"below national level", so flagsync applies it to every aggregate count unless the data protection
officer asks for exact counts.

Rounding to the nearest 5 has no halves to settle for whole numbers: a remainder of 1 or 2 rounds
down and 3 or 4 rounds up (8 -> 10, 12 -> 10, 13 -> 15), the conventional rounding of statistical
disclosure control. As only counts of 8 or more are rounded, no shown non-zero figure is below 10.
"""

from __future__ import annotations

from dataclasses import dataclass

#: What a suppressed count is shown as.
SUPPRESSED = "*"

#: The largest count that is suppressed (counts 1 to this are shown as `SUPPRESSED`).
LARGEST_SUPPRESSED = 7

#: Every count above `LARGEST_SUPPRESSED` is rounded to the nearest multiple of this.
ROUNDING_BASE = 5

#: The rule in words, for the footnote of every suppressed report.
RULE = (
    f"Small numbers are suppressed following NHS Digital's disclosure control for hospital statistics: "
    f"counts of 1 to {LARGEST_SUPPRESSED} are shown as {SUPPRESSED}, and every other count is rounded to the nearest "
    f"{ROUNDING_BASE} (0 stays 0; 8 becomes 10, 12 becomes 10, 13 becomes 15). Totals are worked out from the exact "
    f"counts and then suppressed or rounded themselves, so they may differ from the sum of the figures shown."
)

#: The note on a report made with exact counts.
EXACT_NOTE = (
    "Exact counts, without small-number suppression: for the data protection officer only. "
    "Small numbers can identify a family; do not pass this report on."
)


def disclose(count: int) -> int | None:
    """The count as it may be shown: 0, a multiple of 5 that is at least 10, or None for suppressed (shown as ``*``).

    Raises ValueError for a negative count (counts of families are never negative).
    """
    if count < 0:
        raise ValueError("a count cannot be negative")
    if count == 0:
        return 0
    if count <= LARGEST_SUPPRESSED:
        return None
    return ROUNDING_BASE * ((count + ROUNDING_BASE // 2) // ROUNDING_BASE)


@dataclass(frozen=True, slots=True)
class Figure:
    """A count ready to show: its value, or None when it is suppressed."""

    value: int | None

    @classmethod
    def of(cls, count: int, *, exact: bool) -> Figure:
        """The count itself with `exact`, else as `disclose` allows it to be shown."""
        if count < 0:
            raise ValueError("a count cannot be negative")
        return cls(count if exact else disclose(count))

    @property
    def suppressed(self) -> bool:
        return self.value is None

    def text(self) -> str:
        """``*`` when suppressed, else the number with thousands separators."""
        return SUPPRESSED if self.value is None else f"{self.value:,}"

    def json(self) -> int | str:
        """The number, or the string ``*`` when suppressed."""
        return SUPPRESSED if self.value is None else self.value

"""The `ConsentSource` over a CSV export of the consent form.

`source` holds the adapter (whole reads, person reads, keeping its index current, change
detection), `index` the per-person index of one version of the file and how it is built,
`lines` the file's bytes turned into checked records (decoding, the field-length limit, errors),
`saved` the index kept on disk between processes (keyed hashes and offsets, never an id).
"""

from flagsync.adapters.csv.lines import FIELD_LIMIT
from flagsync.adapters.csv.saved import SAVED_INDEX_SUFFIX, SavedIndex, derive_index_key
from flagsync.adapters.csv.source import CsvConsentSource

__all__ = ["FIELD_LIMIT", "SAVED_INDEX_SUFFIX", "CsvConsentSource", "SavedIndex", "derive_index_key"]

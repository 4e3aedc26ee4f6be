"""Edit records, the embedded datasets, and the ``EditDataModule`` that collates them into ``EditBatch``."""

from mendlight.data.batch import EditBatch
from mendlight.data.module import EditDataModule
from mendlight.data.records import EditRecord, LocalityItem, RecordError, read_records, write_records

__all__ = [
    "EditBatch",
    "EditDataModule",
    "EditRecord",
    "LocalityItem",
    "RecordError",
    "read_records",
    "write_records",
]

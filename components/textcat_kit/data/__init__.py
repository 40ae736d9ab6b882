"""Reading labelled texts and writing spaCy ``DocBin`` corpora."""

from .records import Record, read_docbin_records, records_to_docbin

__all__ = ["Record", "read_docbin_records", "records_to_docbin"]

"""Keep Python's cyclic garbage collector off the objects a long-running job loads once.

A loaded pipeline, a web app or a Ray worker holds hundreds of thousands of Python objects
that live as long as the job. Every classified batch allocates Docs, dicts and coroutines,
which triggers collections, and the older generations' collections walk all those
long-lived objects again each time. :func:`frozen_loaded_objects` moves them to the
permanent generation (``gc.freeze``) once loading is done, so that collections only look
at what the work creates, and moves them back when the job ends. Before ``fork`` it also
keeps the workers from copying the pages those objects live on (the reason the standard
library documents for it).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


def freeze_loaded_objects() -> int:
    """Collect once, then exclude every object alive now from later collections; returns
    how many objects are frozen. Undo with :func:`unfreeze_objects` when the job ends (a
    process that ends with the job, such as a Ray actor, need not)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def unfreeze_objects() -> None:
    """Make the frozen objects collectable again (they go to the oldest generation)."""
    gc.unfreeze()


@contextmanager
def frozen_loaded_objects() -> Iterator[int]:
    """:func:`freeze_loaded_objects` for the duration of a ``with`` block."""
    count = freeze_loaded_objects()
    try:
        yield count
    finally:
        unfreeze_objects()

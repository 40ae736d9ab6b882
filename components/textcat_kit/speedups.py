"""The optional compiled kernels (``textcat_kit._speedups``, built from ``_speedups.c``).

``KERNELS`` is the compiled module, or ``None`` when it was not built (no C compiler at
install time) or ``TEXTCAT_KIT_NO_SPEEDUPS=1`` is set. Every caller has a NumPy path that
gives the same results to the bit; the kernels only make bow inference faster.
:func:`batch_token_attrs` reads a batch's token attributes with the Cython module
``textcat_kit._doc_attrs`` when it was built, else with ``Doc.to_array`` per doc.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np


def _load(name: str) -> Any:
    if os.environ.get("TEXTCAT_KIT_NO_SPEEDUPS", "") not in ("", "0"):
        return None
    try:
        return importlib.import_module(f"textcat_kit.{name}")
    except ModuleNotFoundError:  # not built: an install without a compiler
        return None
    except Exception as err:  # built, but e.g. against another spaCy's Doc layout
        from .errors import Warnings

        warnings.warn(Warnings.W011.format(module=name, error=err), stacklevel=2)
        return None


KERNELS: ModuleType | None = _load("_speedups")
_DOC_ATTRS: ModuleType | None = _load("_doc_attrs")


def batch_token_attrs(docs: Sequence[Any], attr: int) -> tuple[np.ndarray, np.ndarray]:
    """Every token's ``attr`` (uint64), doc after doc, and each doc's token count (int64)."""
    docs = docs if isinstance(docs, list) else list(docs)
    if _DOC_ATTRS is not None:
        tokens, lengths = _DOC_ATTRS.batch_token_attrs(docs, attr)
        return tokens, lengths
    arrays = [doc.to_array(attr) for doc in docs]
    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    if not arrays:
        return np.zeros(0, dtype=np.uint64), lengths
    return np.concatenate(arrays).astype(np.uint64, copy=False), lengths

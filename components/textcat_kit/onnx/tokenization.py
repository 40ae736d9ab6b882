"""Wordpiece tokenisation with the Rust ``tokenizers`` library only (no ``transformers``).

spacy-transformers calls the Hugging Face fast tokenizer, which is a thin layer over a
``tokenizers.Tokenizer`` (the ``backend_tokenizer`` whose state is ``tokenizer.json``).
The export saves that backend exactly as the trained pipeline configured it (lower-casing,
prefix space, post-processor with the special tokens), so encoding a window here gives the
same ids, type ids and character offsets as ``tokenizer(texts, add_special_tokens=True)``
did during training. Padding is done by the encoder, truncation here: windows longer than
the model's maximum are cut at the end, as ``truncate_oversize_splits`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


@dataclass
class EncodedWindow:
    """The wordpieces of one window: ids, token type ids and ``[start, end)`` offsets."""

    input_ids: IntArray
    type_ids: IntArray
    offsets: IntArray

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class TokenizerSettings:
    """What the encoder needs to know about the tokenizer, saved next to ``tokenizer.json``.

    max_length: the tokenizer's ``model_max_length``; longer windows are truncated to it
        (``None``: never truncate, as for tokenizers without a maximum).
    pad_id / pad_type_id: ids used to pad a batch.
    use_type_ids: whether the model takes ``token_type_ids`` (BERT yes, RoBERTa no).
    """

    max_length: int | None
    pad_id: int
    pad_type_id: int
    use_type_ids: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_length": self.max_length,
            "pad_id": self.pad_id,
            "pad_type_id": self.pad_type_id,
            "use_type_ids": self.use_type_ids,
        }

    @classmethod
    def from_dict(cls, msg: dict[str, Any]) -> TokenizerSettings:
        return cls(
            max_length=None if msg["max_length"] is None else int(msg["max_length"]),
            pad_id=int(msg["pad_id"]),
            pad_type_id=int(msg["pad_type_id"]),
            use_type_ids=bool(msg["use_type_ids"]),
        )


class WordpieceTokenizer:
    """Encode window texts the way the trained pipeline's fast tokenizer did."""

    def __init__(self, tokenizer_json: str, settings: TokenizerSettings) -> None:
        from tokenizers import Tokenizer

        self.tokenizer_json = tokenizer_json
        self.settings = settings
        self._tokenizer = Tokenizer.from_str(tokenizer_json)
        # Saved from a live HF tokenizer, the state may carry the padding of its last call.
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()

    def encode(self, texts: Sequence[str]) -> list[EncodedWindow]:
        """Encode ``texts`` with special tokens, truncated to ``settings.max_length``."""
        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        limit = self.settings.max_length
        windows = []
        for encoding in encodings:
            # Truncation drops wordpieces from the end (special tokens included), as
            # spacy_transformers.truncate.truncate_oversize_splits does.
            keep = len(encoding.ids) if limit is None else min(limit, len(encoding.ids))
            windows.append(
                EncodedWindow(
                    input_ids=np.asarray(encoding.ids[:keep], dtype=np.int64),
                    type_ids=np.asarray(encoding.type_ids[:keep], dtype=np.int64),
                    offsets=np.asarray(encoding.offsets[:keep], dtype=np.int64).reshape(-1, 2),
                )
            )
        return windows

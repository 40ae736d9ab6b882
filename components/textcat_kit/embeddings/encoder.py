"""A frozen sentence encoder: texts in, mean-pooled, L2-normalised vectors out.

This is the sentence-transformers recipe (``all-MiniLM-L6-v2`` and its family: run the
encoder, average the last hidden states over the real tokens, scale each vector to unit
length) without the sentence-transformers dependency: a Hugging Face ``AutoModel`` and its
fast tokenizer (the Rust ``tokenizers`` backend, called directly so that a batch costs one
call).

Why frozen: a pretrained sentence encoder already separates intents well (a linear model
on its vectors is within a point of a fine-tuned BERT on Banking77), and a frozen encoder
lets training compute each text's vector once (:class:`EmbeddingCache`) and then train a
linear head over the cached vectors for as many epochs as it needs, in minutes on a CPU.

Texts are encoded in **length-sorted batches** (sorted by wordpiece count, so a batch pads
to nearly its own length), then put back in input order. Serialisation is JSON + safetensors
inside msgpack (no pickle), so a pipeline carries its encoder and loads without the
directory or hub name it was built from.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import srsly

from ..errors import ConfigError, Errors

#: The serialised format's version, checked on load.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class EncoderSettings:
    """How texts are encoded (hyperparameters from the config, not fitted state).

    max_length: wordpieces per text, special tokens included; longer texts are truncated
        (``all-MiniLM-L6-v2`` was trained with 128 and its card sets 256).
    batch_size: texts per forward pass after length sorting.
    normalize: scale each vector to unit L2 norm (what the sentence-transformers card does;
        a linear head over normalised vectors is a cosine classifier).
    """

    max_length: int = 256
    batch_size: int = 128
    normalize: bool = True

    def validate(self) -> None:
        for name, value in (("max_length", self.max_length), ("batch_size", self.batch_size)):
            if value < 1:
                raise ConfigError(Errors.E451.format(name=name, value=value))


class SentenceEncoder:
    """A frozen Hugging Face encoder with mean pooling (see the module docstring)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        pad_id: int,
        settings: EncoderSettings,
        source: str = "",
    ) -> None:
        """model: a ``transformers`` encoder (``AutoModel``); tokenizer: a
        ``tokenizers.Tokenizer``; pad_id: the padding token's id; source: where it came from
        (a directory or hub name; informational, saved with the pipeline)."""
        settings.validate()
        self.model = model
        self.tokenizer = tokenizer
        self.pad_id = pad_id
        self.settings = settings
        self.source = source
        self._fingerprint: str | None = None
        self.model.eval()
        for param in self.model.parameters():
            param.requires_grad_(False)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self._max_length())

    @property
    def width(self) -> int:
        """The vector width (the encoder's hidden size)."""
        return int(self.model.config.hidden_size)

    @property
    def fingerprint(self) -> str:
        """A short hash of the config, tokenizer, weights and settings (names a disk cache).

        Where the encoder was loaded from is left out (``_name_or_path`` of the config): the
        same model read from another path, or rebuilt from a pipeline's bytes, shares the
        cache."""
        if self._fingerprint is None:
            digest = hashlib.blake2b(digest_size=8)
            config = self.model.config.to_dict()
            config.pop("_name_or_path", None)
            digest.update(json.dumps(config, sort_keys=True, default=str).encode("utf8"))
            digest.update(self.tokenizer.to_str().encode("utf8"))
            digest.update(repr(self.settings).encode("utf8"))
            for key, value in sorted(self.model.state_dict().items()):
                digest.update(key.encode("utf8"))
                digest.update(value.detach().float().contiguous().numpy().tobytes())
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def _max_length(self) -> int:
        """The configured length, capped at the encoder's position embeddings."""
        positions = getattr(self.model.config, "max_position_embeddings", None)
        if positions is None:
            return self.settings.max_length
        return min(self.settings.max_length, int(positions))

    @classmethod
    def from_pretrained(cls, name: str | Path, settings: EncoderSettings) -> SentenceEncoder:
        """Load a local ``save_pretrained`` directory or (where the hub is reachable) a hub name."""
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ConfigError(Errors.E452.format(error=err)) from err
        name_str = str(name)
        try:
            hf_tokenizer = AutoTokenizer.from_pretrained(name_str, use_fast=True)
            model = AutoModel.from_pretrained(name_str)
        except (OSError, ValueError) as err:
            raise ConfigError(Errors.E453.format(name=name_str, error=err)) from err
        if not getattr(hf_tokenizer, "is_fast", False) or hf_tokenizer.pad_token_id is None:
            raise ConfigError(Errors.E454.format(name=name_str))
        backend = hf_tokenizer.backend_tokenizer
        return cls(model, backend, int(hf_tokenizer.pad_token_id), settings, source=name_str)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Wordpiece ids of each text (special tokens added, truncated to ``max_length``)."""
        return [enc.ids for enc in self.tokenizer.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``len(texts) x width`` float32 vectors, in the order of ``texts``."""
        import torch

        out = np.zeros((len(texts), self.width), dtype=np.float32)
        if not texts:
            return out
        ids = self.token_ids(texts)
        order = np.argsort([len(seq) for seq in ids], kind="stable")
        size = self.settings.batch_size
        with torch.inference_mode():
            for start in range(0, len(order), size):
                batch = order[start : start + size]
                out[batch] = self._encode_ids([ids[i] for i in batch])
        return out

    def padded(self, batch_ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """One batch of token ids as the model's inputs: ids padded with ``pad_id`` to the
        longest sequence, and the attention mask (int64 arrays)."""
        width = max(len(seq) for seq in batch_ids)
        input_ids = np.full((len(batch_ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch_ids), width), dtype=np.int64)
        for row, seq in enumerate(batch_ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        return input_ids, mask

    def _encode_ids(self, batch_ids: list[list[int]]) -> np.ndarray:
        """Mean-pool (and normalise) one padded batch of token ids."""
        import torch

        input_ids, mask = self.padded(batch_ids)
        mask_t = torch.from_numpy(mask)
        hidden = self.model(input_ids=torch.from_numpy(input_ids), attention_mask=mask_t)[0]
        return mean_pool(hidden.float().numpy(), mask, normalize=self.settings.normalize)

    def to_bytes(self) -> bytes:
        """Config (JSON), tokenizer (JSON) and weights (safetensors) in one msgpack message."""
        from safetensors.torch import save

        state = {
            key: value.detach().contiguous().clone()
            for key, value in self.model.state_dict().items()
        }
        msg = {
            "format": FORMAT_VERSION,
            "config": json.dumps(self.model.config.to_dict()),
            "tokenizer": self.tokenizer.to_str(),
            "pad_id": self.pad_id,
            "source": self.source,
            "weights": save(state),
        }
        return srsly.msgpack_dumps(msg)

    @classmethod
    def from_bytes(cls, data: bytes, settings: EncoderSettings) -> SentenceEncoder:
        """Rebuild an encoder written by :meth:`to_bytes` (no file or network access)."""
        try:
            from safetensors.torch import load
            from tokenizers import Tokenizer
            from transformers import AutoConfig, AutoModel
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ConfigError(Errors.E452.format(error=err)) from err
        msg = srsly.msgpack_loads(data)
        if msg.get("format") != FORMAT_VERSION:
            raise ConfigError(Errors.E455.format(found=msg.get("format"), expected=FORMAT_VERSION))
        config_dict = json.loads(msg["config"])
        model_type = config_dict.pop("model_type")
        config = AutoConfig.for_model(model_type, **config_dict)
        model = AutoModel.from_config(config)
        model.load_state_dict(load(msg["weights"]), strict=True)
        tokenizer = Tokenizer.from_str(msg["tokenizer"])
        return cls(model, tokenizer, int(msg["pad_id"]), settings, source=msg.get("source", ""))


def mean_pool(hidden: np.ndarray, mask: np.ndarray, *, normalize: bool) -> np.ndarray:
    """Average ``hidden`` (``batch x tokens x width``) over the tokens where ``mask`` is 1.

    The sentence-transformers mean pooling: padding is excluded, a row without tokens gets
    zeros (the count is floored at 1e-9 as in the model card's code). With ``normalize``
    each row is divided by its L2 norm (rows of zeros stay zeros).
    """
    weights = mask.astype(np.float32)[:, :, None]
    summed = (hidden * weights).sum(axis=1)
    pooled = summed / np.maximum(weights.sum(axis=1), 1e-9)
    if normalize:
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        pooled = pooled / np.maximum(norms, 1e-12)
    return pooled.astype(np.float32, copy=False)


class EmbeddingCache:
    """Vectors by text, computed once: a table keyed by a hash of the text.

    Training reads every text once per epoch and evaluation reads the dev texts once per
    evaluation; with the cache the encoder runs once per distinct text and every later
    epoch costs only the head. Keys are 16-byte BLAKE2b digests of the UTF-8 text (no text
    is kept). ``max_items`` bounds memory (a 384-wide vector is 1.5 kB): when full, the
    oldest entries are dropped first, so a long-running service does not grow without
    bound. ``max_items = 0`` disables the cache.

    With a ``directory`` the table also persists across processes (several training runs,
    a benchmark, distillation over the same texts): each batch of newly encoded texts is
    appended as a pair of ``.npy`` shards (keys as bytes, vectors as float32; written to a
    temporary name and renamed, loaded with ``allow_pickle=False``), and the shards found
    there are read when the cache is attached. The directory must be specific to one
    encoder (the layer uses ``<cache_dir>/<encoder fingerprint>``).
    """

    def __init__(self, max_items: int, directory: Path | None = None) -> None:
        if max_items < 0:
            raise ConfigError(Errors.E451.format(name="cache_size", value=max_items))
        self.max_items = max_items
        self._table: dict[bytes, np.ndarray] = {}
        self.hits = 0
        self.misses = 0
        self.directory: Path | None = None
        if directory is not None:
            self.attach(directory)

    def __len__(self) -> int:
        return len(self._table)

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf8"), digest_size=16).digest()

    def attach(self, directory: Path) -> int:
        """Persist new vectors under ``directory`` and load the ones already there; returns
        how many were loaded."""
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        loaded = 0
        for keys_path in sorted(self.directory.glob("*.keys.npy")):
            vectors_path = keys_path.with_name(keys_path.name.replace(".keys.", ".vectors."))
            if not vectors_path.exists():
                continue
            # n x 16 raw digest bytes (not numpy's "S16", which drops trailing NUL bytes).
            keys = np.load(keys_path, allow_pickle=False).view(np.uint8).reshape(-1, 16)
            vectors = np.load(vectors_path, allow_pickle=False)
            for key, vector in zip(keys, vectors, strict=True):
                self._store(key.tobytes(), vector)
                loaded += 1
        return loaded

    def lookup(self, texts: Sequence[str], encode: Any, width: int) -> np.ndarray:
        """Vectors of ``texts``: cached rows, and ``encode(missing_texts)`` for the rest
        (each distinct missing text encoded once, then stored)."""
        if self.max_items == 0:
            return np.asarray(encode(list(texts)), dtype=np.float32)
        out = np.empty((len(texts), width), dtype=np.float32)
        keys = [self.key(text) for text in texts]
        missing: dict[bytes, list[int]] = {}
        for row, key in enumerate(keys):
            cached = self._table.get(key)
            if cached is None:
                missing.setdefault(key, []).append(row)
            else:
                out[row] = cached
        self.hits += len(texts) - sum(len(rows) for rows in missing.values())
        if missing:
            first_rows = [rows[0] for rows in missing.values()]
            vectors = np.asarray(encode([texts[row] for row in first_rows]), dtype=np.float32)
            self.misses += len(first_rows)
            for (key, rows), vector in zip(missing.items(), vectors, strict=True):
                out[rows] = vector
                self._store(key, vector)
            if self.directory is not None:
                self._write_shard(list(missing), vectors)
        return out

    def _store(self, key: bytes, vector: np.ndarray) -> None:
        if len(self._table) >= self.max_items:
            self._table.pop(next(iter(self._table)))
        self._table[key] = np.array(vector, dtype=np.float32)

    def _write_shard(self, keys: list[bytes], vectors: np.ndarray) -> None:
        assert self.directory is not None
        stem = f"{time.time_ns()}-{os.getpid()}"
        key_array = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 16)
        for kind, array in (("vectors", vectors), ("keys", key_array)):
            tmp = self.directory / f".{stem}.{kind}.tmp.npy"
            np.save(tmp, array, allow_pickle=False)
            os.replace(tmp, self.directory / f"{stem}.{kind}.npy")

    def clear(self) -> None:
        """Forget the in-memory table (files under ``directory`` are kept)."""
        self._table.clear()

"""SentenceEncoder, mean pooling and the embedding cache on a tiny random BERT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from textcat_kit.embeddings import EmbeddingCache, EncoderSettings, SentenceEncoder, mean_pool
from textcat_kit.errors import ConfigError

TEXTS = [
    "lost my card",
    "",
    "hello please help I think want a refund today quickly thanks",
    "funds",
    "what is my balance " * 40,
]


def test_mean_pool_ignores_padding_and_normalises() -> None:
    hidden = np.array([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]])
    raw = mean_pool(hidden, mask, normalize=False)
    assert raw == pytest.approx(np.array([[2.0, 2.0]]))
    unit = mean_pool(hidden, mask, normalize=True)
    assert unit == pytest.approx(np.array([[2.0, 2.0]]) / np.sqrt(8.0))
    zeros = mean_pool(hidden, np.zeros((1, 3), dtype=int), normalize=True)
    assert np.all(zeros == 0.0)


def test_encoder_matches_the_model_card_recipe(tiny_encoder: Path) -> None:
    """Our length-sorted batches give the model card's padded-batch mean pooling."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    encoder = SentenceEncoder.from_pretrained(tiny_encoder, EncoderSettings(batch_size=2))
    ours = encoder.encode(TEXTS)
    assert ours.shape == (len(TEXTS), 64) and ours.dtype == np.float32
    assert np.linalg.norm(ours, axis=1) == pytest.approx(np.ones(len(TEXTS)), abs=1e-5)

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_encoder))
    model = AutoModel.from_pretrained(str(tiny_encoder)).eval()
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch)[0]
    mask = batch["attention_mask"].unsqueeze(-1).float()
    reference = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    reference = torch.nn.functional.normalize(reference, p=2, dim=1).numpy()
    assert ours == pytest.approx(reference, abs=2e-5)


def test_batching_and_order_do_not_change_vectors(tiny_encoder: Path) -> None:
    one = SentenceEncoder.from_pretrained(tiny_encoder, EncoderSettings(batch_size=1))
    many = SentenceEncoder.from_pretrained(tiny_encoder, EncoderSettings(batch_size=64))
    base = many.encode(TEXTS)
    assert one.encode(TEXTS) == pytest.approx(base, abs=2e-5)
    reversed_vectors = many.encode(TEXTS[::-1])
    assert reversed_vectors[::-1] == pytest.approx(base, abs=2e-5)
    assert many.encode([]).shape == (0, 64)


def test_truncation_to_max_length(tiny_encoder: Path) -> None:
    encoder = SentenceEncoder.from_pretrained(tiny_encoder, EncoderSettings(max_length=8))
    assert max(len(ids) for ids in encoder.token_ids(TEXTS)) == 8
    long_text = TEXTS[-1]
    prefix = " ".join(long_text.split()[:20])
    # Same first 8 wordpieces -> same vector.
    assert encoder.encode([long_text]) == pytest.approx(encoder.encode([prefix]), abs=1e-6)


def test_bytes_round_trip_without_the_source_directory(tiny_encoder: Path, tmp_path: Path) -> None:
    import shutil

    copy = shutil.copytree(tiny_encoder, tmp_path / "copy")
    encoder = SentenceEncoder.from_pretrained(copy, EncoderSettings())
    data = encoder.to_bytes()
    assert b"pickle" not in data[:200]
    shutil.rmtree(copy)
    restored = SentenceEncoder.from_bytes(data, EncoderSettings())
    assert restored.encode(TEXTS) == pytest.approx(encoder.encode(TEXTS), abs=1e-6)
    assert restored.source == str(copy)
    assert restored.fingerprint == encoder.fingerprint


def test_fingerprint_names_the_model_not_its_path(tiny_encoder: Path, tmp_path: Path) -> None:
    """The disk cache is keyed by the fingerprint: the same model read from another path
    shares it; other settings (other vectors) do not."""
    import shutil

    copy = shutil.copytree(tiny_encoder, tmp_path / "elsewhere")
    here = SentenceEncoder.from_pretrained(tiny_encoder, EncoderSettings())
    there = SentenceEncoder.from_pretrained(copy, EncoderSettings())
    assert here.fingerprint == there.fingerprint
    shorter = SentenceEncoder.from_pretrained(copy, EncoderSettings(max_length=8))
    assert shorter.fingerprint != here.fingerprint


def test_missing_encoder_directory_is_a_coded_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[E453\].*encoder-assets"):
        SentenceEncoder.from_pretrained(tmp_path / "nowhere", EncoderSettings())


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"\[E451\].*batch_size"):
        EncoderSettings(batch_size=0).validate()
    with pytest.raises(ConfigError, match=r"\[E451\].*cache_size"):
        EmbeddingCache(-1)


class CountingEncoder:
    """Deterministic fake vectors that record what they were asked to encode."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([[len(t), t.count("a"), 1.0] for t in texts], dtype=np.float32)


def test_cache_encodes_each_distinct_text_once() -> None:
    cache = EmbeddingCache(max_items=100)
    encode = CountingEncoder()
    first = cache.lookup(["a", "bb", "a", "ccc"], encode, 3)
    assert encode.calls == [["a", "bb", "ccc"]]
    second = cache.lookup(["ccc", "a", "dddd"], encode, 3)
    assert encode.calls[-1] == ["dddd"]
    assert second[0] == pytest.approx(first[3]) and second[1] == pytest.approx(first[0])
    assert cache.hits == 2 and cache.misses == 4  # rows served from the table; texts encoded
    assert first == pytest.approx(encode(["a", "bb", "a", "ccc"]))


def test_cache_is_bounded_and_can_be_disabled() -> None:
    cache = EmbeddingCache(max_items=2)
    encode = CountingEncoder()
    cache.lookup(["a", "b", "c"], encode, 3)
    assert len(cache) == 2
    cache.lookup(["a"], encode, 3)  # the oldest ("a") was dropped
    assert encode.calls[-1] == ["a"]
    off = EmbeddingCache(max_items=0)
    off.lookup(["x", "x"], encode, 3)
    assert encode.calls[-1] == ["x", "x"] and len(off) == 0


def test_disk_cache_is_shared_across_processes(tmp_path: Path) -> None:
    encode = CountingEncoder()
    first = EmbeddingCache(max_items=10, directory=tmp_path / "cache")
    vectors = first.lookup(["a", "bb"], encode, 3)
    first.lookup(["ccc"], encode, 3)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 4  # two shards, keys + vectors
    second = EmbeddingCache(max_items=10, directory=tmp_path / "cache")
    assert len(second) == 3
    calls = len(encode.calls)
    assert second.lookup(["bb", "a"], encode, 3) == pytest.approx(vectors[::-1])
    assert len(encode.calls) == calls
    for path in (tmp_path / "cache").glob("*.npy"):
        np.load(path, allow_pickle=False)  # plain arrays, no pickled objects


def test_disk_cache_keeps_keys_ending_in_zero_bytes(tmp_path: Path) -> None:
    """A digest ending in 0x00 must survive the round trip through the .npy shard."""
    text = next(f"t{i}" for i in range(100_000) if EmbeddingCache.key(f"t{i}").endswith(b"\0"))
    encode = CountingEncoder()
    EmbeddingCache(max_items=10, directory=tmp_path).lookup([text], encode, 3)
    again = EmbeddingCache(max_items=10, directory=tmp_path)
    again.lookup([text], encode, 3)
    assert len(encode.calls) == 1

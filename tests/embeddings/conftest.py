"""Fixtures of the sentence-embedding tests: a tiny random BERT and synthetic intents.

A 2-layer, 64-wide BERT with a WordPiece vocabulary trained on the texts below (no
network, no download). Its vectors are random features, but texts of different intents
use different words, so a linear head separates them after a few hundred steps.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from embed_testing import FILLERS, make_records


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    """Tiny models on a small shared machine: one torch thread is fastest."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from textcat_kit.testing.tiny_transformer import build_tiny_transformer

    texts = [text for text, _ in make_records(30, seed=9)] + FILLERS[:-1]
    return build_tiny_transformer(tmp_path_factory.mktemp("tiny-encoder"), texts, vocab_size=300)

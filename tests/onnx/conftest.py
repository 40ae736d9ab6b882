"""Fixtures of the ONNX tests: tiny local transformers, briefly trained pipelines, exports.

Everything is built once per session in a temporary directory: a 2-layer, 64-wide BERT
(and RoBERTa) with a vocabulary trained on the texts below, spacy-transformers pipelines
from the project's configs fitted for a few steps, and their ONNX exports.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from onnx_testing import (
    EXCLUSIVE_CONFIG,
    MULTILABEL_CONFIG,
    SMALL_WINDOWS,
    tokenizer_texts,
    train_pipeline,
)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    """The test machine is small and shared: torch threads fighting over cores cost more
    than they gain on 64-wide models."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from textcat_kit.testing.tiny_transformer import build_tiny_transformer

    return build_tiny_transformer(
        tmp_path_factory.mktemp("tiny-bert"), tokenizer_texts(), vocab_size=300
    )


@pytest.fixture(scope="session")
def tiny_bert_short(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BERT whose tokenizer allows only 64 wordpieces: 128-token windows get truncated."""
    from textcat_kit.testing.tiny_transformer import build_tiny_transformer

    return build_tiny_transformer(
        tmp_path_factory.mktemp("tiny-bert-64"),
        tokenizer_texts(),
        vocab_size=300,
        max_length=64,
        seed=1,
    )


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from textcat_kit.testing.tiny_transformer import build_tiny_transformer

    return build_tiny_transformer(
        tmp_path_factory.mktemp("tiny-roberta"),
        tokenizer_texts(),
        vocab_size=400,
        architecture="roberta",
        seed=2,
    )


@pytest.fixture(scope="session")
def exclusive_pipeline(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    """Exclusive textcat on the tiny BERT with 16-token windows every 12 tokens."""
    return train_pipeline(
        EXCLUSIVE_CONFIG, tiny_bert, tmp_path_factory.mktemp("trf-exclusive"), SMALL_WINDOWS
    )


@pytest.fixture(scope="session")
def multilabel_pipeline(tmp_path_factory: pytest.TempPathFactory, tiny_bert_short: Path) -> Path:
    """Multi-label textcat: default 128/96 windows, truncation at 64, first + last + mean."""
    overrides: dict[str, object] = {
        "components.textcat_multilabel.model.use_reduce_first": True,
        "components.textcat_multilabel.model.use_reduce_last": True,
    }
    return train_pipeline(
        MULTILABEL_CONFIG, tiny_bert_short, tmp_path_factory.mktemp("trf-multilabel"), overrides
    )


@pytest.fixture(scope="session")
def roberta_pipeline(tmp_path_factory: pytest.TempPathFactory, tiny_roberta: Path) -> Path:
    """Exclusive textcat on a byte-level BPE RoBERTa (no token type ids), max + mean pooling."""
    overrides: dict[str, object] = {
        **SMALL_WINDOWS,
        "components.textcat.model.use_reduce_max": True,
    }
    return train_pipeline(
        EXCLUSIVE_CONFIG, tiny_roberta, tmp_path_factory.mktemp("trf-roberta"), overrides
    )


ExportFn = Callable[..., Path]


@pytest.fixture(scope="session")
def export(tmp_path_factory: pytest.TempPathFactory) -> ExportFn:
    """Export a pipeline directory (cached per source and quantisation)."""
    from textcat_kit.onnx.export import Quantization, export_onnx_pipeline

    cache: dict[tuple[Path, str | None], Path] = {}

    def run(model_dir: Path, quantize: str | None = None) -> Path:
        key = (model_dir, quantize)
        if key not in cache:
            out = tmp_path_factory.mktemp("onnx-export") / "pipeline"
            export_onnx_pipeline(
                model_dir, out, quantize=Quantization(quantize) if quantize else None
            )
            cache[key] = out
        return cache[key]

    return run

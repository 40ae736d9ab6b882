"""The `custom` workflow's data step drops options whose var was left empty."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "custom_corpus.py"
spec = importlib.util.spec_from_file_location("custom_corpus", SCRIPT)
assert spec is not None and spec.loader is not None
custom_corpus = importlib.util.module_from_spec(spec)
spec.loader.exec_module(custom_corpus)


def test_empty_and_missing_values_are_dropped() -> None:
    argv = ["--train", "t.csv", "--dev", "", "--test", "--text-key", "title,body"]
    argv += ["--labels", "--label-ids", "none", "--overwrite", "--seed", "0"]
    assert custom_corpus.corpus_args(argv) == [
        "--train", "t.csv", "--text-key", "title,body", "--label-ids", "none",
        "--overwrite", "--seed", "0",
    ]  # fmt: skip

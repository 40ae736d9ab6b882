"""``textcat_kit.torch_threads.v1``: the transformer configs' training thread count."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import spacy
from spacy.util import load_config, registry

from textcat_kit.embeddings.threads import make_torch_threads
from textcat_kit.errors import ConfigError

torch = pytest.importorskip("torch")

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ["textcat_transformer.cfg", "textcat_multilabel_transformer.cfg"]


@pytest.fixture()
def restore_threads() -> Iterator[int]:
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_initialize_sets_torch_threads(restore_threads: int) -> None:
    torch.set_num_threads(2)
    callback = {"@callbacks": "textcat_kit.torch_threads.v1", "threads": 1}
    nlp = spacy.blank("en", config={"initialize": {"before_init": callback}})
    assert torch.get_num_threads() == 2  # building the pipeline (spacy.load) leaves it alone
    nlp.initialize()
    assert torch.get_num_threads() == 1


def test_zero_keeps_torchs_default(restore_threads: int) -> None:
    torch.set_num_threads(2)
    make_torch_threads(0)(spacy.blank("en"))
    assert torch.get_num_threads() == 2


def test_negative_threads_is_a_coded_error() -> None:
    with pytest.raises(ConfigError, match=r"\[E464\].*threads = -1"):
        make_torch_threads(-1)


@pytest.mark.parametrize("name", CONFIGS)
def test_transformer_configs_use_the_callback(name: str, restore_threads: int) -> None:
    config = load_config(REPO_ROOT / "configs" / name)
    block = config["initialize"]["before_init"]
    assert block == {"@callbacks": "textcat_kit.torch_threads.v1", "threads": 0}
    torch.set_num_threads(2)
    resolved = registry.resolve({"cb": {**block, "threads": 1}})["cb"]
    resolved(spacy.blank("en"))
    assert torch.get_num_threads() == 1

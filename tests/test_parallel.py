"""pipe_scores: the same scores and decided labels as nlp.pipe, from one or two processes."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import spacy

from kit_testing import write_docbin
from textcat_kit.errors import ConfigError
from textcat_kit.parallel import pipe_scores
from textcat_kit.tuning import tune_pipeline


@pytest.fixture(scope="module")
def tuned_nlp(
    banking_small: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> spacy.Language:
    tmp = tmp_path_factory.mktemp("parallel")
    banking_small["nlp"].to_disk(tmp / "model")
    dev = write_docbin(banking_small["dev"], banking_small["labels"], tmp / "dev.spacy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tune_pipeline(tmp / "model", dev, tmp / "tuned", decision_config={"abstain_precision": 0.9})
    return spacy.load(tmp / "tuned")


@pytest.mark.parametrize("n_process", [1, 2])
def test_pipe_scores_equal_nlp_pipe_in_order(tuned_nlp: spacy.Language, n_process: int) -> None:
    texts = ["", "card"] + [f"I lost my card {i} times, where is my refund" for i in range(37)]
    labels = tuple(tuned_nlp.get_pipe("textcat").labels)
    docs = list(tuned_nlp.pipe(texts))
    batches = list(pipe_scores(tuned_nlp, texts, n_process=n_process, batch_size=8))
    assert [len(batch.decided) for batch in batches] == [8, 8, 8, 8, 7]
    assert all(batch.labels == labels for batch in batches)
    scores = np.concatenate([batch.scores for batch in batches])
    expected = np.array([[doc.cats[label] for label in labels] for doc in docs], dtype=np.float32)
    np.testing.assert_array_equal(scores, expected)
    decided = [labels_ for batch in batches for labels_ in batch.decided]
    assert decided == [doc._.decided_labels for doc in docs]
    assert any(decided) and not all(decided)  # some decided, some abstained


def test_pipe_scores_refuses_bad_settings(tuned_nlp: spacy.Language) -> None:
    with pytest.raises(ConfigError, match=r"\[E015\]"):
        next(pipe_scores(tuned_nlp, ["text"], n_process=0))

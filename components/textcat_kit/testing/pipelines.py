"""Small spacy-transformers text classification pipelines for tests and benchmarks.

Builds a pipeline from one of the project's transformer configs, pointed at a local model
directory (see :mod:`textcat_kit.testing.tiny_transformer`), and optionally fits it for a
few steps so that both the encoder and the output layer move away from their
initialisation: an untrained textcat has a zero output layer and scores every text the
same, which would make a parity test pass for the wrong reason.

Needs the ``transformers`` extra (torch, transformers, spacy-transformers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language
from spacy.training import Example


def build_transformer_textcat(
    config_path: Path,
    transformer_dir: Path,
    labelled_texts: Sequence[tuple[str, Sequence[str]]],
    *,
    labels: Sequence[str],
    overrides: Mapping[str, Any] | None = None,
    train_steps: int = 5,
    learn_rate: float = 0.01,
    seed: int = 0,
) -> Language:
    """Load ``config_path`` with ``paths.transformer_name = transformer_dir`` and fit it.

    labelled_texts: ``(text, positive labels)`` pairs used to initialise and update.
    labels: the full label set, in order (every label gets an explicit 0.0 or 1.0).
    overrides: extra config overrides, e.g.
        ``{"components.transformer.model.get_spans.window": 16}``.
    train_steps: updates over the whole of ``labelled_texts`` (0: initialise only).
    """
    from thinc.api import Adam, fix_random_seed

    settings = {"paths.transformer_name": str(transformer_dir), **(overrides or {})}
    config = spacy.util.load_config(config_path, overrides=settings, interpolate=False)
    fix_random_seed(seed)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    examples = [
        Example.from_dict(
            nlp.make_doc(text),
            {"cats": {label: float(label in positives) for label in labels}},
        )
        for text, positives in labelled_texts
    ]
    nlp.initialize(lambda: examples)
    optimizer = Adam(learn_rate)
    for _ in range(train_steps):
        nlp.update(examples, sgd=optimizer, losses={})
    return nlp

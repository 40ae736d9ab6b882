"""The compiled bow kernels (``textcat_kit._speedups``, ``textcat_kit._doc_attrs``) give the
NumPy path's results to the bit, and the package works the same without them.

The extensions are optional at install (no C compiler: NumPy path); where they were not
built these tests skip with that reason, and the fallback test still runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import spacy
from spacy.attrs import IDS
from spacy.training import Example

from textcat_kit import architectures, speedups
from textcat_kit.pipeline.fitted import _USER_DATA_KEY, write_cats, write_exclusive_decided

needs_kernels = pytest.mark.skipif(
    speedups.KERNELS is None, reason="textcat_kit._speedups was not built (no C compiler)"
)

WORDS = "refund card my the a please pin app crash again money back fee abroad x".split()


def random_texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    texts = ["", "x", "Refund", "refund " * 1500]  # empty, one token, counts past the log table
    for _ in range(n):
        words = rng.choice(WORDS, size=int(rng.integers(1, 40)))
        texts.append(" ".join(w.upper() if rng.random() < 0.2 else w for w in words))
    return texts


def trained_bow(feature_values: str, ngram_size: int, attr: str, kit: bool) -> spacy.Language:
    """A small trained bow classifier (our factory fits the tf-idf table in initialize)."""
    nlp = spacy.blank("en")
    model = {
        "@architectures": "textcat_kit.TextCatBOW.v1",
        "exclusive_classes": True,
        "ngram_size": ngram_size,
        "no_output_layer": False,
        "length": 4096,
        "attr": attr,
        "feature_values": feature_values,
    }
    factory = "textcat_kit_textcat" if kit else "textcat"
    nlp.add_pipe(factory, name="textcat", config={"model": model})
    rng = np.random.default_rng(0)
    labels = ["a", "b", "c"]
    examples = [
        Example.from_dict(
            nlp.make_doc(text), {"cats": {lab: float(lab == labels[i % 3]) for lab in labels}}
        )
        for i, text in enumerate(random_texts(60, 1))
    ]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(3):
        rng.shuffle(examples)  # type: ignore[arg-type]
        nlp.update(examples, sgd=optimizer)
    return nlp


@needs_kernels
@pytest.mark.parametrize(
    "feature_values,ngram_size,attr,kit",
    [
        ("count", 1, "ORTH", False),
        ("count", 2, "LOWER", False),
        ("binary", 3, "LOWER", False),
        ("l2", 2, "NORM", False),
        ("tfidf", 2, "LOWER", True),
        ("tfidf", 3, "ORTH", True),
    ],
)
def test_kernel_scores_equal_numpy_scores_to_the_bit(
    feature_values: str, ngram_size: int, attr: str, kit: bool
) -> None:
    nlp = trained_bow(feature_values, ngram_size, attr, kit)
    inner = nlp.get_pipe("textcat").model.layers[0].layers[0]  # type: ignore[attr-defined]
    docs = [nlp.make_doc(text) for text in random_texts(300, 2)]
    for batch in (docs, docs[:1], docs[3:4], []):
        compiled = architectures._compiled_scores(inner, batch)
        assert compiled is not None
        numpy_path = inner.predict(batch)
        assert compiled.dtype == np.float32 and np.array_equal(compiled, numpy_path)


@needs_kernels
def test_kernel_is_not_used_for_a_chain_it_does_not_know() -> None:
    nlp = trained_bow("count", 2, "LOWER", False)
    outer = nlp.get_pipe("textcat").model  # type: ignore[attr-defined]
    assert architectures._compiled_scores(outer, [nlp.make_doc("refund")]) is None


def test_batch_token_attrs_equal_to_array() -> None:
    nlp = spacy.blank("en")
    docs = [nlp.make_doc(text) for text in random_texts(50, 3)]
    docs[5][0].norm_ = "custom-norm"
    docs[6][0].lemma_ = "lemma"
    for attr in architectures.BOW_ATTRS:
        tokens, lengths = speedups.batch_token_attrs(docs, IDS[attr])
        expected = np.concatenate([doc.to_array(IDS[attr]) for doc in docs])
        assert tokens.dtype == np.uint64 and np.array_equal(tokens, expected)
        assert lengths.tolist() == [len(doc) for doc in docs]


@needs_kernels
def test_cats_and_decisions_writers_equal_the_python_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    nlp = spacy.blank("en")
    labels = ["b", "a", "c"]
    values = np.random.default_rng(0).random((4, 3))
    top, keep = values.argmax(axis=1), values.max(axis=1) > 0.5

    def written(kernels: object) -> list[tuple[dict[str, float], list[str]]]:
        monkeypatch.setattr(speedups, "KERNELS", kernels)
        docs = [nlp.make_doc(f"text {i}") for i in range(4)]
        docs[1].cats = {"other": 1.0, "a": 0.0}  # kept, and "a" overwritten
        write_cats(docs, labels, values)
        write_exclusive_decided(docs, labels, top, keep)
        return [(doc.cats, doc.user_data[_USER_DATA_KEY]) for doc in docs]

    compiled, python = written(speedups.KERNELS), written(None)
    assert compiled == python
    assert list(compiled[0][0]) == labels and compiled[1][0]["other"] == 1.0
    assert [len(decided) for _, decided in compiled] == [int(k) for k in keep]


def test_pipeline_without_the_kernels_gives_the_same_results(tmp_path: Path) -> None:
    """TEXTCAT_KIT_NO_SPEEDUPS=1 (what an install without a compiler runs): same cats."""
    nlp = trained_bow("tfidf", 2, "LOWER", True)
    nlp.to_disk(tmp_path / "model")
    texts = random_texts(100, 4)
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    script = (
        "import json, sys, spacy\n"
        "from textcat_kit import speedups\n"
        "nlp = spacy.load(sys.argv[1])\n"
        "texts = json.load(open(sys.argv[2]))\n"
        "print(json.dumps({'kernels': speedups.KERNELS is not None,\n"
        "    'cats': [doc.cats for doc in nlp.pipe(texts, batch_size=7)]}))\n"
    )
    outputs = {}
    for off in ("0", "1"):
        env = {**os.environ, "TEXTCAT_KIT_NO_SPEEDUPS": off}
        proc = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "model"), str(tmp_path / "texts.json")],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        outputs[off] = json.loads(proc.stdout)
    assert outputs["1"]["kernels"] is False
    assert outputs["0"]["kernels"] is (speedups.KERNELS is not None)
    assert outputs["0"]["cats"] == outputs["1"]["cats"]

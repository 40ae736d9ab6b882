"""benchmarks/label_noise.py: the multi-label scoring and its ``--rescore`` path (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import spacy
from benchmarks.label_noise import (
    MULTILABEL_VARIANTS,
    corpus_is_exclusive,
    main,
    markdown_table,
    run_synthetic,
    score_multilabel,
    synthetic_table,
    truth_trained_ceiling,
)
from spacy.tokens import DocBin

from textcat_kit.cv import read_corpus
from textcat_kit.maths.label_issues import inject_multilabel_noise, pool_probabilities

LABELS = ["joy", "anger", "fear", "love"]


def write_corpus(path: Path, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gold = rng.random((n, len(LABELS))) < 0.3
    empty = ~gold.any(axis=1)
    gold[empty, rng.integers(len(LABELS), size=int(empty.sum()))] = True
    nlp = spacy.blank("en")
    doc_bin = DocBin()
    for i, row in enumerate(gold):
        doc = nlp.make_doc(f"text {i} " + " ".join(np.array(LABELS)[row]))
        doc.cats = {label: float(row[j]) for j, label in enumerate(LABELS)}
        doc_bin.add(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc_bin.to_disk(path)
    doc_bin.to_disk(path.with_name("dev.spacy"))  # a corpus directory has both
    return gold


def test_rescore_scores_saved_arrays(tmp_path: Path) -> None:
    gold = write_corpus(tmp_path / "corpus" / "train.spacy", 600, seed=0)
    corpus = read_corpus(tmp_path / "corpus" / "train.spacy")
    assert (corpus.gold >= 0.5).tolist() == gold.tolist()
    # what a --dump run saves, with a model that knows the clean labels
    noisy, toggled = inject_multilabel_noise(gold, 0.05, seed=0)
    rng = np.random.default_rng(1)
    probs = 1 / (1 + np.exp(-(rng.normal(size=gold.shape) + (2 * gold - 1) * 3.0)))
    dump = tmp_path / "dump"
    dump.mkdir()
    removed = gold[toggled[:, 0], toggled[:, 1]]
    for name, array in (
        ("oof", probs),
        ("noisy_gold", noisy),
        ("toggled", toggled),
        ("removed", removed),
    ):
        np.save(dump / f"{name}.npy", array, allow_pickle=False)
    (dump / "cv_summary.json").write_text(json.dumps({"macro_f": {"mean": 0.9, "std": 0.0}}))
    out = tmp_path / "result.json"
    with pytest.raises(SystemExit) as done:
        main(["goemotions", str(tmp_path / "corpus"), "--rescore", str(dump), "--output", str(out)])
    assert done.value.code == 0
    result = json.loads(out.read_text())
    assert result["rescored_from"] == str(dump) and result["n_toggled"] == len(toggled)
    assert set(result["scores"]) == set(MULTILABEL_VARIANTS)
    for scores in result["scores"].values():
        assert scores["k"] == len(toggled)
        assert 0.0 <= scores["precision_at_k"] <= 1.0 and 0.0 <= scores["recall_at_k"] <= 1.0
    assert result["scores"]["label_set (default)"]["precision_at_k"] >= 0.8
    assert "label_set (default)" in markdown_table(result)
    direct = score_multilabel(probs, noisy, toggled, removed)
    assert (
        direct["label_set (default)"]["precision_at_k"]
        == (result["scores"]["label_set (default)"]["precision_at_k"])
    )


def test_rescore_of_flip_noise(tmp_path: Path) -> None:
    gold = write_corpus(tmp_path / "corpus" / "train.spacy", 800, seed=4)
    noisy, changed = inject_multilabel_noise(gold, 0.05, seed=0, kind="flip")
    rng = np.random.default_rng(5)
    probs = 1 / (1 + np.exp(-(rng.normal(size=gold.shape) + (2 * gold - 1) * 3.0)))
    dump = tmp_path / "dump"
    dump.mkdir()
    for name, array in (
        ("oof", probs),
        ("noisy_gold", noisy),
        ("toggled", changed),
        ("removed", gold[changed[:, 0], changed[:, 1]]),
    ):
        np.save(dump / f"{name}.npy", array, allow_pickle=False)
    (dump / "cv_summary.json").write_text(json.dumps({"macro_f": {"mean": 0.9, "std": 0.0}}))
    corpus = str(tmp_path / "corpus")
    out = tmp_path / "flip.json"
    with pytest.raises(SystemExit) as done:
        main(
            ["goemotions", corpus, "--noise", "flip", "--rescore", str(dump), "--output", str(out)]
        )
    assert done.value.code == 0
    result = json.loads(out.read_text())
    assert result["noise"] == "flip" and result["n_toggled"] == len(changed)
    label_set = result["scores"]["label_set (default)"]
    assert label_set["estimated_flip_rate"] > 0.005
    assert label_set["precision_at_k"] >= 0.8
    # half the changed cells lost a given label, half gained one: both directions found
    assert label_set["recall_removed"] >= 0.7 and label_set["recall_added"] >= 0.7
    # the table also scores label_set without the swap neighbours, which misses flips
    no_swaps = result["scores"]["label_set --no-swaps"]
    assert "estimated_flip_rate" in no_swaps and no_swaps["estimated_flip_rate"] == 0.0
    assert no_swaps["precision_at_k"] < label_set["precision_at_k"]
    assert "label_set --no-swaps" in markdown_table(result)
    # the same arrays are not a dump of toggle noise
    with pytest.raises(SystemExit) as refused:
        main(["goemotions", corpus, "--rescore", str(dump), "--output", str(out)])
    assert refused.value.code != 0


def test_rescore_pools_several_dumps(tmp_path: Path) -> None:
    gold = write_corpus(tmp_path / "corpus" / "train.spacy", 800, seed=2)
    noisy, toggled = inject_multilabel_noise(gold, 0.05, seed=0)
    removed = gold[toggled[:, 0], toggled[:, 1]]
    rng = np.random.default_rng(3)
    dumps, members = [], []
    for m in range(2):  # two weak models of the clean labels with independent errors
        probs = 1 / (1 + np.exp(-(rng.normal(size=gold.shape) * 1.5 + (2 * gold - 1) * 1.5)))
        dump = tmp_path / f"dump{m}"
        dump.mkdir()
        arrays = {
            "oof": probs,
            "noisy_gold": noisy,
            "toggled": toggled,
            "removed": removed,
            "folds": np.arange(len(gold)) % 3,
        }
        for name, array in arrays.items():
            np.save(dump / f"{name}.npy", array, allow_pickle=False)
        (dump / "cv_summary.json").write_text(json.dumps({"command": f"run {m}"}))
        dumps.append(dump)
        members.append(probs)
    out = tmp_path / "pooled.json"
    args = ["goemotions", str(tmp_path / "corpus"), "--output", str(out)]
    with pytest.raises(SystemExit) as done:
        main([*args, "--rescore", str(dumps[0]), "--rescore", str(dumps[1])])
    assert done.value.code == 0
    result = json.loads(out.read_text())
    assert result["rescored_from"] == [str(d) for d in dumps]
    assert [m["dumped_by"] for m in result["members"].values()] == ["run 0", "run 1"]
    pooled = result["scores"]["label_set (default)"]["precision_at_k"]
    expected = score_multilabel(pool_probabilities(members, False), noisy, toggled, removed)
    assert pooled == expected["label_set (default)"]["precision_at_k"]
    alone = [m["label_set"]["precision_at_k"] for m in result["members"].values()]
    assert pooled > max(alone), (pooled, alone)
    # --ceiling adds the truth-trained re-ranking of the same pooled probabilities
    with pytest.raises(SystemExit) as done:
        main([*args, "--rescore", str(dumps[0]), "--rescore", str(dumps[1]), "--ceiling"])
    assert done.value.code == 0
    ceiling = json.loads(out.read_text())["ceiling"]
    assert 0.0 <= ceiling["truth_trained_precision_at_k"] <= 1.0
    assert "Ceiling (`--ceiling`)" in markdown_table(json.loads(out.read_text()))
    # dumps of other folds are not pooled
    np.save(dumps[1] / "folds.npy", np.arange(len(gold)) % 4, allow_pickle=False)
    with pytest.raises(SystemExit) as refused:
        main([*args, "--rescore", str(dumps[0]), "--rescore", str(dumps[1])])
    assert refused.value.code != 0


def test_synthetic_noise_kinds() -> None:
    result = run_synthetic(0.05, seeds=(0,), n_docs=3000, strengths=(1.5,))
    rows = {row["noise"]: row for row in result["rows"]}
    assert set(rows) == {"toggle", "flip"}
    flip, toggle = rows["flip"]["precision_at_k"], rows["toggle"]["precision_at_k"]
    assert flip["label_set"] >= flip["label_set --no-swaps"] + 0.1, flip
    assert abs(toggle["label_set"] - toggle["label_set --no-swaps"]) <= 0.03, toggle
    assert rows["flip"]["estimated_flip_rate"] > 10 * rows["toggle"]["estimated_flip_rate"]
    table = synthetic_table(result)
    assert table.count("\n") == 3 and "| flip | 1.5 |" in table


def test_truth_trained_ceiling_finds_a_leak_the_ranking_ignores() -> None:
    """The ceiling re-ranks candidate cells with trees trained on the injected truth: on a
    plain weak model it stays near label_set's own first k; given a member that leaks the
    truth in a way the pooled probabilities hide, it finds nearly every toggle."""
    rng = np.random.default_rng(5)
    gold = rng.random((3000, 6)) < 0.25
    empty = ~gold.any(axis=1)
    gold[empty, rng.integers(6, size=int(empty.sum()))] = True
    noisy, toggled = inject_multilabel_noise(gold, 0.05, seed=1)
    weak = 1 / (1 + np.exp(-(rng.normal(size=gold.shape) + (2 * gold - 1) * 1.5)))
    plain = truth_trained_ceiling([weak], noisy, toggled)
    assert 0.0 < plain["candidates_recall"] <= 1.0
    gap = plain["truth_trained_precision_at_k"] - plain["label_set_posterior_precision_at_k"]
    assert abs(gap) < 0.1, plain
    # a second member, 0.5 everywhere except on the toggled cells (0.6): pooled, it barely
    # moves the ranking; the trees see it
    leak = np.full(gold.shape, 0.5)
    leak[toggled[:, 0], toggled[:, 1]] = 0.6
    leaked = truth_trained_ceiling([weak, leak], noisy, toggled)
    bound = leaked["candidates_recall"]
    assert leaked["truth_trained_precision_at_k"] >= min(bound, 0.95) - 0.05, leaked
    assert (
        leaked["truth_trained_precision_at_k"] > leaked["label_set_posterior_precision_at_k"] + 0.1
    ), leaked


def test_task_kind_comes_from_the_corpus(tmp_path: Path) -> None:
    """Any corpus can be benchmarked: exclusive or multi-label is read from its data.json,
    or, without one, from its labels (one per doc), never from the dataset's name."""
    write_corpus(tmp_path / "multi" / "train.spacy", 50, seed=0)
    assert not corpus_is_exclusive(tmp_path / "multi")
    nlp = spacy.blank("en")
    doc_bin = DocBin()
    for i in range(20):
        doc = nlp.make_doc(f"text {i}")
        doc.cats = {label: float(j == i % len(LABELS)) for j, label in enumerate(LABELS)}
        doc_bin.add(doc)
    (tmp_path / "one").mkdir()
    doc_bin.to_disk(tmp_path / "one" / "train.spacy")
    doc_bin.to_disk(tmp_path / "one" / "dev.spacy")
    assert corpus_is_exclusive(tmp_path / "one")
    (tmp_path / "one" / "data.json").write_text(json.dumps({"multilabel": True}))
    assert not corpus_is_exclusive(tmp_path / "one")
    (tmp_path / "one" / "data.json").write_text(json.dumps({"dataset": "one"}))
    assert corpus_is_exclusive(tmp_path / "one")  # no flag: read from the labels
    with pytest.raises(SystemExit) as refused:  # --ceiling needs saved arrays
        main(["one", str(tmp_path / "one"), "--ceiling"])
    assert refused.value.code != 0

"""``textcat-kit cv``: folds, out-of-fold probabilities, the CV report and label issues.

Trains the project's own bow configs on a small keyword corpus (3 folds, a few epochs)
with two labels broken on purpose, which must come out on top of ``label_issues.jsonl``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import srsly
from typer.testing import CliRunner

from kit_testing import write_docbin
from textcat_kit.cli import app
from textcat_kit.cv import (
    _overrides_for,
    choose_config,
    cross_fit_calibrate,
    read_corpus,
    run_cv,
    summarise_folds,
)
from textcat_kit.errors import ConfigError
from textcat_kit.maths.label_issues import pool_probabilities
from textcat_kit.tuning import fold_ids

REPO = Path(__file__).resolve().parents[1]
BOW = REPO / "configs" / "textcat_bow.cfg"
BOW_MULTI = REPO / "configs" / "textcat_multilabel_bow.cfg"
BOW_MULTI_FOCAL = REPO / "configs" / "textcat_multilabel_bow_focal.cfg"
WORDS = {
    "refund": ["refund", "money back", "reimburse", "return my money"],
    "card": ["card", "new card", "card delivery", "card arrived"],
    "rate": ["exchange rate", "rate", "currency rate", "conversion rate"],
}
FILLER = ["please", "today", "I need help with", "question about", "hello", "urgent", "my"]
runner = CliRunner()


def keyword_corpus(n_per_label: int, seed: int = 0) -> list[tuple[str, list[str]]]:
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n_per_label):
        for label, words in WORDS.items():
            text = f"{rng.choice(FILLER)} {words[i % len(words)]} {rng.choice(FILLER)} {i}"
            records.append((text, [label]))
    return records


@pytest.fixture(scope="module")
def exclusive_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    records = keyword_corpus(24)
    broken = [4, 31]  # a "refund" text labelled card, a "card" text labelled rate
    assert records[4][1] == ["card"] and records[31][1] == ["card"]
    records[4] = (records[4][0], ["rate"])
    records[31] = (records[31][0], ["refund"])
    path = tmp_path_factory.mktemp("cv") / "train.spacy"
    write_docbin(records, list(WORDS), path)
    return path, broken


@pytest.mark.slow
def test_cv_exclusive_end_to_end(exclusive_corpus: tuple[Path, list[int]], tmp_path: Path) -> None:
    train, broken = exclusive_corpus
    out = tmp_path / "cv"
    args = [
        "cv", str(BOW), str(train), "--output-dir", str(out), "--n-folds", "3",
        "--max-epochs", "4", "--n-jobs", "1",
    ]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "macro_f" in result.output and "label issues" in result.output
    labels = srsly.read_json(out / "labels.json")
    oof = np.load(out / "oof.npy", allow_pickle=False)
    assert oof.shape == (72, 3)
    np.testing.assert_allclose(oof.sum(axis=1), 1.0, atol=1e-6)
    rows = list(srsly.read_jsonl(out / "oof.jsonl"))
    assert [r["index"] for r in rows] == list(range(72))
    assert rows[4]["given"] == "rate" and set(rows[4]["probs"]) == set(labels)
    np.testing.assert_allclose([rows[7]["probs"][lb] for lb in labels], oof[7], atol=1e-6)
    assert sorted({r["fold"] for r in rows}) == [0, 1, 2]
    report = json.loads((out / "cv_report.json").read_text())
    assert report["n_folds"] == 3 and report["task"] == "exclusive"
    assert set(report["summary"]["macro_f"]) == {"mean", "std"}
    assert report["summary"]["macro_f"]["mean"] > 0.8
    assert len(report["folds"]) == 3 and sum(report["fold_sizes"]) == 72
    assert "± " in (out / "cv_report.md").read_text()
    issues = list(srsly.read_jsonl(out / "label_issues.jsonl"))
    top = {issue["index"] for issue in issues[:4]}
    assert set(broken) <= top, issues[:4]
    by_index = {issue["index"]: issue for issue in issues}
    assert by_index[4]["given"] == "rate" and by_index[4]["suggested"] == "card"
    assert by_index[31]["suggested"] == "card"
    assert [i["rank"] for i in issues] == list(range(1, len(issues) + 1))
    assert all(0.0 <= i["score"] <= 1.0 for i in issues)
    assert [i["score"] for i in issues] == sorted((i["score"] for i in issues), reverse=True)
    assert "Suspected label errors" in (out / "label_issues.md").read_text()

    # nothing is overwritten unless asked
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "--overwrite" in again.output


@pytest.mark.slow
def test_cv_multilabel_picks_its_config_from_data_json(tmp_path: Path) -> None:
    records = [(t, labels) for t, labels in keyword_corpus(15, seed=1)]
    records += [(f"refund to my card {i}", ["refund", "card"]) for i in range(9)]
    records[0] = (records[0][0], ["refund", "rate"])  # "refund" text with a wrong extra label
    write_docbin(records, list(WORDS), tmp_path / "train.spacy")
    srsly.write_json(tmp_path / "data.json", {"multilabel": True})
    out = tmp_path / "cv"
    result = runner.invoke(
        app,
        [
            "cv", str(BOW), str(tmp_path / "train.spacy"), "--output-dir", str(out),
            "--multilabel-config", str(BOW_MULTI), "--data-json", str(tmp_path / "data.json"),
            "--n-folds", "3", "--max-epochs", "4",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = srsly.read_json(out / "cv_report.json")
    assert report["task"] == "multilabel" and report["calibration"] == "platt"
    assert report["config"].endswith("textcat_multilabel_bow.cfg")
    assert report["label_issues"]["method"] == "label_set"
    assert report["label_issues"]["estimated_add_rate"] >= 0
    assert report["label_issues"]["swaps"] is True
    assert 0 <= report["label_issues"]["estimated_flip_rate"] < 0.5
    assert "label-set posterior" in (out / "cv_report.md").read_text()
    assert "replaces the right one with rate" in (out / "cv_report.md").read_text()
    issues = list(srsly.read_jsonl(out / "label_issues.jsonl"))
    assert issues and isinstance(issues[0]["given"], list)
    scores = [issue["score"] for issue in issues]
    assert scores == sorted(scores, reverse=True) and 0 <= min(scores) <= max(scores) <= 1
    for issue in issues:
        assert all(
            {"label", "given", "suggested", "p", "p_wrong"} <= set(p) for p in issue["pairs"]
        )
        toggled = {p["label"] for p in issue["pairs"]}
        assert set(issue["given"]) ^ set(issue["suggested"]) == toggled


@pytest.mark.slow
def test_cv_pools_extra_configs(tmp_path: Path) -> None:
    records = [(t, labels) for t, labels in keyword_corpus(15, seed=2)]
    records += [(f"refund to my card {i}", ["refund", "card"]) for i in range(9)]
    records[0] = (records[0][0], ["refund", "rate"])  # "refund" text with a wrong extra label
    write_docbin(records, list(WORDS), tmp_path / "train.spacy")
    out = tmp_path / "cv"
    result = runner.invoke(
        app,
        [
            "cv", str(BOW_MULTI), str(tmp_path / "train.spacy"), "--output-dir", str(out),
            "--extra-config", str(BOW_MULTI_FOCAL), "--n-folds", "3", "--max-epochs", "4",
            "--n-jobs", "2",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "pooled with" in result.output
    report = srsly.read_json(out / "cv_report.json")
    configs = [member["config"] for member in report["members"]]
    assert configs == [str(BOW_MULTI), str(BOW_MULTI_FOCAL)]
    assert all(len(member["fold_seconds"]) == 3 for member in report["members"])
    members = np.load(out / "oof_members.npy", allow_pickle=False)
    oof = np.load(out / "oof.npy", allow_pickle=False)
    assert members.shape == (2, len(records), 3) == (2, *oof.shape)
    assert not np.allclose(members[0], members[1])  # two different models
    np.testing.assert_allclose(oof, pool_probabilities(list(members), exclusive=False), atol=1e-9)
    assert "pooled over 2 configs" in (out / "cv_report.md").read_text()
    issues = list(srsly.read_jsonl(out / "label_issues.jsonl"))
    # the broken record is flagged, its extra label the cell to drop (on 54 texts the
    # members also misread a few correct ones, which the swaps can rank above it)
    broken = [issue for issue in issues if issue["index"] == 0]
    assert broken and broken[0]["suggested"] == ["refund"], issues[:5]
    assert [(p["label"], p["given"], p["suggested"]) for p in broken[0]["pairs"]] == [
        ("rate", True, False)
    ]
    assert broken[0]["rank"] <= 5


def test_extra_config_of_another_kind_or_language_is_refused(tmp_path: Path) -> None:
    write_docbin(keyword_corpus(4), list(WORDS), tmp_path / "train.spacy")
    base = ["cv", str(BOW), str(tmp_path / "train.spacy"), "--output-dir", str(tmp_path / "o")]
    mixed = runner.invoke(app, [*base, "--extra-config", str(BOW_MULTI), "--n-folds", "2"])
    assert mixed.exit_code == 1 and "[E416]" in mixed.output, mixed.output
    assert "multi-label" in mixed.output
    german = tmp_path / "de.cfg"
    german.write_text(BOW.read_text().replace('lang = "en"', 'lang = "de"'))
    other = runner.invoke(app, [*base, "--extra-config", str(german), "--n-folds", "2"])
    assert other.exit_code == 1 and "[E418]" in other.output, other.output
    assert not (tmp_path / "o").exists()


def test_exclusive_config_rejects_multilabel_docs(tmp_path: Path) -> None:
    write_docbin(
        [("a b", ["refund", "card"]), ("c", ["rate"]), ("d", ["card"])],
        list(WORDS),
        tmp_path / "train.spacy",
    )
    result = runner.invoke(
        app,
        ["cv", str(BOW), str(tmp_path / "train.spacy"), "--output-dir", str(tmp_path / "o"),
         "--n-folds", "2"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "[E403]" in result.output and "doc 0" in result.output
    too_many = runner.invoke(
        app,
        ["cv", str(BOW), str(tmp_path / "train.spacy"), "--output-dir", str(tmp_path / "o"),
         "--n-folds", "9"],
    )  # fmt: skip
    assert too_many.exit_code == 1 and "[E402]" in too_many.output
    assert not (tmp_path / "o").exists()


def test_overrides_go_to_the_configs_that_have_their_section(tmp_path: Path) -> None:
    embed = REPO / "configs" / "textcat_multilabel_embed.cfg"
    overrides = {"components.textcat.model.encoder.cache_dir": "/tmp/x", "system.seed": 3}
    assert _overrides_for(BOW_MULTI, overrides) == {"system.seed": 3}
    assert _overrides_for(embed, overrides) == overrides
    write_docbin(keyword_corpus(4), list(WORDS), tmp_path / "train.spacy")
    with pytest.raises(ConfigError, match=r"\[E419\].*componentz"):
        run_cv(
            BOW_MULTI,
            tmp_path / "train.spacy",
            n_folds=2,
            overrides={"componentz.textcat.threshold": 0.3},
            extra_configs=[embed],
        )


def test_choose_config_and_read_corpus(tmp_path: Path) -> None:
    srsly.write_json(tmp_path / "multi.json", {"multilabel": True})
    srsly.write_json(tmp_path / "single.json", {"multilabel": False})
    srsly.write_json(tmp_path / "bad.json", {"labels": []})
    assert choose_config(BOW, BOW_MULTI, tmp_path / "multi.json") == BOW_MULTI
    assert choose_config(BOW, BOW_MULTI, tmp_path / "single.json") == BOW
    assert choose_config(BOW, None, tmp_path / "multi.json") == BOW
    with pytest.raises(ConfigError, match=r"\[E405\]"):
        choose_config(BOW, BOW_MULTI, tmp_path / "bad.json")
    write_docbin(keyword_corpus(2), list(WORDS), tmp_path / "t.spacy")
    corpus = read_corpus(tmp_path / "t.spacy")
    assert corpus.labels == list(WORDS) and corpus.gold.shape == (6, 3)
    assert corpus.given_labels(0) == ["refund"]


def test_fold_maths() -> None:
    rng = np.random.default_rng(0)
    gold = np.zeros((90, 3))
    gold[np.arange(90), rng.integers(3, size=90)] = 1
    folds = fold_ids(gold, 3, 0)
    for k in range(3):  # stratified: every label in every fold
        assert (gold[folds == k].sum(axis=0) > 0).all()
    raw = np.clip(gold * 0.6 + 0.2 + rng.normal(0, 0.05, gold.shape), 0.01, 0.99)
    raw /= raw.sum(axis=1, keepdims=True)
    calibrated = cross_fit_calibrate(raw, gold, folds, "temperature", ["a", "b", "c"])
    assert (calibrated.argmax(axis=1) == raw.argmax(axis=1)).all()
    assert not np.allclose(calibrated, raw)
    assert np.array_equal(cross_fit_calibrate(raw, gold, folds, "none", ["a", "b", "c"]), raw)
    summary = summarise_folds(
        [{"macro_f": 0.5, "per_label_f": {"a": 1.0}}, {"macro_f": 0.7, "per_label_f": {"a": 0.0}}],
        ["a"],
    )
    assert summary["macro_f"]["mean"] == pytest.approx(0.6)
    assert summary["macro_f"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))

"""`textcat-kit tune` / `evaluate` on synthetic data (no shared data needed).

Covers: non-destructive outputs, tiny dev sets, --n-folds validation, evaluate on every tuned
model (argmax and abstain-adjusted figures side by side), tiny and label-incomplete test sets,
and the loud degenerate-model report.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import spacy

from kit_testing import train_bow_pipeline, write_docbin
from textcat_kit.cli import main

LABELS = ["billing", "delivery", "login"]
KEYWORDS = {
    "billing": ["invoice", "charge", "refund", "payment"],
    "delivery": ["parcel", "courier", "shipping", "arrive"],
    "login": ["password", "account", "locked", "signin"],
}
FILLER = "the a my please help today why is not it was still can you".split()


def synthetic(n: int, seed: int, labels: list[str] = LABELS) -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = labels[i % len(labels)]
        words = rng.sample(FILLER, 5) + rng.sample(KEYWORDS[label], 2)
        rng.shuffle(words)
        out.append((" ".join(words), [label]))
    return out


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tune-evaluate")
    nlp = train_bow_pipeline(synthetic(300, 0), LABELS, exclusive=True, kit_classifier=True)
    model = root / "training" / "model-best"
    model.parent.mkdir()
    nlp.to_disk(model)
    collapsed = spacy.blank("en")
    textcat = collapsed.add_pipe("textcat")
    for label in LABELS:
        textcat.add_label(label)
    collapsed.initialize()  # zero output weights: the same scores for every text
    collapsed.to_disk(root / "collapsed")
    return {
        "root": root,
        "model": model,
        "collapsed": root / "collapsed",
        "dev": write_docbin(synthetic(90, 1), LABELS, root / "dev.spacy"),
        "test": write_docbin(synthetic(60, 2), LABELS, root / "test.spacy"),
        "tiny_dev": write_docbin(synthetic(4, 3), LABELS, root / "tiny_dev.spacy"),
        "two_docs": write_docbin(synthetic(2, 4), LABELS, root / "two.spacy"),
        "partial": write_docbin(synthetic(40, 5, LABELS[:2]), LABELS, root / "partial.spacy"),
    }


def test_tune_refuses_to_destroy_the_training_dir(
    trained: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(p.name for p in trained["model"].iterdir())
    args = ["tune", str(trained["model"]), str(trained["dev"]), "--output-dir"]
    for target, code in ((trained["model"].parent, "E027"), (trained["root"], "E027")):
        status, out = run_cli([*args, str(target), "--overwrite"], capsys)
        assert status == 1 and f"[{code}]" in out and "Traceback" not in out
    user_dir = trained["root"] / "mine"
    user_dir.mkdir()
    (user_dir / "notes.txt").write_text("keep")
    status, out = run_cli([*args, str(user_dir), "--overwrite"], capsys)
    assert status == 1 and "[E022]" in out
    assert (user_dir / "notes.txt").read_text() == "keep"
    assert sorted(p.name for p in trained["model"].iterdir()) == before


def test_tune_n_folds_zero_is_a_clear_error(
    trained: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = trained["root"] / "folds0"
    status, out = run_cli(
        [
            "tune",
            str(trained["model"]),
            str(trained["dev"]),
            "--output-dir",
            str(out_dir),
            "--n-folds",
            "0",
        ],
        capsys,
    )
    assert status == 1 and "[E026]" in out
    assert not out_dir.exists()


def test_tiny_dev_tunes_with_a_warning(
    trained: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = trained["root"] / "tiny-tuned"
    status, out = run_cli(
        ["tune", str(trained["model"]), str(trained["tiny_dev"]), "--output-dir", str(out_dir)],
        capsys,
    )
    assert status == 0, out
    assert "[W010]" in out
    nlp = spacy.load(out_dir)
    doc = nlp("my parcel did not arrive")
    assert abs(sum(doc.cats.values()) - 1.0) < 1e-6


def test_evaluate_model_tuned_without_abstain(
    trained: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    tuned = trained["root"] / "tuned"
    status, out = run_cli(
        ["tune", str(trained["model"]), str(trained["dev"]), "--output-dir", str(tuned)], capsys
    )
    assert status == 0, out
    status, out = run_cli(
        ["tune", str(trained["model"]), str(trained["dev"]), "--output-dir", str(tuned)], capsys
    )
    assert status == 1 and "[E023]" in out  # an earlier output needs --overwrite
    metrics_dir = trained["root"] / "metrics"
    status, out = run_cli(
        ["evaluate", str(tuned), str(trained["test"]), "--output-dir", str(metrics_dir)], capsys
    )
    assert status == 0, out
    metrics = json.loads((metrics_dir / "metrics.json").read_text())
    assert metrics["diagnosis"]["degenerate"] is False
    assert metrics["argmax"]["macro_f"] > 0.9
    report = (metrics_dir / "report.md").read_text()
    assert "argmax" in report and "decided" in report
    assert "LEARNED NOTHING" not in report


def test_evaluate_tiny_and_partial_test_sets(
    trained: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("two_docs", "partial"):
        out_dir = trained["root"] / f"metrics-{name}"
        status, out = run_cli(
            ["evaluate", str(trained["model"]), str(trained[name]), "--output-dir", str(out_dir)],
            capsys,
        )
        assert status == 0, out
        metrics = json.loads((out_dir / "metrics.json").read_text())
        json.dumps(metrics, allow_nan=False)  # no NaN / inf in the written metrics
        if name == "partial":
            assert metrics["labels_absent_from_data"] == ["login"]
            per_label = metrics["per_label"]
            present = [per_label[label]["f"] for label in LABELS[:2]]
            assert abs(metrics["macro_f"] - sum(present) / 2) < 1e-9
            assert "login" in (out_dir / "report.md").read_text()


def test_collapsed_model_is_reported_loudly(
    trained: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    tuned = trained["root"] / "collapsed-tuned"
    status, out = run_cli(
        ["tune", str(trained["collapsed"]), str(trained["dev"]), "--output-dir", str(tuned)],
        capsys,
    )
    assert status == 0
    assert "[W004]" in out and "[W008]" in out
    metrics_dir = trained["root"] / "collapsed-metrics"
    status, out = run_cli(
        ["evaluate", str(tuned), str(trained["test"]), "--output-dir", str(metrics_dir)], capsys
    )
    assert status == 0
    assert "[W008]" in out
    metrics = json.loads((metrics_dir / "metrics.json").read_text())
    assert metrics["diagnosis"]["degenerate"] is True
    report = (metrics_dir / "report.md").read_text()
    assert report.index("LEARNED NOTHING") < report.index("ECE")


def test_exclusive_doc_without_a_known_label_names_the_doc(
    trained: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write_docbin(
        [("my parcel is late", ["delivery"]), ("refund me", ["refund_request"])],
        [*LABELS, "refund_request"],
        trained["root"] / "foreign.spacy",
    )
    status, out = run_cli(
        ["evaluate", str(trained["model"]), str(bad), "--output-dir", str(trained["root"] / "x")],
        capsys,
    )
    assert status == 1 and "[E030]" in out and "refund me" in out and "refund_request" in out


def test_score_uses_the_decisions_the_classifier_owns(
    trained: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A tuned bow pipeline is just ['textcat']: batch scoring must still use its tuned
    decisions (abstentions included), not a fallback argmax."""
    from textcat_kit.scoring.results import OutputSpec, score_texts

    tuned = trained["root"] / "tuned-abstain"
    status, out = run_cli(
        ["tune", str(trained["model"]), str(trained["dev"]), "--output-dir", str(tuned),
         "--abstain-precision", "0.999"],
        capsys,
    )  # fmt: skip
    assert status == 0, out
    nlp = spacy.load(tuned)
    assert nlp.pipe_names == ["textcat"]
    spec = OutputSpec.from_pipeline(nlp)
    assert spec.has_decision
    texts = [text for text, _ in synthetic(40, 9)] + ["the a my please"]
    _, decided = score_texts(nlp, texts, spec)
    assert decided == [list(doc._.decided_labels) for doc in nlp.pipe(texts)]

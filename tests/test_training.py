"""``textcat-kit train``: the data-scaled schedule (pure), config choice, and end-to-end runs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from textcat_kit.cli import app
from textcat_kit.errors import ConfigError, DataError, OutputError
from textcat_kit.training import (
    MAX_BIAS_NEWTON_STEP,
    MAX_BOW_WEIGHTS,
    MAX_STEPS_BETWEEN_EVALS,
    MIN_SGD_BATCH,
    MIN_STEPS_BETWEEN_EVALS,
    MIN_UPDATES,
    PATIENCE_EPOCHS,
    CorpusInfo,
    bias_curvature,
    bow_hash_length,
    plan_training,
    read_corpus_info,
    select_config,
    sgd_batch_and_rate,
    sgd_learn_rate,
    train_textcat,
    training_schedule,
    within_dev_noise,
)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


# --- the schedule (pure) -----------------------------------------------------------------------


@pytest.mark.parametrize("n_docs", [100, 1_000, 9_003, 43_410, 100_000, 1_000_000])
def test_schedule_scales_with_the_data(n_docs: int) -> None:
    s = training_schedule(n_docs, 64, base_epochs=8)
    assert s.steps_per_epoch == -(-n_docs // 64)
    # enough updates on small sets, the config's epochs on large ones
    assert s.max_epochs >= 8
    assert s.max_epochs * s.steps_per_epoch >= min(MIN_UPDATES, 300 * s.steps_per_epoch)
    if s.steps_per_epoch * 8 >= MIN_UPDATES:
        assert s.max_epochs == 8
    # evaluations neither every few updates nor rarer than MAX_STEPS_BETWEEN_EVALS
    assert (
        MIN_STEPS_BETWEEN_EVALS
        <= s.eval_frequency
        <= max(MAX_STEPS_BETWEEN_EVALS, s.steps_per_epoch)
    )
    assert (
        s.eval_frequency <= MAX_STEPS_BETWEEN_EVALS or s.steps_per_epoch < MIN_STEPS_BETWEEN_EVALS
    )
    # patience is in epochs: at least PATIENCE_EPOCHS of them, and several evaluations
    assert s.patience >= PATIENCE_EPOCHS * s.steps_per_epoch
    assert s.patience >= 4 * s.eval_frequency
    overrides = s.overrides()
    assert overrides["training.eval_frequency"] == s.eval_frequency
    assert overrides["training.patience"] == s.patience
    assert overrides["training.max_epochs"] == s.max_epochs


def test_schedule_small_set_evaluates_every_few_epochs_large_set_several_times_per_epoch() -> None:
    small = training_schedule(100, 64, base_epochs=8)  # 2 updates per epoch
    assert small.eval_frequency % small.steps_per_epoch == 0
    assert small.eval_frequency > small.steps_per_epoch
    assert small.max_epochs * small.steps_per_epoch >= MIN_UPDATES
    large = training_schedule(200_000, 64, base_epochs=8)  # 3,125 updates per epoch
    assert large.steps_per_epoch / large.eval_frequency >= 6
    banking = training_schedule(9_003, 64, base_epochs=8)
    assert banking.eval_frequency == banking.steps_per_epoch  # once per epoch


@pytest.mark.parametrize("bad", [(0, 64, 8), (100, 0, 8), (100, 64, 0)])
def test_schedule_rejects_empty_inputs(bad: tuple[int, int, int]) -> None:
    with pytest.raises(ConfigError, match="E063"):
        training_schedule(bad[0], bad[1], base_epochs=bad[2])


def test_learn_rate_bounds_the_first_bias_step() -> None:
    # skewed binary (1:8): learn rate 1.0 would move the bias by ~25 logits in one update
    rate, reason = sgd_learn_rate([880, 120], 1000, 64, exclusive=True)
    assert rate < 0.5
    assert rate * 64 * abs(0.5 - 0.12) == pytest.approx(8.0)
    assert "8" in reason
    # 77 roughly balanced classes: the bias steps are small, the ceiling applies
    counts = np.full(77, 117)
    rate, _ = sgd_learn_rate(counts, int(counts.sum()), 64, exclusive=True)
    assert rate == 1.0
    # multi-label starts every label at 0.5: rare labels bound the rate
    rate, _ = sgd_learn_rate([5, 300, 40], 1000, 64, exclusive=False)
    assert rate * 64 * 0.495 == pytest.approx(8.0)
    # bigger batches, smaller rate
    assert (
        sgd_learn_rate([880, 120], 1000, 256, exclusive=True)[0]
        < sgd_learn_rate([880, 120], 1000, 64, exclusive=True)[0]
    )


def test_hash_length_grows_with_the_vocabulary_within_a_weight_budget() -> None:
    # 30k distinct n-grams, 6 labels: 8 buckets per n-gram -> 2^18 (inside the budget)
    assert bow_hash_length(30_000, 6, 65_536) == 2**18
    # many labels: the budget keeps the config's size
    assert bow_hash_length(60_000, 77, 65_536) == 65_536
    # never below the config, always a power of two, never over budget unless the config is
    for n_ngrams, n_labels in [(10, 2), (5_000, 3), (400_000, 28), (10**7, 2)]:
        length = bow_hash_length(n_ngrams, n_labels, 65_536)
        assert length >= 65_536 and length & (length - 1) == 0
        assert length * n_labels <= max(MAX_BOW_WEIGHTS, 65_536 * n_labels)


def _info(label_counts: list[int], n_docs: int, multilabel: bool = False) -> CorpusInfo:
    return CorpusInfo(
        train_path=Path("train.spacy"),
        dev_path=Path("dev.spacy"),
        labels=[f"l{i}" for i in range(len(label_counts))],
        label_counts=label_counts,
        n_train_docs=n_docs,
        n_train_words=10 * n_docs,
        n_dev_docs=n_docs // 10,
        multilabel=multilabel,
        multilabel_reason="test",
        n_distinct_ngrams=20_000,
    )


def test_plan_gives_a_reduced_learning_rate_proportionally_more_updates() -> None:
    config = CONFIGS / "textcat_bow.cfg"
    # 77 balanced classes (Banking77): the config's batch of 64 at rate 1.0, as written
    many, overrides = plan_training(_info([117] * 77, 9_009), config)
    assert many.learn_rate == 1.0 and many.batch_size == 64
    assert "training.batcher.size.start" not in overrides
    # a 1:8 binary set: smaller batches (each update at most one Newton step of the bias)
    skewed, overrides = plan_training(_info([1_760, 240], 2_000), config)
    assert skewed.batch_size == MIN_SGD_BATCH and skewed.learn_rate is not None
    assert skewed.learn_rate < 1.0
    assert overrides["training.batcher.size.start"] == MIN_SGD_BATCH
    assert overrides["training.batcher.size.stop"] == MIN_SGD_BATCH
    assert overrides["training.optimizer.learn_rate"] == skewed.learn_rate
    assert overrides["components.textcat.model.length"] == skewed.hash_length
    # the smaller batch and lower rate get as many docs seen as 600 full batches, and more
    docs_seen = skewed.max_epochs * skewed.steps_per_epoch * skewed.batch_size
    assert docs_seen >= MIN_UPDATES * 64 / skewed.learn_rate * 0.9


def test_bias_curvature_and_batch_keep_an_update_within_one_newton_step() -> None:
    # two classes, balanced or balance-weighted: p (1 - p) = 1/4 at the balance point
    assert bias_curvature([500, 500], 1_000) == pytest.approx(0.25)
    assert bias_curvature([900, 100], 1_000, [1_000 / 1_800, 1_000 / 200]) == pytest.approx(0.25)
    # unweighted 1:9: the majority's share 0.9 -> 0.09
    assert bias_curvature([900, 100], 1_000) == pytest.approx(0.09)
    # K balanced classes: (1/K)(1 - 1/K)
    assert bias_curvature([10] * 77, 770) == pytest.approx(76 / 77**2)
    for counts in ([500, 500], [900, 100], [100] * 6, [100] * 20, [117] * 77, [120, 6] * 10):
        n = sum(counts)
        batch, rate, reason = sgd_batch_and_rate(counts, n, 64, exclusive=True)
        assert MIN_SGD_BATCH <= batch <= 64 and 0 < rate <= 1.0 and reason
        assert rate * batch * bias_curvature(counts, n) <= MAX_BIAS_NEWTON_STEP + 1e-9
    # many classes keep the config's batch and the ceiling rate; few classes shrink the batch
    assert sgd_batch_and_rate([117] * 77, 9_009, 64, exclusive=True)[:2] == (64, 1.0)
    assert sgd_batch_and_rate([100] * 6, 600, 64, exclusive=True)[0] == 8
    assert sgd_batch_and_rate([100] * 20, 2_000, 64, exclusive=True)[0] == 21
    # a batcher that cannot be resized: the rate is lowered instead
    batch, rate, _ = sgd_batch_and_rate([100] * 6, 600, 64, exclusive=True, can_resize_batch=False)
    assert batch == 64 and rate == pytest.approx(1 / (64 * 5 / 36))
    # multi-label: the config's batch and the first-step rate
    assert sgd_batch_and_rate([5, 300, 40], 1_000, 64, exclusive=False)[:2] == (
        64,
        pytest.approx(sgd_learn_rate([5, 300, 40], 1_000, 64, exclusive=False)[0]),
    )


def test_dev_noise_rule() -> None:
    # 600 dev docs at 0.92: one standard error is ~0.011
    close, error = within_dev_noise(0.92, 0.915, 600)
    assert close and error == pytest.approx((0.92 * 0.08 / 600) ** 0.5)
    assert not within_dev_noise(0.92, 0.90, 600)[0]
    assert within_dev_noise(0.92, 0.93, 600)[0]
    # more dev docs, a tighter band
    assert not within_dev_noise(0.92, 0.915, 60_000)[0]


# --- corpus and config -------------------------------------------------------------------------


def _write_corpus(
    directory: Path,
    rows: dict[str, list[tuple[str, dict[str, float]]]],
    meta: dict | None,
) -> Path:
    nlp = spacy.blank("en")
    directory.mkdir(parents=True, exist_ok=True)
    for split, examples in rows.items():
        db = DocBin()
        for text, cats in examples:
            doc = nlp.make_doc(text)
            doc.cats = cats
            db.add(doc)
        db.to_disk(directory / f"{split}.spacy")
    if meta is not None:
        (directory / "data.json").write_text(json.dumps(meta), encoding="utf8")
    return directory


def _skewed_binary(n: int, seed: int, positive_share: float = 0.1) -> list:
    """Short texts; the minority class is marked by one of a few words, both share filler."""
    rng = random.Random(seed)
    filler = "please can you help me with my account card app today thanks why how".split()
    marks = ["refund", "chargeback", "reimburse", "dispute"]
    noise = ["payment", "money", "charge", "transfer", "balance"]
    rows = []
    for _ in range(n):
        positive = rng.random() < positive_share
        words = rng.sample(filler, 4) + rng.sample(noise, 1)
        if positive:
            words.append(rng.choice(marks))
        rng.shuffle(words)
        rows.append((" ".join(words), {"yes": float(positive), "no": float(not positive)}))
    return rows


def test_task_is_read_from_data_json_or_inferred(tmp_path: Path) -> None:
    single = [("a b", {"x": 1.0, "y": 0.0}), ("c d", {"x": 0.0, "y": 1.0})]
    multi = single + [("e f", {"x": 1.0, "y": 1.0})]
    info = read_corpus_info(
        _write_corpus(tmp_path / "a", {"train": single, "dev": single}, {"multilabel": True})
    )
    assert info.multilabel and "says multilabel=true" in info.multilabel_reason
    info = read_corpus_info(_write_corpus(tmp_path / "b", {"train": multi, "dev": single}, None))
    assert info.multilabel and "1 of 3" in info.multilabel_reason
    info = read_corpus_info(_write_corpus(tmp_path / "c", {"train": single, "dev": single}, {}))
    assert not info.multilabel
    assert info.label_counts == [1, 1] and info.n_train_docs == 2


def test_missing_corpus_files_and_configs_are_coded_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="E060"):
        read_corpus_info(tmp_path)
    path, reason = select_config(CONFIGS, "bow", True)
    assert path.name == "textcat_multilabel_bow.cfg" and "multi-label" in reason
    assert select_config(CONFIGS, "bow", False)[0].name == "textcat_bow.cfg"
    with pytest.raises(ConfigError, match=r"E065.*bow"):
        select_config(CONFIGS, "nosuchvariant", False)


# --- end to end --------------------------------------------------------------------------------


def test_train_command_end_to_end(tmp_path: Path) -> None:
    corpus = _write_corpus(
        tmp_path / "corpus",
        {"train": _skewed_binary(240, 0, 0.25), "dev": _skewed_binary(80, 1, 0.25)},
        {"labels": ["yes", "no"], "multilabel": False},
    )
    out = tmp_path / "training"
    result = CliRunner().invoke(
        app,
        ["train", str(corpus), "--output", str(out), "--configs-dir", str(CONFIGS), "--lang", "de"],
    )
    assert result.exit_code == 0, result.output
    assert spacy.load(out / "model-best").lang == "de"
    assert "config: " in result.output and "textcat_bow.cfg" in result.output
    assert "schedule: 240 training docs" in result.output
    for name in ("model-best", "model-last"):
        assert (out / name / "config.cfg").is_file()
    # the schedule is recorded in the saved config
    saved = spacy.util.load_config(out / "model-best" / "config.cfg")
    summary = json.loads((out / "train_summary.json").read_text())
    assert saved["training"]["eval_frequency"] == summary["schedule"]["eval_frequency"]
    assert saved["training"]["max_epochs"] == summary["schedule"]["max_epochs"] > 8
    assert saved["training"]["optimizer"]["learn_rate"] == pytest.approx(
        summary["schedule"]["learn_rate"]
    )
    assert summary["diagnosis"]["degenerate"] is False
    # exclusive task: the final model unless the dev set says it is worse than the peak
    selection = summary["selection"]
    assert selection["model"] in ("model-best", "model-last")
    assert "model-best: " in result.output
    if selection["model"] == "model-last":
        assert selection["dev_score_last"] >= (
            selection["dev_score_peak"] - selection["standard_error"]
        )
        # model-best now holds the final weights
        for part in ("textcat/model", "textcat/cfg"):
            assert (out / "model-best" / part).read_bytes() == (
                out / "model-last" / part
            ).read_bytes()
    else:
        assert selection["dev_score_last"] < (
            selection["dev_score_peak"] - selection["standard_error"]
        )
    length = saved["components"]["textcat"]["model"]["length"]
    assert length == summary["schedule"]["hash_length"] >= 65_536
    # a second run needs --overwrite; a directory the user made is never replaced
    again = CliRunner().invoke(app, ["train", str(corpus), "--output", str(out)])
    assert again.exit_code != 0
    assert isinstance(again.exception, OutputError) and "E023" in str(again.exception)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="E022"):
        train_textcat(corpus, mine, configs_dir=CONFIGS)
    assert (mine / "notes.txt").read_text() == "keep me"


@pytest.mark.slow
def test_small_skewed_binary_set_does_not_collapse(tmp_path: Path) -> None:
    """400 short texts, 10% positive: learn rate 1.0 threw this to one class for good."""
    corpus = _write_corpus(
        tmp_path / "corpus",
        {"train": _skewed_binary(400, 2), "dev": _skewed_binary(200, 3)},
        {"labels": ["yes", "no"], "multilabel": False},
    )
    result = train_textcat(corpus, tmp_path / "out", configs_dir=CONFIGS, seed=1)
    decided = result.dev_probs.argmax(axis=1)
    gold = result.dev_gold.argmax(axis=1)
    assert len(set(decided.tolist())) == 2
    assert not result.diagnosis.degenerate
    recall_minority = float((decided[gold == 0] == 0).mean())
    assert recall_minority > 0.8


def test_encoder_override_only_where_the_config_has_one() -> None:
    from pathlib import Path as _Path

    from textcat_kit.training import encoder_overrides

    configs = _Path(__file__).resolve().parents[1] / "configs"
    assert encoder_overrides(configs / "textcat_bow.cfg", "some/dir") == {}
    assert encoder_overrides(configs / "textcat_embed.cfg", "some/dir") == {
        "paths.encoder": "some/dir"
    }
    assert encoder_overrides(configs / "textcat_transformer.cfg", "some/dir") == {
        "paths.transformer_name": "some/dir"
    }
    assert encoder_overrides(configs / "textcat_transformer.cfg", None) == {}

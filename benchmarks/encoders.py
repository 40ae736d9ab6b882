"""Pretrained encoders on CPU: bow vs frozen sentence-embedding head vs distilled bow vs TF-IDF+LR.

One run trains, tunes (``textcat-kit tune``'s code: cross-fitted calibration and thresholds
on dev) and evaluates (``textcat_kit.evaluation.evaluate`` on the official test split)
every system on the same splits, and times training and inference:

* ``tfidf_lr``: scikit-learn TF-IDF + LogisticRegression (C chosen on dev; compare.py's);
* ``bow``: ``configs/textcat_bow.cfg`` (or the multi-label one) with ``spacy train``;
* ``embed``: ``configs/textcat_embed.cfg`` on the pinned all-MiniLM-L6-v2
  (``spacy project run encoder-assets``); the encoder runs once per text (``encode_s``,
  length-sorted batches, counted in its training time) and the vectors are cached on disk
  under ``--cache-dir`` so a re-run skips it;
* ``transformer``: ``configs/textcat_transformer.cfg`` (or the multi-label one) fine-tuning
  the same all-MiniLM-L6-v2 with spacy-transformers for ``--trf-epochs`` epochs, the
  learning rate decaying linearly to 0 over exactly those epochs' steps (counted with the
  config's own batcher); ``--trf-limit`` caps its training docs (a CPU budget, reported);
* ``distil``: the bow student of :mod:`textcat_kit.distil` trained on the tuned embed
  pipeline's calibrated probabilities (``--teacher transformer``: the tuned fine-tuned
  pipeline's; with ``--per-class``, the rest of the training texts are given to it
  unlabelled).

``--per-class N`` keeps N training examples per label (seeded), dev and test unchanged;
``--seed S`` (S > 0) draws another sample, with its own models and result file
(``encoders_<dataset>_<N>pc_seed<S>.json``; the report gives the spread over samples).
Inference docs/s: one process, ``nlp.pipe`` over the test texts (the embedding cache is
switched off for this). Results go to ``benchmarks/results/encoders_<dataset>[_<N>pc].json``
and ``python -m benchmarks encoders report`` writes the tables into ``docs/encoders.md``.

    python -m benchmarks encoders run --dataset banking77
    python -m benchmarks encoders run --dataset banking77 --per-class 10
    python -m benchmarks encoders report
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import typer

from ._common import REPO_ROOT, RESULTS_DIR, write_results

DATASETS = {"banking77": "corpus/banking77", "goemotions": "corpus/goemotions"}
SYSTEMS = ("tfidf_lr", "bow", "embed", "distil", "transformer")
ENCODER_DIR = "assets/encoders/all-MiniLM-L6-v2"
DOC_PATH = REPO_ROOT / "docs" / "encoders.md"
START, END = "<!-- encoders-benchmark:start -->", "<!-- encoders-benchmark:end -->"

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@dataclass
class Split:
    texts: list[str]
    gold: np.ndarray


@dataclass
class Corpus:
    directory: Path
    labels: list[str]
    exclusive: bool
    train: Split
    dev: Split
    test: Split

    def split_path(self, split: str) -> Path:
        return self.directory / f"{split}.spacy"


def read_split(path: Path, labels: list[str] | None = None) -> tuple[Split, list[str]]:
    """Texts and gold matrix of a ``.spacy`` file (labels: sorted, from its docs if None)."""
    import spacy
    from spacy.tokens import DocBin

    from textcat_kit.evaluation import cats_matrix

    docs = list(DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))
    labels = labels or sorted({label for doc in docs for label in doc.cats})
    return Split([doc.text for doc in docs], cats_matrix(docs, labels)), labels


def read_corpus(directory: Path) -> Corpus:
    train, labels = read_split(directory / "train.spacy")
    dev, _ = read_split(directory / "dev.spacy", labels)
    test, _ = read_split(directory / "test.spacy", labels)
    exclusive = bool(np.all((train.gold >= 0.5).sum(axis=1) == 1))
    return Corpus(directory, labels, exclusive, train, dev, test)


def configs(exclusive: bool) -> dict[str, Path]:
    prefix = "textcat" if exclusive else "textcat_multilabel"
    return {
        "bow": REPO_ROOT / "configs" / f"{prefix}_bow.cfg",
        "embed": REPO_ROOT / "configs" / f"{prefix}_embed.cfg",
        "transformer": REPO_ROOT / "configs" / f"{prefix}_transformer.cfg",
    }


def subset_train(corpus: Corpus, per_class: int, seed: int, out: Path) -> tuple[Path, list[str]]:
    """``per_class`` training docs per label (first label of multi-label docs), seeded; the
    other training texts are returned (the distilled student may use them unlabelled)."""
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    docs = list(DocBin().from_disk(corpus.split_path("train")).get_docs(nlp.vocab))
    first = [max(doc.cats.items(), key=lambda item: item[1])[0] for doc in docs]
    kept = set(subset_indices(first, per_class, seed))
    DocBin(docs=[docs[i] for i in sorted(kept)], store_user_data=True).to_disk(out)
    return out, [docs[i].text for i in range(len(docs)) if i not in kept]


def subset_indices(first_labels: list[str], per_class: int, seed: int) -> list[int]:
    """Indices of ``per_class`` docs per label: the first ones of a seeded shuffle."""
    order = list(range(len(first_labels)))
    random.Random(seed).shuffle(order)
    taken: dict[str, int] = {}
    keep: list[int] = []
    for i in order:
        label = first_labels[i]
        if taken.get(label, 0) < per_class:
            taken[label] = taken.get(label, 0) + 1
            keep.append(i)
    return sorted(keep)


def spacy_train(
    config: Path, train: Path, dev: Path, output: Path, overrides: list[str], reuse: bool
) -> float:
    """``spacy train`` in a subprocess; returns its wall time. With ``reuse`` a model trained
    by an earlier run (same output directory) is kept, with the time recorded then."""
    cmd = [
        sys.executable,
        "-m",
        "spacy",
        "train",
        str(config),
        "--output",
        str(output),
        "--paths.train",
        str(train),
        "--paths.dev",
        str(dev),
        *overrides,
    ]
    timing = output.parent / f"{output.name}.train_s.json"
    if reuse and (output / "model-best").is_dir() and timing.is_file():
        return float(json.loads(timing.read_text())["train_s"])
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    (output.parent / f"{output.name}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"spacy train failed ({config}):\n{proc.stderr[-3000:]}")
    timing.write_text(json.dumps({"train_s": seconds, "command": " ".join(cmd)}))
    return seconds


def tune_and_evaluate(model: Path, dev: Path, test: Path, tuned: Path) -> dict[str, Any]:
    import spacy

    from textcat_kit.evaluation import evaluate, load_gold
    from textcat_kit.tuning import tune_pipeline

    start = time.perf_counter()
    tune_pipeline(model, dev, tuned, overwrite=True)
    tune_s = time.perf_counter() - start
    nlp = spacy.load(tuned)
    result = evaluate(nlp, load_gold(nlp, test)).metrics
    return {"tune_s": tune_s, **summarise(result)}


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    out = {
        "macro_f": result["macro_f"],
        "micro_f": result["micro_f"],
        "ece": result["calibration"]["top_label_ece"],
        "classwise_ece": result["calibration"]["classwise_ece"],
        "decision_rule": result["decision_rule"],
    }
    if "accuracy" in result:
        out["accuracy"] = result["accuracy"]
        out["argmax_macro_f"] = result["argmax"]["macro_f"]
    if "raw" in result:
        out["raw_macro_f"] = result["raw"]["macro_f"]
        out["raw_ece"] = result["raw"]["calibration"]["top_label_ece"]
    return out


def pipeline_docs_per_second(model: Path, texts: list[str], repeats: int) -> float:
    """Best of ``repeats`` runs of ``nlp.pipe`` over ``texts`` (one process, no cache)."""
    import spacy

    from textcat_kit.embeddings.encoder import EmbeddingCache

    nlp = spacy.load(model)
    for _, pipe in nlp.pipeline:
        model_ = getattr(pipe, "model", None)
        for node in model_.walk() if model_ is not None else []:
            if node.name == "sentence_encoder":
                node.attrs["encoder"].cache = EmbeddingCache(0)
    list(nlp.pipe(texts[:64]))  # warm-up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _doc in nlp.pipe(texts, batch_size=256):
            pass
        best = max(best, len(texts) / (time.perf_counter() - start))
    return best


def warm_cache(encoder_dir: Path, cache_dir: Path, texts: list[str]) -> dict[str, float]:
    """Encode ``texts`` once (length-sorted batches) into the on-disk cache the embed
    config's layer will read; returns timings (0 texts encoded when all were cached)."""
    from textcat_kit.embeddings.layers import build_sentence_encoder

    layer = build_sentence_encoder(str(encoder_dir), cache_dir=str(cache_dir))
    layer.initialize()
    slot = layer.attrs["encoder"]
    before = slot.cache.misses
    start = time.perf_counter()
    slot.cache.lookup(texts, slot.encoder.encode, slot.encoder.width)
    seconds = time.perf_counter() - start
    encoded = slot.cache.misses - before
    return {
        "texts": len(texts),
        "encoded": encoded,
        "encode_s": seconds,
        "texts_per_s": encoded / seconds if encoded else float("nan"),
    }


@app.command()
def run(
    dataset: str = typer.Option("banking77", help="banking77 or goemotions"),
    per_class: int = typer.Option(0, help="Training examples per label (0: all)"),
    systems: str = typer.Option(
        ",".join(SYSTEMS), help="Comma-separated subset of " + ",".join(SYSTEMS)
    ),
    workdir: Path = typer.Option(Path("training/encoders-benchmark"), help="Models go here"),
    cache_dir: Path = typer.Option(Path(".cache/embeddings"), help="On-disk embedding cache"),
    encoder: Path = typer.Option(Path(ENCODER_DIR), help="Encoder directory"),
    repeats: int = typer.Option(2, help="Inference-speed repeats (best of)"),
    reuse: bool = typer.Option(
        False, help="Keep models trained by an earlier run (and their times)"
    ),
    trf_epochs: int = typer.Option(3, help="Fine-tuning epochs of the transformer system"),
    trf_eval_frequency: int = typer.Option(100, help="Transformer: steps between dev evaluations"),
    trf_learn_rate: float = typer.Option(
        0.0, help="Transformer: peak learning rate (0: the config's)"
    ),
    trf_max_steps: int = typer.Option(
        0, help="Transformer: stop after this many steps (0: all epochs; a CPU budget)"
    ),
    trf_threads: int = typer.Option(
        0,
        help="Transformer: torch threads for training, tuning and timing it (0: torch's "
        "default; on shared cores 1 is faster, see docs/encoders.md)",
    ),
    embed_threads: int = typer.Option(
        0,
        help="Embed: torch threads for its training (the encoder and its contrastive "
        "fine-tune), tuning and timing (0: torch's default)",
    ),
    teacher: str = typer.Option(
        "embed",
        help="Distil: the tuned system whose probabilities the bow student learns (embed or "
        "transformer; it must have been run first)",
    ),
    seed: int = 0,
) -> None:
    """Train, tune, evaluate and time the systems on one dataset; write the result JSON."""
    corpus = read_corpus(REPO_ROOT / DATASETS[dataset])
    tag = f"{dataset}_{per_class}pc" if per_class else dataset
    if per_class and seed:
        tag += f"_seed{seed}"  # another sample: its own models and result file
    work = (REPO_ROOT / workdir / tag).resolve()
    work.mkdir(parents=True, exist_ok=True)
    train_path, dev_path, test_path = (corpus.split_path(s) for s in ("train", "dev", "test"))
    unlabelled: list[str] = []
    if per_class:
        train_path, unlabelled = subset_train(corpus, per_class, seed, work / "train.spacy")
        corpus = read_corpus_with_train(corpus, train_path)
    cache = (REPO_ROOT / cache_dir).resolve()
    encoder = (REPO_ROOT / encoder).resolve()
    out_path = RESULTS_DIR / f"encoders_{tag}.json"
    results: dict[str, Any] = json.loads(out_path.read_text()) if out_path.exists() else {}
    for key in ("command", "when", "machine"):
        results.pop(key, None)
    results.update(
        {
            "dataset": dataset,
            "per_class": per_class or "all",
            "n_train": len(corpus.train.texts),
            "n_dev": len(corpus.dev.texts),
            "n_test": len(corpus.test.texts),
        }
    )
    results.setdefault("systems", {})
    test_texts = corpus.test.texts
    cfg = configs(corpus.exclusive)
    wanted = [s.strip() for s in systems.split(",") if s.strip()]

    command = [
        "python -m benchmarks encoders run",
        f"--dataset {dataset} --per-class {per_class} --systems {systems}"
        + (f" --seed {seed}" if seed else ""),
    ]

    def save() -> None:
        for name in wanted:
            if name in results["systems"]:
                results["systems"][name]["command"] = " ".join(command)
        write_results(f"encoders_{tag}", results, command)

    if "tfidf_lr" in wanted:
        from .compare import _tfidf_lr  # the same baseline as `python -m benchmarks compare`

        texts = {"train": corpus.train.texts, "dev": corpus.dev.texts, "test": test_texts}
        gold = {"train": corpus.train.gold, "dev": corpus.dev.gold, "test": corpus.test.gold}
        probs, _, train_s, speed = _tfidf_lr(
            None,  # type: ignore[arg-type]
            work,
            texts,
            gold,
            corpus.labels,
            corpus.exclusive,
        )
        results["systems"]["tfidf_lr"] = {
            "train_s": train_s,
            "docs_per_s": speed,
            "settings": "TfidfVectorizer(sublinear_tf, 1-2-grams) + LogisticRegression, C in "
            "(1, 10, 100) on dev",
            **score_probs(probs, corpus.test, corpus.exclusive),
        }
        save()
    if "bow" in wanted:
        out = work / "bow"
        overrides = []
        if per_class:
            # The bow config evaluates every 141 steps for at most 8 epochs (an epoch of the
            # full data); with a few examples per label that is ~100 steps and no
            # evaluation: evaluate once per epoch and allow 40 epochs instead.
            steps = -(-len(corpus.train.texts) // 64)
            overrides = [
                "--training.eval_frequency",
                str(steps),
                "--training.max_epochs",
                "40",
                "--training.patience",
                str(10 * steps),
            ]
        train_s = spacy_train(cfg["bow"], train_path, dev_path, out, overrides, reuse)
        row = tune_and_evaluate(out / "model-best", dev_path, test_path, work / "bow-tuned")
        row.update(
            train_s=train_s,
            docs_per_s=pipeline_docs_per_second(work / "bow-tuned", test_texts, repeats),
            overrides=" ".join(overrides),
        )
        results["systems"]["bow"] = row
        save()
    if "embed" in wanted:
        warm = warm_cache(encoder, cache, corpus.train.texts + corpus.dev.texts)
        warm_test = warm_cache(encoder, cache, test_texts)
        out = work / "embed"
        overrides = [
            "--paths.encoder",
            str(encoder),
            "--components.textcat.model.encoder.cache_dir",
            str(cache),
        ]
        if embed_threads:
            from textcat_kit.embeddings.threads import set_threads

            set_threads(embed_threads)  # tuning and the docs/s below run in this process
            if corpus.exclusive:  # the exclusive config has the threads callback
                overrides += ["--initialize.before_init.threads", str(embed_threads)]
        head_s = spacy_train(cfg["embed"], train_path, dev_path, out, overrides, reuse)
        meta = json.loads((out / "model-best" / "meta.json").read_text())
        contrastive = meta.get("textcat_kit_contrastive", {})
        row = tune_and_evaluate(out / "model-best", dev_path, test_path, work / "embed-tuned")
        row.update(
            # A contrastively fine-tuned encoder encodes the texts again inside `spacy train`
            # (the frozen encoder's cached vectors are not its vectors).
            train_s=head_s + (0.0 if "steps" in contrastive else warm["encode_s"]),
            contrastive=contrastive,
            overrides=" ".join(overrides[4:]),
            head_train_s=head_s,
            encode=warm,
            encode_test=warm_test,
            docs_per_s=pipeline_docs_per_second(work / "embed-tuned", test_texts, 1),
        )
        results["systems"]["embed"] = row
        if embed_threads:
            command.append(f"--embed-threads {embed_threads}")
        save()
    if "transformer" in wanted:
        from textcat_kit.embeddings.threads import set_threads

        out = work / "transformer"
        overrides, steps = transformer_overrides(
            cfg["transformer"],
            train_path,
            encoder,
            epochs=trf_epochs,
            max_steps=trf_max_steps,
            eval_frequency=trf_eval_frequency,
            learn_rate=trf_learn_rate,
            threads=trf_threads,
        )
        if trf_threads:
            set_threads(trf_threads)  # tuning and the docs/s below run in this process
        train_s = spacy_train(cfg["transformer"], train_path, dev_path, out, overrides, reuse)
        row = tune_and_evaluate(out / "model-best", dev_path, test_path, work / "transformer-tuned")
        row.update(
            train_s=train_s,
            epochs=trf_epochs,
            total_steps=steps,
            overrides=" ".join(overrides),
            docs_per_s=pipeline_docs_per_second(work / "transformer-tuned", test_texts[:500], 1),
            docs_per_s_texts=min(500, len(test_texts)),
        )
        results["systems"]["transformer"] = row
        command.append(
            f"--trf-epochs {trf_epochs} --trf-max-steps {trf_max_steps} "
            f"--trf-learn-rate {trf_learn_rate} --trf-eval-frequency {trf_eval_frequency}"
            f" --trf-threads {trf_threads}"
        )
        save()
    if "distil" in wanted:
        from textcat_kit.distil import DistilSettings, distil

        if teacher not in ("embed", "transformer"):
            raise typer.BadParameter(f"--teacher {teacher}: embed or transformer")
        teacher_threads = trf_threads if teacher == "transformer" else embed_threads
        if teacher_threads:
            from textcat_kit.embeddings.threads import set_threads

            set_threads(teacher_threads)  # the teacher scores the training texts in this process
        extra = None
        if unlabelled:
            extra = work / "unlabelled.jsonl"
            extra.write_text("".join(json.dumps({"text": t}) + "\n" for t in unlabelled))
        out = work / ("distil" if teacher == "embed" else f"distil-{teacher}")
        done = out / "distil.json"
        settings = DistilSettings(seed=seed)
        if reuse and done.is_file() and json.loads(done.read_text())["settings"] == vars(settings):
            record = json.loads(done.read_text())
        else:
            record = distil(
                work / f"{teacher}-tuned",
                cfg["bow"],
                train_path,
                dev_path,
                out,
                unlabelled_path=extra,
                settings=settings,
                overwrite=True,
            )
        tuned = work / ("distil-tuned" if teacher == "embed" else f"distil-{teacher}-tuned")
        row = tune_and_evaluate(out / "model-best", dev_path, test_path, tuned)
        row.update(
            teacher=teacher,
            # The teacher's figure when the student learned from it (a later re-run of the
            # teacher's row does not change what this student was distilled from).
            teacher_macro_f=results["systems"].get(teacher, {}).get("macro_f"),
            train_s=record["seconds"],
            teacher_s=record["teacher_seconds"],
            n_unlabelled=record["n_unlabelled"],
            best_epoch=record["best_epoch"],
            docs_per_s=pipeline_docs_per_second(tuned, test_texts, repeats),
        )
        results["systems"]["distil"] = row
        if teacher != "embed":
            command.append(f"--teacher {teacher} --trf-threads {trf_threads}")
        elif embed_threads and "embed" not in wanted:
            command.append(f"--embed-threads {embed_threads}")
        save()
    typer.echo(json.dumps(results["systems"], indent=1, default=str))


def transformer_overrides(
    config: Path,
    train: Path,
    encoder: Path,
    *,
    epochs: int,
    max_steps: int,
    eval_frequency: int,
    learn_rate: float,
    threads: int,
) -> tuple[list[str], int]:
    """``spacy train`` overrides of the transformer system and its number of optimizer steps:
    warm-up over the first 10% of the steps, then a linear decay to 0 at the last one."""
    steps = epochs_steps(config, train, epochs)
    if max_steps:
        steps = min(steps, max_steps)
    overrides = [
        "--paths.transformer_name",
        str(encoder),
        "--training.max_epochs",
        str(epochs),
        "--training.max_steps",
        str(max_steps),
        "--training.patience",
        "0",
        "--training.eval_frequency",
        str(eval_frequency),
        "--training.optimizer.learn_rate.total_steps",
        str(steps),
        "--training.optimizer.learn_rate.warmup_steps",
        str(max(1, steps // 10)),
    ]
    if learn_rate:
        overrides += ["--training.optimizer.learn_rate.initial_rate", str(learn_rate)]
    if threads:
        overrides += ["--initialize.before_init.threads", str(threads)]
    return overrides, steps


def epochs_steps(config: Path, train: Path, epochs: int) -> int:
    """Optimizer steps of ``epochs`` passes over ``train`` with the config's own batcher."""
    import spacy
    from spacy.tokens import DocBin
    from spacy.util import load_config, registry

    batcher_cfg = load_config(config, interpolate=True)["training"]["batcher"]
    batcher = registry.resolve({"batcher": batcher_cfg})["batcher"]
    docs = list(DocBin().from_disk(train).get_docs(spacy.blank("en").vocab))
    random.Random(0).shuffle(docs)
    return epochs * sum(1 for _ in batcher(docs))


def read_corpus_with_train(corpus: Corpus, train_path: Path) -> Corpus:
    train, _ = read_split(train_path, corpus.labels)
    return Corpus(corpus.directory, corpus.labels, corpus.exclusive, train, corpus.dev, corpus.test)


def score_probs(probs: np.ndarray, split: Split, exclusive: bool) -> dict[str, Any]:
    """Macro-F and ECE of raw probabilities (argmax for exclusive, 0.5 for multi-label)."""
    from textcat_kit.evaluation import calibration_metrics
    from textcat_kit.maths import metrics

    if exclusive:
        decided = np.eye(probs.shape[1])[probs.argmax(axis=1)]
    else:
        decided = metrics.decide(probs, 0.5)
    prf = metrics.prf_per_label(decided, split.gold)
    cal = calibration_metrics(probs, split.gold, exclusive)
    return {
        "macro_f": prf.macro_f,
        "micro_f": prf.micro_f,
        "ece": cal["top_label_ece"],
        "classwise_ece": cal["classwise_ece"],
        "decision_rule": "argmax" if exclusive else "threshold 0.5",
    }


@app.command("encode-speed")
def encode_speed(
    dataset: str = typer.Option("banking77", help="banking77 or goemotions (test texts)"),
    n_texts: int = typer.Option(1000, help="Test texts encoded per run"),
    rounds: int = typer.Option(2, help="Interleaved rounds (best of)"),
    pipeline: Path | None = typer.Option(None, help="Also time nlp.pipe of this embed pipeline"),
    encoder: Path = typer.Option(Path(ENCODER_DIR), help="Encoder directory"),
) -> None:
    """Encoder texts/s with length-sorted batches vs batches in input order (cache off)."""
    import spacy

    from textcat_kit.embeddings import EmbeddingCache, EncoderSettings, SentenceEncoder

    from ._common import interleaved_best

    test, _ = read_split(REPO_ROOT / DATASETS[dataset] / "test.spacy")
    texts = test.texts[:n_texts]
    model = SentenceEncoder.from_pretrained(REPO_ROOT / encoder, EncoderSettings())

    def unsorted() -> None:
        for start in range(0, len(texts), 128):
            model.encode(texts[start : start + 128])  # one batch each: no sorting across

    runs: dict[str, Callable[[], object]] = {
        "length_sorted": lambda: model.encode(texts),
        "input_order": unsorted,
    }
    if pipeline is not None:
        nlp = spacy.load(pipeline)
        textcat: Any = nlp.get_pipe("textcat")
        for node in textcat.model.walk():
            if node.name == "sentence_encoder":
                node.attrs["encoder"].cache = EmbeddingCache(0)
        runs["pipeline"] = lambda: list(nlp.pipe(texts, batch_size=256))
    best = interleaved_best(runs, rounds=rounds)
    rates = {name: len(texts) / seconds for name, seconds in best.items()}
    results = {"dataset": dataset, "n_texts": len(texts), "texts_per_s": rates}
    for name, rate in rates.items():
        typer.echo(f"{name:14s} {rate:8.1f} texts/s")
    command = [
        "python -m benchmarks encoders encode-speed",
        f"--dataset {dataset} --n-texts {n_texts} --rounds {rounds}"
        + (f" --pipeline {pipeline}" if pipeline else ""),
    ]
    typer.echo(f"wrote {write_results(f'encoders_speed_{dataset}', results, command)}")


@app.command("step-time")
def step_time(
    threads: str = typer.Option("1,2", help="torch thread counts to compare"),
    steps: int = typer.Option(10, help="Training steps per thread count and round"),
    rounds: int = typer.Option(2, help="Interleaved rounds (best of)"),
    encoder: Path = typer.Option(Path(ENCODER_DIR), help="Encoder directory"),
) -> None:
    """Seconds per fine-tuning step of ``configs/textcat_transformer.cfg`` on Banking77 train
    batches, for each torch thread count (interleaved rounds, same batches, wall and CPU
    time of this process): what ``[initialize.before_init] threads`` buys on this machine."""
    import os

    import spacy
    from spacy.training import Corpus
    from spacy.util import load_config, registry

    from textcat_kit.embeddings.threads import set_threads

    config_path = configs(True)["transformer"]
    train_path = REPO_ROOT / DATASETS["banking77"] / "train.spacy"
    config = load_config(
        config_path,
        overrides={"paths.transformer_name": str((REPO_ROOT / encoder).resolve())},
        interpolate=False,
    )
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    examples = list(Corpus(str(train_path))(nlp))
    random.Random(0).shuffle(examples)
    nlp.initialize(lambda: examples)
    training = registry.resolve(nlp.config.interpolate()["training"])
    optimizer, batcher = training["optimizer"], training["batcher"]
    batches = list(batcher(examples[: 64 * steps]))[:steps]
    counts = [int(x) for x in threads.split(",")]
    best: dict[int, dict[str, float]] = {n: {"wall": np.inf, "cpu": np.inf} for n in counts}
    for _ in range(rounds):
        for n in counts:
            set_threads(n)
            wall, cpu = time.perf_counter(), time.process_time()
            for batch in batches:
                nlp.update(batch, drop=0.1, sgd=optimizer, losses={})
            row = best[n]
            row["wall"] = min(row["wall"], (time.perf_counter() - wall) / len(batches))
            row["cpu"] = min(row["cpu"], (time.process_time() - cpu) / len(batches))
    docs = sum(len(b) for b in batches) / len(batches)
    for n, row in best.items():
        typer.echo(f"threads {n}: {row['wall']:.2f} s/step wall, {row['cpu']:.2f} CPU-s/step")
    results = {
        "config": str(config_path.relative_to(REPO_ROOT)),
        "steps": len(batches),
        "docs_per_step": docs,
        "rounds": rounds,
        "load_average_end": os.getloadavg(),
        "seconds_per_step": {str(n): row for n, row in best.items()},
    }
    command = [
        "python -m benchmarks encoders step-time",
        f"--threads {threads} --steps {steps} --rounds {rounds}",
    ]
    typer.echo(f"wrote {write_results('encoders_step_time_banking77', results, command)}")


def step_time_lines() -> list[str]:
    """The ``step-time`` result as one paragraph of the report."""
    path = RESULTS_DIR / "encoders_step_time_banking77.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    per = data["seconds_per_step"]
    parts = [
        f"{n} thread(s) {row['wall']:.2f} s per step ({row['cpu']:.2f} CPU-s)"
        for n, row in per.items()
    ]
    load = data["machine"]["load_average"][0]
    return [
        f"\n**Fine-tuning step time**, all-MiniLM-L6-v2 with `{data['config']}` on Banking77 "
        f"training batches ({data['steps']} steps of ~{data['docs_per_step']:.0f} texts, best of "
        f"{data['rounds']} interleaved rounds; `{data['command']}`; load average {load:.1f} "
        f"on {data['machine']['cpus']} cores): " + ", ".join(parts) + "."
    ]


@app.command()
def reference(
    dataset: str = typer.Option("banking77", help="banking77 (exclusive classes)"),
    per_class: int = typer.Option(10, help="Training examples per label"),
    seeds: str = typer.Option("0,1,2,3,4", help="Samples (the seeds of `run --seed`)"),
    c_values: str = typer.Option("1,10,100", help="LogisticRegression C values"),
    cache_dir: Path = typer.Option(Path(".cache/embeddings"), help="On-disk embedding cache"),
    encoder: Path = typer.Option(Path(ENCODER_DIR), help="Encoder directory"),
) -> None:
    """The issue's reference recipe on the samples `run --per-class N --seed S` trains on.

    Frozen vectors of the embed layer (mean-pooled, L2-normalised; read through its cache)
    + scikit-learn LogisticRegression, test macro-F1 per sample: how much of a gap between
    one sample's figure and another's is the sample.
    """
    from sklearn.linear_model import LogisticRegression

    from textcat_kit.maths import metrics

    corpus = read_corpus(REPO_ROOT / DATASETS[dataset])
    if not corpus.exclusive:
        raise typer.BadParameter("reference: exclusive-class datasets only")
    first = [corpus.labels[i] for i in corpus.train.gold.argmax(axis=1)]
    vectors = cached_vectors(REPO_ROOT / encoder, (REPO_ROOT / cache_dir).resolve())
    x_train = vectors(corpus.train.texts)
    x_test = vectors(corpus.test.texts)
    y_train = corpus.train.gold.argmax(axis=1)
    n_labels = len(corpus.labels)
    table: dict[str, dict[str, float]] = {}
    for seed in (int(x) for x in seeds.split(",")):
        keep = subset_indices(first, per_class, seed)
        for c in (float(x) for x in c_values.split(",")):
            model = LogisticRegression(C=c, max_iter=5000).fit(x_train[keep], y_train[keep])
            decided = np.eye(n_labels)[model.predict(x_test)]
            macro_f = metrics.prf_per_label(decided, corpus.test.gold).macro_f
            table.setdefault(f"C={c:g}", {})[str(seed)] = macro_f
            typer.echo(f"seed {seed} C={c:g}: test macro-F1 {macro_f:.4f}")
    summary = {
        name: {"mean": float(np.mean(list(row.values()))), "sd": float(np.std(list(row.values())))}
        for name, row in table.items()
    }
    for name, row in summary.items():
        typer.echo(f"{name}: mean {row['mean']:.4f} sd {row['sd']:.4f} over {len(table[name])}")
    command = [
        "python -m benchmarks encoders reference",
        f"--dataset {dataset} --per-class {per_class} --seeds {seeds} --c-values {c_values}",
    ]
    results = {
        "dataset": dataset,
        "per_class": per_class,
        "recipe": "frozen all-MiniLM-L6-v2, mean pooling, L2-normalised, "
        "sklearn LogisticRegression",
        "test_macro_f": table,
        "summary": summary,
    }
    out = write_results(f"encoders_reference_{dataset}_{per_class}pc", results, command)
    typer.echo(f"wrote {out}")


def cached_vectors(encoder_dir: Path, cache_dir: Path) -> Any:
    """A function texts -> vectors through the embed layer's on-disk cache (encodes misses)."""
    from textcat_kit.embeddings.layers import build_sentence_encoder

    layer = build_sentence_encoder(str(encoder_dir), cache_dir=str(cache_dir))
    layer.initialize()
    slot = layer.attrs["encoder"]

    def vectors(texts: list[str]) -> np.ndarray:
        return np.asarray(slot.cache.lookup(texts, slot.encoder.encode, slot.encoder.width))

    return vectors


NAMES = {
    "tfidf_lr": "TF-IDF + LogisticRegression (scikit-learn)",
    "bow": "bow (`textcat[_multilabel]_bow.cfg`)",
    "embed": "embedding head (`textcat[_multilabel]_embed.cfg`, frozen all-MiniLM-L6-v2)",
    "distil": "distilled bow",
    "transformer": "fine-tuned all-MiniLM-L6-v2 (`textcat[_multilabel]_transformer.cfg`)",
}


TEACHER_NAMES = {"embed": "the embedding head", "transformer": "the fine-tuned MiniLM"}


def system_name(name: str, row: dict[str, Any]) -> str:
    """The table's name of a system (the distilled row names its teacher)."""
    if name == "distil":
        return f"distilled bow (student of {TEACHER_NAMES[row.get('teacher', 'embed')]})"
    if name == "embed" and "steps" in row.get("contrastive", {}):
        steps = row["contrastive"]["steps"]
        return (
            "embedding head (`textcat_embed.cfg`, all-MiniLM-L6-v2 contrastively fine-tuned "
            f"on the training texts for {steps} steps, then frozen)"
        )
    return NAMES[name]


def distil_sentence(rows: dict[str, Any]) -> str:
    """What the distilled student gained over bow, relative to its teacher's lead (if any)."""
    student, teacher_name = rows["distil"], rows["distil"].get("teacher", "embed")
    unlabelled = f"{student.get('n_unlabelled', 0)} unlabelled training texts given to the student"
    if "bow" not in rows or teacher_name not in rows:
        return f"The distilled bow's teacher or the bow row is missing ({unlabelled})."
    bow = rows["bow"]["macro_f"]
    teacher = student.get("teacher_macro_f") or rows[teacher_name]["macro_f"]
    gain = student["macro_f"] - bow
    if teacher > bow:
        return (
            f"The distilled bow closes {100 * gain / (teacher - bow):.0f}% of the macro-F1 gap "
            f"between bow and its teacher ({unlabelled})."
        )
    return (
        f"The teacher ({TEACHER_NAMES[teacher_name]}, {teacher:.3f}) is weaker than bow "
        f"({bow:.3f}) here, so there is no gap to close; the distilled bow scores "
        f"{student['macro_f']:.3f}, {100 * gain:+.1f} points against bow ({unlabelled})."
    )


@app.command()
def report() -> None:
    """Write the tables of every ``encoders_*.json`` into docs/encoders.md (between markers)."""
    lines = []
    for path in sorted(RESULTS_DIR.glob("encoders_speed_*.json")):
        res = json.loads(path.read_text())
        rates = res["texts_per_s"]
        lines += [
            f"**Encoder throughput**, {res['dataset']} test texts ({res['n_texts']}, best of "
            f"interleaved rounds, cache off; `{res['command']}`): length-sorted batches of 128 "
            f"**{rates['length_sorted']:.0f}** texts/s, batches of 128 in input order "
            f"{rates['input_order']:.0f} texts/s"
            + (
                f", the tuned embed pipeline's `nlp.pipe` {rates['pipeline']:.0f} docs/s"
                if "pipeline" in rates
                else ""
            )
            + f"; load average {res['machine']['load_average'][0]:.0f} on 2 cores.",
            "",
        ]
    for path in sorted(RESULTS_DIR.glob("encoders_*.json")):
        if path.name.startswith(("encoders_speed_", "encoders_reference_", "encoders_step_")):
            continue
        if "_seed" in path.stem:
            continue  # other samples: seed_lines()
        res = json.loads(path.read_text())
        lines += [
            f"**{res['dataset']}**, {res['per_class']} training examples per label "
            f"({res['n_train']} train / {res['n_dev']} dev / {res['n_test']} test; "
            "commands: "
            + "; ".join(
                sorted(
                    {f"`{row.get('command', res['command'])}`" for row in res["systems"].values()}
                )
            )
            + ")",
            "",
            "| system | test macro-F1 | ECE (top label) | training s | inference docs/s |",
            "|---|---|---|---|---|",
        ]
        for name in SYSTEMS:
            row = res["systems"].get(name)
            if row is None:
                continue
            lines.append(
                f"| {system_name(name, row)} | {row['macro_f']:.3f} | {row['ece']:.3f} | "
                f"{row['train_s']:.0f} | {row['docs_per_s']:.0f} |"
            )
        rows = res["systems"]
        if "distil" in rows:
            lines += ["", distil_sentence(rows)]
        if "transformer" in rows:
            trf = rows["transformer"]
            lines.append(
                f"\nFine-tuned all-MiniLM-L6-v2: {trf['epochs']} epoch(s), "
                f"{trf['total_steps']} steps "
                f"(`{trf['overrides'].replace(str(REPO_ROOT) + '/', '')}`)."
            )
        lines.append("")
        lines += seed_lines([path])
    lines += step_time_lines() + reference_lines() + onnx_lines()
    text = DOC_PATH.read_text() if DOC_PATH.exists() else f"{START}\n{END}\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC_PATH.write_text(head + START + "\n" + "\n".join(lines) + END + tail)
    typer.echo(f"wrote {DOC_PATH}")


def seed_lines(paths: list[Path] | None = None) -> list[str]:
    """Test macro-F1 of each system over the few-shot samples (``run --seed S``): sample 0 is
    the table's row, the others come from ``encoders_<dataset>_<N>pc_seed<S>.json``
    (``paths``: the sample-0 result files; all of them if None)."""
    lines: list[str] = []
    for path in paths if paths is not None else sorted(RESULTS_DIR.glob("encoders_*pc.json")):
        others = sorted(
            RESULTS_DIR.glob(f"{path.stem}_seed*.json"),
            key=lambda p: int(p.stem.rsplit("_seed", 1)[1]),
        )
        if not others:
            continue
        runs = [(0, json.loads(path.read_text()))] + [
            (int(p.stem.rsplit("_seed", 1)[1]), json.loads(p.read_text())) for p in others
        ]
        first = runs[0][1]
        for name in SYSTEMS:
            scored = [(seed, res["systems"][name]) for seed, res in runs if name in res["systems"]]
            if len(scored) < 2:
                continue
            values = [row["macro_f"] for _, row in scored]
            commands = sorted({f"`{row['command']}`" for _, row in scored[1:]})
            lines.append(
                f"**{first['dataset']}, {first['per_class']} per label, "
                f"{system_name(name, scored[0][1])}, over samples** "
                + ", ".join(f"{seed}: {value:.3f}" for (seed, _), value in zip(scored, values))
                + f"; mean {np.mean(values):.3f}, sd {np.std(values):.3f} (test macro-F1; "
                "sample 0 is the row above, the others: " + "; ".join(commands) + ")."
            )
            lines.append("")
    return lines


def reference_lines() -> list[str]:
    """The reference recipe's per-sample figures (``encoders reference``) as a table."""
    lines: list[str] = []
    for path in sorted(RESULTS_DIR.glob("encoders_reference_*.json")):
        res = json.loads(path.read_text())
        seeds = sorted({seed for row in res["test_macro_f"].values() for seed in row}, key=int)
        lines += [
            f"**Reference recipe on the same samples**, {res['dataset']}, {res['per_class']} "
            f"per label ({res['recipe']}; `{res['command']}`): test macro-F1 of each sample "
            "(sample *s* is the one `run --per-class "
            f"{res['per_class']} --seed s` trains on).",
            "",
            "| C | " + " | ".join(f"sample {s}" for s in seeds) + " | mean (sd) |",
            "|---|" + "---|" * (len(seeds) + 1),
        ]
        for name, row in res["test_macro_f"].items():
            summary = res["summary"][name]
            lines.append(
                f"| {name[2:]} | "
                + " | ".join(f"{row[s]:.3f}" for s in seeds)
                + f" | {summary['mean']:.3f} ({summary['sd']:.3f}) |"
            )
        lines.append("")
    return lines


def decision_note(res: dict[str, Any]) -> str:
    """How the ONNX table's macro-F1 decided labels (older result files: argmax)."""
    rule = next(iter(res["pipelines"].values())).get("decision_rule")
    return f"; labels decided by the pipeline's {rule}" if rule == "decision component" else ""


def onnx_lines() -> list[str]:
    """The ONNX export of a real model (``onnx_int8_quality --model``) as a table."""
    lines: list[str] = []
    for path in sorted(RESULTS_DIR.glob("onnx_quality_*.json")):
        res = json.loads(path.read_text())
        lines += [
            f"**ONNX export of `{res['model']}`**, {res['n_test']} test texts "
            f"(`{res['command']}`; speed: {res['clock']}, {res['threads']} thread, batches of "
            f"64 over {res['n_speed_batch64']} texts and one at a time over "
            f"{res['n_speed_batch1']}; load average {res['machine']['load_average'][0]:.0f}"
            + decision_note(res)
            + "):",
            "",
            "| pipeline | test macro-F1 | max abs. difference of doc.cats | same decision "
            "| docs per CPU-s, batch 64 | docs per CPU-s, batch 1 |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in res["pipelines"].items():
            lines.append(
                f"| {name} | {row['macro_f']:.4f} | {row['max_abs_diff']:.1e} | "
                f"{row['same_decision']:.1%} | {row['docs_per_cpu_s_batch64']:.0f} | "
                f"{row['docs_per_cpu_s_batch1']:.0f} |"
            )
        lines += [
            "",
            f"int8 minus fp32 test macro-F1: {res['int8_minus_fp32_macro_f_points']:+.2f} points.",
            "",
        ]
    return lines


if __name__ == "__main__":
    app()

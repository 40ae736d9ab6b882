"""The systems of the comparison: train on a corpus, save, load, predict probabilities.

Every system reads the same ``train/dev/test.spacy`` files written by
``textcat-kit corpus`` and hands back probability matrices in the corpus's label order,
so :mod:`compare_metrics` can score them alike:

* ``bow`` / ``cnn``: this project's configs (``configs/textcat[_multilabel]_{bow,cnn}.cfg``)
  trained as ``spacy train`` trains them, then ``textcat-kit tune`` on dev (calibrator +
  decision component);
* ``quickstart``: spaCy's own ``spacy init config -p textcat[_multilabel] -o efficiency``
  config, as it comes;
* ``tfidf_lr``: scikit-learn TF-IDF (word 1-2-grams, sublinear tf) + LogisticRegression
  (one-vs-rest for multi-label), C chosen on dev;
* ``fasttext``: fastText supervised (softmax / one-vs-all), learning rate chosen on dev;
  skipped with a printed reason when the ``fasttext`` package is missing.

Fitted state is saved without pickle: spaCy pipelines with ``to_disk``, scikit-learn
models as JSON (vocabulary) + ``.npy`` arrays, fastText in its own ``.bin`` format.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SPEED_BATCH_SIZE = 1000
SEED = 0
#: Candidate settings the baselines choose from on dev (the smoke test narrows them).
TFIDF_C_GRID: tuple[float, ...] = (1.0, 4.0, 16.0, 64.0, 256.0)
FASTTEXT_LR_GRID: tuple[float, ...] = (0.1, 0.5, 1.0)


# --- the corpus ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """Texts of one split and their gold labels as an (n_docs, n_labels) 0/1 array."""

    texts: list[str]
    gold: np.ndarray


@dataclass(frozen=True)
class Corpus:
    """The three splits of a ``textcat-kit corpus`` directory, in one label order."""

    name: str
    directory: Path
    labels: list[str]
    exclusive: bool
    train: Split
    dev: Split
    test: Split

    def split_path(self, split: str) -> Path:
        return self.directory / f"{split}.spacy"


def read_split(path: Path, labels: Sequence[str] | None = None) -> tuple[Split, list[str]]:
    """Texts and gold of a ``.spacy`` file; ``labels`` default to the first doc's cats."""
    import spacy
    from spacy.tokens import DocBin

    if not path.is_file():
        raise FileNotFoundError(
            f"[E170] Corpus file {path} not found. Build it with "
            "`spacy project run data-banking77` (or data-goemotions), or pass --corpus-dir."
        )
    nlp = spacy.blank("en")
    docs = list(DocBin().from_disk(path).get_docs(nlp.vocab))
    if labels is None:
        labels = list(docs[0].cats) if docs else []
    gold = np.array([[doc.cats.get(label, 0.0) for label in labels] for doc in docs])
    return Split([doc.text for doc in docs], gold.reshape(len(docs), len(labels))), list(labels)


def read_corpus(directory: Path, name: str | None = None) -> Corpus:
    """The corpus in ``directory``; exclusive when every train doc has exactly one label."""
    train, labels = read_split(directory / "train.spacy")
    dev, _ = read_split(directory / "dev.spacy", labels)
    test, _ = read_split(directory / "test.spacy", labels)
    exclusive = bool(np.all((train.gold >= 0.5).sum(axis=1) == 1))
    return Corpus(name or directory.name, directory, labels, exclusive, train, dev, test)


def speed_texts(texts: Sequence[str], n_docs: int) -> list[str]:
    """``n_docs`` texts made by repeating ``texts`` (the inference-speed input)."""
    repeats = math.ceil(n_docs / max(len(texts), 1))
    return (list(texts) * repeats)[:n_docs]


def batches(texts: Sequence[str], size: int = SPEED_BATCH_SIZE) -> Iterator[list[str]]:
    for start in range(0, len(texts), size):
        yield list(texts[start : start + size])


def directory_size(path: Path) -> int:
    """Bytes of all files under ``path`` (or of the file ``path``)."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# --- the interface shared by the systems ---------------------------------------------------


class Predictor(Protocol):
    """A loaded model."""

    def predict(self, texts: list[str], gold: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """``{"raw": probs}``, plus ``"calibrated"`` and ``"decided"`` where the system has them.

        ``gold`` is only used by systems that call :func:`textcat_kit.evaluation.evaluate`,
        which reports its own figures next to the arrays (a cross-check).
        """
        ...

    def run(self, texts: list[str], n_process: int) -> int:
        """Full inference over ``texts`` as an application runs it; returns docs seen."""
        ...


class System(Protocol):
    """One contender of the comparison."""

    name: str
    description: str

    def available(self) -> str | None:
        """None when the system can run here, else the reason it is skipped."""
        ...

    def train(self, corpus: Corpus, workdir: Path) -> dict[str, Any]:
        """Train (and select settings on dev) into ``workdir``; return timings and settings."""
        ...

    def model_path(self, workdir: Path) -> Path:
        """What is shipped: the file or directory whose size is reported."""
        ...

    def load(self, labels: list[str], exclusive: bool, workdir: Path) -> Predictor:
        """The trained model in ``workdir``, predicting ``labels`` in this order."""
        ...


class Timer:
    """Wall-clock seconds of a ``with`` block."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


# Predictors are handed to forked workers through this global, so nothing is pickled but
# the texts going in and the arrays coming back.
_FORKED_PREDICT: Callable[[list[str]], np.ndarray] | None = None


def _forked_predict(texts: list[str]) -> np.ndarray:
    assert _FORKED_PREDICT is not None
    return _FORKED_PREDICT(texts)


def run_batches(
    predict: Callable[[list[str]], np.ndarray], texts: list[str], n_process: int
) -> int:
    """``predict`` over batches of ``texts``, in this process or in ``n_process`` forked ones."""
    global _FORKED_PREDICT
    if n_process <= 1:
        return sum(predict(batch).shape[0] for batch in batches(texts))
    _FORKED_PREDICT = predict
    try:
        # The probabilities come back to this process, as docs do from nlp.pipe.
        with multiprocessing.get_context("fork").Pool(n_process) as pool:
            return sum(probs.shape[0] for probs in pool.imap(_forked_predict, batches(texts)))
    finally:
        _FORKED_PREDICT = None


def dev_macro_f(dev_probs: np.ndarray, corpus: Corpus) -> float:
    """Dev macro-F1 used to choose a baseline's setting: argmax (exclusive) or the best
    global threshold on dev (multi-label), the same rules the comparison applies."""
    from compare_metrics import argmax_decisions
    from textcat_kit.maths.metrics import decide, prf_per_label
    from textcat_kit.maths.thresholds import best_global_threshold

    gold = corpus.dev.gold
    if corpus.exclusive:
        decided = argmax_decisions(dev_probs)
    else:
        decided = decide(dev_probs, best_global_threshold(dev_probs, gold))
    return prf_per_label(decided, gold).macro_f


# --- scikit-learn TF-IDF + logistic regression ---------------------------------------------


#: Logit of a label seen with one class only in training (probability ~1e-13 or 1 - 1e-13).
CONSTANT_LOGIT = 30.0


def _logistic_regression_from_arrays(coef: np.ndarray, intercept: np.ndarray) -> Any:
    """A fitted ``LogisticRegression`` rebuilt from its arrays (no pickle)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression()
    model.coef_ = coef
    model.intercept_ = intercept
    model.classes_ = np.arange(max(coef.shape[0], 2))
    model.n_features_in_ = coef.shape[1]
    return model


class TfidfLogRegPredictor:
    """TF-IDF transform + ``predict_proba`` (one ``LogisticRegression`` per label for OvR)."""

    def __init__(self, vectorizer: Any, models: list[Any], exclusive: bool) -> None:
        self.vectorizer = vectorizer
        self.models = models
        self.exclusive = exclusive

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        features = self.vectorizer.transform(texts)
        if self.exclusive:
            return np.asarray(self.models[0].predict_proba(features))
        # What OneVsRestClassifier.predict_proba does for a multi-label target.
        return np.array([m.predict_proba(features)[:, 1] for m in self.models]).T

    def predict(self, texts: list[str], gold: np.ndarray | None = None) -> dict[str, np.ndarray]:
        return {"raw": np.vstack([self.predict_proba(b) for b in batches(texts)])}

    def run(self, texts: list[str], n_process: int) -> int:
        return run_batches(self.predict_proba, texts, n_process)


class TfidfLogReg:
    """scikit-learn TF-IDF (word 1-2-grams, sublinear tf) + LogisticRegression, C on dev."""

    name = "tfidf_lr"
    description = "scikit-learn TF-IDF (1-2-grams, sublinear tf) + LogisticRegression"

    def __init__(self, c_grid: Sequence[float] | None = None) -> None:
        self.c_grid = tuple(c_grid or TFIDF_C_GRID)

    def available(self) -> str | None:
        return None

    def model_path(self, workdir: Path) -> Path:
        return workdir / "model"

    def _vectorizer(self, vocabulary: dict[str, int] | None = None) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, vocabulary=vocabulary)

    def _fit(self, features: Any, gold: np.ndarray, exclusive: bool, c: float) -> list[Any]:
        from sklearn.linear_model import LogisticRegression

        if exclusive:
            model = LogisticRegression(C=c, max_iter=1000)
            return [model.fit(features, gold.argmax(axis=1))]
        positive = gold >= 0.5
        models = []
        for j in range(gold.shape[1]):
            if positive[:, j].all() or not positive[:, j].any():
                # What OneVsRestClassifier does for a label with one class: a constant.
                constant = CONSTANT_LOGIT if positive[0, j] else -CONSTANT_LOGIT
                models.append(
                    _logistic_regression_from_arrays(
                        np.zeros((1, features.shape[1])), np.array([constant])
                    )
                )
                continue
            model = LogisticRegression(C=c, max_iter=1000, solver="liblinear")
            models.append(model.fit(features, positive[:, j]))
        return models

    def train(self, corpus: Corpus, workdir: Path) -> dict[str, Any]:
        with Timer() as total:
            with Timer() as vectorizing:
                vectorizer = self._vectorizer()
                train_x = vectorizer.fit_transform(corpus.train.texts)
            dev_f1: dict[float, float] = {}
            fit_s: dict[float, float] = {}
            best: list[Any] = []
            for c in self.c_grid:
                with Timer() as fitting:
                    models = self._fit(train_x, corpus.train.gold, corpus.exclusive, c)
                fit_s[c] = fitting.seconds
                predictor = TfidfLogRegPredictor(vectorizer, models, corpus.exclusive)
                dev_f1[c] = dev_macro_f(predictor.predict_proba(corpus.dev.texts), corpus)
                if dev_f1[c] == max(dev_f1.values()):
                    best, best_c = models, c
        self._save(self.model_path(workdir), vectorizer, best)
        return {
            "train_s": total.seconds,
            "fit_s": vectorizing.seconds + fit_s[best_c],
            "settings": {
                "C": best_c,
                "dev_macro_f_by_C": dev_f1,
                "selection": "dev macro-F1, "
                + ("argmax" if corpus.exclusive else "best global threshold"),
                "n_features": len(vectorizer.vocabulary_),
            },
            "command": "python benchmarks/compare.py (in-process: TfidfVectorizer(ngram_range="
            "(1, 2), sublinear_tf=True) + LogisticRegression"
            + ("(C, max_iter=1000)" if corpus.exclusive else "(C, solver='liblinear') per label")
            + f", C in {list(self.c_grid)} chosen on dev)",
        }

    def _save(self, path: Path, vectorizer: Any, models: list[Any]) -> None:
        path.mkdir(parents=True, exist_ok=True)
        vocabulary = {term: int(index) for term, index in vectorizer.vocabulary_.items()}
        (path / "vocabulary.json").write_text(json.dumps(vocabulary), encoding="utf8")
        np.save(path / "idf.npy", vectorizer.idf_)
        np.save(path / "coef.npy", np.vstack([m.coef_ for m in models]).astype(np.float32))
        np.save(path / "intercept.npy", np.concatenate([m.intercept_ for m in models]))

    def load(self, labels: list[str], exclusive: bool, workdir: Path) -> TfidfLogRegPredictor:
        path = self.model_path(workdir)
        vocabulary = json.loads((path / "vocabulary.json").read_text(encoding="utf8"))
        vectorizer = self._vectorizer(vocabulary)
        vectorizer.idf_ = np.load(path / "idf.npy", allow_pickle=False)
        coef = np.load(path / "coef.npy", allow_pickle=False).astype(np.float64)
        intercept = np.load(path / "intercept.npy", allow_pickle=False)
        if exclusive:
            models = [_logistic_regression_from_arrays(coef, intercept)]
        else:
            models = [
                _logistic_regression_from_arrays(coef[j : j + 1], intercept[j : j + 1])
                for j in range(coef.shape[0])
            ]
        return TfidfLogRegPredictor(vectorizer, models, exclusive)


# --- fastText --------------------------------------------------------------------------------

_TOKEN = re.compile(r"\w+|[^\w\s]")


def fasttext_line(text: str) -> str:
    """fastText splits on whitespace only: lowercase and split off punctuation first."""
    return " ".join(_TOKEN.findall(text.lower()))


def fasttext_label(label: str) -> str:
    return "__label__" + re.sub(r"\s+", "_", label)


class FastTextPredictor:
    def __init__(self, model: Any, labels: list[str]) -> None:
        self.model = model
        self.column = {fasttext_label(label): j for j, label in enumerate(labels)}

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        # One line at a time through the binding: in fasttext-wheel 0.9.2 with numpy 2 the
        # list form (multilinePredict) returns the top probability for every label, and
        # the single-text ``predict`` fails on ``np.array(copy=False)``.
        predict = self.model.f.predict
        out = np.zeros((len(texts), len(self.column)))
        for i, text in enumerate(texts):
            for prob, name in predict(fasttext_line(text) + "\n", -1, 0.0, "strict"):
                out[i, self.column[name]] = prob
        return np.clip(out, 0.0, 1.0)

    def predict(self, texts: list[str], gold: np.ndarray | None = None) -> dict[str, np.ndarray]:
        return {"raw": np.vstack([self.predict_proba(b) for b in batches(texts)])}

    def run(self, texts: list[str], n_process: int) -> int:
        return run_batches(self.predict_proba, texts, n_process)


class FastText:
    """fastText supervised: word 2-grams, 25 epochs, one thread (deterministic), lr on dev."""

    name = "fasttext"
    description = "fastText supervised (softmax / one-vs-all), lr chosen on dev"

    def __init__(self, lr_grid: Sequence[float] | None = None, epoch: int = 25) -> None:
        self.lr_grid = tuple(lr_grid or FASTTEXT_LR_GRID)
        self.epoch = epoch

    def available(self) -> str | None:
        try:
            import fasttext  # noqa: F401
        except ImportError:
            return "the `fasttext` package is not installed (pip install fasttext-wheel)"
        return None

    def model_path(self, workdir: Path) -> Path:
        return workdir / "model.bin"

    def _settings(self, exclusive: bool, lr: float) -> dict[str, Any]:
        return {
            "lr": lr,
            "epoch": self.epoch,
            "wordNgrams": 2,
            "dim": 100,
            "minCount": 1,
            # The default 2M hash buckets make an ~800 MB model for no gain at this size.
            "bucket": 200_000,
            "loss": "softmax" if exclusive else "ova",
            "thread": 1,
            "seed": SEED,
            "verbose": 0,
        }

    def _write(self, path: Path, split: Split, labels: list[str]) -> None:
        with path.open("w", encoding="utf8") as handle:
            for text, row in zip(split.texts, split.gold, strict=True):
                tags = " ".join(fasttext_label(labels[j]) for j in np.flatnonzero(row >= 0.5))
                handle.write(f"{tags} {fasttext_line(text)}\n")

    def train(self, corpus: Corpus, workdir: Path) -> dict[str, Any]:
        import fasttext

        workdir.mkdir(parents=True, exist_ok=True)
        train_file = workdir / "train.txt"
        with Timer() as total:
            with Timer() as writing:
                self._write(train_file, corpus.train, corpus.labels)
            dev_f1: dict[float, float] = {}
            fit_s: dict[float, float] = {}
            for lr in self.lr_grid:
                with Timer() as fitting:
                    model = fasttext.train_supervised(
                        str(train_file), **self._settings(corpus.exclusive, lr)
                    )
                fit_s[lr] = fitting.seconds
                dev_probs = FastTextPredictor(model, corpus.labels).predict(corpus.dev.texts)["raw"]
                dev_f1[lr] = dev_macro_f(dev_probs, corpus)
                if dev_f1[lr] == max(dev_f1.values()):
                    best, best_lr = model, lr
        best.save_model(str(self.model_path(workdir)))
        train_file.unlink()
        settings = self._settings(corpus.exclusive, best_lr)
        return {
            "train_s": total.seconds,
            "fit_s": writing.seconds + fit_s[best_lr],
            "settings": {**settings, "dev_macro_f_by_lr": dev_f1},
            "command": "python benchmarks/compare.py (in-process: fasttext.train_supervised("
            + ", ".join(f"{k}={v!r}" for k, v in settings.items() if k not in ("verbose", "lr"))
            + f"), lr in {list(self.lr_grid)} chosen on dev)",
        }

    def load(self, labels: list[str], exclusive: bool, workdir: Path) -> FastTextPredictor:
        import fasttext

        return FastTextPredictor(fasttext.load_model(str(self.model_path(workdir))), labels)


# --- spaCy pipelines -------------------------------------------------------------------------

OUR_COMPONENTS = ("textcat_kit_calibrator", "textcat_kit_decision")


class SpacyPredictor:
    """A spaCy pipeline; with our components it also reports calibrated scores and decisions."""

    def __init__(self, nlp: Any, labels: list[str]) -> None:
        self.nlp = nlp
        self.labels = labels
        self.extra = [name for name in OUR_COMPONENTS if name in nlp.pipe_names]

    def raw(self, texts: list[str]) -> np.ndarray:
        from textcat_kit.evaluation import cats_matrix

        with self.nlp.select_pipes(disable=self.extra):
            return cats_matrix(list(self.nlp.pipe(texts)), self.labels)

    def predict(self, texts: list[str], gold: np.ndarray | None = None) -> dict[str, np.ndarray]:
        if not self.extra or gold is None:
            return {"raw": self.raw(texts)}
        from textcat_kit.evaluation import evaluate

        gold_docs = []
        for text, row in zip(texts, gold, strict=True):
            doc = self.nlp.make_doc(text)
            doc.cats = dict(zip(self.labels, map(float, row), strict=True))
            gold_docs.append(doc)
        result = evaluate(self.nlp, gold_docs)
        columns = [result["labels"].index(label) for label in self.labels]
        calibrated = result["_probs"][:, columns]
        out = {"raw": result["_raw_probs"][:, columns], "calibrated": calibrated}
        if "textcat_kit_decision" in self.nlp.pipe_names:
            decision = self.nlp.get_pipe("textcat_kit_decision")
            out["decided"] = decision.decide(result["_probs"])[:, columns].astype(np.int64)
        self.evaluate_summary = {
            key: result[key] for key in ("macro_f", "micro_f", "coverage") if key in result
        }
        return out

    def run(self, texts: list[str], n_process: int) -> int:
        return sum(1 for _ in self.nlp.pipe(texts, n_process=n_process))


def block_torch() -> None:
    """Import spaCy as a torch-free install would: thinc imports torch whenever it is
    installed (this venv has it for the transformer variant), which adds about 200 MiB
    and a second of start-up to every spaCy process that never uses it."""
    from textcat_kit.testing.import_blocker import block_imports

    if "thinc" not in sys.modules:
        block_imports()


class SpacyPipeline:
    """A spaCy config trained as ``spacy train`` trains it; ours then ``textcat-kit tune``.

    ``config`` is ``"bow"`` / ``"cnn"`` (this project's configs) or ``"quickstart"``
    (``spacy init config -p textcat[_multilabel] -o efficiency``). Training and tuning
    run in this process through the functions the two CLI commands call (so the peak
    RSS of the phase is theirs); the equivalent command is recorded next to the time.
    ``overrides`` are config overrides (the smoke test shortens training with them);
    ``reuse_model`` skips training and tunes an existing ``model-best``.
    """

    def __init__(
        self,
        config: str,
        *,
        overrides: dict[str, Any] | None = None,
        reuse_model: Path | None = None,
        abstain_precision: float = 0.95,
    ) -> None:
        self.config = config
        self.name = config
        self.ours = config != "quickstart"
        self.description = (
            f"this project: configs/textcat[_multilabel]_{config}.cfg + textcat-kit tune"
            if self.ours
            else "spaCy quickstart: spacy init config -p textcat[_multilabel] -o efficiency"
        )
        self.overrides = dict(overrides or {})
        self.reuse_model = reuse_model
        self.abstain_precision = abstain_precision

    def available(self) -> str | None:
        return None

    def model_path(self, workdir: Path) -> Path:
        return workdir / "model-tuned" if self.ours else workdir / "train" / "model-best"

    def config_path(self, corpus: Corpus, workdir: Path) -> tuple[Path, str]:
        """The config to train and the command that makes it (empty for ours)."""
        pipe = "textcat" if corpus.exclusive else "textcat_multilabel"
        if self.ours:
            return REPO_ROOT / "configs" / f"{pipe}_{self.config}.cfg", ""
        from spacy.cli.init_config import init_config

        path = workdir / "quickstart.cfg"
        init_config(lang="en", pipeline=[pipe], optimize="efficiency").to_disk(path)
        return path, f"python -m spacy init config {_relative(str(path))} -p {pipe} -o efficiency"

    def train(self, corpus: Corpus, workdir: Path) -> dict[str, Any]:
        block_torch()
        workdir.mkdir(parents=True, exist_ok=True)
        report: dict[str, Any] = {}
        if self.reuse_model is not None:
            model_best = self.reuse_model
            report.update({"train_s": None, "command": f"reused {model_best} (not timed)"})
        else:
            from spacy.cli.train import train as spacy_train

            config, init_command = self.config_path(corpus, workdir)
            settings = {
                "paths.train": str(corpus.split_path("train")),
                "paths.dev": str(corpus.split_path("dev")),
                "system.seed": SEED,
                **self.overrides,
            }
            command = [
                "python",
                "-m",
                "spacy",
                "train",
                _relative(str(config)),
                "--output",
                _relative(str(workdir / "train")),
            ]
            for key, value in settings.items():
                command += [f"--{key}", _relative(str(value))]
            with Timer() as timer:
                spacy_train(config, workdir / "train", overrides=settings)
            model_best = workdir / "train" / "model-best"
            report.update({"train_s": timer.seconds, "command": " ".join(command)})
            if init_command:
                report["config_command"] = init_command
        if self.ours:
            from textcat_kit.tuning import tune_pipeline

            tune = [
                "textcat-kit",
                "tune",
                _relative(str(model_best)),
                _relative(str(corpus.split_path("dev"))),
                "--output-dir",
                _relative(str(self.model_path(workdir))),
            ]
            decision_config = None
            # As project.yml's tune steps: isotonic for multi-label, temperature otherwise.
            calibration = "auto" if corpus.exclusive else "isotonic"
            if corpus.exclusive:
                tune += ["--abstain-precision", str(self.abstain_precision)]
                decision_config = {"abstain_precision": self.abstain_precision}
            else:
                tune += ["--calibration", calibration]
            with Timer() as timer:
                tune_pipeline(
                    model_best,
                    corpus.split_path("dev"),
                    self.model_path(workdir),
                    calibration=calibration,
                    decision_config=decision_config,
                )
            report.update({"tune_s": timer.seconds, "tune_command": " ".join(tune)})
        report["settings"] = {"overrides": self.overrides} if self.overrides else {}
        return report

    def load(self, labels: list[str], exclusive: bool, workdir: Path) -> SpacyPredictor:
        block_torch()
        import spacy

        return SpacyPredictor(spacy.load(self.model_path(workdir)), labels)


def _relative(part: str) -> str:
    """Paths relative to the repository, so that a recorded command runs from there."""
    path = Path(part)
    if path.is_absolute() and path.is_relative_to(REPO_ROOT):
        return str(path.relative_to(REPO_ROOT))
    return part


def make_system(
    name: str, *, overrides: dict[str, Any] | None = None, reuse_model: Path | None = None
) -> System:
    """The system called ``name``: bow, cnn, quickstart, tfidf_lr or fasttext."""
    if name in ("bow", "cnn", "quickstart"):
        return SpacyPipeline(
            name, overrides=overrides, reuse_model=reuse_model if name != "quickstart" else None
        )
    if name == "tfidf_lr":
        return TfidfLogReg()
    if name == "fasttext":
        return FastText()
    raise ValueError(
        f"[E172] Unknown system {name!r}; choose from bow, cnn, quickstart, tfidf_lr, fasttext."
    )


SYSTEM_NAMES = ("bow", "cnn", "quickstart", "tfidf_lr", "fasttext")
SPACY_SYSTEMS = ("bow", "cnn", "quickstart")

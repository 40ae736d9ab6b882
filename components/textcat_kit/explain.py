"""Why did the bag-of-words model decide this? Exact n-gram contributions, and the
evaluation report's worst errors and most-confused label pairs.

A bag-of-words classifier (``textcat_kit.TextCatBOW.v1`` / ``spacy.TextCatBOW.v3``) is
linear before its output activation: the logit of label ``c`` is

    logit_c = b_c + sum over the doc's n-gram features f of value_f * W[f, c]

where ``value_f`` is the feature's value in this doc (count, binary, L2 or TF-IDF, as the
model computes it) and ``W[f, c]`` the weights of the hash buckets the n-gram's key falls
into. The decomposition is exact: the weights are read by running the model's own sparse
linear layer on one feature at a time, and the n-gram text behind each hashed key comes
from the text itself (the key of tokens ``i .. i+n-1`` is the hash the model computes for
them). For exclusive classes the softmax only sees differences of logits, so a label is
explained *against* another one (by default the runner-up; for an error, the gold label):
``value_f * (W[f, c] - W[f, other])``. Temperature scaling (``textcat_kit_calibrator``)
divides every logit by the same T, so it scales the contributions and never reorders them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import typer
from spacy.language import Language
from spacy.tokens import Doc
from thinc.api import Model

from .errors import ConfigError, Errors, TextcatKitError

#: Layers of a bag-of-words text classifier; any other layer with weights means the
#: decision is not a linear function of the n-gram features.
_BOW_LAYERS = {"extract_ngrams", "ngram_feature_values", "sparse_linear"}


@dataclass(frozen=True)
class NgramContribution:
    """One n-gram's push on a label's logit (or logit difference): ``value * weight``."""

    ngram: str
    count: int
    value: float
    weight: float
    contribution: float


@dataclass
class LabelExplanation:
    """Why ``label`` scored as it did, against ``against`` (exclusive) or alone.

    ``score = bias + sum(contribution)`` exactly (up to float32 rounding): the logit of the
    label (multi-label) or its logit minus that of ``against`` (exclusive).
    """

    label: str
    against: str | None
    probability: float
    score: float
    bias: float
    toward: list[NgramContribution] = field(default_factory=list)
    away: list[NgramContribution] = field(default_factory=list)


@dataclass
class Explanation:
    text: str
    exclusive: bool
    decided: list[str]
    probabilities: dict[str, float]
    labels: list[LabelExplanation]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_markdown(self) -> str:
        lines = [f"> {self.text}", "", f"decided: {', '.join(self.decided) or '(none)'}", ""]
        for item in self.labels:
            versus = f" vs {item.against}" if item.against else ""
            lines.append(
                f"**{item.label}**{versus}: p = {item.probability:.3f}, score {item.score:+.3f} "
                f"(bias {item.bias:+.3f})"
            )
            lines.append("")
            lines.append(f"- toward: {_ngram_list(item.toward)}")
            lines.append(f"- away: {_ngram_list(item.away)}")
            lines.append("")
        return "\n".join(lines)


def _ngram_list(items: Sequence[NgramContribution]) -> str:
    if not items:
        return "(none)"
    return ", ".join(f"`{c.ngram}` {c.contribution:+.3f}" for c in items)


@dataclass(frozen=True)
class BowParts:
    """The layers of a bag-of-words model that explain needs."""

    ngrams: Model
    values: Model | None
    linear: Model
    exclusive: bool


def bow_parts(model: Model | None, name: str = "textcat") -> BowParts:
    """Find the n-gram, feature-value and sparse linear layers, or raise E406.

    Refuses anything with a weighted layer besides the sparse linear one (ensembles, CNN,
    transformers), and a model without an output activation is treated as logistic.
    """
    if not isinstance(model, Model):  # e.g. an exported (ONNX) classifier
        raise ConfigError(Errors.E406.format(name=name, architecture=type(model).__name__))
    nodes = list(model.walk())
    names = {node.name for node in nodes}
    weighted = [node.name for node in nodes if node.param_names and node.name not in _BOW_LAYERS]
    ngrams = [node for node in nodes if node.name == "extract_ngrams"]
    linear = [node for node in nodes if node.name == "sparse_linear"]
    if weighted or len(ngrams) != 1 or len(linear) != 1:
        raise ConfigError(
            Errors.E406.format(name=name, architecture=model.name if not weighted else weighted)
        )
    values = next((node for node in nodes if node.name == "ngram_feature_values"), None)
    return BowParts(
        ngrams=ngrams[0], values=values, linear=linear[0], exclusive="softmax_activation" in names
    )


def ngram_features(
    parts: BowParts, doc: Doc
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The doc's n-gram features as the model sees them.

    Returns (n-gram texts, counts, feature values, per-feature weights (n_features,
    n_labels), bias (n_labels)). The weights of a feature are the sparse linear layer's
    output for that feature alone with value 1, minus its output for an empty doc.
    """
    ngrams = parts.ngrams
    keys, counts, lengths = ngrams.predict([doc])
    keys = np.asarray(keys, dtype=np.uint64)
    counts = np.asarray(counts, dtype=np.float32)
    values = counts
    if parts.values is not None:
        _, values, _ = parts.values.predict((keys, counts, np.asarray(lengths)))
    values = np.asarray(values, dtype=np.float32)
    texts = _key_texts(ngrams, doc)
    ngram_text = [texts.get(int(key), f"#{int(key)}") for key in keys]
    # The bow layers run on CPU (spaCy wraps them in with_cpu): NumPy arrays in and out.
    empty = parts.linear.predict(
        (np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.float32), np.zeros(1, dtype=np.int32))
    )
    bias = np.asarray(empty, dtype=np.float64)[0]
    if len(keys):
        single = parts.linear.predict(
            (keys, np.ones(len(keys), dtype=np.float32), np.ones(len(keys), dtype=np.int32))
        )
        weights = np.asarray(single, dtype=np.float64) - bias[None, :]
    else:
        weights = np.zeros((0, bias.shape[0]))
    return ngram_text, counts.astype(np.int64), values.astype(np.float64), weights, bias


def _key_texts(ngrams: Model, doc: Doc) -> dict[int, str]:
    """Hashed n-gram key -> its text (lower-cased per the model's attribute), from the doc."""
    attr = ngrams.attrs["attr"]
    unigrams = doc.to_array([attr]) if len(doc) else np.zeros(0, dtype=np.uint64)
    unigrams = np.asarray(unigrams, dtype=np.uint64).reshape(-1)
    strings = [
        doc.vocab.strings[int(h)] if int(h) in doc.vocab.strings else token.text  # type: ignore[operator]
        for h, token in zip(unigrams, doc)
    ]
    out: dict[int, str] = {}
    for i, key in enumerate(unigrams):
        out.setdefault(int(key), strings[i])
    for n in range(2, min(ngrams.attrs["ngram_size"], len(unigrams)) + 1):
        keys = np.asarray(ngrams.ops.ngrams(n, unigrams), dtype=np.uint64)  # type: ignore[arg-type]
        for i, key in enumerate(keys):
            out.setdefault(int(key), " ".join(strings[i : i + n]))
    return out


def _textcat(nlp: Language) -> tuple[str, Any]:
    from .evaluation import find_textcat

    return find_textcat(nlp)


def _decided(doc: Doc, labels: Sequence[str], exclusive: bool) -> list[str]:
    if Doc.has_extension("decided_labels"):
        decided = doc._.decided_labels
        if decided is not None:
            return list(decided)
    if exclusive:
        return [max(labels, key=lambda label: doc.cats.get(label, 0.0))] if labels else []
    return [label for label in labels if doc.cats.get(label, 0.0) >= 0.5]


def explain(
    nlp: Language,
    text: str,
    *,
    labels: Sequence[str] | None = None,
    against: str | None = None,
    top_k: int = 10,
) -> Explanation:
    """Explain the decision of ``nlp`` on ``text`` (module docstring).

    ``labels``: the labels to explain (default: the decided ones; the top label when
    nothing was decided). ``against`` (exclusive only): explain each label against this
    one instead of the runner-up. ``top_k`` n-grams are listed per direction.
    """
    name, textcat = _textcat(nlp)
    parts = bow_parts(getattr(textcat, "model", None), name)
    all_labels = list(textcat.labels)
    for label in list(labels or []) + ([against] if against else []):
        if label not in all_labels:
            raise ConfigError(Errors.E407.format(label=label, labels=", ".join(all_labels)))
    doc = nlp(text)
    probabilities = {label: float(doc.cats.get(label, 0.0)) for label in all_labels}
    decided = _decided(doc, all_labels, parts.exclusive)
    wanted = list(labels) if labels else (decided or [max(probabilities, key=probabilities.get)])  # type: ignore[arg-type]
    ngram_text, counts, values, weights, bias = ngram_features(parts, nlp.make_doc(text))
    explained = []
    for label in wanted:
        c = all_labels.index(label)
        other: str | None = None
        column = weights[:, c].copy()
        b = float(bias[c])
        if parts.exclusive and len(all_labels) > 1:
            if against is not None and against != label:
                other = against
            else:
                ranked = sorted(all_labels, key=lambda lb: -probabilities[lb])
                other = next(lb for lb in ranked if lb != label)
            o = all_labels.index(other)
            column -= weights[:, o]
            b -= float(bias[o])
        contributions = values * column
        explained.append(
            LabelExplanation(
                label=label,
                against=other,
                probability=probabilities[label],
                score=float(b + contributions.sum()),
                bias=b,
                toward=_top(ngram_text, counts, values, column, contributions, top_k, True),
                away=_top(ngram_text, counts, values, column, contributions, top_k, False),
            )
        )
    return Explanation(
        text=text,
        exclusive=parts.exclusive,
        decided=decided,
        probabilities=probabilities,
        labels=explained,
    )


def _top(
    texts: list[str],
    counts: np.ndarray,
    values: np.ndarray,
    weights: np.ndarray,
    contributions: np.ndarray,
    k: int,
    positive: bool,
) -> list[NgramContribution]:
    order = np.argsort(-contributions if positive else contributions, kind="stable")
    out = []
    for i in order[:k]:
        if (contributions[i] > 0) != positive or contributions[i] == 0:
            break
        out.append(
            NgramContribution(
                ngram=texts[i],
                count=int(counts[i]),
                value=round(float(values[i]), 6),
                weight=round(float(weights[i]), 6),
                contribution=round(float(contributions[i]), 6),
            )
        )
    return out


def raw_logits(nlp: Language, text: str) -> np.ndarray:
    """The bow model's logits for ``text``, recomputed from its features (for checks)."""
    name, textcat = _textcat(nlp)
    parts = bow_parts(getattr(textcat, "model", None), name)
    _, _, values, weights, bias = ngram_features(parts, nlp.make_doc(text))
    return bias + values @ weights


# --- Markdown sections for the evaluation report -------------------------------------


def _cell(text: str, limit: int = 100) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def worst_errors_markdown(
    nlp: Language,
    texts: Sequence[str],
    gold: np.ndarray,
    probs: np.ndarray,
    labels: Sequence[str],
    exclusive: bool,
    *,
    n: int = 10,
    top_k: int = 4,
) -> str:
    """ "## Worst errors": the most confident wrong decisions, each with the n-grams that
    pushed toward the wrong label (against the gold one) and away from it.

    Exclusive: docs whose argmax is not gold, by the probability of the argmax. Multi-label:
    (doc, label) pairs by ``|p - gold|`` among the wrong ones at 0.5. Without a bow model
    the section lists the errors without n-grams.
    """
    positive = np.asarray(gold) >= 0.5
    rows: list[tuple[float, int, str, str | None]] = []
    if exclusive:
        pred = probs.argmax(axis=1)
        gold_idx = positive.argmax(axis=1)
        for i in np.flatnonzero(pred != gold_idx):
            rows.append((float(probs[i, pred[i]]), int(i), labels[pred[i]], labels[gold_idx[i]]))
    else:
        wrong = (probs >= 0.5) != positive
        for i, j in zip(*np.nonzero(wrong)):
            p = float(probs[i, j])
            rows.append((abs(p - float(positive[i, j])), int(i), labels[j], None))
    rows.sort(key=lambda row: (-row[0], row[1]))
    try:
        name, textcat = _textcat(nlp)
        bow_parts(getattr(textcat, "model", None), name)
        can_explain = True
    except TextcatKitError:
        can_explain = False
    lines = ["## Worst errors", ""]
    if not rows:
        return "\n".join(lines + ["No errors.", ""])
    if can_explain:
        lines += [
            "Most confident wrong decisions; n-grams with their exact contribution to the "
            "logit (exclusive: of the predicted label minus the gold label's; multi-label: "
            "of the label).",
            "",
        ]
    lines += ["| text | gold | predicted | p | toward | away |", "|---|---|---|---|---|---|"]
    for score, i, label, gold_label in rows[:n]:
        given = ", ".join(labels[j] for j in np.flatnonzero(positive[i])) or "(none)"
        if exclusive:
            predicted, p = label, score
        else:
            on = probs[i, labels.index(label)] >= 0.5
            predicted = f"{'+' if on else '-'}{label}"
            p = float(probs[i, labels.index(label)])
        toward = away = ""
        if can_explain:
            explanation = explain(
                nlp, texts[i], labels=[label], against=gold_label, top_k=top_k
            ).labels[0]
            toward, away = _ngram_list(explanation.toward), _ngram_list(explanation.away)
            if not exclusive and not on:
                toward, away = away, toward  # a missed label: what pushed it down
        lines.append(f"| {_cell(texts[i])} | {given} | {predicted} | {p:.3f} | {toward} | {away} |")
    return "\n".join(lines) + "\n"


def confused_pairs(
    gold: np.ndarray, probs: np.ndarray, labels: Sequence[str], exclusive: bool
) -> dict[tuple[int, int], list[int]]:
    """(gold label, wrongly decided label) -> the docs where it happened.

    Exclusive: the argmax is ``b`` while the gold label is ``a``. Multi-label: ``b`` was
    decided (p >= 0.5) without being gold, on a doc whose gold labels include ``a``.
    """
    positive = np.asarray(gold) >= 0.5
    pairs: dict[tuple[int, int], list[int]] = {}
    if exclusive:
        pred = probs.argmax(axis=1)
        gold_idx = positive.argmax(axis=1)
        for i in np.flatnonzero(pred != gold_idx):
            pairs.setdefault((int(gold_idx[i]), int(pred[i])), []).append(int(i))
        return pairs
    decided = probs >= 0.5
    for i in range(len(probs)):
        for b in np.flatnonzero(decided[i] & ~positive[i]):
            for a in np.flatnonzero(positive[i]):
                pairs.setdefault((int(a), int(b)), []).append(i)
    return pairs


def confused_pairs_markdown(
    texts: Sequence[str],
    gold: np.ndarray,
    probs: np.ndarray,
    labels: Sequence[str],
    exclusive: bool,
    *,
    pairs_per_label: int = 3,
    examples: int = 2,
    max_labels: int = 30,
) -> str:
    """ "## Most confused pairs": per gold label (most errors first), the labels it was
    mistaken for, how often, and example texts."""
    pairs = confused_pairs(gold, probs, labels, exclusive)
    lines = ["## Most confused pairs", ""]
    if not pairs:
        return "\n".join(lines + ["No confusions.", ""])
    by_label: dict[int, list[tuple[int, list[int]]]] = {}
    for (a, b), docs in pairs.items():
        by_label.setdefault(a, []).append((b, docs))
    order = sorted(by_label, key=lambda a: (-sum(len(d) for _, d in by_label[a]), labels[a]))
    lines += [
        "Per gold label: the labels decided instead (exclusive) or as well (multi-label), "
        "with examples.",
        "",
        "| gold | confused with | n | examples |",
        "|---|---|---|---|",
    ]
    for a in order[:max_labels]:
        ranked = sorted(by_label[a], key=lambda item: (-len(item[1]), labels[item[0]]))
        for b, docs in ranked[:pairs_per_label]:
            shown = "<br>".join(f"“{_cell(texts[i], 80)}”" for i in docs[:examples])
            lines.append(f"| {labels[a]} | {labels[b]} | {len(docs)} | {shown} |")
    if len(order) > max_labels:
        lines.append(f"\n... {len(order) - max_labels} more labels with confusions.")
    return "\n".join(lines) + "\n"


def error_analysis_markdown(
    nlp: Language,
    texts: Sequence[str],
    gold: np.ndarray,
    probs: np.ndarray,
    labels: Sequence[str],
    exclusive: bool,
) -> str:
    """The evaluation report's error analysis: worst errors (with n-grams for bow models)
    and, per label, the most confused pairs with example texts. Multi-label decisions are
    taken at 0.5 here."""
    return (
        worst_errors_markdown(nlp, texts, gold, probs, labels, exclusive)
        + "\n"
        + confused_pairs_markdown(texts, gold, probs, labels, exclusive)
    )


def explain_command(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name."),
    text: str = typer.Argument(..., help="The text to explain."),
    label: list[str] = typer.Option(
        [], "--label", "-l", help="Label(s) to explain (default: the decided ones)."
    ),
    against: str | None = typer.Option(
        None, "--against", help="Exclusive: explain against this label, not the runner-up."
    ),
    top_k: int = typer.Option(10, "--top-k", help="N-grams listed per direction."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of Markdown."),
) -> None:
    """The n-grams that pushed a text toward and away from its labels (bow models, exact)."""
    import spacy
    import srsly

    try:
        nlp = spacy.load(model)
        result = explain(nlp, text, labels=label or None, against=against, top_k=top_k)
    except TextcatKitError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(code=1) from None
    typer.echo(srsly.json_dumps(result.to_dict(), indent=2) if as_json else result.to_markdown())

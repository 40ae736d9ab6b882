"""The reference profile: what the pipeline's outputs look like on held-out data.

Monitoring without labels compares what the model says now with what it said on data
whose quality we know. The profile holds, for a held-out set (the dev split that
``textcat-kit tune`` used, with cross-fitted calibrated probabilities):

* the predicted-label counts (decided labels, plus one bucket for abstained / no label);
* a sample of top-label confidences (for the Kolmogorov–Smirnov test and the plots);
* the abstain rate;
* the expected accuracy and expected macro-F1 (CBPE) and, since the held-out set has
  labels, the realised accuracy and macro-F1 next to them;
* the label priors the calibrated probabilities stand for (their mean per label), which
  the monitor needs to re-weight a window's probabilities to its own label mix
  (:mod:`.prior_shift`).

It is saved as ``monitor_reference.json`` in the pipeline directory, so it travels with
the pipeline (``textcat-kit package`` copies the directory) and ``serve`` / ``monitor``
find it without an extra argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import srsly

from ..errors import ConfigError, Errors
from . import prior_shift, stats

PROFILE_FILE = "monitor_reference.json"
PROFILE_VERSION = 1
ABSTAINED = "(abstained)"
"""Category of docs without a decided label (exclusive: abstained; multi-label: none)."""
NO_LABEL = "(no label)"
MAX_CONFIDENCES = 20000


@dataclass
class ReferenceProfile:
    """Summary of the pipeline's outputs on held-out data (see module docstring)."""

    labels: list[str]
    exclusive: bool
    n_docs: int
    category_counts: list[int]
    """Counts of ``categories`` (labels, then the abstained / no-label bucket)."""
    confidences: list[float]
    abstain_rate: float
    expected_accuracy: float
    expected_macro_f1: float
    observed_accuracy: float | None = None
    observed_macro_f1: float | None = None
    source: str = ""
    version: int = PROFILE_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    label_prior: list[float] | None = None
    """Mean calibrated probability per label on the reference (see :mod:`.prior_shift`);
    ``None`` in profiles written before it existed: the monitor then cannot correct for a
    label-prior shift and says so in its report."""

    @property
    def empty_category(self) -> str:
        return ABSTAINED if self.exclusive else NO_LABEL

    @property
    def categories(self) -> list[str]:
        return [*self.labels, self.empty_category]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | str = "<profile>") -> ReferenceProfile:
        try:
            if int(data["version"]) != PROFILE_VERSION:
                raise ValueError(f"version {data['version']}, expected {PROFILE_VERSION}")
            profile = cls(
                labels=[str(x) for x in data["labels"]],
                exclusive=bool(data["exclusive"]),
                n_docs=int(data["n_docs"]),
                category_counts=[int(x) for x in data["category_counts"]],
                confidences=[float(x) for x in data["confidences"]],
                abstain_rate=float(data["abstain_rate"]),
                expected_accuracy=float(data["expected_accuracy"]),
                expected_macro_f1=float(data["expected_macro_f1"]),
                observed_accuracy=data.get("observed_accuracy"),
                observed_macro_f1=data.get("observed_macro_f1"),
                source=str(data.get("source", "")),
                extra=dict(data.get("extra", {})),
                label_prior=(
                    None
                    if data.get("label_prior") is None
                    else [float(x) for x in data["label_prior"]]
                ),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(Errors.E311.format(path=path, detail=repr(err))) from None
        if len(profile.category_counts) != len(profile.labels) + 1 or not profile.confidences:
            raise ConfigError(
                Errors.E311.format(path=path, detail="counts do not match the labels")
            )
        prior = profile.label_prior
        if prior is not None and (
            len(prior) != len(profile.labels) or not all(0.0 <= x <= 1.0 for x in prior)
        ):
            raise ConfigError(
                Errors.E311.format(
                    path=path, detail="label_prior needs one value in [0, 1] per label"
                )
            )
        return profile


def decided_matrix(decided: Sequence[Sequence[str]], labels: Sequence[str]) -> np.ndarray:
    """0/1 matrix of decided label lists in ``labels`` order."""
    index = {label: j for j, label in enumerate(labels)}
    out = np.zeros((len(decided), len(labels)), dtype=bool)
    for i, doc_labels in enumerate(decided):
        for label in doc_labels:
            out[i, index[label]] = True
    return out


def category_counts(decided: np.ndarray) -> np.ndarray:
    """Counts per label plus the count of docs with no decided label (last entry)."""
    decided = np.asarray(decided, dtype=bool)
    return np.concatenate([decided.sum(axis=0), [int((~decided.any(axis=1)).sum())]]).astype(
        np.int64
    )


def build_reference_profile(
    probs: np.ndarray,
    *,
    labels: Sequence[str],
    exclusive: bool,
    decided: np.ndarray,
    gold: np.ndarray | None = None,
    source: str = "",
    seed: int = 0,
) -> ReferenceProfile:
    """Profile of calibrated ``probs`` (n_docs, n_labels) and 0/1 ``decided`` decisions.

    ``gold`` (0/1, same shape) adds the realised accuracy / macro-F1 of the held-out set,
    which lets the report show how close the label-free estimates were where labels exist.
    Pass out-of-fold (cross-fitted) probabilities when the calibrator was fitted on the same
    data, as ``textcat-kit tune`` does; otherwise the estimates are slightly optimistic.
    """
    probs = np.asarray(probs, dtype=np.float64)
    decided = np.asarray(decided, dtype=bool)
    n = probs.shape[0]
    if n == 0:
        raise ConfigError(Errors.E313.format(source=source or "reference", n=0, minimum=1))
    confidences = probs.max(axis=1)
    if confidences.size > MAX_CONFIDENCES:
        rng = np.random.default_rng(seed)
        confidences = rng.choice(confidences, MAX_CONFIDENCES, replace=False)
    counts = category_counts(decided)
    observed_accuracy = observed_f1 = None
    if gold is not None:
        gold = np.asarray(gold) >= 0.5
        if exclusive:
            observed_accuracy = float(
                (probs.argmax(axis=1) == np.asarray(gold, dtype=float).argmax(axis=1)).mean()
            )
        else:
            observed_accuracy = float((decided == gold).mean())
        observed_f1 = stats.realised_macro_f1(decided, gold)
    return ReferenceProfile(
        labels=list(labels),
        exclusive=exclusive,
        n_docs=n,
        category_counts=counts.tolist(),
        confidences=[round(float(c), 6) for c in confidences],
        abstain_rate=float(counts[-1] / n),
        expected_accuracy=stats.expected_accuracy(
            probs, exclusive=exclusive, decided=decided
        ).value,
        expected_macro_f1=stats.expected_macro_f1(
            probs, decided, exclusive=exclusive, n_draws=50, seed=seed
        ).value,
        observed_accuracy=observed_accuracy,
        observed_macro_f1=observed_f1,
        source=source,
        label_prior=[
            round(float(x), 8) for x in prior_shift.reference_prior(probs, exclusive=exclusive)
        ],
    )


def write_reference_profile(
    model_dir: Path | str, profile: ReferenceProfile, *, overwrite: bool = False
) -> Path:
    """Write ``profile`` as ``monitor_reference.json`` into the pipeline directory.

    An existing profile is replaced only with ``overwrite`` (E023 otherwise); the file is
    written beside its target and moved into place, so a reader never sees half of it.
    """
    from ..safe_write import atomic_file

    path = Path(model_dir) / PROFILE_FILE
    with atomic_file(path, overwrite=overwrite) as tmp:
        srsly.write_json(tmp, profile.to_dict())
    return path


def read_reference_profile(model_dir: Path | str) -> ReferenceProfile:
    """Read the profile saved with a pipeline directory (E310 when there is none)."""
    path = Path(model_dir) / PROFILE_FILE
    if not path.is_file():
        raise ConfigError(Errors.E310.format(path=model_dir, file=PROFILE_FILE))
    try:
        data = srsly.read_json(path)
    except ValueError as err:
        raise ConfigError(Errors.E311.format(path=path, detail=str(err))) from None
    return ReferenceProfile.from_dict(data, path)

"""Post-hoc probability calibration: temperature scaling, Platt scaling and isotonic regression.

Two layers, in the style of ``sklearn.calibration``:

* small pure functions (``fit_temperature`` / ``apply_temperature``, ``fit_platt`` /
  ``apply_platt``, ``fit_isotonic`` / ``apply_isotonic``) that hold the mathematics and are
  tested on their own;
* calibrator objects (:class:`TemperatureScaling` for exclusive tasks,
  :class:`PerLabelCalibration` for multi-label tasks) whose constructor takes settings
  only, whose ``fit`` sets fitted state with a trailing underscore and returns ``self``,
  and whose whole state round-trips through ``to_dict`` / ``from_dict`` as plain JSON
  (floats and lists: no pickle, and applying a fitted calibrator needs no scikit-learn
  object). :func:`calibrator_from_dict` restores either kind from the ``"method"`` key.

Fit calibrators on held-out data (the dev set), never on the data the classifier was
trained on: training-set scores are over-confident and the calibrator would learn that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError, DataError, Errors
from .validation import (
    binarize,
    check_choice,
    check_probs,
    check_probs_gold,
    check_range,
    check_scores_targets,
)
from .validation import gold_index as gold_indices

# SciPy and scikit-learn are imported inside the functions that fit: applying a fitted
# calibrator needs NumPy only, so loading a tuned pipeline stays light (spacy.load).

#: Probabilities are clipped to [PROB_EPS, 1 - PROB_EPS] before taking logs / logits.
PROB_EPS = 1e-12

PerLabelMethod = Literal["platt", "isotonic"]
PER_LABEL_METHODS: tuple[str, ...] = ("platt", "isotonic")
CALIBRATION_METHODS: tuple[str, ...] = ("temperature", *PER_LABEL_METHODS)


# --- temperature scaling -------------------------------------------------------------------


def _log_probs(probs: np.ndarray) -> np.ndarray:
    """Log of clipped probabilities: usable as logits because softmax is shift-invariant."""
    return np.log(np.clip(probs, PROB_EPS, 1.0))


def _temperature_nll(logits: np.ndarray, gold: np.ndarray, temperature: float) -> float:
    """Mean categorical NLL of ``gold`` (indices) under ``softmax(logits / temperature)``."""
    from scipy.special import log_softmax

    log_p = log_softmax(logits / temperature, axis=1)
    return float(-np.mean(log_p[np.arange(logits.shape[0]), gold]))


def fit_temperature(
    probs: np.ndarray,
    gold_index: np.ndarray,
    min_temperature: float = 0.05,
    max_temperature: float = 20.0,
) -> float:
    """The temperature T > 0 that minimises the NLL of ``softmax(log(probs) / T)``.

    ``probs`` are (n_docs, n_labels) softmax outputs and ``gold_index`` the (n_docs,)
    index of each doc's gold label. The search is a bounded Brent search on log T: the
    NLL is convex in 1/T, hence unimodal in log T, and the log scale treats "twice as
    sharp" and "twice as flat" alike. T > 1 softens over-confident models, T < 1 sharpens
    under-confident ones; the argmax never changes.
    """
    probs = check_probs(probs)
    index = np.asarray(gold_index)
    if index.shape != (probs.shape[0],) or not np.issubdtype(index.dtype, np.integer):
        raise DataError(
            Errors.E151.format(
                name="gold_index",
                shape=index.shape,
                other="probs",
                other_shape=probs.shape,
                and_labels=" (one integer label index per doc)",
            )
        )
    if index.min() < 0 or index.max() >= probs.shape[1]:
        raise DataError(
            Errors.E154.format(
                name="gold_index",
                value=f"{int(index.min())}..{int(index.max())}",
                rule=f"label indices must be in [0, {probs.shape[1] - 1}]",
            )
        )
    check_range(min_temperature, "min_temperature", 0.0, max_temperature, low_open=True)
    from scipy.optimize import minimize_scalar

    logits = _log_probs(probs)
    result = minimize_scalar(
        lambda log_t: _temperature_nll(logits, index, float(np.exp(log_t))),
        bounds=(np.log(min_temperature), np.log(max_temperature)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(result.x))


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(probs) / temperature)`` row-wise: rescaled probabilities, same argmax."""
    check_range(temperature, "temperature", 0.0, np.inf, low_open=True)
    return _temperature_softmax(check_probs(probs), temperature)


def _temperature_softmax(probs: np.ndarray, temperature: float) -> np.ndarray:
    """:func:`apply_temperature` on validated input; this runs on every batch at inference.

    log and exp run in float32, which NumPy vectorises on AVX2 (float64 log/exp are 3x the
    time there); the result is normalised in float64, so rows sum to 1 to float64 precision
    and values keep float32's ~7 digits, as many as the classifier's own scores have. A row
    whose argmax float32 rounding changed (two near-equal top scores) is recomputed in
    float64, so the argmax promise holds exactly.
    """
    # Cast first: max(cast(x), cast(eps)) == cast(max(x, eps)) (rounding is monotone).
    scaled = np.log(np.maximum(probs.astype(np.float32), np.float32(PROB_EPS)))
    scaled *= np.float32(1.0 / temperature)
    return _softmax_keeping_argmax(
        scaled, probs.argmax(axis=1), lambda rows: _log_probs(probs[rows]) / temperature
    )


def _softmax_keeping_argmax(
    scaled: np.ndarray, top: np.ndarray, exact_logits: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Row-wise softmax of the float32 logits ``scaled`` (already divided by the
    temperature), normalised in float64, whose argmax must be ``top``.

    ``top`` is an argmax of ``scaled`` (the callers' logits are monotone in what ``top`` was
    taken from), so ``scaled[row, top]`` is the row maximum without a reduction over the
    row. A row whose argmax float32 rounding moved is recomputed in float64 from
    ``exact_logits(rows)``, so the argmax promise holds exactly.
    """
    rows = np.arange(scaled.shape[0])
    scaled -= scaled[rows, top][:, None]
    np.exp(scaled, out=scaled)
    calibrated = scaled.astype(np.float64)
    calibrated /= calibrated.sum(axis=1, keepdims=True)
    changed = np.flatnonzero(calibrated.argmax(axis=1) != top)
    if changed.size:
        from scipy.special import softmax

        calibrated[changed] = softmax(exact_logits(changed), axis=1)
    return calibrated


# --- Platt scaling -------------------------------------------------------------------------


def _platt_targets(y: np.ndarray) -> np.ndarray:
    """Platt's (1999) smoothed targets: positives (N+ + 1)/(N+ + 2), negatives 1/(N- + 2).

    The smoothing is a Bayesian prior that keeps the fit finite on separable data. Soft
    gold values interpolate linearly between the two targets (0/1 gold gives Platt's).
    """
    n_pos = float(np.sum(binarize(y)))
    n_neg = float(y.shape[0] - n_pos)
    positive_target = (n_pos + 1.0) / (n_pos + 2.0)
    negative_target = 1.0 / (n_neg + 2.0)
    return np.asarray(y * positive_target + (1.0 - y) * negative_target)


def fit_platt(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope ``a`` and intercept ``b`` of ``p = sigmoid(a * logit(score) + b)``.

    A logistic regression of Platt's smoothed targets on the logit of the score (so
    ``a=1, b=0`` is the identity map). The slope is constrained to ``a >= 0``: a
    calibrator must not reverse the ranking of the scores, so an anti-correlated label
    gets a constant (its smoothed base rate) rather than a flipped classifier.
    """
    from scipy.optimize import minimize
    from scipy.special import expit, logit

    scores, y = check_scores_targets(scores, y)
    features = logit(np.clip(scores, PROB_EPS, 1.0 - PROB_EPS))
    targets = _platt_targets(y)

    def loss_and_grad(params: np.ndarray) -> tuple[float, np.ndarray]:
        z = params[0] * features + params[1]
        # log(1 + e^z) - t z is the cross-entropy of sigmoid(z) against target t.
        loss = float(np.sum(np.logaddexp(0.0, z) - targets * z))
        residual = expit(z) - targets
        return loss, np.array([np.dot(residual, features), np.sum(residual)])

    result = minimize(
        loss_and_grad,
        x0=np.array([1.0, 0.0]),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, None), (None, None)],
    )
    return float(result.x[0]), float(result.x[1])


def apply_platt(scores: np.ndarray, a: float, b: float) -> np.ndarray:
    """``sigmoid(a * logit(score) + b)`` element-wise (any shape)."""
    from scipy.special import expit, logit

    clipped = np.clip(np.asarray(scores, dtype=np.float64), PROB_EPS, 1.0 - PROB_EPS)
    return np.asarray(expit(a * logit(clipped) + b))


# --- isotonic regression -------------------------------------------------------------------


def fit_isotonic(
    scores: np.ndarray, y: np.ndarray, margin: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Knots ``(x_knots, y_knots)`` of the increasing step-and-ramp map fitted to ``y``.

    Fitted with ``sklearn.isotonic.IsotonicRegression`` (increasing, output in [0, 1]),
    then stored as plain arrays: :func:`apply_isotonic` interpolates linearly between
    knots and clips outside them, which is exactly what the sklearn object would predict
    with ``out_of_bounds="clip"``.

    The outputs are then clipped to ``[margin, 1 - margin]``. Isotonic regression returns
    exact 0 or 1 on pure runs of negatives or positives, which makes log loss infinite on
    the first counter-example; ``margin`` defaults to ``1 / (n + 2)``, Laplace's rule of
    succession for a run as long as the whole data set, i.e. the least extreme value the
    data cannot rule out. Clipping keeps the map increasing. Pass ``margin=0`` to keep
    the raw isotonic fit.
    """
    scores, y = check_scores_targets(scores, y)
    if margin is None:
        margin = 1.0 / (scores.shape[0] + 2.0)
    margin = check_range(margin, "margin", 0.0, 0.5)
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    model.fit(scores, y)
    x_knots = np.asarray(model.X_thresholds_, dtype=np.float64)
    y_knots = np.clip(np.asarray(model.y_thresholds_, dtype=np.float64), margin, 1.0 - margin)
    return x_knots, y_knots


def apply_isotonic(scores: np.ndarray, x_knots: np.ndarray, y_knots: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation through the knots, constant beyond the end knots."""
    x_knots = np.asarray(x_knots, dtype=np.float64)
    y_knots = np.asarray(y_knots, dtype=np.float64)
    if x_knots.ndim != 1 or x_knots.shape != y_knots.shape or x_knots.size == 0:
        raise ConfigError(
            Errors.E151.format(
                name="x_knots",
                shape=x_knots.shape,
                other="y_knots",
                other_shape=y_knots.shape,
                and_labels=" (two non-empty 1-D arrays of knots)",
            )
        )
    return np.interp(np.asarray(scores, dtype=np.float64), x_knots, y_knots)


# --- calibrator objects --------------------------------------------------------------------


def _not_fitted(calibrator: object, what: str) -> ConfigError:
    name = type(calibrator).__name__
    return ConfigError(Errors.E011.format(name=name, what=what))


def _check_n_labels(probs: np.ndarray, n_fitted: int) -> None:
    if probs.shape[1] != n_fitted:
        raise DataError(
            Errors.E156.format(name="probs", n_labels=probs.shape[1], n_fitted=n_fitted)
        )


def _check_method(data: dict[str, Any], expected: tuple[str, ...]) -> str:
    method = str(data.get("method"))
    return check_choice(method, "calibration method", expected)


def temperature_softmax_from_logits(logits: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(logits / temperature)`` row-wise, in float64 rows that sum to 1.

    What :func:`apply_temperature` gives on ``softmax(logits)`` (softmax is shift-invariant,
    so ``log(softmax(z)) / T`` and ``z / T`` have the same softmax), for a classifier whose
    logits are at hand: one softmax instead of a softmax, a log and a second softmax. The
    numerics are :func:`_temperature_softmax`'s (float32 exp, float64 normalisation); the
    two agree to about 1e-7. The argmax of the logits is kept exactly.
    """
    check_range(temperature, "temperature", 0.0, np.inf, low_open=True)
    scaled = np.asarray(logits, dtype=np.float32) * np.float32(1.0 / temperature)
    if scaled.size == 0:
        return scaled.astype(np.float64)
    return _softmax_keeping_argmax(
        scaled,
        scaled.argmax(axis=1),
        lambda rows: np.asarray(logits, dtype=np.float64)[rows] / temperature,
    )


class TemperatureScaling:
    """Temperature scaling for exclusive (softmax) classifiers (Guo et al., 2017).

    One parameter for all labels, so it needs little data, cannot overfit rare labels and
    never changes the argmax (accuracy is unchanged; only confidence moves).
    """

    method = "temperature"

    def __init__(self, min_temperature: float = 0.05, max_temperature: float = 20.0) -> None:
        self.min_temperature = min_temperature
        self.max_temperature = max_temperature

    def fit(self, probs: np.ndarray, gold: np.ndarray) -> TemperatureScaling:
        """Fit the temperature on (n_docs, n_labels) softmax ``probs`` and one-hot ``gold``."""
        probs, gold = check_probs_gold(probs, gold)
        self.temperature_ = fit_temperature(
            probs, gold_indices(gold), self.min_temperature, self.max_temperature
        )
        self.n_labels_ = probs.shape[1]
        return self

    def transform(self, probs: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (rows still sum to 1, argmax unchanged)."""
        if not hasattr(self, "temperature_"):
            raise _not_fitted(self, "temperature")
        probs = check_probs(probs)
        _check_n_labels(probs, self.n_labels_)
        return _temperature_softmax(probs, self.temperature_)

    def transform_logits(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities from the classifier's logits (the softmax's inputs):
        :meth:`transform` of ``softmax(logits)``, without computing that softmax."""
        if not hasattr(self, "temperature_"):
            raise _not_fitted(self, "temperature")
        _check_n_labels(logits, self.n_labels_)
        return temperature_softmax_from_logits(logits, self.temperature_)

    def to_dict(self) -> dict[str, Any]:
        """Settings and fitted state as JSON-safe values."""
        if not hasattr(self, "temperature_"):
            raise _not_fitted(self, "temperature")
        return {
            "method": self.method,
            "min_temperature": float(self.min_temperature),
            "max_temperature": float(self.max_temperature),
            "n_labels": int(self.n_labels_),
            "temperature": float(self.temperature_),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemperatureScaling:
        """Restore a fitted calibrator from :meth:`to_dict` output."""
        _check_method(data, (cls.method,))
        calibrator = cls(float(data["min_temperature"]), float(data["max_temperature"]))
        calibrator.temperature_ = float(data["temperature"])
        calibrator.n_labels_ = int(data["n_labels"])
        return calibrator


class PerLabelCalibration:
    """One binary calibrator per label (column) for multi-label classifiers.

    ``method="platt"`` (two parameters per label, smooth, fine with a few dozen
    positives) or ``"isotonic"`` (non-parametric, needs a few hundred examples of each
    class to beat Platt). A label with fewer than ``min_positives`` positives or
    ``min_negatives`` negatives (default: the same as ``min_positives``) keeps the
    identity map: fitting on a handful of positives would replace a usable score with
    noise. ``status_`` says per label whether it was fitted or why not, and
    ``fitted_mask_`` is the same as a boolean array.
    """

    def __init__(
        self,
        method: PerLabelMethod = "platt",
        min_positives: int = 10,
        min_negatives: int | None = None,
    ) -> None:
        self.method = method
        self.min_positives = min_positives
        self.min_negatives = min_negatives

    def fit(
        self, probs: np.ndarray, gold: np.ndarray, labels: Sequence[str] | None = None
    ) -> PerLabelCalibration:
        """Fit each column of ``probs`` against the same column of ``gold`` (>= 0.5 positive).

        ``labels`` (optional, one name per column) are only recorded for the state and
        messages; columns are matched by position.
        """
        check_choice(self.method, "calibration method", PER_LABEL_METHODS)
        probs, gold = check_probs_gold(probs, gold)
        n_labels = probs.shape[1]
        if labels is not None and len(labels) != n_labels:
            raise DataError(
                Errors.E157.format(
                    labels_name="labels", n_names=len(labels), name="probs", n_labels=n_labels
                )
            )
        min_neg = self.min_positives if self.min_negatives is None else self.min_negatives
        positive = binarize(gold).astype(np.float64)
        params: list[dict[str, Any]] = []
        status: list[str] = []
        for j in range(n_labels):
            n_pos = int(positive[:, j].sum())
            n_neg = positive.shape[0] - n_pos
            if n_pos < self.min_positives or n_neg < min_neg:
                params.append({})
                status.append(
                    f"identity: {n_pos} positive(s) / {n_neg} negative(s), need at least "
                    f"{self.min_positives} / {min_neg}"
                )
                continue
            if self.method == "platt":
                a, b = fit_platt(probs[:, j], positive[:, j])
                params.append({"a": a, "b": b})
            else:
                x_knots, y_knots = fit_isotonic(probs[:, j], positive[:, j])
                params.append({"x_knots": x_knots.tolist(), "y_knots": y_knots.tolist()})
            status.append("fitted")
        self.params_ = params
        self.status_ = status
        self.fitted_mask_ = np.array([bool(param) for param in params])
        self.labels_ = list(labels) if labels is not None else None
        self.n_labels_ = n_labels
        return self

    def transform(self, probs: np.ndarray) -> np.ndarray:
        """Calibrated (n_docs, n_labels) probabilities; identity columns are copied."""
        if not hasattr(self, "params_"):
            raise _not_fitted(self, "per-label parameters")
        probs = check_probs(probs)
        _check_n_labels(probs, self.n_labels_)
        out = probs.copy()
        for j, param in enumerate(self.params_):
            if not param:
                continue
            if self.method == "platt":
                out[:, j] = apply_platt(probs[:, j], param["a"], param["b"])
            else:
                out[:, j] = apply_isotonic(probs[:, j], param["x_knots"], param["y_knots"])
        return out

    def to_dict(self) -> dict[str, Any]:
        """Settings and fitted state as JSON-safe values (one entry per label)."""
        if not hasattr(self, "params_"):
            raise _not_fitted(self, "per-label parameters")
        return {
            "method": self.method,
            "min_positives": int(self.min_positives),
            "min_negatives": None if self.min_negatives is None else int(self.min_negatives),
            "n_labels": int(self.n_labels_),
            "labels": self.labels_,
            "per_label": [
                {"status": status, **param}
                for status, param in zip(self.status_, self.params_, strict=True)
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerLabelCalibration:
        """Restore a fitted calibrator from :meth:`to_dict` output."""
        method = _check_method(data, PER_LABEL_METHODS)
        calibrator = cls(
            method,  # type: ignore[arg-type]
            int(data["min_positives"]),
            None if data.get("min_negatives") is None else int(data["min_negatives"]),
        )
        entries = list(data["per_label"])
        if len(entries) != int(data["n_labels"]):
            raise ConfigError(
                Errors.E157.format(
                    labels_name="per_label",
                    n_names=len(entries),
                    name="n_labels",
                    n_labels=data["n_labels"],
                )
            )
        params: list[dict[str, Any]] = []
        for entry in entries:
            if entry["status"] != "fitted":
                params.append({})
            elif method == "platt":
                params.append({"a": float(entry["a"]), "b": float(entry["b"])})
            else:
                params.append(
                    {
                        "x_knots": [float(x) for x in entry["x_knots"]],
                        "y_knots": [float(y) for y in entry["y_knots"]],
                    }
                )
        calibrator.params_ = params
        calibrator.fitted_mask_ = np.array([bool(param) for param in params])
        calibrator.status_ = [str(entry["status"]) for entry in entries]
        labels = data.get("labels")
        calibrator.labels_ = None if labels is None else [str(label) for label in labels]
        calibrator.n_labels_ = len(entries)
        return calibrator


Calibrator = TemperatureScaling | PerLabelCalibration


def calibrator_from_dict(data: dict[str, Any]) -> Calibrator:
    """Restore a fitted :class:`TemperatureScaling` or :class:`PerLabelCalibration`.

    Dispatches on ``data["method"]`` (``"temperature"``, ``"platt"`` or ``"isotonic"``).
    """
    method = _check_method(data, CALIBRATION_METHODS)
    if method == TemperatureScaling.method:
        return TemperatureScaling.from_dict(data)
    return PerLabelCalibration.from_dict(data)

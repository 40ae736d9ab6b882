"""Checks of the fitted state files (``calibrator.json``, ``decision.json``).

Fitted state decides what every prediction means, so a file that was truncated, edited
by hand or copied from another pipeline must stop the load with a message that names the
file and the field, not produce nonsense scores. The checks run when the state is loaded
(``from_disk`` / ``from_bytes``) and before it is saved. They are written out by hand
rather than with a schema library: the rules are about values (a positive temperature,
monotone isotonic knots, labels equal to the classifier's), not only about types, and the
package stays free of a further dependency at load time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError, Errors

CALIBRATION_METHODS = ("temperature", "platt", "isotonic")


def _fail(source: str, field: str, value: Any, rule: str) -> ConfigError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return ConfigError(Errors.E250.format(source=source, field=field, value=shown, rule=rule))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _finite(source: str, field: str, value: Any) -> float:
    number = _number(value)
    if number is None or not math.isfinite(number):
        raise _fail(source, field, value, "it must be a finite number")
    return number


def _probability(source: str, field: str, value: Any) -> float:
    number = _number(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise _fail(source, field, value, "it must be a number in [0, 1]")
    return number


def _labels(source: str, data: dict[str, Any], labels: Sequence[str] | None) -> list[str]:
    found = data.get("labels")
    if not isinstance(found, list) or not all(isinstance(label, str) for label in found):
        raise _fail(source, "labels", found, "it must be a list of label names")
    if labels is not None and list(found) != list(labels):
        missing = [label for label in labels if label not in found]
        extra = [label for label in found if label not in labels]
        detail = (
            f"missing {missing[:5]}, unknown {extra[:5]}" if missing or extra else "another order"
        )
        raise ConfigError(
            Errors.E251.format(
                source=source, detail=detail, n_labels=len(labels), labels=list(labels)[:10]
            )
        )
    return list(found)


def _object(source: str, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _fail(source, "(top level)", type(data).__name__, "it must be a JSON object")
    return data


def check_decision_state(data: Any, source: str, *, labels: Sequence[str] | None = None) -> None:
    """Raise E250 / E251 unless ``data`` is a valid ``decision.json`` (for ``labels``)."""
    data = _object(source, data)
    names = _labels(source, data, labels)
    if not isinstance(data.get("exclusive"), bool):
        raise _fail(source, "exclusive", data.get("exclusive"), "it must be true or false")
    thresholds = data.get("thresholds")
    if not isinstance(thresholds, dict):
        raise _fail(source, "thresholds", thresholds, "it must map each label to a threshold")
    unknown = [label for label in thresholds if label not in names]
    if unknown:
        raise _fail(source, f"thresholds.{unknown[0]}", unknown[0], "it is not in 'labels'")
    for label, value in thresholds.items():
        _probability(source, f"thresholds.{label}", value)
    for key in ("global_threshold", "abstain_threshold"):
        if data.get(key) is not None:
            _probability(source, key, data[key])
    if "ensure_one_label" in data and not isinstance(data["ensure_one_label"], bool):
        raise _fail(source, "ensure_one_label", data["ensure_one_label"], "true or false")
    if data.get("fit_info") is not None and not isinstance(data["fit_info"], dict):
        raise _fail(source, "fit_info", data["fit_info"], "it must be a JSON object")


def check_calibrator_state(data: Any, source: str, *, labels: Sequence[str] | None = None) -> None:
    """Raise E250 / E251 unless ``data`` is a valid ``calibrator.json`` (for ``labels``)."""
    data = _object(source, data)
    names = _labels(source, data, labels)
    state = data.get("calibrator")
    if state is None:
        return
    if not isinstance(state, dict):
        raise _fail(source, "calibrator", state, "it must be a JSON object or null")
    method = state.get("method")
    if method not in CALIBRATION_METHODS:
        raise _fail(source, "calibrator.method", method, f"it must be one of {CALIBRATION_METHODS}")
    n_labels = state.get("n_labels")
    if isinstance(n_labels, bool) or not isinstance(n_labels, int) or n_labels != len(names):
        raise _fail(source, "calibrator.n_labels", n_labels, f"it must be {len(names)}")
    if method == "temperature":
        temperature = _finite(source, "calibrator.temperature", state.get("temperature"))
        if temperature <= 0:
            raise _fail(source, "calibrator.temperature", temperature, "it must be > 0")
        return
    entries = state.get("per_label")
    if not isinstance(entries, list) or len(entries) != len(names):
        raise _fail(source, "calibrator.per_label", entries, f"it must list {len(names)} entries")
    for j, entry in enumerate(entries):
        where = f"calibrator.per_label[{j}] ({names[j]})"
        if not isinstance(entry, dict) or not isinstance(entry.get("status"), str):
            raise _fail(source, where, entry, "it must be an object with a 'status'")
        if entry["status"] != "fitted":
            continue
        if method == "platt":
            a = _finite(source, f"{where}.a", entry.get("a"))
            _finite(source, f"{where}.b", entry.get("b"))
            if a < 0:
                raise _fail(source, f"{where}.a", a, "the Platt slope must be >= 0")
            continue
        _check_knots(source, where, entry.get("x_knots"), entry.get("y_knots"))


def _check_knots(source: str, where: str, x_knots: Any, y_knots: Any) -> None:
    for key, knots in (("x_knots", x_knots), ("y_knots", y_knots)):
        if not isinstance(knots, list) or not knots:
            raise _fail(source, f"{where}.{key}", knots, "it must be a non-empty list")
        for i, value in enumerate(knots):
            _probability(source, f"{where}.{key}[{i}]", value)
        for i in range(1, len(knots)):
            if knots[i] < knots[i - 1]:
                raise _fail(
                    source,
                    f"{where}.{key}[{i}]",
                    knots[i],
                    f"isotonic knots must be non-decreasing (previous {knots[i - 1]!r})",
                )
    if len(x_knots) != len(y_knots):
        raise _fail(source, f"{where}.y_knots", len(y_knots), f"it must have {len(x_knots)} knots")

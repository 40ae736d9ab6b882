"""Calibration: recovering known miscalibration, monotonicity, and JSON round trips."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit, softmax
from sklearn.isotonic import IsotonicRegression

import textcat_kit
from textcat_kit.maths.calibration import (
    PerLabelCalibration,
    TemperatureScaling,
    _platt_targets,
    apply_isotonic,
    apply_platt,
    apply_temperature,
    calibrator_from_dict,
    fit_isotonic,
    fit_platt,
    fit_temperature,
)
from textcat_kit.maths.metrics import classwise_ece, log_loss

MATHS_MODULES = ("calibration", "metrics", "thresholds", "validation")


def overconfident_exclusive(seed: int, temperature: float, n_docs: int = 20000, n_labels: int = 5):
    """Gold drawn from softmax(z); the model reports softmax(temperature * z)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=1.5, size=(n_docs, n_labels))
    true_probs = softmax(logits, axis=1)
    cumulative = true_probs.cumsum(axis=1)
    gold_index = np.minimum((rng.random(n_docs)[:, None] > cumulative).sum(axis=1), n_labels - 1)
    return softmax(temperature * logits, axis=1), gold_index, np.eye(n_labels)[gold_index]


def miscalibrated_multilabel(seed: int, n_docs: int = 4000, n_labels: int = 4):
    """True P(y=1) = sigmoid(z); the model reports sigmoid(2.5 z + 1): over-confident, biased."""
    rng = np.random.default_rng(seed)
    z = rng.normal(loc=-1.0, scale=1.5, size=(n_docs, n_labels))
    gold = (rng.random((n_docs, n_labels)) < expit(z)).astype(float)
    return expit(2.5 * z + 1.0), gold


# --- temperature ---------------------------------------------------------------------------


def test_fit_temperature_recovers_the_true_temperature():
    probs, gold_index, _ = overconfident_exclusive(seed=0, temperature=2.5)
    assert fit_temperature(probs, gold_index) == pytest.approx(2.5, rel=0.05)


def test_fit_temperature_sharpens_underconfident_models():
    probs, gold_index, _ = overconfident_exclusive(seed=1, temperature=0.5)
    assert fit_temperature(probs, gold_index) == pytest.approx(0.5, rel=0.05)


def test_temperature_scaling_lowers_nll_and_keeps_the_argmax():
    probs, _, gold = overconfident_exclusive(seed=2, temperature=2.5, n_docs=3000)
    calibrated = TemperatureScaling().fit(probs, gold).transform(probs)
    assert log_loss(calibrated, gold, exclusive=True) < log_loss(probs, gold, exclusive=True)
    np.testing.assert_array_equal(calibrated.argmax(axis=1), probs.argmax(axis=1))
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)


def test_apply_temperature_one_is_the_identity():
    probs = softmax(np.random.default_rng(3).normal(size=(10, 3)), axis=1)
    # log/exp run in float32 (7 digits, as the classifier's scores); rows sum to 1 exactly.
    np.testing.assert_allclose(apply_temperature(probs, 1.0), probs, rtol=1e-6)
    np.testing.assert_allclose(apply_temperature(probs, 3.0).sum(axis=1), 1.0, rtol=1e-12)


def test_apply_temperature_keeps_the_argmax_of_near_ties():
    """float32 rounding must not move the top label between two nearly equal scores."""
    probs = np.array([[0.4, 0.4 + 1e-12, 0.2 - 1e-12], [0.3, 0.3, 0.4], [0.5 - 1e-13, 0.5, 0.0]])
    for temperature in (0.5, 1.0, 2.0):
        calibrated = apply_temperature(probs, temperature)
        np.testing.assert_array_equal(calibrated.argmax(axis=1), probs.argmax(axis=1))


def test_fit_temperature_rejects_bad_gold_index():
    probs = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match=r"\[E154\] 'gold_index'"):
        fit_temperature(probs, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\[E151\] 'gold_index'"):
        fit_temperature(probs, np.array([0.0, 1.0, 1.0]))


# --- Platt ---------------------------------------------------------------------------------


def test_platt_targets_follow_platts_smoothing():
    targets = _platt_targets(np.array([1.0, 1.0, 1.0, 0.0]))
    np.testing.assert_allclose(targets, [4 / 5, 4 / 5, 4 / 5, 1 / 3])


def test_fit_platt_recovers_a_known_sigmoid():
    rng = np.random.default_rng(4)
    scores = rng.uniform(0.01, 0.99, 40000)
    y = (rng.random(scores.size) < apply_platt(scores, 0.6, -0.8)).astype(float)
    a, b = fit_platt(scores, y)
    assert a == pytest.approx(0.6, abs=0.05)
    assert b == pytest.approx(-0.8, abs=0.05)


def test_fit_platt_stays_finite_on_separable_data_and_never_reverses_ranking():
    a, b = fit_platt(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    assert np.isfinite([a, b]).all() and a > 0
    a_rev, _ = fit_platt(np.array([0.1, 0.2, 0.8, 0.9]), np.array([1, 1, 0, 0]))
    assert a_rev == 0.0


def test_apply_platt_identity_parameters():
    scores = np.array([0.01, 0.3, 0.99])
    np.testing.assert_allclose(apply_platt(scores, 1.0, 0.0), scores)


# --- isotonic ------------------------------------------------------------------------------


def test_isotonic_knots_reproduce_sklearn_without_sklearn_at_apply_time():
    rng = np.random.default_rng(5)
    scores = rng.random(500)
    y = (rng.random(500) < scores**2).astype(float)
    x_knots, y_knots = fit_isotonic(scores, y, margin=0.0)
    model = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(scores, y)
    grid = np.linspace(-0.1, 1.1, 300)
    np.testing.assert_allclose(apply_isotonic(grid, x_knots, y_knots), model.predict(grid))


def test_isotonic_output_is_monotone_and_kept_off_zero_and_one():
    rng = np.random.default_rng(6)
    scores = rng.random(300)
    y = (scores > 0.5).astype(float)  # pure runs: raw isotonic would give exact 0 and 1
    x_knots, y_knots = fit_isotonic(scores, y)
    out = apply_isotonic(np.linspace(0, 1, 1000), x_knots, y_knots)
    assert np.all(np.diff(out) >= 0)
    assert out.min() == pytest.approx(1 / 302) and out.max() == pytest.approx(1 - 1 / 302)


# --- per-label calibrators -----------------------------------------------------------------


@pytest.mark.parametrize("method", ["platt", "isotonic"])
def test_per_label_calibration_reduces_classwise_ece_on_held_out_data(method):
    probs, gold = miscalibrated_multilabel(seed=7)
    test_probs, test_gold = miscalibrated_multilabel(seed=8)
    calibrator = PerLabelCalibration(method).fit(probs, gold)
    before = classwise_ece(test_probs, test_gold)
    after = classwise_ece(calibrator.transform(test_probs), test_gold)
    assert after < 0.5 * before
    assert log_loss(calibrator.transform(test_probs), test_gold, exclusive=False) < log_loss(
        test_probs, test_gold, exclusive=False
    )


def test_labels_with_too_few_positives_keep_the_identity():
    probs, gold = miscalibrated_multilabel(seed=9, n_docs=500)
    gold[:, 1] = 0.0
    gold[:3, 1] = 1.0
    calibrator = PerLabelCalibration("platt", min_positives=10).fit(
        probs, gold, ["a", "b", "c", "d"]
    )
    np.testing.assert_array_equal(calibrator.fitted_mask_, [True, False, True, True])
    assert calibrator.status_[1].startswith("identity: 3 positive(s)")
    out = calibrator.transform(probs)
    np.testing.assert_array_equal(out[:, 1], probs[:, 1])
    assert not np.allclose(out[:, 0], probs[:, 0])


def _json_round_trip(data: dict) -> dict:
    return json.loads(json.dumps(data, allow_nan=False))


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic"])
def test_to_dict_from_dict_gives_identical_transforms(method):
    if method == "temperature":
        probs, _, gold = overconfident_exclusive(seed=10, temperature=2.0, n_docs=2000)
        calibrator: TemperatureScaling | PerLabelCalibration = TemperatureScaling()
    else:
        probs, gold = miscalibrated_multilabel(seed=10, n_docs=2000)
        gold[:, 3] = 0.0  # one identity label in the state as well
        calibrator = PerLabelCalibration(method)  # type: ignore[arg-type]
    calibrator.fit(probs, gold)
    restored = calibrator_from_dict(_json_round_trip(calibrator.to_dict()))
    assert type(restored) is type(calibrator)
    np.testing.assert_array_equal(restored.transform(probs), calibrator.transform(probs))
    assert restored.to_dict() == calibrator.to_dict()


def test_transform_before_fit_raises_a_coded_error():
    with pytest.raises(ValueError, match=r"\[E011\].*TemperatureScaling"):
        TemperatureScaling().transform(np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match=r"\[E011\].*PerLabelCalibration"):
        PerLabelCalibration().transform(np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match=r"\[E011\]"):
        PerLabelCalibration().to_dict()


def test_transform_with_a_different_number_of_labels_is_rejected():
    probs, gold = miscalibrated_multilabel(seed=11, n_docs=300)
    calibrator = PerLabelCalibration().fit(probs, gold)
    with pytest.raises(ValueError, match=r"\[E156\].*3 label\(s\).*fitted on 4"):
        calibrator.transform(probs[:, :3])


def test_unknown_method_is_rejected_on_fit_and_on_load():
    probs, gold = miscalibrated_multilabel(seed=12, n_docs=300)
    with pytest.raises(ValueError, match=r"\[E013\].*'beta'"):
        PerLabelCalibration("beta").fit(probs, gold)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[E013\].*'spline'.*temperature, platt, isotonic"):
        calibrator_from_dict({"method": "spline"})


def test_label_names_must_match_the_columns():
    probs, gold = miscalibrated_multilabel(seed=13, n_docs=300)
    with pytest.raises(ValueError, match=r"\[E157\]"):
        PerLabelCalibration().fit(probs, gold, labels=["a", "b"])


def _imported_modules(path: Path, package_root: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(package_root.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                names.add(f"{base}.{node.module}" if node.module else base)
            else:
                names.add(node.module or "")
    return names


def test_maths_modules_do_not_import_spacy_even_indirectly():
    package_root = Path(textcat_kit.__file__).parent
    todo = [package_root / "maths" / f"{name}.py" for name in MATHS_MODULES]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_modules(path, package_root):
            assert name.split(".")[0] not in {"spacy", "thinc"}, f"{path.name} imports {name}"
            if name.startswith("textcat_kit."):
                parts = name.split(".")[1:]
                module = package_root.joinpath(*parts).with_suffix(".py")
                todo.extend(
                    p for p in (module, package_root.joinpath(*parts, "__init__.py")) if p.exists()
                )
    assert package_root / "errors.py" in seen  # the walk follows in-package imports

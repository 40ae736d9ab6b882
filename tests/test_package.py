"""The package step: pipeline wheel + kit wheel install into a fresh virtualenv and load by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import spacy

from kit_testing import run_in, write_docbin
from textcat_kit.packaging import package_pipeline
from textcat_kit.tuning import tune_pipeline


@pytest.mark.slow
def test_tuned_pipeline_wheel_installs_and_matches(
    banking_small: dict[str, Any], fresh_venv: Path, tmp_path: Path
) -> None:
    labels = banking_small["labels"]
    banking_small["nlp"].to_disk(tmp_path / "model")
    dev = write_docbin(banking_small["dev"], labels, tmp_path / "dev.spacy")
    tune_pipeline(
        tmp_path / "model", dev, tmp_path / "tuned", decision_config={"abstain_precision": 0.9}
    )
    metrics = {"task": "exclusive", "accuracy": 0.5, "macro_f": 0.4, "per_label": {}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "data.json").write_text(json.dumps({"dataset": "banking77-small"}))
    pipeline_wheel, kit_wheel = package_pipeline(
        tmp_path / "tuned",
        tmp_path / "packages",
        name="kit_test_pipeline",
        version="0.0.1",
        metrics_path=tmp_path / "metrics.json",
        data_path=tmp_path / "data.json",
    )
    assert kit_wheel.parent == pipeline_wheel.parent.parent.parent
    install = run_in(
        fresh_venv,
        "import subprocess, sys; subprocess.run([sys.executable, '-m', 'pip', 'install', "
        f"'--quiet', '--find-links', {str(kit_wheel.parent)!r}, {str(pipeline_wheel)!r}], "
        "check=True)",
    )
    assert install.returncode == 0, install.stderr[-3000:]

    texts = [text for text, _ in banking_small["test"]][:50]
    assert len(texts) == 50
    code = f"""
import json, spacy
nlp = spacy.load("en_kit_test_pipeline")
docs = list(nlp.pipe({texts!r}))
try:
    import torch  # noqa: F401
    has_torch = True
except ImportError:
    has_torch = False
print(json.dumps({{"cats": [d.cats for d in docs], "decided": [d._.decided_labels for d in docs],
                  "meta": nlp.meta, "pipes": nlp.pipe_names, "has_torch": has_torch}}))
"""
    result = run_in(fresh_venv, code)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["pipes"] == ["textcat", "textcat_kit_calibrator", "textcat_kit_decision"]
    assert out["has_torch"] is False
    meta = out["meta"]
    assert meta["labels"]["textcat"] == labels
    assert meta["performance"]["test_macro_f"] == 0.4
    assert meta["textcat_kit"]["data"]["dataset"] == "banking77-small"
    assert any(r.startswith("spacy-textcat-kit") for r in meta["requirements"])

    local = spacy.load(tmp_path / "tuned")
    for doc, cats, decided in zip(local.pipe(texts), out["cats"], out["decided"], strict=True):
        assert doc.cats == pytest.approx(cats, abs=1e-9)
        assert doc._.decided_labels == decided

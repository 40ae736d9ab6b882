"""End to end: embed variant `spacy train` -> tune -> evaluate -> package -> load by name.

The tiny random encoder stands in for all-MiniLM-L6-v2 (the code path is the same). The
encoder directory is deleted before the packaged pipeline is loaded: the pipeline must
carry its encoder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from embed_testing import LABELS, make_records

from kit_testing import run_clean, write_docbin
from textcat_kit.evaluation import evaluate_to_dir
from textcat_kit.packaging import package_pipeline
from textcat_kit.tuning import tune_pipeline

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_embed_variant_trains_tunes_packages_and_loads(tiny_encoder: Path, tmp_path: Path) -> None:
    encoder = shutil.copytree(tiny_encoder, tmp_path / "encoder")
    train = write_docbin(make_records(20, seed=11), LABELS, tmp_path / "train.spacy")
    dev = write_docbin(make_records(12, seed=12), LABELS, tmp_path / "dev.spacy")
    test = write_docbin(make_records(8, seed=13), LABELS, tmp_path / "test.spacy")
    trained = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "train",
            str(REPO_ROOT / "configs" / "textcat_embed.cfg"),
            "--output",
            str(tmp_path / "training"),
            "--paths.train",
            str(train),
            "--paths.dev",
            str(dev),
            "--paths.encoder",
            str(encoder),
            "--training.optimizer.learn_rate",
            "0.05",
            "--training.max_steps",
            "300",
            "--training.eval_frequency",
            "100",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    tune_pipeline(tmp_path / "training" / "model-best", dev, tmp_path / "tuned")
    metrics = evaluate_to_dir(tmp_path / "tuned", test, tmp_path / "metrics")
    assert metrics["macro_f"] >= 0.8
    shutil.rmtree(encoder)  # the pipeline must not need it any more

    pipeline_wheel, kit_wheel = package_pipeline(
        tmp_path / "tuned",
        tmp_path / "packages",
        name="kit_embed_test",
        version="0.0.1",
        metrics_path=tmp_path / "metrics" / "metrics.json",
    )
    meta = json.loads((pipeline_wheel.parents[1] / "meta.json").read_text())
    assert any(r.startswith("spacy-textcat-kit[transformers]") for r in meta["requirements"])
    # The wheel goes into a directory of its own, loaded by package name from a process
    # started elsewhere (no repository files, no encoder directory). A clean virtualenv
    # would also need torch installed into it, minutes on this machine: the torch-free
    # clean-venv install of a packaged pipeline is tests/test_package.py's.
    site = tmp_path / "site"
    installed = run_clean(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(pipeline_wheel),
        ]
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    texts = [text for text, _ in make_records(3, seed=14)] + [""]
    code = f"""
import json, spacy
nlp = spacy.load("en_kit_embed_test")
docs = list(nlp.pipe({texts!r}))
print(json.dumps({{"cats": [d.cats for d in docs], "decided": [d._.decided_labels for d in docs],
                  "pipes": nlp.pipe_names}}))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(site)},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    local = spacy.load(tmp_path / "tuned")
    assert out["pipes"] == local.pipe_names
    for doc, cats, decided in zip(local.pipe(texts), out["cats"], out["decided"], strict=True):
        assert doc.cats == pytest.approx(cats, abs=1e-5)
        assert doc._.decided_labels == decided

"""The exported pipeline loads and runs in a fresh virtualenv without torch.

The virtualenv gets spaCy, onnxruntime, tokenizers and the spacy-textcat-kit wheel built
from this checkout (with its core dependencies) — nothing else. The exported directory is
loaded with a plain ``spacy.load``: the component is found through the package's
``spacy_factories`` entry point. ``import torch`` must fail there, and the scores must
equal the ones computed here.
"""

from __future__ import annotations

import json
import sys
import venv
from pathlib import Path

import numpy as np
import pytest
import spacy
from onnx_testing import LABELS, PARITY_TEXTS, REPO_ROOT

from kit_testing import run_clean, run_in


@pytest.fixture(scope="module")
def onnx_only_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with spaCy, onnxruntime, tokenizers and this package's wheel."""
    root = tmp_path_factory.mktemp("onnx-only-venv")
    wheel_dir = root / "wheels"
    built = run_clean(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(wheel_dir),
            str(REPO_ROOT),
        ]
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (kit_wheel,) = wheel_dir.glob("spacy_textcat_kit-*.whl")
    venv.EnvBuilder(with_pip=True, clear=True).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    installed = run_clean(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "spacy>=3.8,<3.9",
            "onnxruntime",
            "tokenizers",
            str(kit_wheel),
        ]
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    return python


@pytest.mark.slow
def test_exported_pipeline_runs_in_a_torch_free_venv(
    onnx_only_venv: Path, exclusive_pipeline: Path, export
) -> None:
    out = export(exclusive_pipeline)
    code = f"""
import json, importlib.util, spacy
nlp = spacy.load({str(out)!r})
docs = list(nlp.pipe({PARITY_TEXTS!r}))
try:
    import torch  # noqa: F401
    torch_importable = True
except ImportError:
    torch_importable = False
print(json.dumps({{
    "cats": [[d.cats[l] for l in {LABELS!r}] for d in docs],
    "pipes": nlp.pipe_names,
    "torch": torch_importable,
    "transformers": importlib.util.find_spec("transformers") is not None,
    "spacy_transformers": importlib.util.find_spec("spacy_transformers") is not None,
}}))
"""
    result = run_in(onnx_only_venv, code, cwd=str(out.parent))
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert payload["torch"] is False
    assert payload["transformers"] is False and payload["spacy_transformers"] is False
    assert payload["pipes"] == ["textcat"]
    here = spacy.load(out)
    expected = [[doc.cats[label] for label in LABELS] for doc in here.pipe(PARITY_TEXTS)]
    np.testing.assert_allclose(payload["cats"], expected, atol=1e-5)

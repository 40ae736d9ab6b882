"""Build a pip-installable pipeline wheel, plus a wheel of this package beside it.

``spacy package`` does the packaging; this module adds what a user of the wheel needs
to trust it: the label set, the *test* metrics (not the dev scores spaCy records during
training) and the data description go into ``meta.json``, and the pipeline requires
``spacy-textcat-kit`` so its custom components resolve through entry points. The
package's own wheel is written to the same directory, so
``pip install --find-links packages/ packages/<pipeline>.whl`` needs no other source.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import srsly

from . import __version__
from .errors import Errors, PackagingError, Warnings
from .safe_write import atomic_dir

KIT_DISTRIBUTION = "spacy-textcat-kit"


def kit_source_dir() -> Path:
    """The source tree of this package (the directory holding ``pyproject.toml``)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").exists():
        raise FileNotFoundError(
            f"[E020] Cannot find the spacy-textcat-kit source tree above {__file__}; pass "
            "--kit-source with the directory holding its pyproject.toml."
        )
    return root


def _performance(metrics: dict[str, Any]) -> dict[str, float]:
    keys = (
        "accuracy",
        "macro_p",
        "macro_r",
        "macro_f",
        "micro_p",
        "micro_r",
        "micro_f",
        "macro_auc",
    )
    perf = {f"test_{key}": float(metrics[key]) for key in keys if key in metrics}
    for key, value in metrics.get("calibration", {}).items():
        perf[f"test_{key}"] = float(value)
    return perf


def build_meta(
    model_dir: Path,
    name: str,
    version: str,
    metrics: dict[str, Any] | None,
    data: dict[str, Any] | None,
) -> dict[str, Any]:
    meta = srsly.read_json(model_dir / "meta.json")
    meta["name"] = name
    meta["version"] = version
    meta.setdefault("description", "Text classifier trained with spacy-textcat-kit")
    # Pipelines with a torch encoder (embed variant, spacy-transformers) need the kit's
    # [transformers] extra, or they do not load after a plain `pip install` of the wheel.
    config_text = (model_dir / "config.cfg").read_text(encoding="utf8")
    needs_torch = any(
        marker in config_text
        for marker in ("textcat_kit.SentenceEncoder", "spacy-transformers.", "TransformerModel")
    )
    extra = "[transformers]" if needs_torch else ""
    requirement = f"{KIT_DISTRIBUTION}{extra}>={__version__}"
    requirements = [r for r in meta.get("requirements", []) if KIT_DISTRIBUTION not in r]
    meta["requirements"] = [*requirements, requirement]
    if metrics is not None:
        meta["performance"] = {**meta.get("performance", {}), **_performance(metrics)}
    meta["textcat_kit"] = {
        "version": __version__,
        "degenerate": bool(((metrics or {}).get("diagnosis") or {}).get("degenerate", False)),
        "task": metrics.get("task") if metrics else None,
        "test_metrics": {k: v for k, v in (metrics or {}).items() if k != "per_label"},
        "per_label": (metrics or {}).get("per_label", {}),
        "data": data or {},
    }
    return meta


def _run(args: list[str]) -> None:
    """Run a build step; a failure is a coded error (its own output is already printed)."""
    result = subprocess.run(args, check=False)
    if result.returncode != 0:
        raise PackagingError(
            Errors.E029.format(command=" ".join(args[2:4]), code=result.returncode)
        )


def package_name(name: str) -> str:
    """A name ``spacy package`` accepts: letters, digits and underscores."""
    cleaned = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_")
    return cleaned or "pipeline"


def package_pipeline(
    model_dir: Path,
    output_dir: Path,
    *,
    name: str,
    version: str,
    metrics_path: Path | None = None,
    data_path: Path | None = None,
    kit_source: Path | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write the pipeline wheel and the package wheel to ``output_dir``; return both paths.

    The pipeline package directory (``output_dir/<lang>_<name>-<version>``) is written through
    :func:`textcat_kit.safe_write.atomic_dir`: an earlier one is replaced only with
    ``overwrite``, a directory textcat-kit did not write never. A model whose test metrics
    say it learned nothing is packaged with ``textcat_kit.degenerate = true`` in its meta
    and a loud [W008] warning.
    """
    name = package_name(name)
    metrics = srsly.read_json(metrics_path) if metrics_path else None
    data = srsly.read_json(data_path) if data_path else None
    meta = build_meta(model_dir, name, version, metrics, data)
    diagnosis = (metrics or {}).get("diagnosis") or {}
    if diagnosis.get("degenerate"):
        reasons = "; ".join(f.get("code", "") for f in diagnosis.get("findings", []))
        warnings.warn(Warnings.W008.format(reasons=reasons), stacklevel=2)
    lang = meta["lang"]
    package_dir = output_dir / f"{lang}_{name}-{version}"
    with atomic_dir(package_dir, overwrite=overwrite, command="textcat-kit package") as tmp:
        meta_path = tmp / "_meta.json"
        srsly.write_json(meta_path, meta)
        build_root = tmp / "_build"
        build_root.mkdir()
        _run(
            [
                sys.executable,
                "-m",
                "spacy",
                "package",
                str(model_dir),
                str(build_root),
                "--meta-path",
                str(meta_path),
                "--name",
                name,
                "--version",
                version,
                "--build",
                "wheel",
            ],
        )
        built = build_root / f"{lang}_{name}-{version}"
        for item in built.iterdir():
            os.rename(item, tmp / item.name)
        shutil.rmtree(build_root)
        meta_path.unlink()
        if not list((tmp / "dist").glob("*.whl")):
            raise FileNotFoundError(f"[E021] spacy package wrote no wheel under {built}")
    pipeline_wheels = sorted((package_dir / "dist").glob("*.whl"))
    with tempfile.TemporaryDirectory(dir=output_dir) as wheel_tmp:
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--quiet",
                "-w",
                wheel_tmp,
                str(kit_source or kit_source_dir()),
            ],
        )
        for wheel in Path(wheel_tmp).glob("*.whl"):
            os.chmod(wheel, 0o644)
            os.replace(wheel, output_dir / wheel.name)
    kit_wheels = sorted(output_dir.glob("spacy_textcat_kit-*.whl"))
    return pipeline_wheels[-1], kit_wheels[-1]

"""Modules that fresh worker processes import must stay light: the Ray engine's read and
write tasks import the scoring I/O modules, and every scoring actor (and serving worker)
builds an OutputSpec from its loaded pipeline."""

import subprocess
import sys


def heavy_imports(modules: list[str], heavy: tuple[str, ...]) -> list[str]:
    """Which of ``heavy`` a fresh Python has imported after importing ``modules``."""
    code = (
        "import sys\n"
        f"import {', '.join(modules)}\n"
        f"print(','.join(sorted(m for m in {heavy!r} if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [name for name in done.stdout.strip().split(",") if name]


def test_scoring_io_modules_do_not_import_spacy() -> None:
    """spaCy (and with it thinc and torch) costs each read / write task seconds of CPU
    before it reads or writes a row."""
    modules = [f"textcat_kit.scoring.{m}" for m in ("ray_engine", "store", "inputs", "results")]
    assert heavy_imports(modules, ("spacy", "thinc", "torch")) == []


def test_output_spec_path_does_not_import_scikit_learn() -> None:
    """OutputSpec.from_pipeline goes through ``textcat_kit.evaluation``: scikit-learn, SciPy
    and pandas were two CPU-seconds of import in each actor, for one metric only evaluation
    uses."""
    modules = [
        "textcat_kit.evaluation",
        "textcat_kit.pipeline.fitted",
        "textcat_kit.scoring.results",
    ]
    assert heavy_imports(modules, ("sklearn", "scipy", "pandas")) == []

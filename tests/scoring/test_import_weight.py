"""The Ray engine's read and write tasks import the scoring modules in fresh worker
processes: those modules must not pull in spaCy (and with it thinc and torch), which costs
each worker seconds of CPU before it reads or writes a row."""

import subprocess
import sys


def test_scoring_io_modules_do_not_import_spacy() -> None:
    code = (
        "import sys\n"
        "import textcat_kit.scoring.ray_engine, textcat_kit.scoring.store\n"
        "import textcat_kit.scoring.inputs, textcat_kit.scoring.results\n"
        "heavy = sorted(m for m in ('spacy', 'thinc', 'torch') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"imported by the scoring I/O modules: {done.stdout}"


def test_output_spec_path_does_not_import_scikit_learn() -> None:
    """Every scoring actor (and the serving workers) build an OutputSpec from the loaded
    pipeline through ``textcat_kit.evaluation``: scikit-learn, SciPy and pandas were two
    CPU-seconds of import in each of them, for one metric only evaluation uses."""
    code = (
        "import sys\n"
        "import textcat_kit.evaluation, textcat_kit.pipeline.fitted\n"
        "import textcat_kit.scoring.results\n"
        "heavy = sorted(m for m in ('sklearn', 'scipy', 'pandas') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"imported on the way to an OutputSpec: {done.stdout}"

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

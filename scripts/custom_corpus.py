"""Data step of the project's `custom` workflow: `textcat-kit corpus` driven by project vars.

Weasel passes every var, so an optional file the user did not give arrives as an empty
string; this entry point drops ``--option ""`` pairs and calls the CLI with the rest.
Usage: python scripts/custom_corpus.py --train PATH --dev "" --test "" ... [--flag-name]
"""

from __future__ import annotations

import sys

from textcat_kit.cli import main

FLAGS = {"--overwrite", "--lenient", "--drop-leaked"}
"""Options of `textcat-kit corpus` that take no value."""


def corpus_args(argv: list[str]) -> list[str]:
    """``--opt value`` pairs whose value is empty or missing removed; real flags kept."""
    args: list[str] = []
    i = 0
    while i < len(argv):
        option = argv[i]
        if option in FLAGS:
            args.append(option)
            i += 1
            continue
        value = argv[i + 1] if i + 1 < len(argv) else None
        if value is None or value.startswith("--"):
            i += 1  # weasel dropped an empty value: the option was not given
            continue
        if value.strip():
            args += [option, value]
        i += 2
    return args


if __name__ == "__main__":
    main(["corpus", *corpus_args(sys.argv[1:])])

"""Data step of the project's `custom` workflow: `textcat-kit corpus` driven by project vars.

Weasel passes every var, so an optional file the user did not give arrives as an empty
string; this entry point drops ``--option ""`` pairs and calls the CLI with the rest.
Usage: python scripts/custom_corpus.py --train PATH --dev "" --test "" ... [--flag-name]
"""

from __future__ import annotations

import sys

from textcat_kit.cli import main


def corpus_args(argv: list[str]) -> list[str]:
    """``--opt value`` pairs with an empty value removed; bare ``--flags`` kept."""
    args: list[str] = []
    i = 0
    while i < len(argv):
        option = argv[i]
        value = argv[i + 1] if i + 1 < len(argv) else None
        if value is None or value.startswith("--"):
            args.append(option)
            i += 1
            continue
        if value.strip():
            args += [option, value]
        i += 2
    return args


if __name__ == "__main__":
    main(["corpus", *corpus_args(sys.argv[1:])])

#!/usr/bin/env bash
# Lint, type-check and run the test suite with the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check components scripts tests benchmarks
.venv/bin/mypy components/textcat_kit
.venv/bin/python -m pytest -q "$@"

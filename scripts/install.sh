#!/usr/bin/env bash
# Create .venv and install the project.
#   bash scripts/install.sh          -> the package + what the project workflows need
#                                       (bow/cnn training, reports, `spacy package` wheels)
#   bash scripts/install.sh --dev    -> + every extra (transformers, onnx, labelstudio, dev)
#                                       + a separate venv with a Label Studio server for the
#                                       integration tests (.cache/labelstudio-venv)
# torch is installed first, pinned, so that pip takes the local CPU wheel instead of
# pulling several GB of CUDA packages as a dependency of spacy-transformers.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
LABEL_STUDIO_VERSION=${LABEL_STUDIO_VERSION:-1.23.2}

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
if [ "${1:-}" = "--dev" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==${TORCH_VERSION}"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,report,transformers,onnx,labelstudio,serve,score,ray]"
  if [ ! -x .cache/labelstudio-venv/bin/label-studio ]; then
    "$PYTHON" -m venv .cache/labelstudio-venv
    .cache/labelstudio-venv/bin/python -m pip install --quiet --disable-pip-version-check "label-studio==${LABEL_STUDIO_VERSION}"
  fi
else
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[project]"
fi
echo "installed into $(pwd)/.venv"

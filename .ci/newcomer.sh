#!/usr/bin/env bash
# The newcomer path, as CI checks it: a fresh clone of this checkout's HEAD, ../shared beside
# it, no venv of ours, and the README's first fenced command block run as written (it installs
# only the runtime dependencies, then runs the main workflow). Fails when that path breaks.
# Usage: bash .ci/newcomer.sh [WORKDIR]
set -euo pipefail
proj=$(cd "$(dirname "$0")/.." && pwd)
shared=$(cd "$proj/../shared" 2>/dev/null && pwd) || { echo "newcomer: no ../shared beside $proj"; exit 2; }
work=${1:-$(mktemp -d)}
rm -rf "$work/repo"; mkdir -p "$work"
git clone -q "$proj" "$work/repo"
ln -sfn "$shared" "$work/shared"
awk '/^```/{n++; next} n==1' "$work/repo/README.md" > "$work/main.sh"
[ -s "$work/main.sh" ] || { echo "newcomer: README has no fenced command block"; exit 2; }
echo "newcomer: running the README's first block in a fresh clone ($work/repo):"
sed 's/^/  /' "$work/main.sh"
cd "$work/repo"
SECONDS=0
if ! env -u VIRTUAL_ENV PATH="$(echo "$PATH" | tr ':' '\n' | grep -v "$proj/.venv" | paste -sd:)" \
    bash -e "$work/main.sh" > "$work/main.log" 2>&1; then
  echo "newcomer: FAILED after ${SECONDS}s; last lines of $work/main.log:"; tail -40 "$work/main.log"; exit 1
fi
wheels=$(find packages -path '*/dist/*.whl' | head -n 1)
[ -n "$wheels" ] || { echo "newcomer: no pipeline wheel under packages/"; exit 1; }
# The wheel installs into yet another fresh venv with only what packages/ holds + PyPI.
python3 -m venv "$work/wheel-venv"
"$work/wheel-venv/bin/pip" install --quiet --disable-pip-version-check --find-links packages "$wheels"
pkg=$(basename "$(dirname "$(dirname "$wheels")")" | sed 's/-[^-]*$//')
"$work/wheel-venv/bin/python" - "$pkg" <<'PY'
import sys, spacy
nlp = spacy.load(sys.argv[1])
doc = nlp("I still haven't received my new card")
assert doc.cats and abs(sum(doc.cats.values()) - 1) < 1e-4, doc.cats
print("newcomer: wheel loads;", sys.argv[1], "->", doc._.decided_labels)
PY
echo "newcomer: OK after ${SECONDS}s"

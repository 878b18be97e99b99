#!/usr/bin/env bash
# Create .venv (if missing) and install recsys-spark into it, editable.
#
#   ./scripts/install.sh            # the library and jobs
#   ./scripts/install.sh dev        # plus the test tools
#   ./scripts/install.sh dev,bench  # plus the benchmark peers (cornac)
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

extras="${1:-}"
python="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
target="."
[[ -n "$extras" ]] && target=".[$extras]"
.venv/bin/python -m pip install --quiet -e "$target"
echo "Installed recsys-spark${extras:+ with [$extras]} into .venv" >&2

#!/usr/bin/env bash
# Run the test suite with the project's .venv; extra arguments go to pytest.
# pytest's "no tests collected" (exit 5) counts as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export TF_USE_LEGACY_KERAS=1
python=python3
[[ -x .venv/bin/python ]] && python=.venv/bin/python
"$python" -m pytest "$@"
status=$?
if [[ $status -eq 5 ]]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit $status

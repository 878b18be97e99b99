#!/usr/bin/env bash
# Pack the project's virtual environment (TensorFlow, TFRS, ScaNN, XGBoost, pandas...)
# into an archive that executors unpack, with venv-pack.
#
#   scripts/pack-env.sh [--venv DIR] [--output FILE] [--python-prefix DIR] [--force]
#                       [-- venv-pack options...]
#
# Defaults: --venv .venv, --output build/recsys-env.tar.gz. venv-pack is installed into
# the venv when missing. The archive is rebuilt only when the venv's site-packages folder
# changed after it was written (pip install/uninstall), or with --force.
#
# The recsys_spark package itself is left out: spark-submit.sh ships it as a zip with
# --py-files, rebuilt per source version, so the archive changes only with dependencies.
#
# venv-pack does not include the Python interpreter: bin/python links to the venv's base
# Python, which must exist at the same path on every node, or at --python-prefix (the
# prefix of an identical Python version there, for example /usr).
#
# Use it with: ./spark-submit.sh <job> --archives build/recsys-env.tar.gz#environment
#   --conf spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python  (YARN)
# and PYSPARK_PYTHON=./environment/bin/python; see docs/cluster.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

venv="$here/.venv"
output="$here/build/recsys-env.tar.gz"
python_prefix=""
force=0
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --venv) [[ $# -ge 2 ]] || { echo "error: --venv needs a value" >&2; exit 2; }; venv="$2"; shift 2 ;;
    --output) [[ $# -ge 2 ]] || { echo "error: --output needs a value" >&2; exit 2; }; output="$2"; shift 2 ;;
    --python-prefix) [[ $# -ge 2 ]] || { echo "error: --python-prefix needs a value" >&2; exit 2; }; python_prefix="$2"; shift 2 ;;
    --force) force=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "error: unexpected argument '$1'; see $0 --help" >&2; exit 2 ;;
  esac
done

python="$venv/bin/python"
if [[ ! -x "$python" ]]; then
  echo "error: no virtual environment at $venv ($python not found); create it with scripts/install.sh or pass --venv DIR" >&2
  exit 2
fi
site_packages="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

mkdir -p "$(dirname "$output")"
output="$(cd "$(dirname "$output")" && pwd)/$(basename "$output")"
if [[ $force -eq 0 && -f "$output" && "$output" -nt "$site_packages" ]]; then
  echo "pack-env: $output is up to date (newer than $site_packages); use --force to rebuild" >&2
  echo "$output"
  exit 0
fi

if ! "$python" -c 'import venv_pack' 2>/dev/null; then
  echo "pack-env: installing venv-pack into $venv" >&2
  "$python" -m pip install --quiet venv-pack
fi

options=(--prefix "$venv" --output "$output.partial" --format tar.gz --force --quiet)
[[ -n "$python_prefix" ]] && options+=(--python-prefix "$python_prefix")
# The editable install of this project points at the source tree, which executors do
# not have; the package reaches them through --py-files instead.
options+=(
  --exclude "lib/*/site-packages/__editable__*recsys_spark*"
  --exclude "lib/*/site-packages/recsys_spark-*.dist-info/*"
)

started=$SECONDS
echo "pack-env: packing $venv into $output" >&2
rm -f "$output.partial"
"$python" -m venv_pack "${options[@]}" "${extra[@]}"
mv -f "$output.partial" "$output"
size="$(du -h "$output" | cut -f1)"
echo "pack-env: wrote $output ($size) in $((SECONDS - started))s" >&2
echo "$output"

#!/usr/bin/env bash
# Run a recsys-spark job through spark-submit.
#
#   ./spark-submit.sh <job> [--config FILE]... [--set KEY=VALUE]... [spark-submit options]
#
# --config and --set go to the job; every other option (--master, --conf, --archives, ...)
# goes to spark-submit. Without --master, the job's spark.master config value is used.
# SPARK_HOME/bin/spark-submit is used when SPARK_HOME is set, pyspark's own otherwise.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
if [[ -z "${PYTHON:-}" && -x "$here/.venv/bin/python" ]]; then
  python="$here/.venv/bin/python"
fi

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
  exec "$python" "$here/jobs/run.py" --help
fi
job="$1"
shift
# Reject an unknown job name now, because spark-submit starts a JVM before jobs/run.py runs.
"$python" "$here/jobs/run.py" "$job" --check || exit 2

job_args=()
submit_args=()
has_master=0
extra_pyfiles=""
extra_files=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config|--set)
      [[ $# -ge 2 ]] || { echo "error: $1 needs a value" >&2; exit 2; }
      job_args+=("$1" "$2"); shift 2 ;;
    --config=*|--set=*)
      job_args+=("${1%%=*}" "${1#*=}"); shift ;;
    -h|--help)
      # The job's own help (its description and options); no JVM is started.
      exec "$python" "$here/jobs/run.py" "$job" --help ;;
    --master)
      [[ $# -ge 2 ]] || { echo "error: --master needs a value" >&2; exit 2; }
      has_master=1; submit_args+=("$1" "$2"); shift 2 ;;
    --master=*)
      has_master=1; submit_args+=("$1"); shift ;;
    --py-files|--files)
      [[ $# -ge 2 ]] || { echo "error: $1 needs a value" >&2; exit 2; }
      if [[ "$1" == "--py-files" ]]; then extra_pyfiles="$2"; else extra_files="$2"; fi
      shift 2 ;;
    --verbose|-v|--supervise)
      submit_args+=("$1"); shift ;;
    --*)
      [[ $# -ge 2 ]] || { echo "error: $1 needs a value" >&2; exit 2; }
      submit_args+=("$1" "$2"); shift 2 ;;
    *)
      echo "error: unexpected argument '$1'; job options are --config FILE and --set KEY=VALUE" >&2
      exit 2 ;;
  esac
done

if [[ -n "${SPARK_HOME:-}" ]]; then
  submit="$SPARK_HOME/bin/spark-submit"
else
  submit="$("$python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')/bin/spark-submit"
fi

settings="$("$python" -m recsys_spark.config spark.master spark.driver_memory spark.log_level "${job_args[@]}")"
master="$(sed -n 1p <<<"$settings")"
driver_memory="$(sed -n 2p <<<"$settings")"
log_level="$(sed -n 3p <<<"$settings")"
if [[ $has_master -eq 0 ]]; then
  submit_args=(--master "$master" "${submit_args[@]}")
fi
if [[ " ${submit_args[*]} " != *" --driver-memory "* ]]; then
  submit_args=(--driver-memory "$driver_memory" "${submit_args[@]}")
fi
# spark.log_level from the config also quiets Spark's start-up INFO lines.
if [[ " ${submit_args[*]} " != *" spark.log.level="* ]]; then
  submit_args+=(--conf "spark.log.level=$log_level")
fi

# The package goes to executors as a zip (rebuilt only when the sources change), and the
# config files go beside it so that a driver in cluster deploy mode finds them too.
pyfiles="$("$python" "$here/scripts/build_pyfiles.py")"
conf_files="$(ls "$here"/conf/*.yaml | paste -sd, -)"
for ((i = 0; i < ${#job_args[@]}; i += 2)); do
  if [[ "${job_args[i]}" == "--config" && -f "${job_args[i+1]}" ]]; then
    conf_files="$conf_files,$(cd "$(dirname "${job_args[i+1]}")" && pwd)/$(basename "${job_args[i+1]}")"
  fi
done
submit_args+=(--py-files "$pyfiles${extra_pyfiles:+,$extra_pyfiles}")
submit_args+=(--files "$conf_files${extra_files:+,$extra_files}")

if [[ "$master" == local* && $has_master -eq 0 ]]; then
  export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
fi
# With --py-files the package is imported from the zip, which has no conf/ folder; a driver
# on this machine (client mode) reads the configs here, one in cluster mode reads the
# shipped copies from its working folder.
export RECSYS_CONF_DIR="${RECSYS_CONF_DIR:-$here/conf}"
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$python}"
export PYSPARK_DRIVER_PYTHON="${PYSPARK_DRIVER_PYTHON:-$python}"
cmd=("$submit" "${submit_args[@]}" "$here/jobs/run.py" "$job" "${job_args[@]}")
echo "+ ${cmd[*]}" >&2
# RECSYS_DRY_RUN=1 stops after building the zip and printing the command (used by tests).
if [[ "${RECSYS_DRY_RUN:-0}" == 1 ]]; then
  exit 0
fi
exec "${cmd[@]}"

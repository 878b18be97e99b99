#!/usr/bin/env bash
# Run jobs on a real Spark standalone cluster on 127.0.0.1 and in local mode, then check
# that both runs wrote the same output.
#
#   scripts/cluster_test.sh [--jobs pipeline] [--workers 2] [--work-dir DIR] [--keep]
#                           [--set KEY=VALUE]... [--compare TABLE]... [--skip-local]
#
# Starts a master and --workers workers (scripts/standalone-cluster.sh) and stops them on
# exit whatever happens. Runs each job of --jobs (comma-separated, in order, one
# spark-submit each) on the tiny synthetic tier, first against the cluster (lake
# <work dir>/cluster), then with local[2] (lake <work dir>/local). Each --set adds a
# config override to both runs. When the jobs write recommendations, validate_output
# checks the cluster's partition. scripts/compare_outputs.py then compares the two lakes:
# the recommendations by default, or the tables the jobs write (for example --jobs ingest
# compares raw/* and id_maps/*), or the --compare tables. Exits non-zero on any failure
# or difference.
#
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
[[ -x "$python" ]] || python=python3

jobs="pipeline"
workers=2
work_dir=""
keep=0
skip_local=0
tables=()
overrides=()
# Prints the header comment above.
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --jobs) [[ $# -ge 2 ]] || { echo "error: --jobs needs a value" >&2; exit 2; }; jobs="$2"; shift 2 ;;
    --workers) [[ $# -ge 2 ]] || { echo "error: --workers needs a value" >&2; exit 2; }; workers="$2"; shift 2 ;;
    --work-dir) [[ $# -ge 2 ]] || { echo "error: --work-dir needs a value" >&2; exit 2; }; work_dir="$2"; shift 2 ;;
    --compare) [[ $# -ge 2 ]] || { echo "error: --compare needs a value" >&2; exit 2; }; tables+=("$2"); shift 2 ;;
    --set) [[ $# -ge 2 ]] || { echo "error: --set needs a value" >&2; exit 2; }; overrides+=(--set "$2"); shift 2 ;;
    --keep) keep=1; shift ;;
    --skip-local) skip_local=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unexpected argument '$1'; see $0 --help" >&2; exit 2 ;;
  esac
done
[[ "$workers" =~ ^[1-9][0-9]*$ ]] || { echo "error: --workers must be a positive integer, got '$workers'" >&2; exit 2; }
IFS=, read -r -a job_list <<<"$jobs"

# The tables each job writes, compared when no --compare is given.
if [[ ${#tables[@]} -eq 0 ]]; then
  for job in "${job_list[@]}"; do
    case "$job" in
      pipeline|recommend) tables+=(recommendations) ;;
      ingest) tables+=(raw/users raw/videos raw/interactions id_maps/users id_maps/videos) ;;
      build_features) tables+=(features/users/test features/videos/test features/item_frequencies) ;;
      build_training_set) tables+=(training/train training/validation training/test) ;;
      generate_candidates) tables+=(candidates/test) ;;
      *) ;;
    esac
  done
fi
if [[ ${#tables[@]} -eq 0 ]]; then
  echo "error: no table to compare for --jobs $jobs; name one with --compare TABLE" >&2
  exit 2
fi

if [[ -z "$work_dir" ]]; then
  work_dir="$(mktemp -d "${TMPDIR:-/tmp}/recsys-cluster-test.XXXXXX")"
fi
mkdir -p "$work_dir"
work_dir="$(cd "$work_dir" && pwd)"
state="$work_dir/standalone"

cleanup() {
  local status=$?
  "$here/scripts/standalone-cluster.sh" stop "$state" || true
  if [[ $keep -eq 0 && $status -eq 0 ]]; then
    rm -rf "$work_dir"
  else
    echo "cluster test: logs and lakes kept in $work_dir" >&2
  fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Everything (master, workers, driver, executors) binds to loopback.
export SPARK_LOCAL_IP=127.0.0.1
export PYTHON="$python"
common=(--set data.size=tiny --set run_date=2026-01-01 --set spark.driver_memory=2g "${overrides[@]}")

run_jobs() {
  local name="$1" master="$2"
  shift 2
  local job
  for job in "${job_list[@]}"; do
    local started=$SECONDS
    echo "cluster test: $job on $master (lake $work_dir/$name)" >&2
    if ! "$here/spark-submit.sh" "$job" "${common[@]}" \
      --set "lake.root=$work_dir/$name" --set "spark.master=$master" "$@" \
      >"$work_dir/$name-$job.log" 2>&1; then
      echo "error: $job failed on $master; last lines of $work_dir/$name-$job.log:" >&2
      tail -n 40 "$work_dir/$name-$job.log" >&2
      return 1
    fi
    echo "cluster test: $job on $master finished in $((SECONDS - started))s" >&2
  done
}

started=$SECONDS
master="$("$here/scripts/standalone-cluster.sh" start "$state" "$workers" 1 2g)"
echo "cluster test: standalone master $master with $workers workers" >&2

# One executor per worker, each with the worker's single core.
run_jobs cluster "$master" \
  --conf spark.driver.host=127.0.0.1 \
  --conf spark.executor.memory=1g \
  --conf spark.executor.cores=1

# Check that executors really ran on every worker: each keeps an app-* folder per application.
for i in $(seq 1 "$workers"); do
  if ! compgen -G "$state/work-$i/app-*" >/dev/null; then
    echo "error: worker $i ran no executor (no $state/work-$i/app-*); see $state/*.log" >&2
    exit 1
  fi
done

if [[ " ${tables[*]} " == *" recommendations "* ]]; then
  echo "cluster test: validate_output on the cluster's recommendations" >&2
  if ! "$here/spark-submit.sh" validate_output "${common[@]}" \
    --set "lake.root=$work_dir/cluster" --set "spark.master=$master" \
    --conf spark.driver.host=127.0.0.1 >"$work_dir/cluster-validate_output.log" 2>&1; then
    echo "error: validate_output failed; last lines of $work_dir/cluster-validate_output.log:" >&2
    tail -n 40 "$work_dir/cluster-validate_output.log" >&2
    exit 1
  fi
fi

if [[ $skip_local -eq 1 ]]; then
  echo "cluster test: passed on the cluster in $((SECONDS - started))s (local run skipped)" >&2
  exit 0
fi
run_jobs local "local[2]"

compare=()
for table in "${tables[@]}"; do compare+=(--table "$table"); done
echo "cluster test: comparing ${tables[*]}" >&2
"$python" "$here/scripts/compare_outputs.py" "$work_dir/cluster" "$work_dir/local" \
  --run-date 2026-01-01 "${compare[@]}"
echo "cluster test: passed in $((SECONDS - started))s" >&2
